//! A device's line as a stream it accepts, with no pty: a TCP connection for a device only
//! the network reaches, or a socket inside the process for one reached only through its
//! network endpoints.
//!
//! A port with a pty and an endpoint in front of it has the endpoint bridge every byte
//! through the pty (`net::Endpoint`): one more task and two more copies per round trip, and
//! a pty held per device, which bounds a host to a few thousand devices. A device that only
//! the network reaches needs no pty:
//! - with one raw TCP endpoint, its serving loop reads and writes the accepted connection
//!   itself ([`TcpLine`]), the connection coming and going being the client opening and
//!   closing the line. One client at a time, as on a serial line; a second is told `Port
//!   already in use` and closed (ser2net's words), and the first keeps the line.
//! - with endpoints that speak a protocol (RFC 2217, Modbus TCP) or several of them, each
//!   endpoint's bridge reaches the device over a socket pair made when its client connects
//!   ([`InProcessLine`], [`LineClient`]): descriptors only while a client is there, never a
//!   pty. One client at a time across the endpoints, as on a serial line: while one has the
//!   line, another endpoint's client is hung up on.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{self, Poll, Wake, Waker, ready};
use std::time::Duration;

use rustix::event::{PollFd, PollFlags};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixStream};
use tokio::sync::mpsc;
use tokio::time::Sleep;
use tracing::{debug, info, warn};

use super::pty::PtyClient;
use super::settings::LineEvent;
use super::transport::{PortEvent, Transport};
use crate::gate::WakerSlot;

/// What a second client reads before its connection is closed.
const IN_USE: &[u8] = b"Port already in use\r\n";

/// How long accepting pauses after it failed (out of descriptors, most likely), rather than
/// spin on a listener that stays readable.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Where a [`StreamLine`]'s clients come from.
pub(crate) trait Accept: Send + Unpin + 'static {
    /// A client's connection.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send;
    /// Who the client is, for logs.
    type Peer: fmt::Display + Send + Unpin;

    /// The next client, `Pending` when none is waiting (or while closed).
    fn poll_accept(
        &mut self,
        cx: &mut task::Context<'_>,
    ) -> Poll<io::Result<(Self::Stream, Self::Peer)>>;

    /// Whether `old`, the client of the moment, is gone when another arrives: the newcomer
    /// then takes the line; otherwise it is refused.
    fn has_left(old: &Self::Stream, cx: &mut task::Context<'_>) -> bool;

    /// Send a refused newcomer away.
    fn refuse(stream: Self::Stream);

    /// Take no client until [`reopen`](Self::reopen) (the port is unplugged).
    fn close(&mut self);

    /// Take clients again after [`close`](Self::close).
    fn reopen(&mut self) -> impl Future<Output = io::Result<()>> + Send;
}

/// A device's line as a stream accepted from `A`: the serving loop's [`Transport`] for a port
/// with no pty. The accepted stream is the client; its arrival and departure are the line's
/// [`LineEvent::Opened`] and [`LineEvent::Closed`]. With no client, what the device sends is
/// dropped, as a real device's bytes are when nothing is plugged in.
#[derive(Debug)]
pub(crate) struct StreamLine<A: Accept> {
    accept: A,
    /// Accepting is looked at only after it woke the task (see [`AcceptGate`]).
    gate: Arc<AcceptGate>,
    gate_waker: Waker,
    /// The task's waker as last registered with the gate.
    registered: Option<Waker>,
    client: Option<(A::Stream, A::Peer)>,
    events: VecDeque<PortEvent>,
    backoff: Option<Pin<Box<Sleep>>>,
    name: String,
}

/// A network-only port's line: the TCP connections its listener accepts.
pub(crate) type TcpLine = StreamLine<TcpAccept>;

/// A port reached only through its network endpoints: the sockets they open to it.
pub(crate) type InProcessLine = StreamLine<InProcessAccept>;

/// Whether accepting woke the task since it was last looked at, and the task to wake.
///
/// The serving loop polls its transport's events on every pass, a few times per round trip,
/// and a listener asked each time costs its readiness check and waker registration (about
/// 600 instructions per round trip, a fifth of a bare responder's whole round trip). Polled
/// with a waker of its own that records the wake, it is asked again only when a client may be
/// waiting, as the serving loop's own rarely ready sources are (`gate`).
#[derive(Debug, Default)]
struct AcceptGate {
    fired: AtomicBool,
    task: WakerSlot,
}

impl Wake for AcceptGate {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl<A: Accept> StreamLine<A> {
    fn with(accept: A, name: &str) -> Self {
        // Fired from the start: the first look registers the gate's waker.
        let gate = Arc::new(AcceptGate {
            fired: AtomicBool::new(true),
            task: WakerSlot::default(),
        });
        Self {
            accept,
            gate_waker: Waker::from(gate.clone()),
            gate,
            registered: None,
            client: None,
            events: VecDeque::new(),
            backoff: None,
            name: name.to_owned(),
        }
    }

