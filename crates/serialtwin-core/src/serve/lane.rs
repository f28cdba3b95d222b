//! Lanes: many quiet ports served from one epoll set, with no task woken per request.
//!
//! Each fleet port has a task of its own, and on a busy fleet waking it is most of what a
//! request costs: the reactor finds the master readable and wakes the task, the scheduler runs
//! it, the task looks at its sources, reads, answers, writes and registers its wakers again —
//! several hundred instructions around one `read` and one `write`. A C responder on one
//! `epoll_wait` does neither (the benchmark's limit), and the difference is what separates a
//! task per port from the kernel's limit on a fleet of hundreds.
//!
//! A lane is one thread with one epoll set of up to [`LANE_SLOTS`] masters. A port whose
//! device answers synchronously (a [`Device`] that sends nothing unprompted) and has nothing
//! else going on — no faults, observers, silence-framed protocol, read-ahead or blocked write —
//! is *lent* to a lane by its task: the master leaves tokio's reactor and joins the lane's set.
//! For each batch of ready masters the lane reads, decodes, answers and encodes
//! ([`LanePort::serve_input`]), then writes all the batch's replies back to back
//! ([`LanePort::flush`]). Output that waits for its time — pacing, latency, delayed replies —
//! waits on the lane's timers ([`LanePort::on_time`]): one heap per lane, whose soonest entry is
//! the `epoll_wait` timeout, so a paced reply's chunks cost a write each and no wake-up of
//! anything but the lane (ports due together are written together). The port's task sleeps
//! meanwhile and takes the port back:
//! - when the lane gives it back: the port needs something only its task does (an asynchronous
//!   handler, a full line, end of input, a panic to report);
//! - when anything else wakes it: a control command, an observer subscribing, cancellation, a
//!   client opening or closing the port. Those sources wake it through the slot's *recall*
//!   waker ([`SlotHandle::recall`]), which also tells the lane to stop serving the port, so the lane
//!   never looks at them itself.
//!
//! So the task stays where everything but the common case is handled, exactly as before; the
//! lane is a fast path, not a second serving loop. The hand-over is one mutex per port
//! ([`SlotHandle`]): whoever holds the port holds it whole.
//!
//! Why a thread of its own (see [`run`]): a task would wait on its epoll set through tokio's
//! (a nested epoll: one more wake-up and reactor dispatch per batch, and a second, empty
//! `epoll_wait` to drain the set); `docs/performance.md` has what that cost. The
//! thread enters the runtime's context, so devices see its clock and may spawn on it.
//!
//! [`Device`]: crate::device::Device

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Wake, Waker};

use bytes::BytesMut;
use rustix::buffer::spare_capacity;
use rustix::event::epoll;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;
use tracing::{debug, error};

use crate::device::Replies;
use crate::gate::WakerSlot;
use crate::port::pty::prefetch;

/// Ports served by one lane (one thread) at most. Many: smaller lanes put several threads on a
/// big fleet, which on a machine with few CPUs take turns with each other and with the client
/// (`docs/performance.md` has the figures); a fleet bigger than this still gets a lane per
/// 1,024 ports to spread over more CPUs.
pub(crate) const LANE_SLOTS: usize = 1024;
/// Addresses a lent port names for prefetching ([`LanePort::hot`]).
pub(crate) const HOT: usize = 4;
/// Events taken from the epoll set per `epoll_wait`.
const EVENTS: usize = 256;

