//! A pseudo-terminal as an emulated serial port. The one module allowed `unsafe` code.
//!
//! What the kernel does to a pty, and what this module does about it (see
//! `shared/reference/pty-linux.md` for the evidence):
//! - **EIO after a client closes.** The master fails with EIO while no slave descriptor is
//!   open. We open the slave ourselves (`TIOCGPTPEER`, `O_NOCTTY`) and hold it for the port's
//!   life, so clients can come and go and the device keeps its state.
//! - **Cooked defaults.** A new pty echoes, turns `\r` into `\n` and swallows XON/XOFF bytes. We
//!   put the line in raw mode from the master before anyone can open the slave.
//! - **Settings and flushes in-band.** The master runs in packet mode (`TIOCPKT`) with `EXTPROC`
//!   set, so every client `tcsetattr` arrives as a `TIOCPKT_IOCTL` status byte; we then read
//!   the settings with `TCGETS2` (rustix's `tcgetattr`), which also sees `BOTHER` rates.
//!   Parity and data bits are never visible: the kernel forces `CS8` and clears `PARENB`.
//! - **Sessions.** Opens and closes of `/dev/pts/N` come from one process-wide inotify watcher
//!   (`sessions`). When the last client leaves, the watcher readies the line for the next one at
//!   once (the canary set again, an exclusive lock (`TIOCEXCL`) it left cleared); the port then
//!   discards output it will never read and tells the serving loop to drop its partial frame —
//!   but only if no newer client can have started talking in between.

mod client;
mod master;
mod sessions;

pub(crate) use self::client::PtyClient;
use self::master::{RawMaster, register_master};
pub(crate) use self::master::{ReadNow, prefetch};

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{self, Poll};

use rustix::ioctl::{Getter, Setter, ioctl, opcode};
use rustix::pty::OpenptFlags;
use rustix::termios::{
    ControlModes, InputModes, LocalModes, OptionalActions, QueueSelector, SpecialCodeIndex, Termios,
};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tracing::{debug, warn};

use self::sessions::{SessionLink, SessionNote};
use crate::port::settings::{FlowControl, LineEvent, LineSettings, Parity, StopBits};
use crate::port::transport::{PortEvent, Transport};

/// How often a write blocked on a full line looks again whether its client is still there.
const WRITE_RECHECK: std::time::Duration = std::time::Duration::from_millis(100);

/// The flag we keep set on the line so that every client `tcsetattr` changes something (see
/// [`PtyPort::rearm_canary`]). `ECHONL` because raw-mode clients (cfmakeraw, pyserial) clear it
/// and it does nothing outside canonical mode. Not `ECHO`: any of `ECHO`, `ICRNL`, `ISIG` and
/// the like takes the line discipline off its raw fast path (`real_raw`, one copy per reply)
/// and onto a byte-by-byte one.
const CANARY: LocalModes = LocalModes::ECHONL;

/// `TIOCPKT`: packet mode on the master (`ioctl_tty(2)`).
const TIOCPKT: rustix::ioctl::Opcode = 0x5420;
/// `TIOCGEXCL`: read the exclusive-mode flag, `_IOR('T', 0x40, int)`.
const TIOCGEXCL: rustix::ioctl::Opcode = opcode::read::<std::ffi::c_int>(b'T', 0x40);

/// Packet-mode status bits (`TIOCPKT(2const)`).
mod pkt {
    pub(super) const FLUSHREAD: u8 = 0x01;
    pub(super) const FLUSHWRITE: u8 = 0x02;
    pub(super) const STOP: u8 = 0x04;
    pub(super) const START: u8 = 0x08;
    pub(super) const IOCTL: u8 = 0x40;
}

/// How to create a pty port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PtyOptions {
    /// Baud rate the line starts at (a client that never sets its own sees this).
    pub baud: u32,
    /// Owner `(uid, gid)` of the slave node; `None` leaves devpts' default (the creating user).
    pub owner: Option<(u32, u32)>,
    /// Permission bits of the slave node (devpts creates it `0600` or `0620`); `None` leaves them.
    pub mode: Option<u32>,
}

