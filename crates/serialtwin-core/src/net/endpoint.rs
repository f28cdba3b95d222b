//! One network endpoint: a TCP listener in front of a port, one client at a time bridged to
//! the port's line (its pty, or a socket to a port that holds none).

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::gateway::{Gateway, Translate};
use super::rfc2217::{ComSettings, Event, LINESTATE_BREAK, LINESTATE_FRAMING_ERROR, Session};
use crate::fleet::PortHandle;
use crate::port::settings::LineEvent;
use crate::port::stream_line::LineClient;
use crate::serve::Control;

/// What an endpoint speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EndpointKind {
    /// The bytes and nothing else (pyserial's `socket://`, ser2net's `tcp` accepter): no
    /// settings, no modem lines, 0xFF as it is.
    Tcp,
    /// RFC 2217: Telnet with the COM-PORT-OPTION, carrying the client's settings, DTR, RTS,
    /// break and purges to the device, and the device's modem lines back (pyserial's
    /// `rfc2217://`).
    Rfc2217,
    /// Modbus TCP in front of a Modbus RTU line: a gateway ([`Gateway`]) translating each
    /// MBAP request into an RTU frame and its reply back (pymodbus `ModbusTcpClient`,
    /// `mbpoll -m tcp`).
    ModbusTcp,
    /// Modbus RTU frames as they are, CRC included, over TCP (pymodbus
    /// `ModbusTcpClient(framer=FramerType.RTU)`): the bytes, as [`Tcp`](Self::Tcp) carries
    /// them, for a device whose line speaks RTU.
    RtuTcp,
}

impl EndpointKind {
    /// The name `--json` and the config use: `tcp`, `rfc2217`, `modbus_tcp`, `rtu_tcp`.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Rfc2217 => "rfc2217",
            Self::ModbusTcp => "modbus_tcp",
            Self::RtuTcp => "rtu_tcp",
        }
    }
}

/// What a second client gets while the endpoint serves one: a serial port has one end.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SecondClient {
    /// It is told `Port already in use` and closed; the first keeps the port (ser2net's
    /// default).
    #[default]
    Refuse,
    /// The first is told `kicked off, new user is coming` and closed, and the new one gets
    /// the port (ser2net's `kickolduser`).
    TakeOver,
}

/// How an endpoint listens.
#[derive(Clone, Debug)]
pub struct EndpointConfig {
    /// What it speaks.
    pub kind: EndpointKind,
    /// Where it listens; port 0 takes a free one ([`Endpoint::local_addr`] says which).
    pub addr: SocketAddr,
    /// What a second client gets.
    pub second_client: SecondClient,
    /// Close a connection after this long with no byte either way (`None`: never). A peer
    /// gone without a word is found by TCP keepalive anyway (see [`KEEPALIVE`]).
    pub idle_timeout: Option<Duration>,
    /// The translation a [`ModbusTcp`](EndpointKind::ModbusTcp) endpoint makes, from the
    /// device's model (which knows its framing); unused by the other kinds.
    pub gateway: Option<Arc<dyn Gateway>>,
    /// How long a gateway waits for the line's reply before it answers for the silent
    /// device (Modbus exception 0x0B).
    pub gateway_timeout: Duration,
}

impl EndpointConfig {
    /// An endpoint of `kind` on `addr`: one client at a time (a second is refused), no idle
    /// timeout, no gateway, and [`GATEWAY_TIMEOUT`].
    #[must_use]
    pub fn new(kind: EndpointKind, addr: SocketAddr) -> Self {
        Self {
            kind,
            addr,
            second_client: SecondClient::Refuse,
            idle_timeout: None,
            gateway: None,
            gateway_timeout: GATEWAY_TIMEOUT,
        }
    }
}

/// How long a gateway waits for a reply by default: long enough for a slow device at
/// 9,600 baud (a 256-byte reply takes 267 ms), short enough that the clients' own timeouts
/// (1 s for mbpoll, 3 s for pymodbus) hear the gateway's exception rather than nothing.
pub const GATEWAY_TIMEOUT: Duration = Duration::from_millis(500);