/// A port a lane can serve.
pub(crate) trait LanePort: Send + 'static {
    /// The descriptor the lane waits on.
    fn master(&self) -> BorrowedFd<'_>;
    /// Serve what the master has without waiting: whether the port stays on the lane.
    ///
    /// `recalled` is set once anything but the lane wants the port's task (see
    /// [`SlotHandle::recall`]): the port then goes back ([`Step::Leave`]) before answering
    /// what it read, after taking the line events that came with it. While it is not set, no
    /// source behind the task's wakers (control, cancellation, observers, the session watcher)
    /// has anything new, so none of them need to be looked at per request.
    ///
    /// `scratch`: the lane's buffers, empty, to use in place of the port's own where those are
    /// empty too (and to leave empty).
    fn serve_input(&mut self, recalled: &AtomicBool, scratch: &mut Scratch) -> Step;
    /// Whether replies wait to be written ([`LanePort::flush`]).
    fn has_output(&self) -> bool;
    /// Write the replies [`LanePort::serve_input`] left, without waiting: [`Step::Leave`] if the line
    /// would not take them all (the task waits for room) or failed. The buffer goes back to
    /// `scratch` once written.
    fn flush(&mut self, scratch: &mut Scratch) -> Step;
    /// Whether output waits for its time (pacing, latency, delays) or the device talks on a beat
    /// of its own: [`LanePort::on_time`] then says until when.
    fn waits(&self) -> bool;
    /// Write what is due at `now`, and answer what waited for it to go: until when the port
    /// waits next, or whether it goes back to its task (`recalled`: as for
    /// [`LanePort::serve_input`]).
    fn on_time(&mut self, now: Instant, recalled: &AtomicBool) -> Timed;
    /// Where the state a request touches lies: the addresses of the memory [`LanePort::serve_input`]
    /// reads first, for the lane to fetch into the cache while it serves the port before.
    fn hot(&self) -> [usize; HOT];
    /// Serving panicked (a bug of ours: device panics are the port's own business); the port
    /// goes back to its task with this message, to stop there.
    fn panicked(&mut self, message: String);
}

/// What a port does after [`LanePort::serve_input`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Stays on the lane; its master is drained (read to a short read or `EAGAIN`).
    Stay,
    /// Stays on the lane, with input left to read: the lane looks again on its next turn.
    Busy,
    /// Goes back to its task.
    Leave,
}

/// What a port's output waits for, after [`LanePort::on_time`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Timed {
    /// Nothing: everything was sent.
    Idle,
    /// The lane's timer, at this instant.
    At(Instant),
    /// Goes back to its task.
    Leave,
}

/// Buffers a lane lends each port it serves: what it reads and the replies its device gives
/// for the time of one [`LanePort::serve_input`], what it writes until [`LanePort::flush`].
///
/// Each port has buffers of its own, but on a fleet of hundreds they have gone cold by the
/// port's next request; the lane's were used a moment ago. A port takes the receive and reply
/// buffers only where its own are empty, and gives back an empty one (its own, or the lane's
/// if it keeps what is left in it: a partial request, or replies its task must deliver).
/// Encoded replies wait for the batch's writes, so a batch needs one buffer per port that
/// answered: those come from a pool, and go back to it once written.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    /// Received bytes.
    pub(crate) rx: BytesMut,
    /// The device's replies.
    pub(crate) replies: Replies,
    /// Empty buffers for encoded replies, the most recently used last.
    tx: Vec<BytesMut>,
}

impl Scratch {
    /// An empty buffer for encoded replies (a new one if the pool is empty: it grows as it is
    /// written to).
    pub(crate) fn take_tx(&mut self) -> BytesMut {
        self.tx.pop().unwrap_or_default()
    }

    /// Put back a buffer from [`Scratch::take_tx`] (cleared). One that grew beyond
    /// [`POOLED_MAX`] for a big reply is freed instead: the pool holds up to a batch's worth.
    pub(crate) fn give_tx(&mut self, mut buf: BytesMut) {
        if buf.capacity() <= POOLED_MAX && self.tx.len() < EVENTS {
            buf.clear();
            self.tx.push(buf);
        }
    }
}

/// The largest encode buffer a lane's pool keeps.
const POOLED_MAX: usize = 4096;

