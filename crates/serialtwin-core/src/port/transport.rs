//! What a device is served on: bytes both ways, plus the line events the transport can see.
//!
//! The serving loop is generic over [`Transport`]. A pty ([`crate::port::pty::PtyPort`]) reports
//! sessions and settings; a TCP socket or an in-memory `duplex` reports nothing, and the same
//! device runs on all of them unchanged. Any other `AsyncRead + AsyncWrite` is served by wrapping
//! it in [`Plain`].

use std::pin::Pin;
use std::task::{self, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::port::settings::{LineEvent, LineSettings};

/// A line event as a transport reports it to the serving loop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortEvent {
    /// What happened.
    pub event: LineEvent,
    /// No client has the line now: the transport has discarded what the departed clients
    /// left behind, and the serving loop forgets what it holds of theirs too.
    pub reset_input: bool,
    /// With a departure (`Closed`): what was written to the line and not yet read when the
    /// departure was handled, when a client had opened meanwhile: it may be that client's first
    /// request, so the serving loop reads it as if it had just arrived.
    pub left_behind: bytes::Bytes,
}

impl From<LineEvent> for PortEvent {
    fn from(event: LineEvent) -> Self {
        Self {
            event,
            reset_input: false,
            left_behind: bytes::Bytes::new(),
        }
    }
}

/// A byte transport that may also report line events.
///
/// Every method has a default for transports that know nothing beyond bytes.
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// The next line event, if one is pending. Default: never.
    fn poll_event(&mut self, _cx: &mut task::Context<'_>) -> Poll<PortEvent> {
        Poll::Pending
    }

    /// A line event that is already pending, without arranging to be woken for the next.
    /// The serving loop asks after every read, so that an event learned while reading (a
    /// client's open) comes before the frames just read. Default: [`poll_event`] with a
    /// no-op waker.
    ///
    /// [`poll_event`]: Transport::poll_event
    fn take_event(&mut self) -> Option<PortEvent> {
        let mut cx = task::Context::from_waker(std::task::Waker::noop());
        match self.poll_event(&mut cx) {
            Poll::Ready(event) => Some(event),
            Poll::Pending => None,
        }
    }

    /// Bring the line events up to date with everything that happened before now, so that
    /// [`take_event`](Transport::take_event) returns them: the serving loop asks after a read
    /// behind a partial request, and after every read where replies wait (pacing, latency,
    /// faults), so that a client's departure before the read is seen before the read's bytes
    /// are answered. Default: nothing (events are always up to date).
    fn sync_events(&mut self) {}

    /// The next event that came in-band, with the data, without asking out-of-band sources
    /// for news: what a fleet's lane takes per read, where asking them costs more than a
    /// request (they wake the port's task instead). Default: [`Transport::take_event`].
    fn take_inband_event(&mut self) -> Option<PortEvent> {
        self.take_event()
    }

    /// The line settings in force when serving starts. Default: unknown.
    fn settings(&self) -> Option<LineSettings> {
        None
    }

    /// Whether a client is there to read what the device sends (`None`: cannot tell).
    /// Unprompted output is dropped when this says `Some(false)`, as real hardware's bytes are
    /// when nobody listens.
    fn client_present(&self) -> Option<bool> {
        None
    }
}

impl Transport for tokio::io::DuplexStream {}
impl Transport for tokio::net::TcpStream {}
impl Transport for tokio::net::UnixStream {}

/// Serves any `AsyncRead + AsyncWrite` (a mock, a serial stream) as a [`Transport`] without
/// line events.
#[derive(Debug)]
pub struct Plain<T>(pub T);

impl<T: AsyncRead + Unpin> AsyncRead for Plain<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Plain<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut task::Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: Pin<&mut Self>,
        cx: &mut task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Transport for Plain<T> {}
