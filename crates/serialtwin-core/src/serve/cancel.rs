//! The serving loop's cancellation, looked at only after it woke the task.

use std::future::poll_fn;
use std::pin::Pin;
use std::task::Poll;

use tokio_util::sync::WaitForCancellationFuture;

use crate::gate::{Gates, Source};

/// The serving loop's cancellation: one future, polled through its gate only.
pub(super) struct Cancelled<'p, 't> {
    future: std::pin::Pin<&'p mut WaitForCancellationFuture<'t>>,
    /// The serving loop's gates (a clone: the loop borrows itself mutably meanwhile).
    gates: Gates,
}

impl<'p, 't> Cancelled<'p, 't> {
    /// Cancellation by `future`, looked at through `gates`.
    pub(super) fn new(future: Pin<&'p mut WaitForCancellationFuture<'t>>, gates: Gates) -> Self {
        Self { future, gates }
    }

    pub(super) fn poll(&mut self, cx: &mut std::task::Context<'_>) -> Poll<()> {
        let Self { future, gates } = self;
        gates.poll(Source::Cancel, cx, |cx| future.as_mut().poll(cx))
    }

    /// `fut`'s output, or `None` if cancellation comes first: looked at before every poll but
    /// the first. Every caller starts `fut` in the task poll in which [`Server::wait`] (or a
    /// previous `or`) just looked at cancellation, so looking again then would only cost time;
    /// a cancellation that lands in between is seen at the next look, at the latest when the
    /// loop waits again after this read's requests.
    ///
    /// `fut` comes pinned by the caller (or boxed): a plain `poll_fn` then, not an `async fn`
    /// around one — one state less to step through on every request.
    pub(super) fn or<F: Future + Unpin>(
        &mut self,
        mut fut: F,
    ) -> impl Future<Output = Option<F::Output>> {
        let mut first = true;
        poll_fn(move |cx| {
            if !std::mem::take(&mut first) && self.poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            Pin::new(&mut fut).poll(cx).map(Some)
        })
    }
}
