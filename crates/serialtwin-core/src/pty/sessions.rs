//! Knowing when clients open and close a pty: one inotify instance for the whole process.
//!
//! The master of a pty whose slave we keep open never hangs up, so it cannot tell us that a
//! client came or went. inotify can: every open of `/dev/pts/N` by path raises `IN_OPEN`, every
//! close `IN_CLOSE_WRITE`/`IN_CLOSE_NOWRITE`. The per-user limit on inotify *instances* is small
//! (128 by default) while watches are plentiful, so one instance serves every port of the
//! process, read by one background thread (a thread rather than a task so that it outlives
//! any one tokio runtime: test suites create many).

use std::collections::HashMap;
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use futures::task::AtomicWaker;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use tracing::{debug, warn};

/// What the watcher knows about one port, shared with the port without a channel: sessions
/// strictly alternate (a first open, then a last close), so two counters say what happened
/// since the port last looked, in order, in a few bytes per port.
#[derive(Debug, Default)]
pub(crate) struct SessionState {
    /// Client descriptors currently open.
    pub(crate) open_count: AtomicU32,
    /// Sessions begun (the count went from 0 to 1).
    pub(crate) opened: AtomicU32,
    /// Sessions ended (the count went from 1 to 0).
    pub(crate) closed: AtomicU32,
    /// The port's task, woken when either counter moves.
    pub(crate) waker: AtomicWaker,
}

struct Entry {
    state: Arc<SessionState>,
}

struct Watcher {
    inotify: Inotify,
    ports: Mutex<HashMap<WatchDescriptor, Entry>>,
}

/// A change in whether a client has the port open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SessionNote {
    /// The first client opened the port.
    Opened,
    /// The last client closed the port (another may have opened since: check the count
    /// after [`sync`]).
    Closed,
}

/// The port's end of the watcher.
pub(crate) struct SessionLink {
    /// Shared with the watcher.
    pub(crate) state: Arc<SessionState>,
    /// Sessions begun that the port has reported.
    seen_opened: u32,
    /// Sessions ended that the port has reported.
    seen_closed: u32,
    wd: WatchDescriptor,
    watcher: &'static Watcher,
}

impl SessionLink {
    /// The next session change, in order, if there is one; otherwise register to be woken.
    pub(crate) fn poll_note(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<SessionNote> {
        if let Some(note) = self.take_note() {
            return std::task::Poll::Ready(note);
        }
        self.state.waker.register(cx.waker());
        // A change that landed between the look and the registration.
        self.take_note()
            .map_or(std::task::Poll::Pending, std::task::Poll::Ready)
    }

    /// The next session change, in order, if there is one (no waker registered).
    pub(crate) fn take_note(&mut self) -> Option<SessionNote> {
        let opened = self.state.opened.load(Ordering::SeqCst);
        let closed = self.state.closed.load(Ordering::SeqCst);
        // Sessions alternate: while as many have ended as begun, the next change is an open.
        if self.seen_opened == self.seen_closed && opened != self.seen_opened {
            self.seen_opened = self.seen_opened.wrapping_add(1);
            Some(SessionNote::Opened)
        } else if self.seen_opened != self.seen_closed && closed != self.seen_closed {
            self.seen_closed = self.seen_closed.wrapping_add(1);
            Some(SessionNote::Closed)
        } else {
            None
        }
    }

    /// How many client descriptors the watcher currently counts as open.
    pub(crate) fn open_count(&self) -> u32 {
        self.state.open_count.load(Ordering::SeqCst)
    }
}

impl std::fmt::Debug for SessionLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionLink")
            .field("open_count", &self.open_count())
            .finish_non_exhaustive()
    }
}

impl Drop for SessionLink {
    fn drop(&mut self) {
        self.watcher
            .ports
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.wd);
        // The watch is gone already if the pts node was removed; that is fine.
        let _ = self.watcher.inotify.rm_watch(self.wd);
    }
}

static WATCHER: OnceLock<Result<&'static Watcher, nix::Error>> = OnceLock::new();

fn watcher() -> std::io::Result<&'static Watcher> {
    let w = WATCHER.get_or_init(|| {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
        let watcher: &'static Watcher = Box::leak(Box::new(Watcher {
            inotify,
            ports: Mutex::new(HashMap::new()),
        }));
        std::thread::Builder::new()
            .name("serialtwin-sessions".into())
            .spawn(move || run(watcher))
            .map_err(|e| nix::Error::try_from(e).unwrap_or(nix::Error::EAGAIN))?;
        Ok(watcher)
    });
    w.map_err(std::io::Error::from)
}

/// Start watching the slave at `path` for client opens and closes.
pub(crate) fn watch(path: &Path) -> std::io::Result<SessionLink> {
    let watcher = watcher()?;
    let state = Arc::new(SessionState::default());
    // Hold the map lock across add_watch so the reader cannot see an event for this wd before
    // the entry exists.
    let mut ports = watcher.ports.lock().unwrap_or_else(PoisonError::into_inner);
    let wd = watcher.inotify.add_watch(
        path,
        AddWatchFlags::IN_OPEN | AddWatchFlags::IN_CLOSE_WRITE | AddWatchFlags::IN_CLOSE_NOWRITE,
    )?;
    ports.insert(
        wd,
        Entry {
            state: state.clone(),
        },
    );
    drop(ports);
    Ok(SessionLink {
        state,
        seen_opened: 0,
        seen_closed: 0,
        wd,
        watcher,
    })
}

fn run(watcher: &'static Watcher) {
    loop {
        let mut fds = [PollFd::new(watcher.inotify.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(e) => {
                warn!(error = %e, "session watcher: poll failed; sessions are no longer tracked");
                return;
            }
        }
        if let Err(e) = drain(watcher) {
            warn!(error = %e, "session watcher: read failed; sessions are no longer tracked");
            return;
        }
    }
}

/// Bring every port's open count up to date with all opens and closes that have happened
/// before this call (inotify queues them synchronously at open/close time). The serving side
/// calls this before acting on "no client": a client that opened a moment ago is then counted.
pub(crate) fn sync() {
    if let Some(Ok(watcher)) = WATCHER.get()
        && let Err(e) = drain(watcher)
    {
        warn!(error = %e, "session watcher: read failed");
    }
}

/// Read and dispatch every queued inotify event. Holding the map lock across the read keeps
/// events in order whichever thread drains them.
fn drain(watcher: &'static Watcher) -> nix::Result<()> {
    let mut ports = watcher.ports.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        let events = match watcher.inotify.read_events() {
            Ok(events) => events,
            Err(nix::Error::EAGAIN) => return Ok(()),
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(e),
        };
        for event in events {
            if event.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                warn!("session watcher: inotify queue overflowed; open/close events were lost");
                continue;
            }
            let Some(entry) = ports.get(&event.wd) else {
                continue;
            };
            let state = &entry.state;
            if event.mask.contains(AddWatchFlags::IN_OPEN) {
                if state.open_count.fetch_add(1, Ordering::SeqCst) == 0 {
                    state.opened.fetch_add(1, Ordering::SeqCst);
                    state.waker.wake();
                }
            } else if event
                .mask
                .intersects(AddWatchFlags::IN_CLOSE_WRITE | AddWatchFlags::IN_CLOSE_NOWRITE)
            {
                let before = state
                    .open_count
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .unwrap_or(0);
                if before == 1 {
                    state.closed.fetch_add(1, Ordering::SeqCst);
                    state.waker.wake();
                }
            } else if event.mask.contains(AddWatchFlags::IN_IGNORED) {
                debug!("session watcher: watch removed");
                ports.remove(&event.wd);
            }
        }
    }
}
