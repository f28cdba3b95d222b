//! Knowing when clients open and close a pty: one inotify instance for the whole process.
//!
//! The master of a pty whose slave we keep open never hangs up, so it cannot tell us that a
//! client came or went. inotify can: every open of `/dev/pts/N` by path raises `IN_OPEN`, every
//! close `IN_CLOSE_WRITE`/`IN_CLOSE_NOWRITE`. The per-user limit on inotify *instances* is small
//! (128 by default) while watches are plentiful, so one instance serves every port of the
//! process, read by one background thread (a thread rather than a task so that it outlives
//! any one tokio runtime: test suites create many).

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use tracing::{debug, warn};

use crate::gate::WakerSlot;

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
    pub(crate) waker: WakerSlot,
}

struct Entry {
    state: Arc<SessionState>,
    /// The slave's path, `/dev/pts/N`.
    path: PathBuf,
    /// Our own descriptor of the slave: not a client's (see [`recount`]), and how the line is
    /// readied for the next client (see [`ready_line`]).
    slave: Arc<OwnedFd>,
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

    /// Whether the port has reported a session that it has not reported ended: what it knows
    /// without looking at the watcher's counts (shared, so a cache miss per look on a busy
    /// fleet). Behind the watcher's counts by the notes not yet taken.
    pub(crate) fn reported_open(&self) -> bool {
        self.seen_opened != self.seen_closed
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

/// Start watching the slave at `path` for client opens and closes; `slave` is our own
/// descriptor of it, which is not a client.
pub(crate) fn watch(path: &Path, slave: &Arc<OwnedFd>) -> std::io::Result<SessionLink> {
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
            path: path.to_owned(),
            slave: slave.clone(),
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

/// Who has which pts open, as `/proc/*/fd` shows it: `(pid, fd, path)` for every descriptor
/// of a `/dev/pts/N`, and whether some process's descriptors could not be read (another
/// user's, without the privilege).
struct ProcScan {
    open: Vec<(u32, RawFd, PathBuf)>,
    incomplete: bool,
}

fn clients_from_proc() -> ProcScan {
    let mut scan = ProcScan {
        open: Vec::new(),
        incomplete: false,
    };
    let Ok(procs) = std::fs::read_dir("/proc") else {
        scan.incomplete = true;
        return scan;
    };
    for proc in procs.flatten() {
        let Some(pid) = proc
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let fds = match std::fs::read_dir(proc.path().join("fd")) {
            Ok(fds) => fds,
            // Gone meanwhile: nothing open.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(_) => {
                scan.incomplete = true;
                continue;
            }
        };
        for fd in fds.flatten() {
            let Some(n) = fd
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<RawFd>().ok())
            else {
                continue;
            };
            if let Ok(target) = std::fs::read_link(fd.path())
                && target.starts_with("/dev/pts/")
            {
                scan.open.push((pid, n, target));
            }
        }
    }
    scan
}

/// Set every port's open count from `scan` (after lost events), and tell each port about a
/// session that began or ended meanwhile; the ports whose session ended are pushed to `ended`.
/// Our own descriptor of each slave is not a client.
/// When some processes could not be looked at, a port that seemed in use keeps its count
/// rather than be declared free: replies to a client we cannot see must not be dropped.
///
/// Not exact: an open or close that happens while `/proc` is read may be counted both by the
/// scan and by its own event. That is a count off by one after a rare overflow, where without
/// this every event lost in the overflow would stay lost.
fn recount(
    ports: &HashMap<WatchDescriptor, Entry>,
    scan: &ProcScan,
    ended: &mut Vec<WatchDescriptor>,
) {
    let me = std::process::id();
    for (wd, entry) in ports {
        let held = entry.slave.as_raw_fd();
        let found = scan
            .open
            .iter()
            .filter(|(pid, fd, path)| *path == entry.path && !(*pid == me && *fd == held))
            .count();
        let found = u32::try_from(found).unwrap_or(u32::MAX);
        let state = &entry.state;
        let before = state.open_count.load(Ordering::SeqCst);
        if found == 0 && before > 0 && scan.incomplete {
            continue;
        }
        state.open_count.store(found, Ordering::SeqCst);
        match (before, found) {
            (0, 1..) => {
                state.opened.fetch_add(1, Ordering::SeqCst);
                state.waker.wake();
            }
            (1.., 0) => {
                state.closed.fetch_add(1, Ordering::SeqCst);
                state.waker.wake();
                ended.push(*wd);
            }
            _ => {}
        }
        debug!(path = %entry.path.display(), before, found, "session count taken from /proc");
    }
}

/// Read and dispatch every queued inotify event, then ready the line of each port whose last
/// client left and that no client has opened since (see [`ready_line`]). Holding the map lock
/// across the read keeps events in order whichever thread drains them.
fn drain(watcher: &'static Watcher) -> nix::Result<()> {
    let mut ports = watcher.ports.lock().unwrap_or_else(PoisonError::into_inner);
    // Ports whose session ended in this drain; decided on once every queued event is read, so
    // that a client that reopened meanwhile is counted and its line left alone.
    let mut ended = Vec::new();
    loop {
        let events = match watcher.inotify.read_events() {
            Ok(events) => events,
            Err(nix::Error::EAGAIN) => {
                for wd in &ended {
                    if let Some(entry) = ports.get(wd)
                        && entry.state.open_count.load(Ordering::SeqCst) == 0
                    {
                        ready_line(entry);
                    }
                }
                return Ok(());
            }
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(e),
        };
        for event in events {
            if event.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                warn!(
                    "session watcher: inotify queue overflowed; open/close events were lost: \
                     counting clients from /proc"
                );
                // What is still queued is older than the count about to be made: drop it.
                loop {
                    match watcher.inotify.read_events() {
                        Ok(_) | Err(nix::Error::EINTR) => {}
                        Err(nix::Error::EAGAIN) => break,
                        Err(e) => return Err(e),
                    }
                }
                recount(&ports, &clients_from_proc(), &mut ended);
                break;
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
                    if !ended.contains(&event.wd) {
                        ended.push(event.wd);
                    }
                }
            } else if event.mask.contains(AddWatchFlags::IN_IGNORED) {
                debug!("session watcher: watch removed");
                ports.remove(&event.wd);
            }
        }
    }
}

