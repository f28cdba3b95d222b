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

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// A change in whether a client has the port open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SessionNote {
    /// The first client opened the port.
    Opened,
    /// The last client closed the port (another may have opened since: check the count
    /// after [`sync`]).
    Closed,
}

struct Entry {
    tx: mpsc::UnboundedSender<SessionNote>,
    open_count: Arc<AtomicU32>,
}

struct Watcher {
    inotify: Inotify,
    ports: Mutex<HashMap<WatchDescriptor, Entry>>,
}

/// The port's end of the watcher.
pub(crate) struct SessionLink {
    /// Session changes, in the order inotify reported them.
    pub(crate) notes: mpsc::UnboundedReceiver<SessionNote>,
    /// How many client descriptors the watcher currently counts as open.
    pub(crate) open_count: Arc<AtomicU32>,
    wd: WatchDescriptor,
    watcher: &'static Watcher,
}

impl std::fmt::Debug for SessionLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionLink")
            .field("open_count", &self.open_count.load(Ordering::Relaxed))
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
    let (tx, notes) = mpsc::unbounded_channel();
    let open_count = Arc::new(AtomicU32::new(0));
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
            tx,
            open_count: open_count.clone(),
        },
    );
    drop(ports);
    Ok(SessionLink {
        notes,
        open_count,
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
            if event.mask.contains(AddWatchFlags::IN_OPEN) {
                if entry.open_count.fetch_add(1, Ordering::SeqCst) == 0 {
                    let _ = entry.tx.send(SessionNote::Opened);
                }
            } else if event
                .mask
                .intersects(AddWatchFlags::IN_CLOSE_WRITE | AddWatchFlags::IN_CLOSE_NOWRITE)
            {
                let before = entry
                    .open_count
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .unwrap_or(0);
                if before == 1 {
                    let _ = entry.tx.send(SessionNote::Closed);
                }
            } else if event.mask.contains(AddWatchFlags::IN_IGNORED) {
                debug!("session watcher: watch removed");
                ports.remove(&event.wd);
            }
        }
    }
}