impl Default for PtyOptions {
    fn default() -> Self {
        Self {
            baud: 9600,
            owner: None,
            mode: None,
        }
    }
}

/// A handle on the port's held slave descriptor, for looking at the line from the client's side
/// (tests, diagnostics) without opening `/dev/pts/N` (which would count as a client).
#[derive(Clone, Debug)]
pub struct SlaveProbe {
    slave: Arc<OwnedFd>,
}

impl SlaveProbe {
    /// Whether exclusive mode (`TIOCEXCL`) is set on the line.
    ///
    /// # Errors
    /// The `TIOCGEXCL` ioctl's error.
    pub fn exclusive(&self) -> io::Result<bool> {
        #[allow(unsafe_code)]
        // SAFETY: TIOCGEXCL writes one `int` through the pointer `Getter` provides, which has room
        // for exactly one `c_int`; the descriptor is a valid tty owned by `self.slave`.
        let flag = unsafe { ioctl(&*self.slave, Getter::<TIOCGEXCL, std::ffi::c_int>::new()) }?;
        Ok(flag != 0)
    }

    /// Bytes the device sent that no client has read yet.
    ///
    /// # Errors
    /// The `FIONREAD` ioctl's error.
    pub fn unread(&self) -> io::Result<u64> {
        Ok(rustix::io::ioctl_fionread(&*self.slave)?)
    }

    /// The line settings as the client set them.
    ///
    /// # Errors
    /// The `TCGETS2` ioctl's error.
    pub fn settings(&self) -> io::Result<LineSettings> {
        Ok(settings_of(&rustix::termios::tcgetattr(&*self.slave)?))
    }
}

