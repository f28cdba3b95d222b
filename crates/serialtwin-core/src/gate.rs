//! Look at rarely ready sources only after they woke us.
//!
//! A serving loop waits on its transport, its control channel and its cancellation at once,
//! and the transport wakes it for nearly every pass. Polling the other two on every pass costs
//! a mutex (the cancellation token's tree node) and a channel pop each time, and asking every
//! observer whether anyone is watching costs a few pointer chases — each a cache miss once a
//! fleet has more ports than the caches hold. These sources change a handful of times in a
//! port's life. [`Gates`] hands them a waker of their own that sets a bit per source; a source
//! is looked at again only once its bit is set. Per pass that leaves one waker registration
//! and one atomic load, on one cache line. (One waker for all the sources, which opens every
//! gate: a wake is rare, and a spurious look costs less than an allocation per source on
//! every port of a fleet.)
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

impl Source {
    const fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// One gate per [`Source`], and the waker that opens them. Clones share the gates.
#[derive(Clone, Debug)]
pub(crate) struct Gates {
    shared: Arc<Shared>,
    /// The sources' waker, made once: sources keep it and skip re-registering while
    /// `will_wake` says it is the same.
    waker: Waker,
}

#[derive(Debug)]
struct Shared {
    /// One bit per source: set when the waker fired (or the gates were opened).
    open: AtomicU8,
    /// The task to wake when the sources' waker fires.
    task: WakerSlot,
}

impl Wake for Shared {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.open.store(u8::MAX, Ordering::Release);
        self.task.wake();
    }
}

impl Gates {
    /// Gates that start open: every source is looked at once.
    pub(crate) fn new() -> Self {
        let shared = Arc::new(Shared {
            open: AtomicU8::new(u8::MAX),
            task: WakerSlot::default(),
        });
        let waker = Waker::from(shared.clone());
        Self { shared, waker }
    }

    /// Open every gate: each source is looked at again (for instance a new future that has
    /// never been polled took the place of an old one).
    pub(crate) fn open_all(&self) {
        self.shared.open.store(u8::MAX, Ordering::Release);
    }

    /// The waker to hand to a source: it opens the gates.
    pub(crate) fn waker(&self) -> &Waker {
        &self.waker
    }

    /// Whether `source`'s gate is open (leaving it so).
    pub(crate) fn is_open(&self, source: Source) -> bool {
        self.shared.open.load(Ordering::Acquire) & source.bit() != 0
    }

    /// Make sure the task behind `waker` is woken when the sources' waker fires.
    pub(crate) fn register(&self, waker: &Waker) {
        self.shared.task.register(waker);
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
    /// the task behind `cx` is woken when the gates' waker fires.
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
        let result = poll(&mut Context::from_waker(&self.waker));
        if result.is_ready() {
            self.shared.open.fetch_or(source.bit(), Ordering::Release);
        }
        result
    }
}

/// Where a source keeps the waker of the task (or lent port) to wake: an [`AtomicWaker`].
///
/// It once skipped registering again a waker it believed it still held (two loads instead of
/// two read-modify-writes). That belief could go stale: a wake racing a registration took the
/// newly registered waker and left its name behind, the next registration skipped, and the
/// wake after it was lost — a lent port whose task never took it back, a client waiting for a
/// reply forever. Every registration is made in full now.
#[derive(Debug, Default)]
pub(crate) struct WakerSlot {
    waker: AtomicWaker,
}

impl WakerSlot {
    /// Make sure `waker` is the one woken next.
    pub(crate) fn register(&self, waker: &Waker) {
        self.waker.register(waker);
    }

    /// Wake the waker held, if any.
    pub(crate) fn wake(&self) {
        self.waker.wake();
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
        // Looking at another source does not open this one.
        assert!(gates.take(Source::Watch));
        assert!(gates.poll(Source::Cancel, &mut cx, &mut poll).is_pending());
        token.cancel();
        assert_eq!(task_wakes.load(Ordering::SeqCst), 1, "the task is woken");
        assert!(gates.poll(Source::Cancel, &mut cx, &mut poll).is_ready());
        assert_eq!(polls, 2, "polled at first and after the wake only");
    }

    #[test]
    fn a_waker_slot_wakes_the_latest_waker_once_per_registration() {
        let slot = WakerSlot::default();
        let (a_wakes, a) = counting_waker();
        let (b_wakes, b) = counting_waker();
        slot.wake();
        // Registered again and again while held: one wake reaches it, once.
        for _ in 0..3 {
            slot.register(&a);
        }
        slot.wake();
        slot.wake();
        assert_eq!(a_wakes.load(Ordering::SeqCst), 1);
        // After a wake took it, the same waker must be registered in full again.
        slot.register(&a);
        slot.wake();
        assert_eq!(a_wakes.load(Ordering::SeqCst), 2);
        // Another waker replaces a held one.
        slot.register(&a);
        slot.register(&b);
        slot.wake();
        assert_eq!(
            (
                a_wakes.load(Ordering::SeqCst),
                b_wakes.load(Ordering::SeqCst)
            ),
            (2, 1)
        );
        // And back: the waker registered last is the one woken.
        slot.register(&b);
        slot.register(&a);
        slot.wake();
        assert_eq!(
            (
                a_wakes.load(Ordering::SeqCst),
                b_wakes.load(Ordering::SeqCst)
            ),
            (3, 1)
        );
    }

    /// A waker that unparks a thread.
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }

    /// A task (this thread) and a source (another thread) racing as a lent port's task and its
    /// lane do: the source sets a flag and wakes; the task registers, looks at the flag, and
    /// parks until woken. Wakes that land while a registration is in progress must not leave
    /// the slot believing it holds a waker it has given away: the next wake would be lost, and
    /// the task would sleep with the flag set.
    #[test]
    fn no_wake_is_lost_to_a_registration_racing_a_wake() {
        const ROUNDS: usize = 20_000;
        let slot = Arc::new(WakerSlot::default());
        let flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
        let source = {
            let (slot, flag) = (slot.clone(), flag.clone());
            std::thread::spawn(move || {
                for _ in 0..ROUNDS {
                    while flag.load(Ordering::Acquire) {
                        std::hint::spin_loop();
                    }
                    flag.store(true, Ordering::Release);
                    slot.wake();
                    // And a second, late wake, as a lane giving back a port the task is
                    // already taking.
                    slot.wake();
                }
            })
        };
        for round in 0..ROUNDS {
            loop {
                slot.register(&waker);
                if flag.swap(false, Ordering::AcqRel) {
                    break;
                }
                let parked = std::time::Instant::now();
                std::thread::park_timeout(Duration::from_secs(2));
                assert!(
                    parked.elapsed() < Duration::from_secs(2) || !flag.load(Ordering::Acquire),
                    "round {round}: the flag is set and no wake came"
                );
            }
        }
        source.join().unwrap();
    }

    #[test]
    fn take_and_open_all() {
        let gates = Gates::new();
        assert!(gates.take(Source::Watch), "open at first");
        assert!(!gates.take(Source::Watch));
        gates.waker().wake_by_ref();
        assert!(gates.take(Source::Watch));
        assert!(!gates.take(Source::Watch));
        assert!(gates.take(Source::Control), "a wake opens every gate");
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
