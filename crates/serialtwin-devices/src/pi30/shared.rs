//! The state a parallel group shares: the plant, every unit's settings, and the handle a
//! control channel uses to change the plant's inputs at run time.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use serialtwin_core::SimClock;

use super::config::{Pi30Config, Settings};
use super::plant::{Plant, Snapshot, unix_f64};

/// What a unit keeps besides its settings.
#[derive(Clone, Debug)]
pub(crate) struct UnitState {
    /// Serial number (QID, `QPGSn`).
    pub serial: String,
    /// A setter changed something since the last `PSAVE` (QPIGS/QPGS status bits).
    pub config_changed: bool,
    /// Device clock minus (simulated UTC + the plant's UTC offset), seconds (`DAT`).
    pub clock_offset: i64,
}

/// Everything the units of a group share, behind one mutex.
#[derive(Debug)]
pub(crate) struct System {
    /// The group's configuration.
    pub config: Arc<Pi30Config>,
    /// Sun, load, grid and the battery bank.
    pub plant: Plant,
    /// Unit `i`'s current settings.
    pub settings: Vec<Settings>,
    /// Unit `i`'s other state.
    pub units: Vec<UnitState>,
}

impl System {
    /// A group of `n` units built from `config`.
    pub(crate) fn new(config: Arc<Pi30Config>, n: usize) -> Self {
        let initial = config
            .settings
            .clone()
            .unwrap_or_else(|| config.factory_settings());
        let plant = Plant::new(
            config.plant.clone(),
            config.battery.clone(),
            config.variant,
            n,
        );
        let units = (0..n)
            .map(|i| UnitState {
                serial: config.unit_serial(i),
                config_changed: false,
                clock_offset: 0,
            })
            .collect();
        Self {
            settings: vec![initial; n],
            units,
            plant,
            config,
        }
    }

    /// The plant at `t` (integrated up to `t` under the settings in force).
    pub(crate) fn observe(&mut self, t: f64) -> Snapshot {
        self.plant.observe(t, &self.settings)
    }
}

/// Lock the group's state, carrying on if another port panicked while holding it: the state
/// is plain data, always left consistent between statements.
pub(crate) fn lock(shared: &Mutex<System>) -> MutexGuard<'_, System> {
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A run-time handle on a unit's (or group's) plant, for a control channel.
///
/// Each change takes the simulated time at which it happens: the plant first integrates up
/// to that instant under the old inputs, so the outcome depends on simulated time only.
#[derive(Clone, Debug)]
pub struct Pi30Handle {
    /// The shared state.
    pub(crate) shared: Arc<Mutex<System>>,
}

impl Pi30Handle {
    /// Start the plant on `clock`: at the clock's start — the moment `initial_soc` describes
    /// — unless its config pins `start_unix`, integrating in steps the clock's speed allows
    /// (see [`STEPS_PER_REAL_SECOND`](super::STEPS_PER_REAL_SECOND)). Whatever is fixed already
    /// stays. The device does this whenever it answers or is set; a program driving the handle
    /// before any request calls it first, or the plant starts at the first instant it is asked
    /// about, in the shortest steps.
    pub fn start_on(&self, clock: &SimClock) {
        lock(&self.shared)
            .plant
            .start_on(unix_f64(clock.epoch()), clock.speed());
    }

    /// The grid goes away (`false`) or comes back (`true`) at `at`.
    pub fn set_grid_present(&self, present: bool, at: SystemTime) {
        let mut sys = lock(&self.shared);
        let sys = &mut *sys;
        sys.plant
            .set_grid_present(present, unix_f64(at), &sys.settings);
    }

    /// The battery's state of charge becomes `soc` (0.0 to 1.0) at `at`.
    pub fn set_soc(&self, soc: f64, at: SystemTime) {
        let mut sys = lock(&self.shared);
        let sys = &mut *sys;
        sys.plant.set_soc(soc, unix_f64(at), &sys.settings);
    }

    /// Whether the grid is present.
    #[must_use]
    pub fn grid_present(&self) -> bool {
        lock(&self.shared).plant.grid_present()
    }

    /// The plant as it is at `at`.
    #[must_use]
    pub fn snapshot(&self, at: SystemTime) -> Snapshot {
        lock(&self.shared).observe(unix_f64(at))
    }

    /// Unit `unit`'s current settings, if the group has that unit.
    #[must_use]
    pub fn settings(&self, unit: usize) -> Option<Settings> {
        lock(&self.shared).settings.get(unit).cloned()
    }

    /// Number of units in the group.
    #[must_use]
    pub fn units(&self) -> usize {
        lock(&self.shared).units.len()
    }
}
