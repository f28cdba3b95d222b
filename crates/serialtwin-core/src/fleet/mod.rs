//! Many ports on one runtime: spawning, handles, shutdown, limits.
//!
//! A [`Fleet`] spawns each device on its own pty (with an optional link) as a task on the
//! current runtime, tracked by a [`TaskTracker`] and stopped by a [`CancellationToken`]. Each
//! port gets a [`PortHandle`]: its name and paths, the observations seen on it (so a test can
//! assert what the client sent), a control channel, and a probe on the line.

pub mod control;
mod port_task;
mod stop;

pub use self::stop::Stopper;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info};

use crate::device::Body;
#[cfg(doc)]
use crate::device::Device;
use crate::port::limits::{self, LimitError};
use crate::port::link::{LinkError, LinkSlot};
use crate::port::port_name::{PortNameError, check_port_name};
use crate::port::pty::PtyClient;
use crate::port::pty::{PtyOptions, PtyPort, SlaveProbe};
use crate::port::settings::{DeviceLine, LineBreak, ModemLine};
use crate::port::stream_line::{Accept, InProcessLine, LineClient, Opener, StreamLine, TcpLine};
use crate::serve::lane::Lanes;
use crate::serve::observe::{Broadcast, Observation, Observer};
use crate::serve::{Control, Order, ServeConfig, Server};
use crate::wire::line::{LineConfig, Mismatch};

use self::port_task::{run_port, run_stream_port};

/// Observations kept per port for subscribers that fall behind.
const OBSERVATION_BACKLOG: usize = 256;
/// Control commands queued per port.
const CONTROL_QUEUE: usize = 16;

/// Why a port could not be spawned.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// A system limit was reached (ptys or open files); the message says how to raise it.
    #[error("port {port}: {source}")]
    Limit {
        /// The port's name.
        port: String,
        /// Which limit.
        #[source]
        source: LimitError,
    },
    /// The link could not be claimed or created.
    #[error("port {port}: {source}")]
    Link {
        /// The port's name.
        port: String,
        /// Why.
        #[source]
        source: LinkError,
    },
    /// Creating the pty failed otherwise.
    #[error("port {port}: cannot create pty: {source}")]
    Pty {
        /// The port's name.
        port: String,
        /// The system error.
        #[source]
        source: std::io::Error,
    },
    /// The port's name is not one word of the control protocol (the error shows it).
    #[error(transparent)]
    Name(PortNameError),
    /// A network-only port's address could not be listened on.
    #[error("port {port}: cannot listen on {addr}: {source}")]
    Listen {
        /// The port's name.
        port: String,
        /// The address.
        addr: SocketAddr,
        /// The system error.
        #[source]
        source: std::io::Error,
    },
}

/// Why a port did not carry out a [`PortHandle::command`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// The port has stopped.
    #[error("the port has stopped")]
    Stopped,
    /// The port refused the command, for this reason.
    #[error("{0}")]
    Refused(String),
}

/// How to put one device on a port: where the port appears, plus how it is served.
#[derive(Clone, Debug)]
pub struct PortSpec {
    /// A symlink to create to the pty (`/tmp/serialtwin/ttyUSB0`), if any.
    pub link: Option<PathBuf>,
    /// Owner `(uid, gid)` of the slave node.
    pub owner: Option<(u32, u32)>,
    /// Permission bits of the slave node.
    pub mode: Option<u32>,
    /// How clients reach the device: a pty (the default), or a network-only port's own TCP
    /// address or in-process line.
    pub medium: Medium,
    /// The port's name, framing and line overrides, clock, seed, observers and faults (the
    /// fleet adds the observer behind [`PortHandle::observations`]).
    pub serve: ServeConfig,
}

impl PortSpec {
    /// A port called `name`, no link, the device's framing and line, the real clock.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            link: None,
            owner: None,
            mode: None,
            medium: Medium::Pty,
            serve: ServeConfig::new(name.into()),
        }
    }

    /// Also make a symlink at `path`.
    #[must_use]
    pub fn link(mut self, path: impl Into<PathBuf>) -> Self {
        self.link = Some(path.into());
        self
    }

    /// Add an observer.
    #[must_use]
    pub fn observe(mut self, observer: impl Observer) -> Self {
        self.serve = self.serve.observe(observer);
        self
    }
}

