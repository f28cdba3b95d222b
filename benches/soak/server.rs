//! The server child (`--serve DIR`): 1,000 ports in two fleets, a control socket, and a line
//! protocol with the parent on stdin/stdout.
//!
//! - the child prints `ready` once every port is up and the control socket listens;
//! - `sessions I J ...` → `sessions 0 1 ...`: whether each port's device last heard a client
//!   open (1) or the last client close (0) — a departure the port has dealt with;
//! - `stats` → `stats H0 E0 H1 E1 ...`: per kind, requests the devices answered, and
//!   requests that were not requests (`E` answers: bytes glued together, noise);
//! - end of stdin → every port shut down (links removed), and the child exits.
//!
//! Its own process, so that the parent reads the server's resident memory and descriptors
//! from `/proc/<pid>` and nothing of the clients' or the parent's.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use serialtwin::control::{Ports, serve_socket_ready};
use serialtwin::{
    AsyncDevice, Awaiting, Context, Device, Fleet, LineConfig, LineEvent, PortSpec, Replies, limits,
};

use crate::proto::{Kind, PORTS, port_name};

/// What the devices share with the command loop.
struct Shared {
    /// Per port: whether a client is there, as its device last heard (open/close events).
    open: Vec<AtomicBool>,
    /// Per kind: requests answered.
    handled: [AtomicU64; Kind::ALL.len()],
    /// Per kind: frames that were not a request.
    errors: [AtomicU64; Kind::ALL.len()],
}

/// The answering part both devices share: `Q <rest>` → `R <name> <rest>`, anything else
/// `E <name>`; and the port's presence flag.
struct Echo {
    port: usize,
    kind: Kind,
    name: String,
    shared: Arc<Shared>,
}

impl Echo {
    fn new(port: usize, shared: &Arc<Shared>) -> Self {
        Self {
            port,
            kind: Kind::of(port),
            name: port_name(port),
            shared: Arc::clone(shared),
        }
    }

    fn line(&self) -> LineConfig {
        self.kind.baud().map(LineConfig::uart).unwrap_or_default()
    }

    fn answer(&self, request: &[u8], replies: &mut Replies) {
        let k = self.kind.index();
        if let Some(rest) = request.strip_prefix(b"Q ") {
            let mut reply = Vec::with_capacity(3 + self.name.len() + rest.len());
            reply.extend_from_slice(b"R ");
            reply.extend_from_slice(self.name.as_bytes());
            reply.push(b' ');
            reply.extend_from_slice(rest);
            replies.push(reply);
            self.shared.handled[k].fetch_add(1, Ordering::Relaxed);
        } else {
            replies.push(format!("E {}", self.name));
            self.shared.errors[k].fetch_add(1, Ordering::Relaxed);
        }
    }

    fn on_event(&self, event: &LineEvent) {
        let open = match event {
            LineEvent::Opened => true,
            LineEvent::Closed => false,
            _ => return,
        };
        self.shared.open[self.port].store(open, Ordering::SeqCst);
    }
}

/// A plain device (lane-served in a fleet with lanes).
struct SyncEcho(Echo);

impl Device for SyncEcho {
    type Error = Infallible;

    fn line(&self) -> LineConfig {
        self.0.line()
    }

    fn handle(
        &mut self,
        request: &[u8],
        _ctx: &mut Context,
        replies: &mut Replies,
    ) -> Result<(), Infallible> {
        self.0.answer(request, replies);
        Ok(())
    }

    fn on_event(&mut self, event: &LineEvent, _ctx: &mut Context) {
        self.0.on_event(event);
    }
}

/// An async device: yields to the runtime before answering (task-served).
struct AsyncEcho(Echo);

impl AsyncDevice for AsyncEcho {
    type Error = Infallible;

    fn line(&self) -> LineConfig {
        self.0.line()
    }

    async fn handle(
        &mut self,
        request: Bytes,
        _ctx: &mut Context,
        replies: &mut Replies,
    ) -> Result<(), Infallible> {
        tokio::task::yield_now().await;
        self.0.answer(&request, replies);
        Ok(())
    }

    fn on_event(&mut self, event: &LineEvent, _ctx: &mut Context) {
        self.0.on_event(event);
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    // The parent reads line by line; a lost parent ends us through the death signal anyway.
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Run as the server child until stdin closes. `dir`: where the links (`links/`) and the
/// control socket (`ctl/control.sock`) go.
pub(crate) fn run(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    // Die with the parent, whatever way it goes.
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
    limits::raise_nofile_limit()?;
    // As `serialtwin run` does: a multi-thread runtime, a worker per CPU.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // Commands come from a plain thread reading stdin.
    let mut commands = crate::shared::stdin_lines()?;
    let shared = Arc::new(Shared {
        open: (0..PORTS).map(|_| AtomicBool::new(false)).collect(),
        handled: Default::default(),
        errors: Default::default(),
    });
    rt.block_on(async move {
        let with_lanes = Fleet::new();
        let without_lanes = Fleet::without_lanes();
        let mut handles = Vec::with_capacity(PORTS);
        for port in 0..PORTS {
            let name = port_name(port);
            let spec = PortSpec::new(name.clone()).link(dir.join("links").join(&name));
            let echo = Echo::new(port, &shared);
            let handle = match Kind::of(port) {
                Kind::Lane | Kind::Lane9600 => with_lanes.spawn(spec, SyncEcho(echo))?,
                Kind::Async | Kind::Async2400 => {
                    with_lanes.spawn(spec, Awaiting(AsyncEcho(echo)))?
                }
                Kind::Task | Kind::Task9600 => without_lanes.spawn(spec, SyncEcho(echo))?,
            };
            handles.push(handle);
        }
        let cancel = tokio_util::sync::CancellationToken::new();
        let (ready, bound) = tokio::sync::oneshot::channel();
        let socket = dir.join("ctl").join("control.sock");
        let control = tokio::spawn({
            let cancel = cancel.clone();
            let ports = Ports::new(handles.iter().cloned());
            async move { serve_socket_ready(&socket, ports, cancel, ready).await }
        });
        bound.await??;
        say("ready");
        while let Some(command) = commands.recv().await {
            let mut words = command.split_whitespace();
            match words.next() {
                Some("sessions") => {
                    let mut line = "sessions".to_owned();
                    for word in words {
                        let port: usize = word.parse()?;
                        let open = shared.open.get(port).ok_or("no such port")?;
                        line.push_str(if open.load(Ordering::SeqCst) {
                            " 1"
                        } else {
                            " 0"
                        });
                    }
                    say(&line);
                }
                Some("stats") => {
                    let mut line = "stats".to_owned();
                    for k in 0..Kind::ALL.len() {
                        let h = shared.handled[k].load(Ordering::Relaxed);
                        let e = shared.errors[k].load(Ordering::Relaxed);
                        let _ = write!(line, " {h} {e}");
                    }
                    say(&line);
                }
                _ => return Err(format!("bad command {command:?}").into()),
            }
        }
        cancel.cancel();
        control.await??;
        drop(handles);
        with_lanes.shutdown().await;
        without_lanes.shutdown().await;
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;
    Ok(())
}