/// A fleet's lanes, made as ports ask for slots. Clones share the lanes.
///
/// A lane lives while it has slots taken (its thread ends with the last, and with it the epoll
/// set): a fleet whose devices all wait (or stream) has none.
#[derive(Clone, Debug, Default)]
pub(crate) struct Lanes {
    lanes: Arc<Mutex<Vec<std::sync::Weak<Lane>>>>,
    /// Tracks the lanes' threads (each holds a token), so that a fleet's shutdown can wait
    /// until they (and their epoll sets) are gone too.
    threads: TaskTracker,
}

impl Lanes {
    /// Wait until every lane's thread has ended (they end when their last slot goes).
    pub(crate) async fn wait(&self) {
        self.threads.close();
        self.threads.wait().await;
        self.threads.reopen();
    }

    /// A slot on a lane with room, or `None` if no lane can be made (the port is then served
    /// by its own task alone, as any port can be). Must be called within a tokio runtime: the
    /// lane's thread enters it, so devices see its clock and can spawn on it.
    pub(crate) fn slot<S: LanePort>(&self) -> Option<SlotHandle<S>> {
        let mut lanes = lock(&self.lanes);
        lanes.retain(|l| l.strong_count() > 0);
        let found = lanes
            .iter()
            .filter_map(std::sync::Weak::upgrade)
            .find(|l| l.has_room());
        let lane = if let Some(lane) = found {
            lane
        } else {
            let lane = match Lane::new(self.threads.clone()) {
                Ok(lane) => Arc::new(lane),
                Err(e) => {
                    debug!(error = %e, "no epoll set for a lane: ports served by their tasks");
                    return None;
                }
            };
            lanes.push(Arc::downgrade(&lane));
            lane
        };
        drop(lanes);
        let slot = Arc::new(Slot {
            held: Mutex::new(SlotState {
                port: None,
                watched: false,
                timer: None,
            }),
            recalled: AtomicBool::new(false),
            owner: WakerSlot::default(),
            hot: Default::default(),
        });
        let index = lane.take_slot(slot.clone())?;
        let recall = Waker::from(slot.clone());
        Some(SlotHandle {
            slot,
            lane,
            index,
            recall,
        })
    }
}

/// One lane: an epoll set and the slots whose ports may be in it.
#[derive(Debug)]
struct Lane {
    epoll: OwnedFd,
    /// An eventfd in the epoll set: written when the last slot goes, so that the thread
    /// waiting in `epoll_wait` wakes and ends.
    wake_fd: OwnedFd,
    slots: Mutex<SlotTable>,
    /// Slots whose ports were lent waiting for a time (a device's beat): the thread sets their
    /// timers when `wake_fd` wakes it.
    arms: Mutex<Vec<usize>>,
    /// Slots taken: changed under the `slots` lock, read without it.
    taken: AtomicUsize,
    /// Tracks the thread.
    threads: TaskTracker,
}

#[derive(Default)]
struct SlotTable {
    /// By epoll token.
    slots: Vec<Option<Arc<dyn ServeSlot>>>,
    free: Vec<usize>,
    /// Whether the lane's thread runs (it ends when the last slot goes, and starts again with
    /// the next).
    running: bool,
}

impl std::fmt::Debug for SlotTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlotTable")
            .field("running", &self.running)
            .finish_non_exhaustive()
    }
}

/// How a lane watches a master: edge-triggered, so that a master it has drained is not
/// reported (and polled by the kernel) once more on the next `epoll_wait`, as a level-triggered
/// one is; [`LanePort::serve_input`] reads until a read comes back short or empty, or says
/// [`Step::Busy`].
const WATCH: epoll::EventFlags = epoll::EventFlags::IN.union(epoll::EventFlags::ET);

/// The epoll token of a lane's `wake_fd`; slots use their index.
const WAKE_TOKEN: u64 = u64::MAX;