/// A pseudo-terminal whose slave (`/dev/pts/N`) is the emulated serial port.
///
/// Implements [`AsyncRead`](tokio::io::AsyncRead), [`AsyncWrite`](tokio::io::AsyncWrite) and [`Transport`]. Reading yields the client's bytes
/// with packet-mode headers stripped; line events are queued for [`Transport::poll_event`].
#[derive(Debug)]
#[repr(C)]
pub struct PtyPort {
    // Laid out as declared (`repr(C)`): what a lane reads for every request first (see
    // `Server`'s layout). (`Drop` deregisters `reactor` before `master` is closed, whatever
    // the order here.)
    /// The nonblocking master.
    master: OwnedFd,
    /// A client changed the settings and [`CANARY`] must be set again once it is done (see
    /// [`PtyPort::rearm_canary`]).
    rearm_pending: bool,
    /// We flushed the line ourselves; the status byte it causes is ours, not the client's.
    own_flush: bool,
    /// Client opens and closes, from the process-wide watcher (`None` if inotify failed).
    sessions: Option<SessionLink>,
    /// Line events read in-band (packet status bytes), not yet taken by the serving loop.
    events: VecDeque<PortEvent>,
    /// The master's registration with tokio's reactor, for reading only; `None` while a lane
    /// serves the port (see `serve::lane`) and until the port's own task reads again. Taken out
    /// (deregistered) first when the port is dropped, before `master` is closed.
    reactor: Option<AsyncFd<RawMaster>>,
    /// A duplicate of the master registered for write readiness, only while a write waits for
    /// room. Registered for good, `EPOLLOUT` would wake the reactor each time the client reads
    /// a reply — one event per round trip for nothing, since the line nearly always has room.
    /// (Boxed: every idle port would carry its room otherwise.)
    writer: Option<Box<AsyncFd<OwnedFd>>>,
    /// Our own slave descriptor: keeps the master from failing with EIO when clients close.
    slave: Arc<OwnedFd>,
    /// `/dev/pts/N`.
    path: PathBuf,
    /// The settings last reported.
    settings: LineSettings,
    /// While a write waits for a client that does not read: when to look again whether it is
    /// still there.
    write_recheck: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Status bytes read while cleaning up after a departed client (see
    /// [`PtyPort::drain_departed_input`]), handled before anything else is read.
    deferred_status: Vec<u8>,
}

impl PtyPort {
    /// How many bytes from its start hold what a lane reads per request (see the layout).
    pub(crate) const LANE_HOT: usize =
        std::mem::offset_of!(PtyPort, events) + std::mem::size_of::<VecDeque<PortEvent>>();
}

impl Drop for PtyPort {
    fn drop(&mut self) {
        // Deregister before the descriptor closes (see `register_master`).
        self.reactor = None;
    }
}

impl PtyPort {
    /// Open a new pty with `options`, raw, in packet mode, with its slave held and watched.
    ///
    /// Must be called within a tokio runtime.
    ///
    /// # Errors
    /// The failing system call's error (`ENOSPC` when `kernel.pty.max` is reached, `EMFILE`
    /// at `RLIMIT_NOFILE`).
    pub fn open(options: &PtyOptions) -> io::Result<Self> {
        let flags = OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC;
        let master = rustix::pty::openpt(flags)?;
        rustix::pty::grantpt(&master)?;
        rustix::pty::unlockpt(&master)?;
        let path = PathBuf::from(
            rustix::pty::ptsname(&master, Vec::new())?
                .into_string()
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "pts name not UTF-8"))?,
        );
        let slave = match rustix::pty::ioctl_tiocgptpeer(&master, flags) {
            Ok(fd) => fd,
            // Kernels before 4.13: open by name (there is no client yet to race with).
            Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOTTY) => rustix::fs::open(
                &path,
                rustix::fs::OFlags::RDWR | rustix::fs::OFlags::NOCTTY | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )?,
            Err(e) => return Err(e.into()),
        };
        if let Some((uid, gid)) = options.owner {
            nix::unistd::fchown(
                &slave,
                Some(nix::unistd::Uid::from_raw(uid)),
                Some(nix::unistd::Gid::from_raw(gid)),
            )?;
        }
        if let Some(mode) = options.mode {
            rustix::fs::fchmod(&slave, rustix::fs::Mode::from_raw_mode(mode))?;
        }

        let mut termios = rustix::termios::tcgetattr(&master)?;
        raw_line(&mut termios, options.baud)?;
        rustix::termios::tcsetattr(&master, OptionalActions::Now, &termios)?;
        let settings = settings_of(&rustix::termios::tcgetattr(&master)?);
        set_packet_mode(master.as_fd())?;
        rustix::io::ioctl_fionbio(&master, true)?;

        let slave = Arc::new(slave);
        let sessions = match sessions::watch(&path, &slave) {
            Ok(link) => Some(link),
            Err(e) => {
                warn!(path = %path.display(), error = %e, "cannot watch for client sessions");
                None
            }
        };
        let reactor = register_master(&master)?;
        Ok(Self {
            reactor: Some(reactor),
            master,
            writer: None,
            slave,
            path,
            events: VecDeque::new(),
            settings,
            sessions,
            own_flush: false,
            deferred_status: Vec::new(),
            rearm_pending: false,
            write_recheck: None,
        })
    }

    /// The slave's path, `/dev/pts/N`: what a client opens.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The line settings last seen.
    #[must_use]
    pub fn line_settings(&self) -> LineSettings {
        self.settings
    }

    /// A probe on the held slave descriptor.
    #[must_use]
    pub fn probe(&self) -> SlaveProbe {
        SlaveProbe {
            slave: self.slave.clone(),
        }
    }

    /// Whether a client has the port open right now (`None` if sessions cannot be watched).
    #[must_use]
    pub fn has_client(&self) -> Option<bool> {
        self.sessions.as_ref()?;
        // A client counted as present needs no sync (one inotify read and a global lock saved
        // per reply): if it has in fact just closed, the reply goes to a line nobody reads and
        // `on_closed` discards it before the next client can see it.
        if self.has_client_now() {
            return Some(true);
        }
        sessions::sync();
        Some(self.has_client_now())
    }

    /// The line event for a session change (a departure also gets its cleanup).
    fn session_event(&mut self, note: SessionNote) -> PortEvent {
        match note {
            SessionNote::Opened => LineEvent::Opened.into(),
            SessionNote::Closed => self.on_closed(),
        }
    }

    /// Queue the session changes that happened before now (a client's open above all), so
    /// that they come before the in-band events about to be queued: a client opens the port
    /// before it configures or flushes it, whichever way the news reaches us first.
    fn queue_session_changes(&mut self) {
        if self.sessions.is_none() {
            return;
        }
        if !self.has_client_now() {
            sessions::sync();
        }
        while let Some(note) = self.sessions.as_mut().and_then(SessionLink::take_note) {
            let event = self.session_event(note);
            self.events.push_back(event);
        }
    }

    /// Turn a packet-mode status byte into queued events.
    fn on_status(&mut self, mut status: u8) {
        self.queue_session_changes();
        if self.own_flush && status & (pkt::FLUSHREAD | pkt::FLUSHWRITE) != 0 {
            self.own_flush = false;
            status &= !(pkt::FLUSHREAD | pkt::FLUSHWRITE);
        }
        if status & (pkt::FLUSHREAD | pkt::FLUSHWRITE) != 0 {
            self.events.push_back(
                LineEvent::Flush {
                    input: status & pkt::FLUSHREAD != 0,
                    output: status & pkt::FLUSHWRITE != 0,
                }
                .into(),
            );
        }
        if status & pkt::STOP != 0 {
            self.events.push_back(LineEvent::Flow(false).into());
        }
        if status & pkt::START != 0 {
            self.events.push_back(LineEvent::Flow(true).into());
        }
        if status & pkt::IOCTL != 0 {
            match rustix::termios::tcgetattr(&self.master) {
                Ok(t) => {
                    // Only a client's change clears the canary; our own re-arm (which raises
                    // this status byte too) leaves nothing to do.
                    self.rearm_pending = !t.local_modes.contains(CANARY);
                    let settings = settings_of(&t);
                    if settings != self.settings {
                        self.settings = settings;
                        self.events.push_back(LineEvent::Settings(settings).into());
                    }
                }
                Err(e) => warn!(path = %self.path.display(), error = %e, "cannot read settings"),
            }
        }
    }

    /// A client left. Clean up after it unless a newer client has opened since.
    ///
    /// Why this cannot discard a newer client's data: after `sync` every open that has
    /// happened is counted. If the count is zero, any client that opens from now on opens after
    /// this point, so it has not been answered yet (we answer nothing while in here) and none of
    /// its bytes are in our buffer yet. Our output is flushed (it was all for clients that
    /// left). The client's side is not flushed blindly: a client that opens right after the
    /// sync may already have written its request into it (seen under load with a client that
    /// reopens for every command); [`PtyPort::drain_departed_input`] tells the two apart.
    fn on_closed(&mut self) -> PortEvent {
        sessions::sync();
        let clean = self.sessions.is_some() && !self.has_client_now();
        let left_behind = if clean {
            // The line itself (canary, exclusive lock) was readied for the next client by
            // whichever drain of the watcher saw the close, this sync's or the watcher's own
            // (`sessions::ready_line`), before this port's task may have had its turn.
            self.rearm_pending = false;
            self.own_flush = true;
            if let Err(e) = rustix::termios::tcflush(&*self.slave, QueueSelector::IFlush) {
                warn!(path = %self.path.display(), error = %e, "cannot discard stale output");
            }
            self.drain_departed_input()
        } else {
            // A client opened since the last one left (one that reopens at once). Our output
            // may already be its answer, and what waits to be read may be its request, read
            // as usual: the new client may still be configuring the line, and a read now
            // would re-arm the canary under its `tcsetattr` (see `rearm_canary`).
            debug!(path = %self.path.display(), "client left and another has opened since");
            Vec::new()
        };
        PortEvent {
            event: LineEvent::Closed,
            reset_input: clean,
            left_behind: left_behind.into(),
        }
    }

    /// Read what clients wrote that we have not read yet, after the last one left. If no
    /// client has opened by the time it is read, it is the departed client's (a new client
    /// opens before it writes, and its open is counted synchronously): drop it. Otherwise it
    /// may be the new client's first request: hand it over with the departure.
    fn drain_departed_input(&mut self) -> Vec<u8> {
        let opened_before = self.sessions_opened();
        let mut data = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            match rustix::io::read(&self.master, &mut buf[..]) {
                Ok(0) | Err(_) => break,
                Ok(n) if buf[0] == 0 => data.extend_from_slice(&buf[1..n]),
                // Settings changes and flushes are kept, in order, for the next read.
                Ok(_) => self.deferred_status.push(buf[0]),
            }
        }
        sessions::sync();
        let newer_client = self.sessions_opened() != opened_before || self.has_client_now();
        if newer_client {
            return data;
        }
        if !data.is_empty() {
            debug!(path = %self.path.display(), bytes = data.len(), "departed client's unread input dropped");
        }
        Vec::new()
    }

    fn sessions_opened(&self) -> u32 {
        self.sessions.as_ref().map_or(0, |s| {
            s.state.opened.load(std::sync::atomic::Ordering::SeqCst)
        })
    }

    /// Keep [`CANARY`] set on the line, so that the next client's `tcsetattr` always changes
    /// something.
    ///
    /// Debian's (and Fedora's) glibc re-reads the settings after `TCSETS` and fails with EINVAL
    /// when nothing changed. A pty discards `PARENB`, so a client that reopens with
    /// `parity=EVEN` and otherwise the settings of last time (mppsolar reopens for every
    /// command) fails every open but the first. Raw-mode clients (pyserial, cfmakeraw) always
    /// clear the canary, which does nothing on a non-canonical line, so it is ours to set again
    /// after each client `tcsetattr`.
    ///
    /// When matters: not at once (glibc's check re-reads the settings right after `TCSETS`, and
    /// our change landing in between would make it see "nothing changed"; and a client may
    /// still be configuring: our read-modify-write then undoes its next change, which
    /// serialport-rs reports as "Settings did not apply correctly" — tried, seen in one run in
    /// four). We re-arm here when the client's next bytes arrive — it has finished configuring
    /// by then. When it leaves, the session watcher's thread re-arms the moment it learns of the
    /// close (`sessions::ready_line`): a client may reopen before this port's task gets its turn
    /// on a busy runtime. Nothing else of the client's settings is touched. A client that sets
    /// the line twice before its first request (pymodbus's `connect`) is beyond any re-arm: its
    /// calls come microseconds apart, faster than a wake-up (see README).
    fn rearm_canary(&mut self) {
        self.rearm_pending = false;
        if let Err(e) = arm_canary(self.master.as_fd()) {
            warn!(path = %self.path.display(), error = %e, "cannot re-arm the ECHONL canary");
        }
    }

    /// Register a duplicate of the master for write readiness (see [`PtyPort::writer`]).
    fn register_writer(&self) -> io::Result<AsyncFd<OwnedFd>> {
        let dup = rustix::io::fcntl_dupfd_cloexec(&self.master, 0)?;
        #[allow(unsafe_code)]
        // SAFETY: `dup` is an `OwnedFd` for a valid, open, nonblocking descriptor of the pty
        // master (a duplicate shares the open file and its flags). It moves into the `AsyncFd`,
        // which owns it from here on and deregisters it before closing it (on drop). A
        // duplicate is its own epoll registration, so the master's stays as it is.
        unsafe { AsyncFd::register_with_interest(dup, Interest::WRITABLE) }.map_err(io::Error::from)
    }

    fn has_client_now(&self) -> bool {
        self.sessions.as_ref().is_some_and(|s| s.open_count() > 0)
    }

    /// Whether the port has reported a client's open and not yet its close: no look at the
    /// watcher's shared counts (see [`SessionLink::reported_open`]). A close the port has not
    /// taken yet is on its way to the serving loop (the watcher woke it, or on a lane recalled
    /// it), which takes it before answering anything more.
    fn client_reported(&self) -> bool {
        self.sessions
            .as_ref()
            .is_some_and(SessionLink::reported_open)
    }
}

