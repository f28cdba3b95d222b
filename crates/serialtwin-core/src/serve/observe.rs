//! The observer hook: everything the serving loop sees, in order.
//!
//! The traffic trace, the capture writer and a Rust test's assertions all hang here. Observers
//! are called synchronously from the serving loop, so they must be cheap (format a line, push
//! into a channel) and must never block.

use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::Waker;

use bytes::Bytes;
use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::port::settings::LineEvent;

/// Which way bytes went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the client to the device (a request).
    Rx,
    /// From the device to the client (a reply or an unprompted frame).
    Tx,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Rx => "rx",
            Self::Tx => "tx",
        })
    }
}

/// What was seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    /// A decoded request frame (without its terminator), or the encoded bytes of a reply as
    /// handed to the line stage.
    Frame(Direction, Bytes),
    /// A line event (open, close, settings, flush).
    Event(LineEvent),
    /// Input the framer discarded, and why.
    FrameError(String),
    /// The device's handler failed; it keeps serving.
    HandlerError(String),
    /// An injected fault hit the next frame sent.
    Fault(crate::wire::fault::FaultKind),
}

/// One observation, stamped with tokio's clock.
#[derive(Clone, Debug)]
pub struct Observation {
    /// When it was seen.
    pub at: Instant,
    /// The port's name.
    pub port: Arc<str>,
    /// What was seen.
    pub seen: Seen,
}

/// Receives every observation of a port, in order.
pub trait Observer: Send + Sync + 'static {
    /// Called by the serving loop; must not block.
    fn observe(&self, observation: &Observation);

    /// Whether anyone could see an observation now. The serving loop builds none (no clock
    /// read, no copies) while every observer of its port says no. The default is yes.
    ///
    /// The loop asks once, then again only after the waker given to
    /// [`when_watched`](Self::when_watched) fired: an observer whose answer can turn from no
    /// to yes must wake it.
    fn is_watching(&self) -> bool {
        true
    }

    /// Wake `waker` whenever [`is_watching`](Self::is_watching) may have turned true. The
    /// default does nothing (the default answer never changes).
    fn when_watched(&self, waker: &Waker) {
        let _ = waker;
    }
}

impl fmt::Debug for dyn Observer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Observer")
    }
}

impl<F: Fn(&Observation) + Send + Sync + 'static> Observer for F {
    fn observe(&self, observation: &Observation) {
        self(observation);
    }
}

/// An observer that fans observations out on a `tokio::sync::broadcast` channel.
///
/// Subscribers that fall behind lose the oldest observations (and learn how many with
/// `RecvError::Lagged`); the serving loop never waits for them.
///
/// The channel is created on the first [`subscribe`](Self::subscribe): a broadcast channel
/// allocates all its slots up front, and most ports of a big fleet are never watched, so
/// until then a port pays one atomic load per observation and no memory.
#[derive(Clone, Debug)]
pub struct Broadcast {
    capacity: usize,
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    tx: OnceLock<broadcast::Sender<Observation>>,
    /// Serving loops to wake on the first subscription (see [`Observer::when_watched`]).
    waiting: Mutex<Waiting>,
}

/// The wakers waiting for a first subscription: nearly always the one port's, kept without
/// an allocation.
#[derive(Debug, Default)]
enum Waiting {
    #[default]
    None,
    One(Waker),
    Many(Vec<Waker>),
}

impl Waiting {
    fn add(&mut self, waker: &Waker) {
        match self {
            Self::None => *self = Self::One(waker.clone()),
            Self::One(w) if w.will_wake(waker) => {}
            Self::One(w) => *self = Self::Many(vec![w.clone(), waker.clone()]),
            Self::Many(ws) if ws.iter().any(|w| w.will_wake(waker)) => {}
            Self::Many(ws) => ws.push(waker.clone()),
        }
    }

    fn wake_all(&mut self) {
        match std::mem::take(self) {
            Self::None => {}
            Self::One(w) => w.wake(),
            Self::Many(ws) => ws.into_iter().for_each(Waker::wake),
        }
    }
}

impl Broadcast {
    /// A channel keeping up to `capacity` observations for slow subscribers.
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            shared: Arc::default(),
        }
    }

    /// A new subscriber, seeing observations from now on: the serving loop learns of it before
    /// it looks at anything that happens after this returns.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<Observation> {
        let rx = self
            .shared
            .tx
            .get_or_init(|| broadcast::channel(self.capacity).0)
            .subscribe();
        self.waiting().wake_all();
        rx
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, Waiting> {
        // A panic while holding this lock leaves a list of wakers: still usable.
        self.shared
            .waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Observer for Broadcast {
    fn observe(&self, observation: &Observation) {
        // Only subscribers that exist get it; none is fine.
        if let Some(tx) = self.shared.tx.get()
            && tx.receiver_count() > 0
        {
            let _ = tx.send(observation.clone());
        }
    }

    fn is_watching(&self) -> bool {
        self.shared.tx.get().is_some()
    }

    fn when_watched(&self, waker: &Waker) {
        // Under the lock, so that a subscription either is seen here or drains this waker.
        let mut waiting = self.waiting();
        if self.shared.tx.get().is_some() {
            waker.wake_by_ref();
        } else {
            waiting.add(waker);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    use super::*;

    struct Counting(AtomicUsize);

    impl Wake for Counting {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counting() -> (Arc<Counting>, Waker) {
        let c = Arc::new(Counting(AtomicUsize::new(0)));
        (c.clone(), Waker::from(c))
    }

    #[test]
    fn the_first_subscription_wakes_every_waiting_loop_once() {
        let b = Broadcast::new(4);
        let (one, w1) = counting();
        let (two, w2) = counting();
        b.when_watched(&w1);
        b.when_watched(&w1);
        b.when_watched(&w2);
        assert!(!b.is_watching());
        let _rx = b.subscribe();
        assert!(b.is_watching());
        assert_eq!(one.0.load(Ordering::SeqCst), 1);
        assert_eq!(two.0.load(Ordering::SeqCst), 1);
        // Asked after the fact: woken at once.
        b.when_watched(&w1);
        assert_eq!(one.0.load(Ordering::SeqCst), 2);
        let _again = b.subscribe();
        assert_eq!(two.0.load(Ordering::SeqCst), 1, "nobody waits any more");
    }
}