impl Lane {
    fn new(threads: TaskTracker) -> io::Result<Self> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        let wake_fd = rustix::event::eventfd(
            0,
            rustix::event::EventfdFlags::CLOEXEC | rustix::event::EventfdFlags::NONBLOCK,
        )?;
        epoll::add(
            &epoll,
            &wake_fd,
            epoll::EventData::new_u64(WAKE_TOKEN),
            epoll::EventFlags::IN,
        )?;
        Ok(Self {
            epoll,
            wake_fd,
            slots: Mutex::new(SlotTable::default()),
            arms: Mutex::new(Vec::new()),
            taken: AtomicUsize::new(0),
            threads,
        })
    }

    fn has_room(&self) -> bool {
        self.taken.load(Ordering::Acquire) < LANE_SLOTS
    }

    /// Take a slot; its token. Starts the lane's thread if it is not running; `None` if it
    /// cannot be started.
    fn take_slot(self: &Arc<Self>, slot: Arc<dyn ServeSlot>) -> Option<usize> {
        let mut slots = lock(&self.slots);
        if !slots.running {
            let (lane, runtime, token) = (
                self.clone(),
                tokio::runtime::Handle::current(),
                self.threads.token(),
            );
            let started = std::thread::Builder::new()
                .name("serialtwin-lane".into())
                .spawn(move || {
                    let _token = token;
                    let _runtime = runtime.enter();
                    run(&lane);
                });
            if let Err(e) = started {
                debug!(error = %e, "no thread for a lane: ports served by their tasks");
                return None;
            }
            slots.running = true;
        }
        let index = if let Some(i) = slots.free.pop() {
            slots.slots[i] = Some(slot);
            i
        } else {
            slots.slots.push(Some(slot));
            slots.slots.len() - 1
        };
        self.taken.fetch_add(1, Ordering::AcqRel);
        Some(index)
    }

    fn leave(&self, index: usize) {
        let mut slots = lock(&self.slots);
        slots.slots[index] = None;
        slots.free.push(index);
        if self.taken.fetch_sub(1, Ordering::AcqRel) == 1 {
            drop(slots);
            self.wake();
        }
    }

    /// Wake the thread: to end it, or to set timers (`arms`).
    fn wake(&self) {
        if let Err(e) = rustix::io::write(&self.wake_fd, &1u64.to_ne_bytes()) {
            error!(error = %e, "cannot wake a lane's thread");
        }
    }

    /// Whether the thread should end: no slot left. Marks it stopped if so, under the same
    /// lock a new slot takes to see whether to start it.
    fn should_end(&self) -> bool {
        // Most looks find slots taken: no lock for those.
        if self.taken.load(Ordering::Acquire) != 0 {
            return false;
        }
        let mut slots = lock(&self.slots);
        if self.taken.load(Ordering::Acquire) == 0 {
            slots.running = false;
            return true;
        }
        false
    }

    /// Give every port back to its task (the lane cannot go on).
    fn evict_all(&self) {
        let slots: Vec<_> = {
            let mut slots = lock(&self.slots);
            slots.running = false;
            slots.slots.iter().flatten().cloned().collect()
        };
        for slot in slots {
            slot.evict(self.epoll.as_fd());
        }
    }
}

