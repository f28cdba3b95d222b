//! The [`Context`] a device sees: its watches on the line settings and the session.

use serialtwin_core::{Context, LineSettings, Session, SimClock};

#[tokio::test]
async fn watches_made_late_see_the_current_value_and_later_changes() {
    let mut ctx = Context::for_test(SimClock::real());
    ctx.set_settings(LineSettings::new(19_200));
    let mut settings = ctx.settings_watch();
    assert_eq!(settings.borrow_and_update().baud, 19_200);
    ctx.set_settings(LineSettings::new(2400));
    settings.changed().await.unwrap();
    assert_eq!(settings.borrow().baud, 2400);
    assert_eq!(ctx.settings().baud, 2400);

    let mut session = ctx.session_watch();
    ctx.set_session(Session {
        open: Some(true),
        count: 1,
    });
    session.changed().await.unwrap();
    assert_eq!(*session.borrow(), ctx.session());
}
