//! Poll a rarely ready source only after it woke us.
//!
//! A serving loop waits on its transport, its control channel and its cancellation at once,
//! and is woken by the transport for nearly every pass. Polling the other two on every pass
//! costs a mutex (the cancellation token's tree node) and a channel pop each time, for sources
//! that are ready a handful of times in a port's life. A [`Gate`] gives such a source a waker
//! of its own: the source is polled with it, and polled again only once that waker has fired.
//! Per pass that leaves one waker registration and one atomic swap.
//!
//! The one rule: a source behind a gate must be polled through that gate and nowhere else,
//! or its wake-ups would reach the task without opening the gate.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures::task::AtomicWaker;

/// A source's own waker, and whether it fired since the source was last polled.
#[derive(Debug)]
pub(crate) struct Gate {
    inner: Arc<Inner>,
    /// The waker handed to the source (made once: sources keep it and skip re-registering
    /// while `will_wake` says it is the same).
    waker: Waker,
}

#[derive(Debug)]
struct Inner {
    open: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Inner {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.open.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl Gate {
    /// A gate that starts open: the source is polled once to register its waker.
    pub(crate) fn new() -> Self {
        let inner = Arc::new(Inner {
            open: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        let waker = Waker::from(inner.clone());
        Self { inner, waker }
    }

    /// Poll the source with `poll` if its waker fired since it was last polled (or it has
    /// never been), else `Pending`; either way the task behind `cx` is woken when it fires.
    ///
    /// A source that was ready is polled again next time: a channel may hold more.
    pub(crate) fn poll<T>(
        &self,
        cx: &mut Context<'_>,
        poll: impl FnOnce(&mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        // Register before looking: a wake between the two opens the gate and wakes the task.
        self.inner.task.register(cx.waker());
        if !self.inner.open.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        let result = poll(&mut Context::from_waker(&self.waker));
        if result.is_ready() {
            self.inner.open.store(true, Ordering::Release);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use std::pin::pin;
    use std::time::Duration;

    use tokio_util::sync::CancellationToken;

    use super::*;

    /// Counts how often it is polled; ready once `ready` is set, then wakes whoever polled it.
    fn counting_waker() -> (Arc<std::sync::atomic::AtomicUsize>, Waker) {
        struct W(Arc<std::sync::atomic::AtomicUsize>);
        impl Wake for W {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let n = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        (n.clone(), Waker::from(Arc::new(W(n))))
    }

    #[test]
    fn the_source_is_polled_once_then_only_after_its_wake() {
        let gate = Gate::new();
        let (task_wakes, task) = counting_waker();
        let mut cx = Context::from_waker(&task);
        let token = CancellationToken::new();
        let mut cancelled = pin!(token.cancelled());
        let mut polls = 0;
        let mut poll = |cx: &mut Context<'_>| {
            polls += 1;
            cancelled.as_mut().poll(cx)
        };
        assert!(gate.poll(&mut cx, &mut poll).is_pending());
        assert!(gate.poll(&mut cx, &mut poll).is_pending());
        assert!(gate.poll(&mut cx, &mut poll).is_pending());
        token.cancel();
        assert_eq!(task_wakes.load(Ordering::SeqCst), 1, "the task is woken");
        assert!(gate.poll(&mut cx, &mut poll).is_ready());
        assert_eq!(polls, 2, "polled at first and after the wake only");
    }

    #[tokio::test]
    async fn a_channel_behind_a_gate_gives_every_message() {
        let gate = Gate::new();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<u32>(8);
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(n) =
                std::future::poll_fn(|cx| gate.poll(cx, |cx| rx.poll_recv(cx))).await
            {
                got.push(n);
            }
            got
        });
        for n in 0..5 {
            tx.send(n).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        for n in 5..10 {
            tx.send(n).await.unwrap();
        }
        drop(tx);
        assert_eq!(reader.await.unwrap(), (0..10).collect::<Vec<_>>());
    }
}