/// TCP keepalive on every connection: probes after 10 s of silence, every 5 s, 3 unanswered
/// ones end it. With the same bound on unacknowledged data (`TCP_USER_TIMEOUT`), a client
/// that vanished without closing (a pulled cable, a killed VM) frees the endpoint within
/// about 25 s, however the connection was at the time.
pub const KEEPALIVE: Duration = Duration::from_secs(25);

/// How long a new client waits for the previous one's bridge to end, before it is refused
/// as a second client: ample for a bridge to read a close already received (microseconds),
/// and no wait at all when the first client is still there and the policy takes over.
const LEAVING: Duration = Duration::from_millis(250);

/// What RFC 2217's SIGNATURE answers.
const SIGNATURE: &str = concat!("serialtwin ", env!("CARGO_PKG_VERSION"));

/// Bytes read from either side at once.
const CHUNK: usize = 4096;

/// A bound listener, ready to serve a port.
#[derive(Debug)]
pub struct Endpoint {
    config: EndpointConfig,
    listener: TcpListener,
    local: SocketAddr,
}

impl Endpoint {
    /// Bind `config.addr`.
    ///
    /// # Errors
    /// The address cannot be bound (in use, not local, no permission).
    /// A [`ModbusTcp`](EndpointKind::ModbusTcp) endpoint without a gateway cannot serve.
    pub async fn bind(config: EndpointConfig) -> io::Result<Self> {
        if config.kind == EndpointKind::ModbusTcp && config.gateway.is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a Modbus TCP endpoint needs the device's gateway (a Modbus RTU device)",
            ));
        }
        let listener = TcpListener::bind(config.addr).await?;
        let local = listener.local_addr()?;
        Ok(Self {
            config,
            listener,
            local,
        })
    }

    /// The address it listens on (the free port taken for port 0).
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// What it speaks.
    #[must_use]
    pub fn kind(&self) -> EndpointKind {
        self.config.kind
    }

    /// Serve `port` to one client at a time until `stop` fires or the port stops; the client
    /// of the moment is closed then.
    pub async fn serve(self, port: PortHandle, stop: CancellationToken) {
        let Self {
            config, listener, ..
        } = self;
        if config.kind == EndpointKind::Rfc2217 {
            // From now on the port has modem lines (`ctl line` works on it).
            drop(port.modem_lines());
        }
        let mut current: Option<(CancellationToken, JoinHandle<()>)> = None;
        loop {
            let accepted = tokio::select! {
                () = stop.cancelled() => break,
                () = port.stopped() => break,
                accepted = listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors, most likely: wait rather than spin on it.
                    warn!(port = %port.name(), error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            if let Some((_, task)) = current.as_mut()
                && !task.is_finished()
                && config.second_client == SecondClient::Refuse
            {
                // A client that closes and connects again at once (pymodbus, a test suite)
                // reaches the accept before its old connection's bridge has read the close:
                // give that bridge a moment to see it, rather than refuse its own client.
                if tokio::time::timeout(LEAVING, task).await.is_ok() {
                    // Ended (and its handle used up).
                    current = None;
                }
            }
            if current
                .as_ref()
                .is_some_and(|(_, task)| !task.is_finished())
            {
                match config.second_client {
                    SecondClient::Refuse => {
                        info!(port = %port.name(), %peer, "second client refused: port in use");
                        tokio::spawn(refuse(stream));
                        continue;
                    }
                    SecondClient::TakeOver => {
                        if let Some((kick, task)) = current.take() {
                            info!(port = %port.name(), %peer, "new client takes the port over");
                            kick.cancel();
                            let _ = task.await;
                        }
                    }
                }
            }
            info!(port = %port.name(), %peer, kind = config.kind.name(), "network client connected");
            let kick = stop.child_token();
            let bridge = Bridge {
                stop: stop.clone(),
                port: port.clone(),
                kind: config.kind,
                idle_timeout: config.idle_timeout,
                kick: kick.clone(),
                gateway: config.gateway.clone(),
                gateway_timeout: config.gateway_timeout,
            };
            current = Some((kick, tokio::spawn(bridge.run(stream, peer))));
        }
        if let Some((kick, task)) = current {
            kick.cancel();
            let _ = task.await;
        }
    }
}

/// Tell a second client the port is taken, and close it.
async fn refuse(mut stream: TcpStream) {
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        stream.write_all(b"Port already in use\r\n"),
    )
    .await;
    let _ = stream.shutdown().await;
}