impl Transport for PtyPort {
    fn poll_event(&mut self, cx: &mut task::Context<'_>) -> Poll<PortEvent> {
        if let Some(event) = self.events.pop_front() {
            return Poll::Ready(event);
        }
        let Some(sessions) = self.sessions.as_mut() else {
            return Poll::Pending;
        };
        sessions.poll_note(cx).map(|note| self.session_event(note))
    }

    fn take_event(&mut self) -> Option<PortEvent> {
        // As `poll_event`, without registering a waker: after every read this is cheaper
        // than swapping the session watcher's waker for a no-op one and back.
        if let Some(event) = self.events.pop_front() {
            return Some(event);
        }
        let note = self.sessions.as_mut()?.take_note()?;
        Some(self.session_event(note))
    }

    fn take_inband_event(&mut self) -> Option<PortEvent> {
        self.events.pop_front()
    }

    fn sync_events(&mut self) {
        // Every open and close that happened before now is counted after a sync, and the
        // notes are taken by `take_event` (one inotify read and a global lock: only asked for
        // when a partial request is held).
        if self.sessions.is_some() {
            sessions::sync();
        }
    }

    fn settings(&self) -> Option<LineSettings> {
        Some(self.settings)
    }

    fn client_present(&self) -> Option<bool> {
        // Asked per reply: a client the port has reported present needs no look at the
        // watcher's counts (see `client_reported`).
        if self.client_reported() {
            return Some(true);
        }
        self.has_client()
    }
}