/// A lane's thread: wait for ready masters, serve them, until the last slot goes.
///
/// A thread, not a task: blocked in its own `epoll_wait`, it is woken by the kernel straight
/// from a client's write, as the benchmark's limit is — a task would wait on the epoll set
/// through tokio's own (a nested epoll, one more wake-up and reactor dispatch per batch) and
/// drain it with a second `epoll_wait`. It runs inside the runtime's context (devices see the
/// runtime's clock and may spawn on it).
fn run(lane: &Lane) {
    let mut events: Vec<epoll::Event> = Vec::with_capacity(EVENTS);
    let mut scratch = Scratch::default();
    let mut written: Vec<usize> = Vec::with_capacity(EVENTS);
    // The ports' timers, soonest first: (instant, slot). One heap for the whole lane, and its
    // soonest entry the epoll wait's timeout, so paced output costs no task wake-up, no timer
    // of tokio's and no thread's wake-up per port: ports due together are written together.
    let mut timers: BinaryHeap<Reverse<(Instant, usize)>> = BinaryHeap::new();
    loop {
        events.clear();
        let timeout = timers
            .peek()
            .map(|Reverse((at, _))| timespec(at.saturating_duration_since(Instant::now())));
        match epoll::wait(&lane.epoll, spare_capacity(&mut events), timeout.as_ref()) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => {
                error!(error = %e, "lane's epoll set failed: its ports go back to their tasks");
                lane.evict_all();
                return;
            }
        }
        {
            // Served under the slots' lock, which only a port's first lending (`sit`) and its
            // end (`leave`) take besides: no reference count touched and no list built per
            // request. Serving never takes it (a device cannot sit or leave a slot from
            // a lane: slots are taken and left by ports' tasks).
            let slots = lock(&lane.slots);
            if events.iter().any(|e| e.data.u64() == WAKE_TOKEN) {
                // Read first: a port lent after this wakes the thread again.
                let mut ring = [0u8; 8];
                let _ = rustix::io::read(&lane.wake_fd, &mut ring);
                let arms = std::mem::take(&mut *lock(&lane.arms));
                for token in arms {
                    if let Some(Some(slot)) = slots.slots.get(token)
                        && let Some(at) = slot.arm(lane.epoll.as_fd())
                    {
                        timers.push(Reverse((at, token)));
                    }
                }
            }
            let slot = |i: usize| {
                let token = usize::try_from(events.get(i)?.data.u64()).ok()?;
                slots.slots.get(token)?.as_deref()
            };
            for (i, e) in events.iter().enumerate() {
                // While this port is served, the cache lines of the next two come in: on a
                // busy fleet each port's state has gone cold since its last request, and
                // fetching it is most of what user space spends per request. The next
                // port's slot was asked for one turn ago; its port's state now.
                if let Some(next) = slot(i + 2) {
                    next.prefetch_slot();
                }
                if let Some(next) = slot(i + 1) {
                    next.prefetch_port();
                }
                if let Some(slot) = slot(i) {
                    let served = slot.serve_port(lane.epoll.as_fd(), e.data, &mut scratch);
                    if served.write {
                        written.push(i);
                    }
                    if let Some(at) = served.timer
                        && let Ok(token) = usize::try_from(e.data.u64())
                    {
                        timers.push(Reverse((at, token)));
                    }
                }
            }
            // Every reply of the batch written after all its requests were read, back to back
            // (as the kernel's flip-buffer worker likes them: woken once for many, not once
            // per reply when a read and an answer come between two writes).
            for i in written.drain(..) {
                if let Some(slot) = slot(i) {
                    slot.flush(lane.epoll.as_fd(), &mut scratch);
                }
            }
            // Output whose time has come, port after port (the clock read only if some waits).
            let now = if timers.is_empty() {
                None
            } else {
                Some(Instant::now())
            };
            while let Some(&Reverse((at, token))) = timers.peek()
                && now.is_some_and(|now| at <= now)
            {
                timers.pop();
                if let Some(Some(slot)) = slots.slots.get(token)
                    && let Some(next) = slot.on_timer(lane.epoll.as_fd(), at)
                {
                    timers.push(Reverse((next, token)));
                }
            }
        }
        if events.iter().any(|e| e.data.u64() == WAKE_TOKEN) && lane.should_end() {
            return;
        }
    }
}

/// `d` for `epoll_wait`'s timeout (which waits at least that long: rounded up to the next
/// millisecond where the kernel counts in those).
fn timespec(d: std::time::Duration) -> rustix::event::Timespec {
    rustix::event::Timespec {
        tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(d.subsec_nanos()),
    }
}