/// Keepalive and the unacknowledged-data bound on a connection (see [`KEEPALIVE`]).
fn keep_alive(stream: &TcpStream) -> io::Result<()> {
    use rustix::net::sockopt;
    let fd = stream.as_fd();
    sockopt::set_socket_keepalive(fd, true)?;
    sockopt::set_tcp_keepidle(fd, Duration::from_secs(10))?;
    sockopt::set_tcp_keepintvl(fd, Duration::from_secs(5))?;
    sockopt::set_tcp_keepcnt(fd, 3)?;
    sockopt::set_tcp_user_timeout(fd, u32::try_from(KEEPALIVE.as_millis()).unwrap_or(u32::MAX))?;
    stream.set_nodelay(true)
}

/// One client bridged to the port's line.
struct Bridge {
    /// The endpoint's own stop: a kick without it is a take-over.
    stop: CancellationToken,
    port: PortHandle,
    kind: EndpointKind,
    idle_timeout: Option<Duration>,
    /// Fired when the endpoint stops or another client takes over.
    kick: CancellationToken,
    gateway: Option<Arc<dyn Gateway>>,
    gateway_timeout: Duration,
}

/// Why a bridge ended, for the log.
enum End {
    ClientLeft,
    Kicked,
    PortGone(io::Error),
    Idle,
    Network(io::Error),
    Protocol(String),
}

impl Bridge {
    async fn run(self, mut stream: TcpStream, peer: SocketAddr) {
        if let Err(e) = keep_alive(&stream) {
            warn!(port = %self.port.name(), %peer, error = %e, "cannot set keepalive");
        }
        let (line, baud) = match self.port.open_line() {
            Some(Ok(opened)) => opened,
            None => {
                debug!(port = %self.port.name(), %peer, "port unplugged: connection closed");
                return;
            }
            Some(Err(e)) => {
                warn!(port = %self.port.name(), %peer, error = %e, "cannot open the port's line");
                return;
            }
        };
        // As Linux raises DTR and RTS when a serial port is opened, and drops them on the
        // last close.
        let modem = self.kind == EndpointKind::Rfc2217;
        if modem {
            self.line(LineEvent::Dtr(true)).await;
            self.line(LineEvent::Rts(true)).await;
        }
        let end = match self.kind {
            EndpointKind::Tcp | EndpointKind::RtuTcp => self.raw(&mut stream, &line).await,
            EndpointKind::Rfc2217 => self.rfc2217(&mut stream, &line, baud).await,
            EndpointKind::ModbusTcp => match &self.gateway {
                Some(gateway) => {
                    self.gateway(&mut stream, &line, gateway.connect(), self.gateway_timeout)
                        .await
                }
                None => End::Protocol("no gateway for Modbus TCP".into()),
            },
        };
        if matches!(end, End::Kicked) && !self.stop.is_cancelled() {
            let _ = tokio::time::timeout(
                Duration::from_secs(1),
                stream.write_all(b"kicked off, new user is coming\r\n"),
            )
            .await;
        }
        if modem {
            self.line(LineEvent::Dtr(false)).await;
            self.line(LineEvent::Rts(false)).await;
        }
        let _ = stream.shutdown().await;
        drop(line);
        let port = self.port.name();
        match end {
            End::ClientLeft => info!(port, %peer, "network client left"),
            End::Kicked => {
                info!(port, %peer, "network client closed: endpoint stopped or taken over");
            }
            End::Idle => info!(port, %peer, "network client closed: idle"),
            End::PortGone(e) => {
                info!(port, %peer, error = %e, "network client closed: the port went away");
            }
            End::Network(e) => info!(port, %peer, error = %e, "network client lost"),
            End::Protocol(why) => warn!(port, %peer, %why, "network client closed: protocol error"),
        }
    }

