//! A simulated wall clock: an epoch and a speed factor over tokio's `Instant`.
//!
//! Devices read the time of day from here rather than from [`SystemTime::now`], so that a test
//! can pin a moment (`#[tokio::test(start_paused = true)]` freezes tokio's clock) and get exact
//! bytes, and a demo can run a day faster than real time.

use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// A simulated wall clock. Cheap to clone; clones agree with each other.
#[derive(Clone, Copy, Debug)]
pub struct SimClock {
    /// Simulated wall time at `start`.
    epoch: SystemTime,
    /// tokio's instant at which the simulated time was `epoch`.
    start: Instant,
    /// Simulated seconds per real (tokio) second.
    speed: f64,
}

impl SimClock {
    /// A clock that reads `epoch` now and advances `speed` times as fast as tokio's clock.
    ///
    /// # Panics
    /// If `speed` is negative or not finite.
    #[must_use]
    pub fn new(epoch: SystemTime, speed: f64) -> Self {
        assert!(
            speed.is_finite() && speed >= 0.0,
            "clock speed must be finite and >= 0"
        );
        Self {
            epoch,
            start: Instant::now(),
            speed,
        }
    }

    /// The real wall clock (epoch = now, speed 1).
    #[must_use]
    pub fn real() -> Self {
        Self::new(SystemTime::now(), 1.0)
    }

    /// A clock pinned at `unix_seconds` when created, running at `speed`.
    #[must_use]
    pub fn at_unix(unix_seconds: u64, speed: f64) -> Self {
        Self::new(UNIX_EPOCH + Duration::from_secs(unix_seconds), speed)
    }

    /// The simulated wall time now.
    #[must_use]
    pub fn now(&self) -> SystemTime {
        let real = self.start.elapsed();
        self.epoch + real.mul_f64(self.speed)
    }

    /// The simulated wall time at which this clock started (what it read when created).
    ///
    /// A model whose state evolves from a start (a battery's state of charge) starts there
    /// unless its own config pins another moment, so an initial value means "when the clock
    /// started" and not some moment derived from the first request.
    #[must_use]
    pub fn epoch(&self) -> SystemTime {
        self.epoch
    }

    /// Simulated seconds since the Unix epoch, with sub-second precision.
    #[must_use]
    pub fn unix_seconds_f64(&self) -> f64 {
        self.now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64())
    }

    /// The speed factor.
    #[must_use]
    pub fn speed(&self) -> f64 {
        self.speed
    }
}

impl Default for SimClock {
    fn default() -> Self {
        Self::real()
    }
}