/// Set [`CANARY`] on the line if a client cleared it (see [`PtyPort::rearm_canary`]). `line` is
/// the master or a slave descriptor: both reach the slave's settings.
fn arm_canary(line: BorrowedFd<'_>) -> rustix::io::Result<()> {
    let mut t = rustix::termios::tcgetattr(line)?;
    if t.local_modes.contains(CANARY) {
        return Ok(());
    }
    t.local_modes.insert(CANARY);
    rustix::termios::tcsetattr(line, OptionalActions::Now, &t)
}

/// Raw mode at `baud`, 8N1, no flow control, reads return as soon as a byte is there; `EXTPROC`
/// so client `tcsetattr` calls are reported to the master in packet mode.
fn raw_line(t: &mut Termios, baud: u32) -> io::Result<()> {
    t.make_raw();
    t.control_modes
        .remove(ControlModes::CSTOPB | ControlModes::CRTSCTS | ControlModes::PARENB);
    t.control_modes
        .insert(ControlModes::CS8 | ControlModes::CREAD | ControlModes::CLOCAL);
    t.input_modes
        .remove(InputModes::IXON | InputModes::IXOFF | InputModes::IXANY);
    // EXTPROC: client tcsetattr calls are reported. The canary: see `PtyPort::rearm_canary`.
    t.local_modes.insert(LocalModes::EXTPROC | CANARY);
    t.special_codes[SpecialCodeIndex::VMIN] = 1;
    t.special_codes[SpecialCodeIndex::VTIME] = 0;
    t.set_speed(baud)?;
    Ok(())
}

