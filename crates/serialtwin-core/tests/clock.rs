//! The simulated wall clock ([`SimClock`]) against tokio's paused clock.

use std::time::{Duration, UNIX_EPOCH};

use serialtwin_core::SimClock;

#[tokio::test(start_paused = true)]
async fn advances_with_tokio_time_times_speed() {
    let c = SimClock::at_unix(1_700_000_000, 60.0);
    assert_eq!(c.now(), UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(c.now(), UNIX_EPOCH + Duration::from_secs(1_700_000_600));
}
