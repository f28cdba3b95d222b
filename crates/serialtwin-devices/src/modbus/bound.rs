//! Register values bound to a device's plant: a real device's numbers are not each a function
//! of time on their own (a ramp, a sine) but readings of one simulated system, so that they
//! agree with each other (a meter's power is its voltage times its current times its power
//! factor, and its energy the integral of that power).
//!
//! A [`Plant`] is shared by the [`Reading`]s of its registers and by the run-time keys that
//! move it ([`Knobs`](super::slave::Knobs)); each reading asks the plant for one quantity at
//! the time of the request, and the plant brings itself up to that time first.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::data::Value;
use super::unit::Provider;

/// A simulated system behind a device's registers.
pub trait Plant: Send + 'static {
    /// What a register can show: a voltage, an energy counter, a status word.
    type Quantity: Copy + fmt::Debug + Send + 'static;

    /// `quantity` at `now` (the time since the clock began), the plant brought up to `now`.
    fn reading(&mut self, quantity: Self::Quantity, now: Duration) -> Value;
}

/// A plant shared by its registers and its run-time keys.
#[derive(Debug)]
pub struct Shared<P>(Arc<Mutex<P>>);

impl<P> Clone for Shared<P> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<P> Shared<P> {
    /// `plant`, to be shared.
    pub fn new(plant: P) -> Self {
        Self(Arc::new(Mutex::new(plant)))
    }

    /// The plant, to read or move. A reading that panicked cannot leave the plant half-moved
    /// in a way later readings could not survive (every quantity is recomputed from the
    /// state), so a poisoned lock is taken over rather than spread.
    pub fn lock(&self) -> MutexGuard<'_, P> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One register value read from a plant: a [`Provider`] for
/// [`Registers::set_provider`](super::unit::Registers::set_provider).
pub struct Reading<P: Plant> {
    plant: Shared<P>,
    quantity: P::Quantity,
}

impl<P: Plant> Reading<P> {
    /// `quantity` of `plant`, boxed for a register table.
    #[must_use]
    pub fn boxed(plant: &Shared<P>, quantity: P::Quantity) -> Box<dyn Provider> {
        Box::new(Self {
            plant: plant.clone(),
            quantity,
        })
    }
}

impl<P: Plant> fmt::Debug for Reading<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reading")
            .field("quantity", &self.quantity)
            .finish_non_exhaustive()
    }
}

impl<P: Plant> Provider for Reading<P> {
    fn value(&mut self, now: Duration) -> Value {
        self.plant.lock().reading(self.quantity, now)
    }
}