fn set_packet_mode(master: BorrowedFd<'_>) -> io::Result<()> {
    #[allow(unsafe_code)]
    // SAFETY: TIOCPKT reads one `int` through the pointer `Setter` passes, which points at the
    // `c_int` it owns; `master` is a valid pty master descriptor.
    unsafe { ioctl(master, Setter::<TIOCPKT, std::ffi::c_int>::new(1)) }?;
    Ok(())
}

/// The settings a client can be seen to have chosen.
fn settings_of(t: &Termios) -> LineSettings {
    let flow = if t.control_modes.contains(ControlModes::CRTSCTS) {
        FlowControl::Hardware
    } else if t.input_modes.contains(InputModes::IXON) {
        FlowControl::Software
    } else {
        FlowControl::None
    };
    LineSettings {
        baud: t.output_speed(),
        data_bits: 8,
        parity: Parity::None,
        stop_bits: if t.control_modes.contains(ControlModes::CSTOPB) {
            StopBits::Two
        } else {
            StopBits::One
        },
        flow,
        parity_visible: false,
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;

    use super::*;

    fn client(path: &Path) -> std::fs::File {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(rustix::fs::OFlags::NOCTTY.bits().cast_signed())
            .open(path)
            .unwrap()
    }

    /// The departure cleanup against a client that reopens at once: what the departed client
    /// left unread is dropped, but a request a newer client wrote before the cleanup read the
    /// line is handed over with the departure.
    #[tokio::test]
    async fn departure_cleanup_keeps_a_newer_clients_request() {
        let mut port = PtyPort::open(&PtyOptions::default()).unwrap();
        let mut gone = client(port.path());
        gone.write_all(b"PARTIAL").unwrap();
        drop(gone);
        sessions::sync();
        assert!(port.drain_departed_input().is_empty());

        // Between the cleanup's count and its read of the line, a new client opens and asks.
        let mut next = client(port.path());
        next.write_all(b"INC\r\n").unwrap();
        assert_eq!(port.drain_departed_input(), b"INC\r\n");
        drop(next);
    }

    /// What pyserial does when it opens at 2400 8E1: raw mode and even parity, set through
    /// glibc's `tcsetattr` (whose Debian and Fedora builds fail when nothing changed), then an
    /// exclusive lock as serialport-rs takes one.
    fn open_at_even_parity(path: &Path) -> io::Result<std::fs::File> {
        use nix::sys::termios::{self, BaudRate, ControlFlags, SetArg};
        let line = client(path);
        let mut t = termios::tcgetattr(&line)?;
        termios::cfmakeraw(&mut t);
        t.control_flags.insert(ControlFlags::PARENB);
        termios::cfsetspeed(&mut t, BaudRate::B2400)?;
        termios::tcsetattr(&line, SetArg::TCSANOW, &t)?;
        rustix::termios::ioctl_tiocexcl(&line)?;
        Ok(line)
    }

    /// A client that reopens at once must find the line ready whether or not the port's serving
    /// task has run since its predecessor left (a busy runtime may not have): here it never
    /// runs. The session watcher sets the canary again and clears the exclusive lock on its own.
    #[tokio::test]
    async fn the_line_is_ready_for_the_next_client_without_the_serving_task() {
        let port = PtyPort::open(&PtyOptions::default()).unwrap();
        let ready = || {
            let t = rustix::termios::tcgetattr(&*port.slave).unwrap();
            t.local_modes.contains(CANARY) && !port.probe().exclusive().unwrap()
        };
        for open in 1..=5 {
            let line = open_at_even_parity(port.path())
                .unwrap_or_else(|e| panic!("open {open} at even parity failed: {e}"));
            assert!(
                !ready(),
                "open {open}: the client cleared the canary and locked the line"
            );
            drop(line);
            // The watcher's thread gets to it when the kernel schedules it: wait for it, with a
            // deadline only as a safety net.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while !ready() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "open {open}: the line was not readied after the client left"
                );
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
    }
}
