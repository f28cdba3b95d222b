//! Reading and writing the master: one read and one write without waiting, under both the
//! port's own task (`AsyncRead`, `AsyncWrite`) and a fleet's lane (`read_now`, `write_now`).

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::pin::Pin;
use std::task::{self, Poll, ready};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tracing::debug;

use super::{PtyPort, WRITE_RECHECK, sessions};

impl PtyPort {
    /// The line is full (about 18 KiB the client has not read). A real UART would go on
    /// sending into the void; here the bytes would wait for the next client. With no client
    /// there, drop them (report them written). With one, wait for it to read — but look again
    /// every [`WRITE_RECHECK`], because if it leaves while we wait, no readiness event will
    /// ever come and the port would hang.
    fn poll_blocked_write(
        &mut self,
        cx: &mut task::Context<'_>,
        len: usize,
    ) -> Poll<io::Result<usize>> {
        if self.has_client() == Some(false) {
            debug!(path = %self.path.display(), len, "line full and no client: output dropped");
            self.write_recheck = None;
            self.writer = None;
            return Poll::Ready(Ok(len));
        }
        let recheck = self
            .write_recheck
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(WRITE_RECHECK)));
        if recheck.as_mut().poll(cx).is_ready() {
            recheck
                .as_mut()
                .reset(tokio::time::Instant::now() + WRITE_RECHECK);
            // Registers the timer's waker again.
            let _ = recheck.as_mut().poll(cx);
        }
        Poll::Pending
    }

    /// Read from the master into `buf`, handling packet headers. Returns the data byte count
    /// (0 only if `buf` has no room); events go to the queue, and if any were queued without
    /// data this returns `Pending` after waking the task so they are taken first.
    fn poll_read_packet(
        &mut self,
        cx: &mut task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        // What the departure cleanup read ahead (rare): its status bytes.
        if !self.deferred_status.is_empty() {
            for status in std::mem::take(&mut self.deferred_status) {
                self.on_status(status);
            }
            if !self.events.is_empty() {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
        // Out of its slot while a read uses it (`read_packet` needs the rest of the port).
        let reactor = match self.reactor.take() {
            Some(reactor) => reactor,
            // Back from a lane: registered again on the first read.
            None => register_master(&self.master)?,
        };
        let result = self.poll_read_with(&reactor, cx, buf);
        self.reactor = Some(reactor);
        result
    }

    fn poll_read_with(
        &mut self,
        reactor: &AsyncFd<RawMaster>,
        cx: &mut task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(reactor.poll_read_ready(cx))?;
            #[allow(unsafe_code)]
            // SAFETY: the spare room is only handed to read(2), which writes it and never
            // de-initialises anything. (Not `initialize_unfilled`: zeroing the room before
            // every read is a memset per request for nothing.)
            let spare = unsafe { buf.unfilled_mut() };
            match self.read_packet(spare) {
                Read::Data { len, full } => {
                    #[allow(unsafe_code)]
                    // SAFETY: `read_packet` initialised the first `len` bytes of the room.
                    unsafe {
                        buf.assume_init(len);
                    }
                    buf.advance(len);
                    // A read that did not fill its room drained the master: skip the EAGAIN
                    // read that would otherwise find that out (tokio's own `PollEvented` does
                    // the same).
                    if !full {
                        guard.clear_ready();
                    }
                    return Poll::Ready(Ok(()));
                }
                Read::Events => {
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Read::Again => {}
                Read::Drained => guard.clear_ready(),
                Read::End => return Poll::Ready(Ok(())),
                Read::Failed(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

/// What one read of the master brought ([`PtyPort::read_packet`]), its packet header handled.
enum Read {
    /// This many client bytes at the start of the room; `full`: the read filled all the room
    /// it had (header included), so more may be waiting.
    Data { len: usize, full: bool },
    /// A status byte turned into queued line events, for the serving loop to take first.
    Events,
    /// Nothing for the caller (an empty data packet, or a status byte that changed nothing):
    /// read again.
    Again,
    /// Nothing to read now (`EAGAIN`).
    Drained,
    /// End of input.
    End,
    /// The read failed.
    Failed(io::Error),
}

/// What [`PtyPort::read_now`] found.
#[derive(Debug)]
pub(crate) enum ReadNow {
    /// Client bytes, appended to the buffer; `full`: the read filled all the room it had
    /// (header included), so more may be waiting.
    Data {
        /// The read filled the buffer's spare room.
        full: bool,
    },
    /// Line events, queued for [`Transport::take_event`].
    Events,
    /// Nothing to read now.
    Nothing,
    /// End of input or an error: for the port's own task to find out again and handle.
    Stop,
}

impl PtyPort {
    /// One read of the master without waiting, into `room`, its packet header handled: the
    /// one read both the port's own task ([`AsyncRead`]) and a lane ([`PtyPort::read_now`])
    /// make.
    #[inline]
    fn read_packet(&mut self, room: &mut [std::mem::MaybeUninit<u8>]) -> Read {
        let n = match rustix::io::read(&self.master, &mut *room) {
            Ok((got, _)) => got.len(),
            Err(rustix::io::Errno::INTR) => return Read::Again,
            Err(rustix::io::Errno::AGAIN) => return Read::Drained,
            Err(e) => return Read::Failed(e.into()),
        };
        if n == 0 {
            return Read::End;
        }
        let full = n == room.len();
        #[allow(unsafe_code)]
        // SAFETY: read(2) initialised the first `n` bytes of `room`.
        let packet = unsafe { std::slice::from_raw_parts_mut(room.as_mut_ptr().cast::<u8>(), n) };
        let status = packet[0];
        if status != 0 {
            self.on_status(status);
            return if self.events.is_empty() {
                Read::Again
            } else {
                Read::Events
            };
        }
        if n == 1 {
            return Read::Again;
        }
        packet.copy_within(1..n, 0);
        if self.rearm_pending {
            self.rearm_canary();
        }
        if self.sessions.is_some() && !self.client_reported() {
            // Data from a client we have not reported yet: bring the session count up to
            // date so its `open` is reported before its first frame.
            sessions::sync();
        }
        Read::Data { len: n - 1, full }
    }

    /// Whether the port can be served by a lane now: nothing read ahead or queued for its
    /// task to take first, and no write waiting for room.
    pub(crate) fn can_lend(&self) -> bool {
        self.events.is_empty() && self.deferred_status.is_empty() && self.writer.is_none()
    }

    /// Leave tokio's reactor: a lane watches the master from now on. The port's own task
    /// registers it again on its next read.
    pub(crate) fn leave_reactor(&mut self) {
        self.reactor = None;
    }

    /// The master, for a lane's epoll set.
    pub(crate) fn master(&self) -> BorrowedFd<'_> {
        self.master.as_fd()
    }

    /// One read without waiting, for a lane: client bytes appended to `buf` (which must have
    /// room), or the line events a status byte brought. Whether the read filled its room
    /// (`full`) tells the lane, whose epoll is edge-triggered, to read again.
    #[inline]
    pub(crate) fn read_now(&mut self, buf: &mut bytes::BytesMut) -> ReadNow {
        loop {
            match self.read_packet(buf.spare_capacity_mut()) {
                Read::Data { len, full } => {
                    #[allow(unsafe_code)]
                    // SAFETY: `read_packet` initialised the first `len` bytes of the spare
                    // capacity.
                    unsafe {
                        buf.set_len(buf.len() + len);
                    }
                    return ReadNow::Data { full };
                }
                Read::Events => return ReadNow::Events,
                Read::Again => {}
                Read::Drained => return ReadNow::Nothing,
                Read::End | Read::Failed(_) => return ReadNow::Stop,
            }
        }
    }

    /// One write without waiting, for a lane: how much the line took (0 when it is full).
    ///
    /// # Errors
    /// The write's error, other than a full line.
    pub(crate) fn write_now(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(self.write_once(buf)?.unwrap_or(0))
    }

    /// One write without waiting, the one both the port's own task ([`AsyncWrite`]) and a lane
    /// ([`PtyPort::write_now`]) make: how much the line took, `None` when it is full.
    fn write_once(&self, buf: &[u8]) -> io::Result<Option<usize>> {
        loop {
            match rustix::io::write(&self.master, buf) {
                Ok(n) => return Ok(Some(n)),
                Err(rustix::io::Errno::INTR) => {}
                Err(rustix::io::Errno::AGAIN) => return Ok(None),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl AsyncRead for PtyPort {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.get_mut().poll_read_packet(cx, buf)
    }
}

impl AsyncWrite for PtyPort {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut task::Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            // Straight to the line: it nearly always has room. Only a full line makes us ask
            // the reactor for write readiness.
            if this.writer.is_none() {
                if let Some(n) = this.write_once(buf)? {
                    this.write_recheck = None;
                    return Poll::Ready(Ok(n));
                }
                this.writer = Some(Box::new(this.register_writer()?));
            }
            let ready = this.writer.as_ref().map(|w| w.poll_write_ready(cx));
            let mut guard = match ready {
                Some(Poll::Ready(guard)) => guard?,
                Some(Poll::Pending) => return this.poll_blocked_write(cx, buf.len()),
                None => continue,
            };
            match this.write_once(buf) {
                Ok(None) => guard.clear_ready(),
                result => {
                    // Room again (or an error): stop listening for it.
                    this.writer = None;
                    this.write_recheck = None;
                    return Poll::Ready(result.map(|n| n.unwrap_or(0)));
                }
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut task::Context<'_>) -> Poll<io::Result<()>> {
        // Writes go straight into the line discipline; there is nothing of ours to flush.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut task::Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The master's descriptor number, as registered with tokio's reactor. Not an owner: the
/// [`PtyPort`] owns the descriptor and drops the registration first.
#[derive(Debug)]
pub(super) struct RawMaster(std::os::fd::RawFd);

impl std::os::fd::AsRawFd for RawMaster {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0
    }
}

/// Register `master` with tokio's reactor for reading.
pub(super) fn register_master(master: &OwnedFd) -> io::Result<AsyncFd<RawMaster>> {
    let raw = RawMaster(std::os::fd::AsRawFd::as_raw_fd(master));
    #[allow(unsafe_code)]
    // SAFETY: `raw` names `master`, a valid, open, nonblocking pty master owned by the
    // `PtyPort` that keeps the returned `AsyncFd` in its `reactor` field. `PtyPort`'s `Drop`
    // sets that field to `None` before its fields (`master` among them) are dropped, and it is
    // otherwise only ever set to `None` or replaced while `master` stays open, so the
    // registration is dropped (deregistered) before the descriptor is closed; `raw` always
    // returns the same descriptor.
    unsafe { AsyncFd::register_with_interest(raw, Interest::READABLE) }.map_err(io::Error::from)
}

/// Ask the CPU to bring the cache line at `addr` in; nothing else happens (a prefetch never
/// faults, whatever the address).
#[inline]
pub(crate) fn prefetch(addr: usize) {
    #[cfg(target_arch = "x86_64")]
    #[allow(unsafe_code)]
    // SAFETY: `_mm_prefetch` is only a hint: it reads nothing into the program and cannot fault,
    // for any address. It needs SSE, which every x86_64 CPU has (the target's baseline).
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
            std::ptr::without_provenance(addr),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = addr;
}