/// How a port's clients reach its device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Medium {
    /// A pty, with the spec's link if any: any program opens it as a serial port.
    #[default]
    Pty,
    /// A network-only port served on this TCP address itself: the connection it accepts is
    /// the client, with no pty and no bridge (the spec's link, owner and mode are unused).
    Tcp(SocketAddr),
    /// A network-only port reached only through the network endpoints serving it: each of
    /// their clients gets a socket to the device inside the process, and the port holds no
    /// pty (the spec's link, owner and mode are unused).
    InProcess,
}

/// The parts of a port that change when it is unplugged and plugged back in.
#[derive(Debug)]
struct Plugged {
    /// The current pty, `None` while unplugged.
    pty: Option<(PathBuf, SlaveProbe)>,
    /// The lines the device drives, once a network endpoint carries them
    /// ([`PortHandle::modem_lines`]); a pty has none.
    lines: Option<DeviceLines>,
    /// How endpoints reach an in-process port ([`Medium::InProcess`]).
    in_process: Option<Opener>,
}

/// The lines the device drives towards a network client.
#[derive(Debug)]
struct DeviceLines {
    /// Its modem lines (an 8250 MSR's high nibble).
    modem: tokio::sync::watch::Sender<u8>,
    /// Its transmit line held in break.
    brk: tokio::sync::watch::Sender<LineBreak>,
}

impl Plugged {
    /// The device's lines, made (at their power-on state) on first use: from then on the port
    /// has them, and `ctl line` works on it.
    fn lines(&mut self) -> &DeviceLines {
        self.lines.get_or_insert_with(|| DeviceLines {
            modem: tokio::sync::watch::Sender::new(
                ModemLine::Cts.bit() | ModemLine::Dsr.bit() | ModemLine::Dcd.bit(),
            ),
            brk: tokio::sync::watch::Sender::new(LineBreak::default()),
        })
    }
}

/// A running port.
#[derive(Debug, Clone)]
pub struct PortHandle {
    name: Arc<str>,
    /// How clients reach it, a TCP port's address as bound.
    medium: Medium,
    /// The device's line (its real baud rate, what a client at another one gets).
    line: LineConfig,
    first_pty: PathBuf,
    plugged: Arc<Mutex<Plugged>>,
    link: Option<PathBuf>,
    observations: Broadcast,
    control: mpsc::Sender<Box<Order>>,
    stop: CancellationToken,
    done: CancellationToken,
}

impl PortHandle {
    /// The address a network-only port listens on ([`Medium::Tcp`], the free port taken
    /// for port 0); `None` for any other port.
    #[must_use]
    pub fn address(&self) -> Option<SocketAddr> {
        match self.medium {
            Medium::Tcp(addr) => Some(addr),
            Medium::Pty | Medium::InProcess => None,
        }
    }

    /// How clients reach the port ([`Medium::Tcp`] with the address as bound).
    #[must_use]
    pub fn medium(&self) -> Medium {
        self.medium
    }

    /// The device's line: the model's, with the port's overrides.
    #[must_use]
    pub fn line(&self) -> LineConfig {
        self.line
    }

    /// Whether what the device sends reaches a client at `baud` garbled
    /// ([`Mismatch::Garbage`] and another baud rate than the device's).
    #[must_use]
    pub fn garbles_for(&self, baud: u32) -> bool {
        self.line.mismatch == Mismatch::Garbage && self.line.baud.is_some_and(|b| b != baud)
    }

    /// The port's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The slave's path, `/dev/pts/N`, as the port was created. An unplugged port comes back
    /// on a new pty (see [`current_pty`](Self::current_pty)); its link stays the same.
    #[must_use]
    pub fn pty(&self) -> &Path {
        &self.first_pty
    }

    /// The pty the port is on now; `None` while it is unplugged, and for a network-only port.
    #[must_use]
    pub fn current_pty(&self) -> Option<PathBuf> {
        self.lock().pty.as_ref().map(|(p, _)| p.clone())
    }