    /// Tell the port a line event its pty cannot carry; `false` if the port has stopped.
    async fn line(&self, event: LineEvent) -> bool {
        self.port.command(Control::Line(event)).await.is_ok()
    }

    /// A sleep that ends the connection after the idle timeout, or never.
    async fn idle(&self) {
        match self.idle_timeout {
            Some(after) => tokio::time::sleep(after).await,
            None => std::future::pending().await,
        }
    }

    /// Raw TCP: bytes both ways, nothing else.
    async fn raw(&self, stream: &mut TcpStream, line: &LineClient) -> End {
        let (mut from_net, mut to_net) = stream.split();
        let mut net_buf = vec![0_u8; CHUNK];
        let mut line_buf = vec![0_u8; CHUNK];
        loop {
            tokio::select! {
                () = self.kick.cancelled() => return End::Kicked,
                () = self.idle() => return End::Idle,
                read = from_net.read(&mut net_buf) => match read {
                    Ok(0) => return End::ClientLeft,
                    Ok(n) => {
                        if let Err(e) = line.write_all(&net_buf[..n]).await {
                            return End::PortGone(e);
                        }
                    }
                    Err(e) => return End::Network(e),
                },
                read = line.read(&mut line_buf) => match read {
                    Ok(n) => {
                        if let Err(e) = to_net.write_all(&line_buf[..n]).await {
                            return End::Network(e);
                        }
                    }
                    Err(e) => return End::PortGone(e),
                },
            }
        }
    }

    /// RFC 2217: the Telnet session between the bytes, its settings and lines to the port.
    async fn rfc2217(&self, stream: &mut TcpStream, line: &LineClient, baud: u32) -> End {
        let (mut from_net, mut to_net) = stream.split();
        let mut session = Session::new(ComSettings::new(baud), SIGNATURE);
        let mut lines = self.port.modem_lines();
        // The device's breaks: one begun since the client came is reported once, even if it
        // has ended by the time the bridge looks.
        let mut breaks = self.port.line_break();
        let mut breaks_seen = breaks.borrow_and_update().begun;
        let mut out = BytesMut::new();
        session.start(&mut out);
        session.modem_state(*lines.borrow_and_update(), &mut out);
        let mut data = BytesMut::new();
        let mut events = Vec::new();
        let mut net_buf = vec![0_u8; CHUNK];
        let mut line_buf = vec![0_u8; CHUNK];
        // FLOWCONTROL-SUSPEND: nothing goes to the client until RESUME.
        let mut suspended = false;
        loop {
            if !out.is_empty() {
                if let Err(e) = to_net.write_all(&out).await {
                    return End::Network(e);
                }
                out.clear();
            }
            tokio::select! {
                () = self.kick.cancelled() => return End::Kicked,
                () = self.idle() => return End::Idle,
                changed = lines.changed() => {
                    if changed.is_ok() {
                        session.modem_state(*lines.borrow_and_update(), &mut out);
                    }
                }
                changed = breaks.changed() => {
                    let begun = breaks.borrow_and_update().begun;
                    if changed.is_ok() && begun != breaks_seen {
                        breaks_seen = begun;
                        session.line_state(LINESTATE_BREAK, &mut out);
                    }
                }
                read = from_net.read(&mut net_buf) => match read {
                    Ok(0) => return End::ClientLeft,
                    Ok(n) => {
                        if let Err(e) = session.receive(&net_buf[..n], &mut data, &mut events, &mut out) {
                            return End::Protocol(e.to_string());
                        }
                        // Data and commands in the order they came: a command's effect (a
                        // new baud) applies to the data after it.
                        if !data.is_empty() {
                            if let Err(e) = line.write_all(&data).await {
                                return End::PortGone(e);
                            }
                            data.clear();
                        }
                        for event in events.drain(..) {
                            match event {
                                Event::Settings(settings) => {
                                    self.line(LineEvent::Settings(settings.into())).await;
                                }
                                Event::Dtr(on) => { self.line(LineEvent::Dtr(on)).await; }
                                Event::Rts(on) => { self.line(LineEvent::Rts(on)).await; }
                                Event::Break(on) => { self.line(LineEvent::Break(on)).await; }
                                Event::Suspend(on) => suspended = on,
                                Event::Purge { value } => {
                                    let to_client = value & 1 != 0;
                                    let from_client = value & 2 != 0;
                                    // The port drops what it holds first, then what reached
                                    // the line is read away: nothing purged follows the answer.
                                    self.line(LineEvent::Flush { input: to_client, output: from_client }).await;
                                    if to_client && let Err(e) = line.drain() {
                                        return End::PortGone(e);
                                    }
                                    session.answer_purge(value, &mut out);
                                }
                            }
                        }
                    }
                    Err(e) => return End::Network(e),
                },
                read = line.read(&mut line_buf), if !suspended => match read {
                    Ok(n) => {
                        // At another baud rate than the device's, the port garbles what it
                        // sends: the client's UART would see framing errors with it.
                        if self.port.garbles_for(session.settings().baud) {
                            session.line_state(LINESTATE_FRAMING_ERROR, &mut out);
                        }
                        Session::send_data(&line_buf[..n], &mut out);
                    }
                    Err(e) => return End::PortGone(e),
                },
            }
        }
    }
}

