//! Helpers for the models' unit tests.

use bytes::Bytes;
use serialtwin_core::{Context, Device, Replies, SimClock};

/// Ask `by_handle` every request through [`Device::handle`] and `by_now` through
/// [`Device::handle_now`], each with its own context on a clock stopped at `unix`; assert that
/// `handle_now` answers every one and that the replies are the same (delays and raw flags
/// included). Returns each request's replies, for the caller's own checks.
pub(crate) async fn same_answers<D: Device>(
    by_handle: &mut D,
    by_now: &mut D,
    unix: u64,
    requests: &[&[u8]],
) -> Vec<Replies> {
    let mut ctx_handle = Context::for_test(SimClock::at_unix(unix, 0.0));
    let mut ctx_now = Context::for_test(SimClock::at_unix(unix, 0.0));
    let mut answers = Vec::new();
    for &request in requests {
        let mut expected = Replies::new();
        by_handle
            .handle(
                Bytes::copy_from_slice(request),
                &mut ctx_handle,
                &mut expected,
            )
            .await
            .unwrap();
        let mut got = Replies::new();
        assert!(
            matches!(
                by_now.handle_now(request, &mut ctx_now, &mut got),
                Some(Ok(()))
            ),
            "{}",
            request.escape_ascii()
        );
        assert_eq!(got, expected, "{}", request.escape_ascii());
        answers.push(got);
    }
    answers
}