    /// The line as a network endpoint's bridge opens it for its client, and the baud rate it
    /// is at: the current pty, or a socket to an in-process port; `None` while unplugged.
    pub(crate) fn open_line(&self) -> Option<std::io::Result<(LineClient, u32)>> {
        let plugged = self.lock();
        if let Some(opener) = &plugged.in_process {
            let baud = self.line.baud.unwrap_or(PtyOptions::default().baud);
            return opener
                .open()
                .map(|opened| opened.map(|socket| (LineClient::InProcess(socket), baud)));
        }
        let path = plugged.pty.as_ref()?.0.clone();
        drop(plugged);
        Some(PtyClient::open(&path).map(|(pty, baud)| (LineClient::Pty(pty), baud)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Plugged> {
        self.plugged.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The symlink, if one was made.
    #[must_use]
    pub fn link(&self) -> Option<&Path> {
        self.link.as_deref()
    }

    /// The path a client should open: the link if there is one, else the first pty.
    #[must_use]
    pub fn path(&self) -> &Path {
        self.link.as_deref().unwrap_or(&self.first_pty)
    }

    /// Every frame and line event seen on this port from now on, in order.
    #[must_use]
    pub fn observations(&self) -> broadcast::Receiver<Observation> {
        self.observations.subscribe()
    }

    /// Send a command to the running port.
    ///
    /// # Errors
    /// If the port has stopped.
    pub async fn control(&self, command: Control) -> Result<(), Control> {
        let order = Order {
            control: command,
            done: None,
        };
        self.control
            .send(Box::new(order))
            .await
            .map_err(|e| e.0.control)
    }

    /// Send a command and wait until the port has carried it out or refused it. A port
    /// obeys whatever it is doing — serving, sending a paced or delayed reply, blocked on a
    /// client that does not read, unplugged — so this waits only for the port's turn on its
    /// thread; callers that must answer in bounded time wrap it in a timeout.
    ///
    /// # Errors
    /// [`CommandError::Stopped`] if the port has stopped, [`CommandError::Refused`] with the
    /// reason if it refused (a value the device does not take, a frame for a client that does
    /// not read or is unplugged).
    pub async fn command(&self, command: Control) -> Result<(), CommandError> {
        let (done, outcome) = tokio::sync::oneshot::channel();
        let order = Order {
            control: command,
            done: Some(done),
        };
        self.control
            .send(Box::new(order))
            .await
            .map_err(|_| CommandError::Stopped)?;
        outcome
            .await
            .map_err(|_| CommandError::Stopped)?
            .map_err(CommandError::Refused)
    }

    /// The modem lines the device drives (an 8250 MSR's high nibble: [`ModemLine::bit`]),
    /// for a network endpoint to carry to its client; they start as a device attached to a
    /// powered adapter shows them, CTS, DSR and DCD on. From the first call on, the port has
    /// modem lines and [`PortHandle::set_modem_line`] works.
    #[must_use]
    pub fn modem_lines(&self) -> tokio::sync::watch::Receiver<u8> {
        self.lock().lines().modem.subscribe()
    }

    /// Whether the device holds its transmit line in break, and how many breaks it has begun
    /// (`serialtwin ctl line <port> break on`), for an RFC 2217 endpoint to report as
    /// NOTIFY-LINESTATE. Like [`modem_lines`](Self::modem_lines), the first call gives the
    /// port its lines.
    #[must_use]
    pub fn line_break(&self) -> tokio::sync::watch::Receiver<LineBreak> {
        self.lock().lines().brk.subscribe()
    }

    /// Raise or drop a modem line the device drives (`serialtwin ctl line <port> cts on`).
    ///
    /// # Errors
    /// [`CommandError::Refused`] on a port no RFC 2217 endpoint serves: a pty has no modem
    /// lines to carry it.
    pub fn set_modem_line(&self, line: ModemLine, on: bool) -> Result<(), CommandError> {
        self.set_line(DeviceLine::Modem(line), on)
    }

    /// Change a line the device drives: a modem line, or break on the device's transmit line
    /// (`serialtwin ctl line <port> break on`). Setting a line to the state it is in changes
    /// nothing, so a client hears of a break once however often it is asked for.
    ///
    /// # Errors
    /// [`CommandError::Refused`] on a port no RFC 2217 endpoint serves: a pty carries neither
    /// modem lines nor a break from the device.
    pub fn set_line(&self, line: DeviceLine, on: bool) -> Result<(), CommandError> {
        let plugged = self.lock();
        let Some(lines) = plugged.lines.as_ref() else {
            return Err(CommandError::Refused(
                "no network endpoint speaking RFC 2217 serves this port ([device.network] \
                 rfc2217), and a pty carries no modem lines or break"
                    .into(),
            ));
        };
        match line {
            DeviceLine::Modem(line) => lines.modem.send_modify(|lines| {
                if on {
                    *lines |= line.bit();
                } else {
                    *lines &= !line.bit();
                }
            }),
            DeviceLine::Break => {
                lines.brk.send_if_modified(|state| {
                    if state.on == on {
                        return false;
                    }
                    state.on = on;
                    if on {
                        state.begun += 1;
                    }
                    true
                });
            }
        }
        Ok(())
    }

    /// A probe on the current line from the client's side; `None` while the port is
    /// unplugged or after it stopped.
    #[must_use]
    pub fn probe(&self) -> Option<SlaveProbe> {
        self.lock().pty.as_ref().map(|(_, probe)| probe.clone())
    }

    /// Pull the plug: the pty disappears (clients see a hangup), the link is removed, and
    /// after `after` a new pty comes up under the same link with the device's state intact.
    ///
    /// # Errors
    /// If the port has stopped.
    pub async fn unplug(&self, after: Duration) -> Result<(), Control> {
        self.control(Control::Unplug(after)).await
    }

    /// Stop this port only.
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// Whether the port has stopped (shut down, or its device panicked).
    #[must_use]
    pub fn is_stopped(&self) -> bool {
        self.done.is_cancelled()
    }

    /// Wait until the port has stopped and its link is gone.
    pub async fn stopped(&self) {
        self.done.cancelled().await;
    }
}

/// One port's link slot, shared by its task and the fleet's [`LinkKeeper`]: whoever takes it
/// first releases it.
type SharedSlot = Arc<Mutex<Option<LinkSlot>>>;

/// A port's [`SharedSlot`] as the keeper holds it: gone with the port.
type KeptSlot = Weak<Mutex<Option<LinkSlot>>>;

/// The links a fleet's ports hold, reachable from any thread (see [`Fleet::links`]).
///
/// A port removes its own link when it stops. A process that has to exit while a port cannot
/// stop — its device handler never returns, holding the thread that would run the port's
/// shutdown — calls [`release_all`](Self::release_all) instead, so no link is left behind
/// pointing at a pty that is about to vanish. A port that does stop later finds its link
/// already released.
#[derive(Clone, Debug, Default)]
pub struct LinkKeeper {
    slots: Arc<Mutex<Vec<KeptSlot>>>,
}

impl LinkKeeper {
    /// Keep `slot` (if any) for [`release_all`](Self::release_all); the port's share of it.
    fn keep(&self, slot: Option<LinkSlot>) -> SharedSlot {
        let has_link = slot.is_some();
        let shared = Arc::new(Mutex::new(slot));
        if has_link {
            let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            // Ports that stopped are forgotten as new ones come, so the list stays the size
            // of the fleet.
            slots.retain(|w| w.strong_count() > 0);
            slots.push(Arc::downgrade(&shared));
        }
        shared
    }

    /// Remove every link still held — if it still points where its port put it — and its lock
    /// file. How many were released.
    pub fn release_all(&self) -> usize {
        let slots: Vec<_> = self
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        let mut released = 0;
        for shared in slots {
            let held = shared.lock().unwrap_or_else(PoisonError::into_inner).take();
            if let Some(slot) = held {
                let path = slot.path().to_owned();
                if let Err(e) = slot.release() {
                    error!(link = %path.display(), error = %e, "cannot remove link");
                }
                released += 1;
            }
        }
        released
    }
}

/// Many ports on the current tokio runtime.
///
/// Each port has a task of its own. Ports whose device answers without waiting and sends
/// nothing unprompted (a [`Device`] whose [`Device::sends_unprompted`] says no) are served,
/// while nothing else goes on at them, by the fleet's
/// shared lanes instead: one thread and one epoll set per 1,024 ports, no task woken per
/// request (see `docs/performance.md`). Their own task takes them back for anything else.
#[derive(Debug, Clone, Default)]
pub struct Fleet {
    tracker: TaskTracker,
    cancel: CancellationToken,
    /// Every port's link, for releasing without the ports.
    links: LinkKeeper,
    /// `None`: every port is served by its own task only.
    lanes: Option<Lanes>,
}

impl Fleet {
    /// An empty fleet.
    #[must_use]
    pub fn new() -> Self {
        Self {
            lanes: Some(Lanes::default()),
            ..Self::default()
        }
    }

    /// An empty fleet whose ports are all served by their own tasks, never by a shared lane:
    /// for comparing the two.
    #[must_use]
    pub fn without_lanes() -> Self {
        Self::default()
    }

    /// Put `device` on a new pty described by `spec`, and start serving it.
    ///
    /// Must be called within a tokio runtime.
    ///
    /// # Errors
    /// [`FleetError`]; nothing is left behind (no pty, no link, no descriptor).
    pub fn spawn<D: Body>(&self, spec: PortSpec, device: D) -> Result<PortHandle, FleetError> {
        // A port the control socket cannot address (or whose name garbles `list`) is refused
        // before anything is made for it.
        check_port_name(&spec.serve.name).map_err(FleetError::Name)?;
        match spec.medium {
            Medium::Pty => {}
            Medium::Tcp(addr) => return self.spawn_tcp(spec, addr, device),
            Medium::InProcess => {
                let (line_io, opener) = InProcessLine::new(&spec.serve.name);
                return Ok(self.spawn_stream(spec, device, line_io, None, Some(opener)));
            }
        }
        let line = spec.serve.line.unwrap_or_else(|| device.body_line());
        let options = PtyOptions {
            baud: line.baud.unwrap_or(PtyOptions::default().baud),
            owner: spec.owner,
            mode: spec.mode,
        };
        let name = spec.serve.name.to_string();
        // Claim the link first: it is the step most likely to be refused, and it must not
        // cost a pty when it is.
        let link_error = |source: LinkError| match &source {
            LinkError::Io { source: io, .. } if limits::classify(io).is_some() => {
                FleetError::Limit {
                    port: name.clone(),
                    source: limits::classify(io).unwrap_or(LimitError::SystemFiles),
                }
            }
            _ => FleetError::Link {
                port: name.clone(),
                source,
            },
        };
        let mut slot = match &spec.link {
            Some(path) => Some(LinkSlot::claim(path.clone()).map_err(link_error)?),
            None => None,
        };
        let port =
            PtyPort::open(&options).map_err(|source| match limits::classify_pty(&source) {
                Some(limit) => FleetError::Limit {
                    port: name.clone(),
                    source: limit,
                },
                None => FleetError::Pty {
                    port: name.clone(),
                    source,
                },
            })?;
        if let Some(slot) = slot.as_mut() {
            slot.point_to(port.path()).map_err(link_error)?;
        }
        let slot = self.links.keep(slot);
        let observations = Broadcast::new(OBSERVATION_BACKLOG);
        let mut config = spec.serve;
        config.line = Some(line);
        config.observers.push(Arc::new(observations.clone()));
        let (control, control_rx) = mpsc::channel(CONTROL_QUEUE);
        let stop = self.cancel.child_token();
        let done = CancellationToken::new();
        let plugged = Arc::new(Mutex::new(Plugged {
            pty: Some((port.path().to_owned(), port.probe())),
            lines: None,
            in_process: None,
        }));
        let handle = PortHandle {
            name: config.name.clone(),
            medium: Medium::Pty,
            line,
            first_pty: port.path().to_owned(),
            plugged: plugged.clone(),
            link: spec.link,
            observations,
            control,
            stop: stop.clone(),
            done: done.clone(),
        };
        self.tracker.spawn(run_port(
            Box::new(Server::new(device, port, config)),
            options,
            slot,
            plugged,
            stop,
            control_rx,
            done,
            self.lanes.clone(),
        ));
        Ok(handle)
    }

    /// A network-only port: the device served on a TCP listener at `addr`, no pty.
    fn spawn_tcp<D: Body>(
        &self,
        spec: PortSpec,
        addr: SocketAddr,
        device: D,
    ) -> Result<PortHandle, FleetError> {
        let name = spec.serve.name.to_string();
        let listen_error = |source| FleetError::Listen {
            port: name.clone(),
            addr,
            source,
        };
        let listener = std::net::TcpListener::bind(addr)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .and_then(tokio::net::TcpListener::from_std)
            .map_err(|e| match limits::classify(&e) {
                Some(limit) => FleetError::Limit {
                    port: name.clone(),
                    source: limit,
                },
                None => listen_error(e),
            })?;
        let line_io = TcpLine::new(listener, &name).map_err(listen_error)?;
        let address = line_io.local_addr();
        Ok(self.spawn_stream(spec, device, line_io, Some(address), None))
    }

    /// A network-only port on `line_io`, listening on `address` or opened by its endpoints
    /// through `opener`.
    fn spawn_stream<D: Body, A: Accept>(
        &self,
        spec: PortSpec,
        device: D,
        line_io: StreamLine<A>,
        address: Option<SocketAddr>,
        opener: Option<Opener>,
    ) -> PortHandle {
        let line = spec.serve.line.unwrap_or_else(|| device.body_line());
        let observations = Broadcast::new(OBSERVATION_BACKLOG);
        let mut config = spec.serve;
        config.line = Some(line);
        config.observers.push(Arc::new(observations.clone()));
        let (control, control_rx) = mpsc::channel(CONTROL_QUEUE);
        let stop = self.cancel.child_token();
        let done = CancellationToken::new();
        let handle = PortHandle {
            name: config.name.clone(),
            medium: match address {
                Some(addr) => Medium::Tcp(addr),
                None => Medium::InProcess,
            },
            line,
            first_pty: PathBuf::new(),
            plugged: Arc::new(Mutex::new(Plugged {
                pty: None,
                lines: None,
                in_process: opener,
            })),
            link: None,
            observations,
            control,
            stop: stop.clone(),
            done: done.clone(),
        };
        self.tracker.spawn(run_stream_port(
            Box::new(Server::new(device, line_io, config)),
            stop,
            control_rx,
            done,
        ));
        handle
    }

    /// Spawn every `(spec, device)` pair, all or nothing: on the first failure every port this
    /// call already started is stopped (its pty closed, its link removed) before the error is
    /// returned.
    ///
    /// # Errors
    /// The first [`FleetError`].
    pub async fn spawn_all<D, I>(&self, ports: I) -> Result<Vec<PortHandle>, FleetError>
    where
        D: Body,
        I: IntoIterator<Item = (PortSpec, D)>,
    {
        let mut handles = Vec::new();
        for (spec, device) in ports {
            match self.spawn(spec, device) {
                Ok(h) => handles.push(h),
                Err(e) => {
                    for h in &handles {
                        h.stop();
                    }
                    for h in &handles {
                        h.stopped().await;
                    }
                    return Err(e);
                }
            }
        }
        info!(ports = handles.len(), "ports ready");
        Ok(handles)
    }

    /// The fleet's links, reachable from any thread: a process that must exit while a port
    /// cannot stop (a device handler that never returns) removes them through it.
    #[must_use]
    pub fn links(&self) -> LinkKeeper {
        self.links.clone()
    }

    /// A token that fires when the fleet shuts down (for tasks living beside the ports).
    #[must_use]
    pub fn cancellation(&self) -> CancellationToken {
        self.cancel.child_token()
    }

    /// Number of ports still running.
    #[must_use]
    pub fn len(&self) -> usize {
        self.tracker.len()
    }

    /// No port is running.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.tracker.is_empty()
    }

    /// Wait until every port has stopped (after [`shutdown`](Self::shutdown) or their own end).
    pub async fn wait(&self) {
        self.tracker.close();
        self.tracker.wait().await;
        self.tracker.reopen();
        self.lanes_gone().await;
    }

    /// Stop every port, close every pty, remove every link, and wait for all of it.
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        self.tracker.close();
        self.tracker.wait().await;
        self.lanes_gone().await;
    }

    /// With every port stopped, the lanes end too (with their last slot): wait for that, so
    /// that nothing of the fleet is left open.
    async fn lanes_gone(&self) {
        if let Some(lanes) = &self.lanes {
            lanes.wait().await;
        }
    }
}
