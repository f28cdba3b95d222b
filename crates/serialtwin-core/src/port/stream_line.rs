//! A device's line as a TCP listener: a device served over the network with no pty at all.
//!
//! A port with a pty and an endpoint in front of it has the endpoint bridge every byte
//! through the pty (`net::Endpoint`): one more task and two more copies per round trip, and
//! a pty held per device, which bounds a host to a few thousand devices. A device that only
//! the network reaches needs neither: its serving loop reads and writes the accepted
//! connection itself, and the connection coming and going is the client opening and closing
//! the line. One client at a time, as on a serial line; a second is told `Port already in
//! use` and closed (ser2net's words), and the first keeps the line.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{self, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Sleep;
use tracing::{debug, info, warn};

use super::settings::LineEvent;
use super::transport::{PortEvent, Transport};

/// What a second client reads before its connection is closed.
const IN_USE: &[u8] = b"Port already in use\r\n";

/// How long accepting pauses after it failed (out of descriptors, most likely), rather than
/// spin on a listener that stays readable.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// A TCP listener as a device's line: the serving loop's [`Transport`] for a port with no
/// pty. The accepted connection is the client; its arrival and departure are the line's
/// [`LineEvent::Opened`] and [`LineEvent::Closed`]. With no client, what the device sends is
/// dropped, as a real device's bytes are when nothing is plugged in.
#[derive(Debug)]
pub(crate) struct TcpLine {
    listener: Option<TcpListener>,
    local: SocketAddr,
    client: Option<(TcpStream, SocketAddr)>,
    events: VecDeque<PortEvent>,
    backoff: Option<Pin<Box<Sleep>>>,
    name: String,
}

impl TcpLine {
    /// A line listening on `listener` for the port called `name` (for logs).
    ///
    /// # Errors
    /// The listener has no local address.
    pub(crate) fn new(listener: TcpListener, name: &str) -> io::Result<Self> {
        Ok(Self {
            local: listener.local_addr()?,
            listener: Some(listener),
            client: None,
            events: VecDeque::new(),
            backoff: None,
            name: name.to_owned(),
        })
    }

    /// The address it listens on.
    #[must_use]
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Pull the plug: the client's connection is dropped and nobody can connect (the address
    /// refuses) until [`plug_in`](Self::plug_in).
    pub(crate) fn unplug(&mut self) {
        self.drop_client("unplugged");
        self.listener = None;
        // The serving loop forgets the line's past itself (as with a pty's unplug): no
        // departure to report after the port is back.
        self.events.clear();
    }

    /// Listen again on the same address after an [`unplug`](Self::unplug).
    pub(crate) async fn plug_in(&mut self) -> io::Result<()> {
        if self.listener.is_none() {
            self.listener = Some(TcpListener::bind(self.local).await?);
        }
        Ok(())
    }

    /// The client is gone (or sent away): the line closes, and what it left is forgotten.
    fn drop_client(&mut self, why: &str) {
        if let Some((_, peer)) = self.client.take() {
            debug!(port = %self.name, %peer, why, "network client left");
            self.events.push_back(PortEvent {
                event: LineEvent::Closed,
                reset_input: true,
                left_behind: bytes::Bytes::new(),
            });
        }
    }

    /// Take every connection waiting: the first while nobody has the line becomes the
    /// client, any other is refused.
    fn poll_accept(&mut self, cx: &mut task::Context<'_>) {
        if let Some(backoff) = &mut self.backoff {
            if backoff.as_mut().poll(cx).is_pending() {
                return;
            }
            self.backoff = None;
        }
        loop {
            let accepted = match &self.listener {
                Some(listener) => listener.poll_accept(cx),
                None => return,
            };
            match accepted {
                Poll::Ready(Ok((stream, peer))) => {
                    // A client that closed and connects again at once arrives before its
                    // close was read: its old connection, at its end, is no client.
                    if let Some((old, _)) = &self.client {
                        let mut probe = [0_u8; 1];
                        let mut probe = ReadBuf::new(&mut probe);
                        match old.poll_peek(cx, &mut probe) {
                            Poll::Ready(Ok(0) | Err(_)) => self.drop_client("closed"),
                            Poll::Ready(Ok(_)) | Poll::Pending => {}
                        }
                    }
                    if self.client.is_some() {
                        info!(port = %self.name, %peer, "second client refused: port in use");
                        // Best effort: a socket just accepted has room for one line.
                        let _ = stream.try_write(IN_USE);
                        continue;
                    }
                    if let Err(e) = stream.set_nodelay(true) {
                        warn!(port = %self.name, %peer, error = %e, "cannot set TCP_NODELAY");
                    }
                    debug!(port = %self.name, %peer, "network client connected");
                    self.client = Some((stream, peer));
                    self.events.push_back(LineEvent::Opened.into());
                }
                Poll::Ready(Err(e)) => {
                    warn!(port = %self.name, error = %e, "cannot accept a connection");
                    let mut backoff = Box::pin(tokio::time::sleep(ACCEPT_BACKOFF));
                    // Registers the wake-up that ends the pause.
                    let _ = backoff.as_mut().poll(cx);
                    self.backoff = Some(backoff);
                    return;
                }
                Poll::Pending => return,
            }
        }
    }
}

impl AsyncRead for TcpLine {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        this.poll_accept(cx);
        let Some((stream, _)) = &mut this.client else {
            return Poll::Pending;
        };
        let before = buf.filled().len();
        match ready!(Pin::new(stream).poll_read(cx, buf)) {
            Ok(()) if buf.filled().len() > before => Poll::Ready(Ok(())),
            // The client closed (or its connection broke): the line has no client now, and
            // reads wait for the next. The event is taken before the next read.
            Ok(()) => {
                this.drop_client("closed");
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Err(e) => {
                this.drop_client(&e.to_string());
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }
}

impl AsyncWrite for TcpLine {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut task::Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let Some((stream, _)) = &mut this.client else {
            // Nobody listening: the bytes go nowhere, as on an unplugged cable.
            return Poll::Ready(Ok(data.len()));
        };
        match ready!(Pin::new(stream).poll_write(cx, data)) {
            Ok(n) => Poll::Ready(Ok(n)),
            Err(e) => {
                this.drop_client(&e.to_string());
                cx.waker().wake_by_ref();
                Poll::Ready(Ok(data.len()))
            }
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut task::Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.client {
            Some((stream, _)) => Pin::new(stream).poll_flush(cx).map(|_| Ok(())),
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut task::Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.client {
            Some((stream, _)) => Pin::new(stream).poll_shutdown(cx).map(|_| Ok(())),
            None => Poll::Ready(Ok(())),
        }
    }
}

impl Transport for TcpLine {
    fn poll_event(&mut self, cx: &mut task::Context<'_>) -> Poll<PortEvent> {
        self.poll_accept(cx);
        match self.events.pop_front() {
            Some(event) => Poll::Ready(event),
            None => Poll::Pending,
        }
    }

    fn take_event(&mut self) -> Option<PortEvent> {
        self.events.pop_front()
    }

    fn client_present(&self) -> Option<bool> {
        Some(self.client.is_some())
    }
}
