//! A simulated wall clock: an epoch and a speed factor over tokio's `Instant`.
//!
//! Devices read the time of day from here rather than from [`SystemTime::now`], so that a test
//! can pin a moment (`#[tokio::test(start_paused = true)]` freezes tokio's clock) and get exact
//! bytes, and a demo can run a day faster than real time.
//!
//! Simulated time always lies between the Unix epoch and [`LATEST_UNIX`] (the last second of
//! year 9999, the last a device's four-digit year can show): an epoch outside is moved to the
//! nearest end, and a fast clock stops at the last second instead of overflowing. So no finite
//! input makes the clock, or a device formatting its date, panic.

use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// The last second simulated time reaches: 9999-12-31T23:59:59Z.
pub const LATEST_UNIX: u64 = 253_402_300_799;

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
    /// `epoch` is kept between the Unix epoch and [`LATEST_UNIX`]. A negative or NaN `speed` is
    /// a clock that stands still (0); an infinite one is at [`LATEST_UNIX`] as soon as any
    /// time passes.
    #[must_use]
    pub fn new(epoch: SystemTime, speed: f64) -> Self {
        let speed = if speed > 0.0 { speed } else { 0.0 };
        Self {
            epoch: epoch.clamp(UNIX_EPOCH, latest()),
            start: Instant::now(),
            speed,
        }
    }

    /// The real wall clock (epoch = now, speed 1).
    #[must_use]
    pub fn real() -> Self {
        Self::new(SystemTime::now(), 1.0)
    }

    /// A clock pinned at `unix_seconds` (at most [`LATEST_UNIX`]) when created, running at
    /// `speed`.
    #[must_use]
    pub fn at_unix(unix_seconds: u64, speed: f64) -> Self {
        Self::new(
            UNIX_EPOCH + Duration::from_secs(unix_seconds.min(LATEST_UNIX)),
            speed,
        )
    }

    /// The simulated wall time now (at most [`LATEST_UNIX`]).
    #[must_use]
    pub fn now(&self) -> SystemTime {
        let real = self.start.elapsed();
        if real.is_zero() || self.speed == 0.0 {
            return self.epoch;
        }
        let simulated = real.as_secs_f64() * self.speed;
        let room = latest()
            .duration_since(self.epoch)
            .unwrap_or_default()
            .as_secs_f64();
        if simulated >= room {
            latest()
        } else {
            self.epoch + Duration::from_secs_f64(simulated)
        }
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

/// [`LATEST_UNIX`] as a time.
fn latest() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(LATEST_UNIX)
}

impl Default for SimClock {
    fn default() -> Self {
        Self::real()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whatever finite (or infinite) values it is given, the clock reads a time between the
    /// epoch and the last second of year 9999, and never panics.
    #[tokio::test(start_paused = true)]
    async fn no_input_makes_the_clock_panic() {
        let far = UNIX_EPOCH + Duration::from_secs(u64::MAX / 4);
        let clocks = [
            SimClock::new(UNIX_EPOCH, 1e308),
            SimClock::new(UNIX_EPOCH, f64::INFINITY),
            SimClock::new(UNIX_EPOCH, f64::NAN),
            SimClock::new(UNIX_EPOCH, -5.0),
            SimClock::new(far, 1.0),
            SimClock::new(UNIX_EPOCH - Duration::from_secs(1_000_000), 1e18),
            SimClock::at_unix(9_223_372_036_854_775_807, 1e18),
            SimClock::at_unix(LATEST_UNIX - 10, 1.0),
        ];
        for _ in 0..3 {
            for c in &clocks {
                let t = c.now();
                assert!(t >= UNIX_EPOCH && t <= latest(), "{c:?}: {t:?}");
                let s = c.unix_seconds_f64();
                assert!(s.is_finite() && s <= 253_402_300_799.0, "{c:?}");
            }
            tokio::time::advance(Duration::from_hours(1)).await;
        }
        assert_eq!(clocks[0].now(), latest(), "a fast clock stops at the end");
        assert_eq!(
            clocks[2].now(),
            UNIX_EPOCH,
            "NaN: a clock that stands still"
        );
        assert_eq!(
            clocks[3].now(),
            UNIX_EPOCH,
            "negative: a clock that stands still"
        );
        assert_eq!(
            clocks[4].now(),
            latest(),
            "an epoch beyond the end is the end"
        );
        assert_eq!(clocks[7].now(), latest(), "and time stops there");
    }
}