/// The last client left: make the line ready for the next one at once, from the thread that
/// learnt of it. The port's serving task cleans up the rest (stale output, unread input:
/// `on_closed`), but it runs when its runtime gets to it, and a client that reopens at once
/// (mppsolar reopens for every command) may be quicker than a busy runtime. It would find the
/// canary its predecessor cleared — glibc fails a reopen at even parity with EINVAL (see
/// `PtyPort::rearm_canary`) — or the exclusive lock a killed client left, and its open would
/// fail with EBUSY.
fn ready_line(entry: &Entry) {
    if let Err(e) = super::arm_canary(entry.slave.as_fd()) {
        warn!(path = %entry.path.display(), error = %e, "cannot re-arm the ECHONL canary");
    }
    if let Err(e) = rustix::termios::ioctl_tiocnxcl(&*entry.slave) {
        warn!(path = %entry.path.display(), error = %e, "cannot clear exclusive mode");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::port::pty::{PtyOptions, PtyPort};

    fn counts(port: &PtyPort) -> (u32, u32, u32) {
        let s = &port.sessions.as_ref().unwrap().state;
        (
            s.open_count.load(Ordering::SeqCst),
            s.opened.load(Ordering::SeqCst),
            s.closed.load(Ordering::SeqCst),
        )
    }

    fn recount_now() {
        let watcher = watcher().unwrap();
        let ports = watcher.ports.lock().unwrap_or_else(PoisonError::into_inner);
        recount(&ports, &clients_from_proc(), &mut Vec::new());
    }

    fn lose_events(port: &PtyPort, open_count: u32) {
        let s = &port.sessions.as_ref().unwrap().state;
        s.open_count.store(open_count, Ordering::SeqCst);
    }

    #[tokio::test]
    async fn after_lost_events_the_count_comes_from_proc_and_the_port_hears_of_it() {
        let port = PtyPort::open(&PtyOptions::default()).unwrap();
        // Our own slave descriptor is not a client.
        recount_now();
        assert_eq!(counts(&port), (0, 0, 0));

        let client = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(port.path())
            .unwrap();
        sync();
        assert_eq!(counts(&port), (1, 1, 0));
        // The open was lost: the count is wrong until the recount, which reports a new session.
        lose_events(&port, 0);
        recount_now();
        assert_eq!(counts(&port), (1, 2, 0));

        drop(client);
        sync();
        assert_eq!(counts(&port), (0, 2, 1));
        // A close lost while the count said two clients: the recount ends the session.
        lose_events(&port, 2);
        recount_now();
        assert_eq!(counts(&port), (0, 2, 2));
    }
}