/// A slot as the lane sees it: something to serve when its master is ready.
trait ServeSlot: Send + Sync {
    /// Serve the port if it is here (`token`: its slot's), giving it back if it must go.
    fn serve_port(
        &self,
        epoll: BorrowedFd<'_>,
        token: epoll::EventData,
        scratch: &mut Scratch,
    ) -> Served;
    /// The lane's timer for the slot, set for `at`, has run out: write what is due (if the
    /// entry is not stale, and the port still here). When to come back, if ever.
    fn on_timer(&self, epoll: BorrowedFd<'_>, at: Instant) -> Option<Instant>;
    /// The port was lent waiting for a time: set its timer (when, if it is still here).
    fn arm(&self, epoll: BorrowedFd<'_>) -> Option<Instant>;
    /// Write the replies [`ServeSlot::serve_port`] left, if the port is still here.
    fn flush(&self, epoll: BorrowedFd<'_>, scratch: &mut Scratch);
    /// Give the port back, whatever it is doing.
    fn evict(&self, epoll: BorrowedFd<'_>);
    /// Fetch the slot's own cache line (its lock).
    fn prefetch_slot(&self);
    /// Fetch the port's hot state ([`LanePort::hot`]), as far as the slot knows it.
    fn prefetch_port(&self);
}

/// What serving a port from its master's readiness left for the lane.
#[derive(Clone, Copy, Debug, Default)]
struct Served {
    /// Replies to write after the rest of the batch ([`ServeSlot::flush`]).
    write: bool,
    /// A timer to set: output waits for this instant.
    timer: Option<Instant>,
}

/// Where a lent port sits.
struct Slot<S> {
    held: Mutex<SlotState<S>>,
    /// Set when something woke the port's task through [`SlotHandle::recall`]; cleared when the task
    /// takes the port back. Beside the lock, so that the lane looks at it for free.
    recalled: AtomicBool,
    /// The port's task, woken when the lane gives the port back.
    owner: WakerSlot,
    /// [`LanePort::hot`] of the port while it is lent (zero otherwise): read without the lock,
    /// to prefetch only.
    hot: [AtomicUsize; HOT],
}

impl<S: LanePort> Slot<S> {
    /// After [`LanePort::on_time`]: the timer to set for the port, if one is needed and not
    /// set for that instant already (never when it went back to its task).
    fn timed(
        &self,
        mut held: MutexGuard<'_, SlotState<S>>,
        epoll: BorrowedFd<'_>,
        timed: Timed,
    ) -> Option<Instant> {
        match timed {
            Timed::At(at) if held.timer != Some(at) => {
                held.timer = Some(at);
                Some(at)
            }
            Timed::Idle | Timed::At(_) => None,
            Timed::Leave => {
                return_to_task(held, epoll, &self.owner);
                None
            }
        }
    }
}

/// `serve(port)`, or `otherwise` if it panicked (a bug of ours: device panics are caught where
/// the device is called), the port told so.
fn catching<S: LanePort, R>(port: &mut S, serve: impl FnOnce(&mut S) -> R, otherwise: R) -> R {
    match std::panic::catch_unwind(AssertUnwindSafe(|| serve(&mut *port))) {
        Ok(r) => r,
        Err(panic) => {
            port.panicked(super::panic_message(panic.as_ref()));
            otherwise
        }
    }
}

/// The recall waker ([`SlotHandle::recall`]): mark the port wanted, wake its task.
impl<S: LanePort> Wake for Slot<S> {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.recalled.store(true, Ordering::Release);
        self.owner.wake();
    }
}

struct SlotState<S> {
    /// The port while lent (and after the lane gave it back, until its task takes it).
    port: Option<Box<S>>,
    /// Whether its master is in the lane's epoll set.
    watched: bool,
    /// When the lane's timer is set for the port, if it is: of the lane's entries for this
    /// slot, only the one at this instant counts (the others are stale and skipped).
    timer: Option<Instant>,
}

/// Out of the epoll set, and its task told to take it.
fn return_to_task<S: LanePort>(
    mut held: MutexGuard<'_, SlotState<S>>,
    epoll: BorrowedFd<'_>,
    owner: &WakerSlot,
) {
    held.unwatch(epoll);
    drop(held);
    owner.wake();
}

impl<S: LanePort> SlotState<S> {
    /// Out of the epoll set (the port stays here until its task takes it).
    fn unwatch(&mut self, epoll: BorrowedFd<'_>) {
        self.timer = None;
        if std::mem::take(&mut self.watched)
            && let Some(port) = &self.port
            && let Err(e) = epoll::delete(epoll, port.master())
        {
            // Only if the master is closed, which it is not while we hold the port.
            debug!(error = %e, "cannot take a master out of a lane's epoll set");
        }
    }
}

impl<S: LanePort> ServeSlot for Slot<S> {
    fn serve_port(
        &self,
        epoll: BorrowedFd<'_>,
        token: epoll::EventData,
        scratch: &mut Scratch,
    ) -> Served {
        let mut held = lock(&self.held);
        if !held.watched {
            return Served::default();
        }
        let Some(port) = held.port.as_mut() else {
            return Served::default();
        };
        // Recalled: its task wants it and is on its way; the input is left for it.
        let step = if self.recalled.load(Ordering::Acquire) {
            Step::Leave
        } else {
            let recalled = &self.recalled;
            catching(
                &mut **port,
                |port| port.serve_input(recalled, scratch),
                Step::Leave,
            )
        };
        let leave = match step {
            Step::Stay => false,
            // Edge-triggered: no new edge comes for input already there, so ask again.
            Step::Busy => epoll::modify(epoll, port.master(), token, WATCH)
                .inspect_err(|e| {
                    debug!(error = %e, "cannot re-arm a master: its port goes back to its task");
                })
                .is_err(),
            Step::Leave => true,
        };
        if leave {
            // What it has to write, its task writes.
            return_to_task(held, epoll, &self.owner);
            return Served::default();
        }
        if !port.waits() {
            return Served {
                write: port.has_output(),
                timer: None,
            };
        }
        // Paced or delayed output: what is due now goes at once, the rest on the lane's timer.
        let recalled = &self.recalled;
        let timed = catching(
            &mut **port,
            |port| port.on_time(Instant::now(), recalled),
            Timed::Leave,
        );
        Served {
            write: false,
            timer: self.timed(held, epoll, timed),
        }
    }

    fn arm(&self, epoll: BorrowedFd<'_>) -> Option<Instant> {
        let mut held = lock(&self.held);
        if !held.watched {
            return None;
        }
        let port = held.port.as_mut()?;
        let recalled = &self.recalled;
        let timed = catching(
            &mut **port,
            |port| port.on_time(Instant::now(), recalled),
            Timed::Leave,
        );
        self.timed(held, epoll, timed)
    }

    fn on_timer(&self, epoll: BorrowedFd<'_>, at: Instant) -> Option<Instant> {
        let mut held = lock(&self.held);
        if !held.watched || held.timer != Some(at) {
            // Stale: taken back, or set again for another instant since.
            return None;
        }
        held.timer = None;
        let port = held.port.as_mut()?;
        let recalled = &self.recalled;
        let timed = catching(
            &mut **port,
            |port| port.on_time(Instant::now(), recalled),
            Timed::Leave,
        );
        self.timed(held, epoll, timed)
    }

    fn flush(&self, epoll: BorrowedFd<'_>, scratch: &mut Scratch) {
        let mut held = lock(&self.held);
        if !held.watched {
            return;
        }
        if let Some(port) = held.port.as_mut()
            && port.has_output()
            && port.flush(scratch) == Step::Leave
        {
            return_to_task(held, epoll, &self.owner);
        }
    }

    fn evict(&self, epoll: BorrowedFd<'_>) {
        lock(&self.held).unwatch(epoll);
        self.owner.wake();
    }

    fn prefetch_slot(&self) {
        prefetch(std::ptr::from_ref(self).addr());
    }

    fn prefetch_port(&self) {
        for addr in &self.hot {
            let addr = addr.load(Ordering::Relaxed);
            if addr != 0 {
                prefetch(addr);
            }
        }
    }
}

/// A port's slot on a lane: lend the port, take it back. Leaving the slot (dropping it) frees
/// it for another port.
pub(crate) struct SlotHandle<S: LanePort> {
    slot: Arc<Slot<S>>,
    lane: Arc<Lane>,
    index: usize,
    /// See [`SlotHandle::recall`].
    recall: Waker,
}

impl<S: LanePort> std::fmt::Debug for SlotHandle<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlotHandle")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl<S: LanePort> SlotHandle<S> {
    /// The waker to register, before lending, with every source the port's task waits on
    /// (control, cancellation, observers, the session watcher): it wakes the task registered
    /// with [`SlotHandle::register`] and marks the port recalled, so that the lane gives it back
    /// without serving it further and never has to look at those sources itself.
    pub(crate) fn recall(&self) -> &Waker {
        &self.recall
    }

    /// Lend `port` to the lane until [`SlotHandle::take_back`]; the task registered with
    /// [`SlotHandle::register`] is woken if the lane gives it back. `Err(port)` if its master cannot
    /// join the lane's epoll set.
    pub(crate) fn lend(&self, port: Box<S>) -> Result<(), Box<S>> {
        // SlotState across the `add`: a lane that sees the master ready at once waits for the port.
        let mut held = lock(&self.slot.held);
        let token = epoll::EventData::new_u64(self.index as u64);
        if let Err(e) = epoll::add(&self.lane.epoll, port.master(), token, WATCH) {
            debug!(error = %e, "cannot lend a port to a lane");
            return Err(port);
        }
        for (hint, addr) in self.slot.hot.iter().zip(port.hot()) {
            hint.store(addr, Ordering::Relaxed);
        }
        let waits = port.waits();
        held.port = Some(port);
        held.watched = true;
        drop(held);
        if waits {
            // Its beat: the lane's thread sets the timer (it may be in `epoll_wait` until then).
            lock(&self.lane.arms).push(self.index);
            self.lane.wake();
        }
        Ok(())
    }

    /// The port back from the lane (whether the lane gave it back or still serves it: it does
    /// not once this returns). `None` if it was not lent.
    pub(crate) fn take_back(&self) -> Option<Box<S>> {
        let mut held = lock(&self.slot.held);
        held.unwatch(self.lane.epoll.as_fd());
        // The task looks at all its sources before it lends the port again. (A source that
        // still holds the recall waker and fires while the task has the port sets the flag
        // again: the lane then gives the port back once more at the next lending, harmlessly.)
        self.slot.recalled.store(false, Ordering::Relaxed);
        for hint in &self.slot.hot {
            hint.store(0, Ordering::Relaxed);
        }
        held.port.take()
    }

    /// Register `owner` to be woken when the lane gives the port back.
    pub(crate) fn register(&self, owner: &Waker) {
        self.slot.owner.register(owner);
    }
}

impl<S: LanePort> Drop for SlotHandle<S> {
    fn drop(&mut self) {
        drop(self.take_back());
        self.lane.leave(self.index);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_encode_pool_lends_back_the_last_buffer_given_and_frees_big_ones() {
        let mut scratch = Scratch::default();
        assert_eq!(
            scratch.take_tx().capacity(),
            0,
            "an empty pool lends a new buffer"
        );
        let mut small = BytesMut::with_capacity(256);
        small.extend_from_slice(b"written");
        let at = small.as_ptr();
        scratch.give_tx(small);
        let again = scratch.take_tx();
        assert!(again.is_empty(), "given back cleared");
        assert_eq!(again.as_ptr(), at, "the same (warm) buffer");
        scratch.give_tx(again);
        scratch.give_tx(BytesMut::with_capacity(POOLED_MAX + 1));
        assert_eq!(
            scratch.tx.len(),
            1,
            "a buffer grown for a big reply is freed"
        );
        for _ in 0..2 * EVENTS {
            scratch.give_tx(BytesMut::with_capacity(64));
        }
        assert_eq!(scratch.tx.len(), EVENTS, "at most a batch's worth is kept");
    }
}
