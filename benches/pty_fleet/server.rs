//! The server side, run in a child process (the bench re-executes itself with `--serve KIND`).
//!
//! Both servers speak the same tiny protocol with the parent on stdin/stdout, one line each:
//! - the child prints `ready` once it is set up (runtime built, nothing opened);
//! - `open N` → the child opens `N` ports and prints `opened <ns> <path>...` (ns: bring-up time);
//! - `open N paced` or `open N unpaced` (`serialtwin` and `limit`, for the paced section) → the
//!   same, on a 2400-baud 8N1 line, paced or not; when the system refuses a port the child
//!   closes what it opened, prints `failed <opened> <error>` and stays up (the parent tries
//!   fewer). The limit paces a reply itself: the pieces a USB adapter would hand the host
//!   ([`crate::paced::pieces`]), each written when due on its own timers (a heap whose soonest
//!   entry is the `epoll_wait` timeout), a port's next reply only once the last has left;
//! - `open N modbus` (`serialtwin` and `limit`, for the Modbus rows) → the same, answering the
//!   Modbus read of [`crate::modbus::REQUEST`]: serialtwin with the `modbus` model built by the
//!   registry from a config, on an unpaced line; the limit cutting requests by their fixed length;
//! - `close` → the child closes every port and prints `closed <ns>` (ns: teardown time);
//! - end of stdin → the child exits.
//!
//! Running each server in its own process gives both the same footing: the parent reads each
//! one's CPU time and resident memory from `/proc/<pid>`, and neither shares an allocator or a
//! scheduler with the client.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::convert::Infallible;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use rustix::io::Errno;
use rustix::pty::OpenptFlags;
use rustix::termios::OptionalActions;
use serialtwin::Framer as _;
use serialtwin::{Context, Device, Fleet, Framing, LineConfig, PortSpec, Replies, SimClock};
use serialtwin::{PtyOptions, PtyPort};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::paced::{BAUD, Piece};
use crate::{PAYLOAD, REPLY, REQUEST, Runtime, modbus};

/// Longest request line either server buffers before discarding it (both use 1024, the core's
/// default line limit).
const MAX_LINE: usize = 1024;

