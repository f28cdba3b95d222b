//! Look at rarely ready sources only after they woke us.
//!
//! A serving loop waits on its transport, its control channel and its cancellation at once,
//! and the transport wakes it for nearly every pass. Polling the other two on every pass costs
//! a mutex (the cancellation token's tree node) and a channel pop each time, and asking every
//! observer whether anyone is watching costs a few pointer chases — each a cache miss once a
//! fleet has more ports than the caches hold. These sources change a handful of times in a
//! port's life. [`Gates`] gives each of them a waker of its own and a bit that the waker sets;
//! a source is looked at again only once its bit is set. Per pass that leaves one waker
//! registration and one atomic swap, on one cache line shared by all the sources.
//!
//! The one rule: a source behind a gate must be polled through that gate and nowhere else,
//! or its wake-ups would reach the task without setting its bit.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures::task::AtomicWaker;

/// The sources behind a serving loop's gates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// The cancellation token.
    Cancel = 0,
    /// The control channel.
    Control = 1,
    /// Whether an observer is watching.
    Watch = 2,
}

const SOURCES: [Source; 3] = [Source::Cancel, Source::Control, Source::Watch];

impl Source {
    const fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// One gate per [`Source`]: its own waker, and whether it fired since the source was last
/// looked at. Clones share the gates.
#[derive(Clone, Debug)]
pub(crate) struct Gates {
    shared: Arc<Shared>,
    /// Each source's waker, made once: sources keep it and skip re-registering while
    /// `will_wake` says it is the same.
    wakers: [Waker; SOURCES.len()],
}

#[derive(Debug)]
struct Shared {
    /// One bit per source: set when its waker fired (or the gate was opened).
    open: AtomicU8,
    /// The task to wake when a bit is set.
    task: AtomicWaker,
}

/// The waker of one source.
#[derive(Debug)]
struct SourceWaker {
    shared: Arc<Shared>,
    bit: u8,
}

impl Wake for SourceWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.shared.open.fetch_or(self.bit, Ordering::Release);
        self.shared.task.wake();
    }
}

impl Gates {
    /// Gates that start open: every source is looked at once.
    pub(crate) fn new() -> Self {
        let shared = Arc::new(Shared {
            open: AtomicU8::new(u8::MAX),
            task: AtomicWaker::new(),
        });
        let wakers = SOURCES.map(|source| {
            Waker::from(Arc::new(SourceWaker {
                shared: shared.clone(),
                bit: source.bit(),
            }))
        });
        Self { shared, wakers }
    }

    /// Open every gate: each source is looked at again (for instance a new future that has
    /// never been polled took the place of an old one).
    pub(crate) fn open_all(&self) {
        self.shared.open.store(u8::MAX, Ordering::Release);
    }

    /// The waker that opens `source`'s gate.
    pub(crate) fn waker(&self, source: Source) -> &Waker {
        &self.wakers[source as usize]
    }

    /// Whether `source`'s gate is open, closing it. Does not register the task: for sources
    /// that are only looked at when something else woke the task anyway.
    pub(crate) fn take(&self, source: Source) -> bool {
        let bit = source.bit();
        // A plain load first: the gate is nearly always closed, and a load leaves the cache
        // line shared.
        self.shared.open.load(Ordering::Acquire) & bit != 0
            && self.shared.open.fetch_and(!bit, Ordering::AcqRel) & bit != 0
    }

    /// Poll `source` with `poll` if its gate is open (closing it), else `Pending`; either way
    /// the task behind `cx` is woken when the source's waker fires.
    ///
    /// A source that was ready is polled again next time: a channel may hold more.
    pub(crate) fn poll<T>(
        &self,
        source: Source,
        cx: &mut Context<'_>,
        poll: impl FnOnce(&mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        // Register before looking: a wake between the two sets the bit and wakes the task.
        self.shared.task.register(cx.waker());
        if !self.take(source) {
            return Poll::Pending;
        }
        let result = poll(&mut Context::from_waker(self.waker(source)));
        if result.is_ready() {
            self.shared.open.fetch_or(source.bit(), Ordering::Release);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use std::pin::pin;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use tokio_util::sync::CancellationToken;

    use super::*;

    /// A waker counting its wakes.
    fn counting_waker() -> (Arc<AtomicUsize>, Waker) {
        struct W(Arc<AtomicUsize>);
        impl Wake for W {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let n = Arc::new(AtomicUsize::new(0));
        (n.clone(), Waker::from(Arc::new(W(n))))
    }

    #[test]
    fn a_source_is_polled_once_then_only_after_its_own_wake() {
        let gates = Gates::new();
        let (task_wakes, task) = counting_waker();
        let mut cx = Context::from_waker(&task);
        let token = CancellationToken::new();
        let mut cancelled = pin!(token.cancelled());
        let mut polls = 0;
        let mut poll = |cx: &mut Context<'_>| {
            polls += 1;
            cancelled.as_mut().poll(cx)
        };
        for _ in 0..3 {
            assert!(gates.poll(Source::Cancel, &mut cx, &mut poll).is_pending());
        }
        // Another source's wake does not open this gate, but does wake the task.
        gates.waker(Source::Control).wake_by_ref();
        assert_eq!(task_wakes.load(Ordering::SeqCst), 1);
        assert!(gates.poll(Source::Cancel, &mut cx, &mut poll).is_pending());
        token.cancel();
        assert_eq!(task_wakes.load(Ordering::SeqCst), 2, "the task is woken");
        assert!(gates.poll(Source::Cancel, &mut cx, &mut poll).is_ready());
        assert_eq!(polls, 2, "polled at first and after its own wake only");
    }

    #[test]
    fn take_and_open_all() {
        let gates = Gates::new();
        assert!(gates.take(Source::Watch), "open at first");
        assert!(!gates.take(Source::Watch));
        gates.waker(Source::Watch).wake_by_ref();
        assert!(gates.take(Source::Watch));
        assert!(!gates.take(Source::Watch));
        gates.open_all();
        assert!(gates.take(Source::Watch) && gates.take(Source::Cancel));
    }

    #[tokio::test]
    async fn a_channel_behind_a_gate_gives_every_message() {
        let gates = Gates::new();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<u32>(8);
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(n) =
                std::future::poll_fn(|cx| gates.poll(Source::Control, cx, |cx| rx.poll_recv(cx)))
                    .await
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