    /// Pull the plug: the client's connection is dropped and nobody can connect until
    /// [`plug_in`](Self::plug_in).
    pub(crate) fn unplug(&mut self) {
        self.drop_client("unplugged");
        self.accept.close();
        // The serving loop forgets the line's past itself (as with a pty's unplug): no
        // departure to report after the port is back.
        self.events.clear();
    }

    /// Take clients again after an [`unplug`](Self::unplug).
    pub(crate) async fn plug_in(&mut self) -> io::Result<()> {
        self.accept.reopen().await?;
        // A listener made anew has registered no waker yet.
        self.gate.fired.store(true, Ordering::Release);
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

    /// Take every client waiting: the first while nobody has the line becomes the client,
    /// any other is refused.
    fn poll_accept(&mut self, cx: &mut task::Context<'_>) {
        // The gate's wake takes the task's waker from its slot after setting `fired`: while
        // `fired` is unset, the waker registered last is still there to be woken.
        let registered = self
            .registered
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()));
        if !registered || self.gate.fired.load(Ordering::Acquire) {
            self.gate.task.register(cx.waker());
            if !registered {
                self.registered = Some(cx.waker().clone());
            }
        }
        if !self.gate.fired.swap(false, Ordering::AcqRel) {
            return;
        }
        // Everything below registers the gate's waker, never the task's: a wake sets
        // `fired` first.
        let waker = self.gate_waker.clone();
        let mut cx = task::Context::from_waker(&waker);
        let cx = &mut cx;
        if let Some(backoff) = &mut self.backoff {
            if backoff.as_mut().poll(cx).is_pending() {
                return;
            }
            self.backoff = None;
        }
        loop {
            match self.accept.poll_accept(cx) {
                Poll::Ready(Ok((stream, peer))) => {
                    // A client that closed and connects again at once arrives before its
                    // close was read: its old connection, at its end, is no client.
                    if let Some((old, _)) = &self.client
                        && A::has_left(old, cx)
                    {
                        self.drop_client("closed");
                    }
                    if self.client.is_some() {
                        info!(port = %self.name, %peer, "second client refused: port in use");
                        A::refuse(stream);
                        continue;
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

impl<A: Accept> AsyncRead for StreamLine<A> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        // A client's arrival is looked for by `poll_event`, which the serving loop polls on
        // every pass before it reads.
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

impl<A: Accept> AsyncWrite for StreamLine<A> {
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

impl<A: Accept> Transport for StreamLine<A> {
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

/// A TCP listener's connections, on an address kept across an unplug.
#[derive(Debug)]
pub(crate) struct TcpAccept {
    listener: Option<TcpListener>,
    local: SocketAddr,
}

impl TcpLine {
    /// A line listening on `listener` for the port called `name` (for logs).
    ///
    /// # Errors
    /// The listener has no local address.
    pub(crate) fn new(listener: TcpListener, name: &str) -> io::Result<Self> {
        let accept = TcpAccept {
            local: listener.local_addr()?,
            listener: Some(listener),
        };
        Ok(Self::with(accept, name))
    }

    /// The address it listens on.
    #[must_use]
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.accept.local
    }
}

impl Accept for TcpAccept {
    type Stream = TcpStream;
    type Peer = SocketAddr;

    fn poll_accept(
        &mut self,
        cx: &mut task::Context<'_>,
    ) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        let Some(listener) = &self.listener else {
            return Poll::Pending;
        };
        let (stream, peer) = ready!(listener.poll_accept(cx))?;
        if let Err(e) = stream.set_nodelay(true) {
            warn!(%peer, error = %e, "cannot set TCP_NODELAY");
        }
        Poll::Ready(Ok((stream, peer)))
    }

    fn has_left(old: &TcpStream, cx: &mut task::Context<'_>) -> bool {
        let mut probe = [0_u8; 1];
        let mut probe = ReadBuf::new(&mut probe);
        matches!(old.poll_peek(cx, &mut probe), Poll::Ready(Ok(0) | Err(_)))
    }

    fn refuse(stream: TcpStream) {
        // Best effort: a socket just accepted has room for one line.
        let _ = stream.try_write(IN_USE);
    }

    /// The address refuses connections while closed.
    fn close(&mut self) {
        self.listener = None;
    }

    async fn reopen(&mut self) -> io::Result<()> {
        if self.listener.is_none() {
            self.listener = Some(TcpListener::bind(self.local).await?);
        }
        Ok(())
    }
}

/// The sockets a port's endpoints open to it ([`Opener::open`]).
#[derive(Debug)]
pub(crate) struct InProcessAccept {
    incoming: mpsc::UnboundedReceiver<UnixStream>,
    plugged: Arc<AtomicBool>,
}

/// Who an in-process client is: the endpoint's bridge.
#[derive(Debug)]
pub(crate) struct Bridged;

impl fmt::Display for Bridged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("endpoint")
    }
}

impl InProcessLine {
    /// A line for the port called `name`, and what its endpoints open it with.
    pub(crate) fn new(name: &str) -> (Self, Opener) {
        let (sender, incoming) = mpsc::unbounded_channel();
        let plugged = Arc::new(AtomicBool::new(true));
        let accept = InProcessAccept {
            incoming,
            plugged: plugged.clone(),
        };
        (Self::with(accept, name), Opener { sender, plugged })
    }
}

impl Accept for InProcessAccept {
    type Stream = UnixStream;
    type Peer = Bridged;

    fn poll_accept(
        &mut self,
        cx: &mut task::Context<'_>,
    ) -> Poll<io::Result<(UnixStream, Bridged)>> {
        match ready!(self.incoming.poll_recv(cx)) {
            Some(stream) => Poll::Ready(Ok((stream, Bridged))),
            // The port's handles are all gone: nobody can open it any more.
            None => Poll::Pending,
        }
    }

    /// An endpoint lets a new client in only once the bridge before it has ended (or was
    /// kicked), but its close may not have been read yet, nor what it wrote before: whether
    /// the bridge's end is closed is asked of the socket itself (`POLLRDHUP`), taking nothing
    /// from it. One still open belongs to another endpoint's client, who has the line.
    fn has_left(old: &UnixStream, _cx: &mut task::Context<'_>) -> bool {
        let mut fds = [PollFd::new(old, PollFlags::RDHUP)];
        let now = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        match rustix::event::poll(&mut fds, Some(&now)) {
            Ok(_) => fds[0]
                .revents()
                .intersects(PollFlags::RDHUP | PollFlags::HUP | PollFlags::ERR),
            Err(_) => true,
        }
    }

    /// Hung up on: its bridge reads the end of the line and closes its client's connection,
    /// as a serial port already open elsewhere refuses.
    fn refuse(stream: UnixStream) {
        drop(stream);
    }

    fn close(&mut self) {
        self.plugged.store(false, Ordering::Release);
        // Sockets opened just before the plug was pulled: hung up on.
        while self.incoming.try_recv().is_ok() {}
    }

    async fn reopen(&mut self) -> io::Result<()> {
        // A socket opened as the plug was pulled (its opener saw the port still plugged in)
        // belongs to before: hung up on, never taken as a client of the port come back.
        while self.incoming.try_recv().is_ok() {}
        self.plugged.store(true, Ordering::Release);
        Ok(())
    }
}

/// Opens an [`InProcessLine`] for an endpoint's client.
#[derive(Clone, Debug)]
pub(crate) struct Opener {
    sender: mpsc::UnboundedSender<UnixStream>,
    plugged: Arc<AtomicBool>,
}

impl Opener {
    /// The client's end of a new socket to the device; `None` while the port is unplugged
    /// (or stopped).
    pub(crate) fn open(&self) -> Option<io::Result<UnixStream>> {
        if !self.plugged.load(Ordering::Acquire) {
            return None;
        }
        let (ours, theirs) = match UnixStream::pair() {
            Ok(pair) => pair,
            Err(e) => return Some(Err(e)),
        };
        self.sender.send(theirs).ok()?;
        Some(Ok(ours))
    }
}

/// What a network endpoint's bridge holds of the port: the client's side of its pty, or of
/// its in-process socket.
#[derive(Debug)]
pub(crate) enum LineClient {
    /// The port's pty, opened as a client opens it.
    Pty(PtyClient),
    /// The client's end of a socket to an [`InProcessLine`].
    InProcess(UnixStream),
}

/// What a hung-up line reads as: an error that ends the bridge (a zero-byte read taken as
/// data would spin).
fn hung_up() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "the port hung up")
}

impl LineClient {
    /// Read what the device sent (at least one byte); a line hung up (the port unplugged or
    /// stopped) is an error.
    pub(crate) async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Pty(pty) => pty.read(buf).await,
            Self::InProcess(socket) => loop {
                socket.readable().await?;
                match socket.try_read(buf) {
                    Ok(0) => return Err(hung_up()),
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            },
        }
    }

    /// Write all of `data` towards the device, waiting while the line is full.
    pub(crate) async fn write_all(&self, mut data: &[u8]) -> io::Result<()> {
        match self {
            Self::Pty(pty) => pty.write_all(data).await,
            Self::InProcess(socket) => {
                while !data.is_empty() {
                    socket.writable().await?;
                    match socket.try_write(data) {
                        Ok(n) => data = &data[n..],
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(())
            }
        }
    }

    /// Drop what the device sent that the bridge has not read yet (after a purge, or before
    /// a gateway's request so that a late reply cannot pass for its answer).
    pub(crate) fn drain(&self) -> io::Result<()> {
        match self {
            Self::Pty(pty) => pty.drain(),
            Self::InProcess(socket) => {
                let mut buf = [0_u8; 4096];
                loop {
                    match socket.try_read(&mut buf) {
                        Ok(0) => return Ok(()),
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                        Err(e) => return Err(e),
                    }
                }
            }
        }
    }
}