/// Run as a server child until stdin closes.
pub(crate) fn run(kind: &str, runtime: Runtime) -> Result<(), Box<dyn std::error::Error>> {
    // Die with the parent, whatever way it goes.
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
    match kind {
        "limit" => limit(),
        "serialtwin" | "registry" | "bare" | "api" => on_tokio(kind, runtime),
        other => Err(format!("unknown server kind {other:?}").into()),
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    // The parent reads line by line; a lost parent ends us through the death signal anyway.
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn opened(elapsed: std::time::Duration, paths: impl Iterator<Item = String>) {
    let mut line = format!("opened {}", elapsed.as_nanos());
    for p in paths {
        line.push(' ');
        line.push_str(&p);
    }
    say(&line);
}

// ---------------------------------------------------------------------------------------------
// serialtwin: the public API, one device per port.

/// The minimal device: answers `QPIGS` with the fixed payload; the CRLF framer adds `\r\n`.
struct Qpigs;

impl Device for Qpigs {
    type Error = Infallible;

    fn handle(
        &mut self,
        request: &[u8],
        _ctx: &mut Context,
        replies: &mut Replies,
    ) -> Result<(), Infallible> {
        if request == &REQUEST[..REQUEST.len() - 2] {
            replies.push(Bytes::from_static(PAYLOAD));
        }
        Ok(())
    }
}

/// `n` devices as `serialtwin run` makes them from a config: the model registry's `scripted`
/// model, its `[device.script]` answering `QPIGS` with the payload (CRLF lines, its default),
/// each boxed as a [`serialtwin::BoxDevice`].
fn registry_devices(n: usize) -> Result<Vec<serialtwin::BoxDevice>, Box<dyn std::error::Error>> {
    use serialtwin::devices::registry::{self, Build, Table};
    let payload = std::str::from_utf8(PAYLOAD)?;
    let text = format!(
        "[[rule]]\nrequest = \"{}\"\nreply = \"{payload}\"\n",
        std::str::from_utf8(&REQUEST[..REQUEST.len() - 2])?
    );
    let model = registry::find("scripted").ok_or("no scripted model in the registry")?;
    let table = Table::parse(&text)?;
    let build = Build {
        count: n,
        ..Build::new(table)
    };
    Ok((model.build)(&build)?
        .into_iter()
        .map(|built| built.device)
        .collect())
}

/// `n` devices of the registry's `modbus` model, each one unit (id 1) whose holding registers
/// 0–9 hold 1 to 10 as u16: what [`crate::modbus::REQUEST`] reads.
fn modbus_devices(n: usize) -> Result<Vec<serialtwin::BoxDevice>, Box<dyn std::error::Error>> {
    use serialtwin::devices::registry::{self, Build, Table};
    use std::fmt::Write as _;
    let mut text = String::from("[[unit]]\nid = 1\n");
    for address in 0..modbus::REGISTERS {
        let _ = write!(
            text,
            "[[unit.holding]]\naddress = {address}\nvalue = {}\n",
            address + 1
        );
    }
    let model = registry::find("modbus").ok_or("no modbus model in the registry")?;
    let table = Table::parse(&text)?;
    let build = Build {
        count: n,
        ..Build::new(table)
    };
    Ok((model.build)(&build)?
        .into_iter()
        .map(|built| built.device)
        .collect())
}

/// The ports a tokio server child has open.
enum Served {
    /// serialtwin itself: a fleet of [`Qpigs`] devices (or of devices the model registry built
    /// from a config), and their handles (kept, as a user would).
    Fleet {
        fleet: Fleet,
        _handles: Vec<serialtwin::PortHandle>,
    },
    /// A variant: one plain task per port (see [`bare`] and [`api`]).
    Tasks(Vec<tokio::task::JoinHandle<()>>),
}

impl Served {
    /// Open `n` ports of `kind`; their slave paths.
    async fn open(kind: &str, n: usize) -> Result<(Self, Vec<String>), Box<dyn std::error::Error>> {
        match kind {
            "serialtwin" => return Self::fleet((0..n).map(|_| Qpigs)).await,
            "registry" => return Self::fleet(registry_devices(n)?).await,
            _ => {}
        }
        let mut tasks = Vec::with_capacity(n);
        let mut paths = Vec::with_capacity(n);
        for _ in 0..n {
            let port = PtyPort::open(&PtyOptions::default())?;
            paths.push(port.path().display().to_string());
            tasks.push(if kind == "bare" {
                tokio::spawn(bare(port))
            } else {
                tokio::spawn(api(port))
            });
        }
        Ok((Self::Tasks(tasks), paths))
    }

    /// A fleet with one port per device; the ports' slave paths.
    async fn fleet<D: serialtwin::Body>(
        devices: impl IntoIterator<Item = D>,
    ) -> Result<(Self, Vec<String>), Box<dyn std::error::Error>> {
        let fleet = Fleet::new();
        let handles = fleet
            .spawn_all(
                devices
                    .into_iter()
                    .enumerate()
                    .map(|(i, d)| (PortSpec::new(format!("p{i}")), d)),
            )
            .await?;
        Ok(Self::with_paths(fleet, handles))
    }

    /// A fleet and its ports' handles, with the ports' slave paths.
    fn with_paths(fleet: Fleet, handles: Vec<serialtwin::PortHandle>) -> (Self, Vec<String>) {
        let paths = handles
            .iter()
            .map(|h| h.pty().display().to_string())
            .collect();
        (
            Self::Fleet {
                fleet,
                _handles: handles,
            },
            paths,
        )
    }

    /// `n` Modbus units as `serialtwin run` makes them from a config ([`modbus_devices`]), each
    /// on its own port, on an unpaced line.
    async fn modbus(n: usize) -> Result<(Self, Vec<String>), Box<dyn std::error::Error>> {
        let fleet = Fleet::new();
        let line = modbus::unpaced_line();
        let handles = fleet
            .spawn_all(modbus_devices(n)?.into_iter().enumerate().map(|(i, d)| {
                let mut spec = PortSpec::new(format!("m{i}"));
                spec.serve.line = Some(line);
                (spec, d)
            }))
            .await?;
        Ok(Self::with_paths(fleet, handles))
    }

    /// `n` [`Qpigs`] on `line` (the paced section's ports), spawned one by one so that a
    /// refusal can say how many the system allowed: `Err((opened, error))`, with every port
    /// closed again.
    async fn on_line(n: usize, line: LineConfig) -> Result<(Self, Vec<String>), (usize, String)> {
        let fleet = Fleet::new();
        let mut handles = Vec::with_capacity(n);
        for i in 0..n {
            let mut spec = PortSpec::new(format!("p{i}"));
            spec.serve.line = Some(line);
            match fleet.spawn(spec, Qpigs) {
                Ok(h) => handles.push(h),
                Err(e) => {
                    fleet.shutdown().await;
                    return Err((i, e.to_string()));
                }
            }
        }
        Ok(Self::with_paths(fleet, handles))
    }

    async fn close(self) {
        match self {
            Self::Fleet { fleet, .. } => fleet.shutdown().await,
            Self::Tasks(tasks) => {
                for t in &tasks {
                    t.abort();
                }
                for t in tasks {
                    let _ = t.await;
                }
            }
        }
    }
}

/// The `bare` variant: the least a tokio program can do on serialtwin's own pty (packet mode,
/// held slave, session watching): read, count request lines, write the fixed reply for each.
/// It measures what a task per port costs before any serving logic.
async fn bare(mut port: PtyPort) {
    let mut buf = [0u8; 128];
    loop {
        let Ok(n) = port.read(&mut buf).await else {
            return;
        };
        if n == 0 {
            return;
        }
        for _ in buf[..n].iter().filter(|&&b| b == b'\n') {
            if port.write_all(REPLY).await.is_err() {
                return;
            }
        }
    }
}

/// The `api` variant: the same port served through serialtwin's APIs and nothing else — the
/// default framer's `decode` into `Bytes`, [`Qpigs`]'s `handle`, [`Replies`], the framer's
/// `encode`, one write per read; a read and a write buffer per port. No cancellation, control,
/// line events, observers, faults or line stage: what the APIs cost by themselves.
async fn api(mut port: PtyPort) {
    let mut framer = Framing::default().build();
    let mut device = Qpigs;
    let mut ctx = Context::for_test(SimClock::real());
    let mut replies = Replies::new();
    let mut rx = BytesMut::with_capacity(128);
    let mut tx = BytesMut::with_capacity(256);
    loop {
        if rx.capacity() - rx.len() < 64 {
            rx.reserve(128);
        }
        match std::future::poll_fn(|cx| {
            tokio_util::io::poll_read_buf(std::pin::Pin::new(&mut port), cx, &mut rx)
        })
        .await
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        while let Ok(Some(frame)) = framer.decode(&mut rx) {
            replies.clear();
            let Ok(()) = device.handle(&frame, &mut ctx, &mut replies);
            for reply in replies.drain() {
                let _ = framer.encode(&reply.bytes, &mut tx);
            }
        }
        if port.write_all(&tx).await.is_err() {
            return;
        }
        tx.clear();
    }
}

/// A tokio server child: `serialtwin`, or one of the variants `bare` and `api`.
fn on_tokio(kind: &str, runtime: Runtime) -> Result<(), Box<dyn std::error::Error>> {
    let rt = match runtime {
        Runtime::CurrentThread => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        Runtime::MultiThread => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?,
    };
    // Commands come from a plain thread reading stdin, so that the runtime's threads do nothing
    // but serve.
    let mut commands = crate::shared::stdin_lines()?;
    rt.block_on(async move {
        let mut served = None;
        say("ready");
        while let Some(command) = commands.recv().await {
            let mut words = command.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some("open"), Some(n), None) => {
                    let n: usize = n.parse()?;
                    let start = Instant::now();
                    let (ports, paths) = Served::open(kind, n).await?;
                    served = Some(ports);
                    // Let every port's task start before calling the ports up.
                    tokio::task::yield_now().await;
                    opened(start.elapsed(), paths.into_iter());
                }
                (Some("open"), Some(n), Some(pacing @ ("paced" | "unpaced")))
                    if kind == "serialtwin" =>
                {
                    let n: usize = n.parse()?;
                    // Struct update: whatever fields the line gains keep `uart`'s defaults.
                    let line = LineConfig {
                        pace: pacing == "paced",
                        ..LineConfig::uart(BAUD)
                    };
                    let start = Instant::now();
                    match Served::on_line(n, line).await {
                        Ok((ports, paths)) => {
                            served = Some(ports);
                            tokio::task::yield_now().await;
                            opened(start.elapsed(), paths.into_iter());
                        }
                        Err((count, error)) => say(&format!("failed {count} {error}")),
                    }
                }
                (Some("open"), Some(n), Some("modbus")) if kind == "serialtwin" => {
                    let n: usize = n.parse()?;
                    let start = Instant::now();
                    let (ports, paths) = Served::modbus(n).await?;
                    served = Some(ports);
                    tokio::task::yield_now().await;
                    opened(start.elapsed(), paths.into_iter());
                }
                (Some("close"), None, None) => {
                    let start = Instant::now();
                    if let Some(ports) = served.take() {
                        ports.close().await;
                    }
                    say(&format!("closed {}", start.elapsed().as_nanos()));
                }
                _ => return Err(format!("bad command {command:?}").into()),
            }
        }
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;
    // The stdin thread has ended (that is how we got here); the runtime drops with no task left.
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The limit: one thread, level-triggered epoll over plain raw ptys, no runtime.

/// One raw pty served by the limit responder.
struct RawPort {
    master: OwnedFd,
    /// A partial request line carried over to the next read (rarely used: requests arrive whole).
    carry: Vec<u8>,
    /// Reply bytes the pty would not take yet (never used in the closed loop).
    out: Vec<u8>,
    /// Whether we are registered for `EPOLLOUT` too.
    want_out: bool,
    /// On the paced line (`open N paced`): each reply goes out in the pieces of
    /// [`crate::paced::pieces`], each written when due on the limit's own timers.
    paced: bool,
    /// Answering the Modbus read (`open N modbus`): requests cut by their fixed length.
    modbus: bool,
    /// The paced reply under way, if any.
    sending: Option<Sending>,
    /// Paced requests whose replies wait for the one under way to leave the wire.
    queued: usize,
}

/// A paced reply under way on a [`RawPort`].
#[derive(Debug, Clone, Copy)]
struct Sending {
    /// When its first byte went on the wire: when its request was read, or when the reply
    /// before it had left the wire.
    start: Instant,
    /// The piece to write next, an index into the pieces.
    next: usize,
}

/// The limit's timers, soonest first: when a paced port's next piece is due, and the port.
type Timers = BinaryHeap<Reverse<(Instant, usize)>>;

/// The epoll token of stdin; ports use their index.
const STDIN_TOKEN: u64 = u64::MAX;

pub(crate) fn open_raw_pty() -> std::io::Result<(OwnedFd, String)> {
    let flags = OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC;
    let master = rustix::pty::openpt(flags)?;
    rustix::pty::grantpt(&master)?;
    rustix::pty::unlockpt(&master)?;
    let path = rustix::pty::ptsname(&master, Vec::new())?
        .into_string()
        .map_err(|_| std::io::Error::other("pts name not UTF-8"))?;
    // Raw mode on the line (the master sets the slave's termios), as the core does.
    let mut t = rustix::termios::tcgetattr(&master)?;
    t.make_raw();
    rustix::termios::tcsetattr(&master, OptionalActions::Now, &t)?;
    rustix::io::ioctl_fionbio(&master, true)?;
    Ok((master, path))
}

/// [`crate::paced::pieces`], checked against what the library's own line schedules: the same
/// pieces, due at the same nanosecond.
fn checked_pieces() -> Result<Vec<Piece>, Box<dyn std::error::Error>> {
    let ours = crate::paced::pieces();
    let library = crate::paced::library_pieces();
    if ours != library {
        return Err(format!(
            "the limit's paced pieces differ from the library's: {ours:?} vs {library:?}"
        )
        .into());
    }
    Ok(ours)
}

/// The limit's epoll timeout: until the soonest timer, rounded up to the millisecond
/// (`epoll_wait` counts in those, as the library's lanes do; waking early would only spin);
/// no timeout without one.
fn limit_timeout(timers: &Timers) -> EpollTimeout {
    timers
        .peek()
        .map_or(EpollTimeout::NONE, |&Reverse((at, _))| {
            let ms = at
                .saturating_duration_since(Instant::now())
                .as_nanos()
                .div_ceil(1_000_000);
            EpollTimeout::from(u16::try_from(ms).unwrap_or(u16::MAX))
        })
}

fn limit() -> Result<(), Box<dyn std::error::Error>> {
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
    let stdin = std::io::stdin();
    epoll.add(
        stdin.as_fd(),
        EpollEvent::new(EpollFlags::EPOLLIN, STDIN_TOKEN),
    )?;
    let mut ports: Vec<RawPort> = Vec::new();
    let mut events = vec![EpollEvent::empty(); 1024];
    let mut buf = [0u8; 4096];
    let mut replies: Vec<u8> = Vec::new();
    let mut commands: Vec<u8> = Vec::new();
    let mut timers = Timers::new();
    let pieces = checked_pieces()?;
    say("ready");
    loop {
        let n = match epoll.wait(&mut events, limit_timeout(&timers)) {
            Ok(n) => n,
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(e.into()),
        };
        for event in &events[..n] {
            let token = event.data();
            if token == STDIN_TOKEN {
                let got = rustix::io::read(&stdin, &mut buf[..])?;
                if got == 0 {
                    return Ok(());
                }
                commands.extend_from_slice(&buf[..got]);
                while let Some(end) = commands.iter().position(|&b| b == b'\n') {
                    let line = String::from_utf8_lossy(&commands[..end]).into_owned();
                    commands.drain(..=end);
                    limit_command(&line, &epoll, &mut ports, &mut timers)?;
                }
                continue;
            }
            let Ok(index) = usize::try_from(token) else {
                continue;
            };
            let Some(port) = ports.get_mut(index) else {
                continue;
            };
            let flags = event.events();
            if flags.contains(EpollFlags::EPOLLOUT) && !port.out.is_empty() {
                flush_out(port, &epoll, token)?;
            }
            if flags.intersects(EpollFlags::EPOLLIN | EpollFlags::EPOLLHUP | EpollFlags::EPOLLERR)
                && let Some(at) = serve_raw(port, &epoll, token, &mut buf, &mut replies, &pieces)?
            {
                timers.push(Reverse((at, index)));
            }
        }
        // Every piece whose time has come, back to back.
        let now = Instant::now();
        while let Some(&Reverse((at, index))) = timers.peek()
            && at <= now
        {
            timers.pop();
            if let Some(port) = ports.get_mut(index)
                && let Some(next) = send_piece(port, &epoll, u64::try_from(index)?, &pieces)?
            {
                timers.push(Reverse((next, index)));
            }
        }
    }
}

fn limit_command(
    line: &str,
    epoll: &Epoll,
    ports: &mut Vec<RawPort>,
    timers: &mut Timers,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut words = line.split_whitespace();
    match (words.next(), words.next(), words.next()) {
        (Some("open"), Some(n), pacing @ (None | Some("paced" | "unpaced" | "modbus"))) => {
            let n: usize = n.parse()?;
            let paced = pacing == Some("paced");
            let modbus = pacing == Some("modbus");
            let start = Instant::now();
            let before = ports.len();
            let mut paths = Vec::with_capacity(n);
            for i in 0..n {
                let (master, path) = match open_raw_pty() {
                    Ok(opened) => opened,
                    // On the paced section's line, a refusal is reported (see the module docs).
                    Err(e) if pacing.is_some() => {
                        ports.truncate(before);
                        say(&format!("failed {i} {e}"));
                        return Ok(());
                    }
                    Err(e) => return Err(e.into()),
                };
                epoll.add(
                    &master,
                    EpollEvent::new(EpollFlags::EPOLLIN, u64::try_from(ports.len())?),
                )?;
                ports.push(RawPort {
                    master,
                    carry: Vec::new(),
                    out: Vec::new(),
                    want_out: false,
                    paced,
                    modbus,
                    sending: None,
                    queued: 0,
                });
                paths.push(path);
            }
            opened(start.elapsed(), paths.into_iter());
        }
        (Some("close"), None, None) => {
            let start = Instant::now();
            // Closing a descriptor removes it from the epoll set.
            ports.clear();
            ports.shrink_to_fit();
            timers.clear();
            say(&format!("closed {}", start.elapsed().as_nanos()));
        }
        _ => return Err(format!("bad command {line:?}").into()),
    }
    Ok(())
}

/// Read what the client sent, answer every complete `QPIGS` line: unpaced with one write, paced
/// by starting its reply (or queueing it behind the one under way). The time of the first
/// piece of a paced reply started here, for the timers.
fn serve_raw(
    port: &mut RawPort,
    epoll: &Epoll,
    token: u64,
    buf: &mut [u8; 4096],
    replies: &mut Vec<u8>,
    pieces: &[Piece],
) -> Result<Option<Instant>, Box<dyn std::error::Error>> {
    let n = match rustix::io::read(&port.master, &mut buf[..]) {
        Err(Errno::IO) | Ok(0) => {
            // The client went away for good: stop watching this port.
            let _ = epoll.delete(&port.master);
            return Ok(None);
        }
        Ok(n) => n,
        Err(Errno::AGAIN | Errno::INTR) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if port.modbus {
        let count = modbus::cut_requests(&mut port.carry, &buf[..n]);
        return answer_unpaced(port, epoll, token, count, modbus::REPLY, replies).map(|()| None);
    }
    // A paced reply's first byte goes on the wire when its request has been read.
    let read_at = port.paced.then(Instant::now);
    let mut count = 0usize;
    let mut rest: &[u8] = &buf[..n];
    while let Some(end) = rest.iter().position(|&b| b == b'\n') {
        let line = &rest[..end];
        let whole = if port.carry.is_empty() {
            line
        } else {
            port.carry.extend_from_slice(line);
            &port.carry[..]
        };
        if whole.strip_suffix(b"\r").unwrap_or(whole) == &REQUEST[..REQUEST.len() - 2] {
            count += 1;
        }
        port.carry.clear();
        rest = &rest[end + 1..];
    }
    if !rest.is_empty() {
        if port.carry.len() + rest.len() > MAX_LINE {
            port.carry.clear();
        } else {
            port.carry.extend_from_slice(rest);
        }
    }
    if count == 0 {
        return Ok(None);
    }
    if let Some(start) = read_at {
        let mut first = None;
        if port.sending.is_none() {
            port.sending = Some(Sending { start, next: 0 });
            first = pieces.first().map(|&(after, _)| start + after);
            count -= 1;
        }
        port.queued += count;
        return Ok(first);
    }
    answer_unpaced(port, epoll, token, count, REPLY, replies)?;
    Ok(None)
}

/// Answer `count` requests at once with `reply` each, in one write, behind anything waiting.
fn answer_unpaced(
    port: &mut RawPort,
    epoll: &Epoll,
    token: u64,
    count: usize,
    reply: &[u8],
    replies: &mut Vec<u8>,
) -> Result<(), Box<dyn std::error::Error>> {
    if count == 0 {
        return Ok(());
    }
    if !port.out.is_empty() {
        // Keep order behind what is already waiting.
        for _ in 0..count {
            port.out.extend_from_slice(reply);
        }
        return Ok(());
    }
    let bytes: &[u8] = if count == 1 {
        reply
    } else {
        replies.clear();
        for _ in 0..count {
            replies.extend_from_slice(reply);
        }
        replies
    };
    send_raw(port, epoll, token, bytes)
}

/// Write the due piece of a paced port's reply; when its next piece is due (the first of the
/// next reply, when a request waited for this one to leave the wire).
fn send_piece(
    port: &mut RawPort,
    epoll: &Epoll,
    token: u64,
    pieces: &[Piece],
) -> Result<Option<Instant>, Box<dyn std::error::Error>> {
    let Some(sending) = port.sending else {
        return Ok(None);
    };
    let Some(&(at, to)) = pieces.get(sending.next) else {
        port.sending = None;
        return Ok(None);
    };
    let from = sending
        .next
        .checked_sub(1)
        .and_then(|i| pieces.get(i))
        .map_or(0, |&(_, end)| end);
    if port.out.is_empty() {
        send_raw(port, epoll, token, &REPLY[from..to])?;
    } else {
        port.out.extend_from_slice(&REPLY[from..to]);
    }
    let next = sending.next + 1;
    if let Some(&(after, _)) = pieces.get(next) {
        port.sending = Some(Sending { next, ..sending });
        return Ok(Some(sending.start + after));
    }
    // The reply has left the wire (its last piece is due at its wire end): the next one starts
    // there.
    if port.queued == 0 {
        port.sending = None;
        return Ok(None);
    }
    port.queued -= 1;
    let start = sending.start + at;
    port.sending = Some(Sending { start, next: 0 });
    Ok(pieces.first().map(|&(after, _)| start + after))
}

/// Write `bytes` (nothing waits in `out`); what the pty will not take waits there for
/// `EPOLLOUT`.
fn send_raw(
    port: &mut RawPort,
    epoll: &Epoll,
    token: u64,
    bytes: &[u8],
) -> Result<(), Box<dyn std::error::Error>> {
    let written = match rustix::io::write(&port.master, bytes) {
        Ok(w) => w,
        Err(Errno::AGAIN | Errno::INTR) => 0,
        Err(e) => return Err(e.into()),
    };
    if written < bytes.len() {
        port.out.extend_from_slice(&bytes[written..]);
        if !port.want_out {
            port.want_out = true;
            epoll.modify(
                &port.master,
                &mut EpollEvent::new(EpollFlags::EPOLLIN | EpollFlags::EPOLLOUT, token),
            )?;
        }
    }
    Ok(())
}

fn flush_out(
    port: &mut RawPort,
    epoll: &Epoll,
    token: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    match rustix::io::write(&port.master, &port.out) {
        Ok(w) => {
            port.out.drain(..w);
        }
        Err(Errno::AGAIN | Errno::INTR) => {}
        Err(e) => return Err(e.into()),
    }
    if port.out.is_empty() && port.want_out {
        port.want_out = false;
        epoll.modify(
            &port.master,
            &mut EpollEvent::new(EpollFlags::EPOLLIN, token),
        )?;
    }
    Ok(())
}