/// What the client may send ahead while a request is on the line: enough for many pipelined
/// requests, and a bound on what a client that never reads can make the bridge hold.
const MAX_AHEAD: usize = 64 * 1024;

impl Bridge {
    /// A gateway: requests translated onto the line one at a time, replies translated back.
    async fn gateway(
        &self,
        stream: &mut TcpStream,
        line: &LineClient,
        mut translate: Box<dyn Translate>,
        timeout: Duration,
    ) -> End {
        let (mut from_net, mut to_net) = stream.split();
        let mut from_client = BytesMut::new();
        let mut from_line = BytesMut::new();
        let mut net_buf = vec![0_u8; CHUNK];
        let mut line_buf = vec![0_u8; CHUNK];
        loop {
            let exchange = match translate.request(&mut from_client) {
                Ok(exchange) => exchange,
                Err(refusal) => return End::Protocol(refusal.0),
            };
            let Some(exchange) = exchange else {
                // Nothing to send: wait for the client. What the line says meanwhile answers
                // nobody and is dropped.
                tokio::select! {
                    () = self.kick.cancelled() => return End::Kicked,
                    () = self.idle() => return End::Idle,
                    read = from_net.read(&mut net_buf) => match read {
                        Ok(0) => return End::ClientLeft,
                        Ok(n) => from_client.extend_from_slice(&net_buf[..n]),
                        Err(e) => return End::Network(e),
                    },
                    read = line.read(&mut line_buf) => if let Err(e) = read {
                        return End::PortGone(e);
                    },
                }
                continue;
            };
            // A reply that came after its timeout must not pass for this request's.
            if let Err(e) = line.drain() {
                return End::PortGone(e);
            }
            if let Err(e) = line.write_all(&exchange.to_line).await {
                return End::PortGone(e);
            }
            if !exchange.expects_reply {
                continue;
            }
            from_line.clear();
            let deadline = tokio::time::sleep(timeout);
            tokio::pin!(deadline);
            let answer = loop {
                tokio::select! {
                    () = self.kick.cancelled() => return End::Kicked,
                    () = &mut deadline => break translate.silence(),
                    read = line.read(&mut line_buf) => match read {
                        Ok(n) => {
                            from_line.extend_from_slice(&line_buf[..n]);
                            if let Some(reply) = translate.reply(&mut from_line) {
                                break Some(reply);
                            }
                        }
                        Err(e) => return End::PortGone(e),
                    },
                    read = from_net.read(&mut net_buf), if from_client.len() < MAX_AHEAD => match read {
                        Ok(0) => return End::ClientLeft,
                        Ok(n) => from_client.extend_from_slice(&net_buf[..n]),
                        Err(e) => return End::Network(e),
                    },
                }
            };
            if let Some(answer) = answer
                && let Err(e) = to_net.write_all(&answer).await
            {
                return End::Network(e);
            }
        }
    }
}
