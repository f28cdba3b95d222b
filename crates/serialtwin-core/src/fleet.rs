//! Many ports on one runtime: spawning, handles, shutdown, limits.
//!
//! A [`Fleet`] spawns each device on its own pty (with an optional link) as a task on the
//! current runtime, tracked by a [`TaskTracker`] and stopped by a [`CancellationToken`]. Each
//! port gets a [`PortHandle`]: its name and paths, the observations seen on it (so a test can
//! assert what the client sent), a control channel, and a probe on the line.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::FutureExt;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info};

use crate::clock::SimClock;
use crate::device::Device;
use crate::framer::Framing;
use crate::limits::{self, LimitError};
use crate::line::LineConfig;
use crate::link::{LinkError, LinkSlot};
use crate::observe::{Broadcast, Observation, Observer};
use crate::pty::{PtyOptions, PtyPort, SlaveProbe};
use crate::serve::{Control, ServeConfig, ServeError, serve_with_control};

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
}

/// How to put one device on a port.
#[derive(Clone, Debug)]
pub struct PortSpec {
    /// The port's name (logs, observations, the device's context).
    pub name: String,
    /// A symlink to create to the pty (`/tmp/serialtwin/ttyUSB0`), if any.
    pub link: Option<PathBuf>,
    /// Owner `(uid, gid)` of the slave node.
    pub owner: Option<(u32, u32)>,
    /// Permission bits of the slave node.
    pub mode: Option<u32>,
    /// Framing instead of the device's own.
    pub framing: Option<Framing>,
    /// Line instead of the device's own.
    pub line: Option<LineConfig>,
    /// The simulated wall clock the device sees.
    pub clock: SimClock,
    /// Seed of the port's random source.
    pub seed: u64,
    /// Extra observers (a trace, a capture writer), besides the handle's own broadcast.
    pub observers: Vec<Arc<dyn Observer>>,
}

impl PortSpec {
    /// A port called `name`, no link, the device's framing and line, the real clock.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            link: None,
            owner: None,
            mode: None,
            framing: None,
            line: None,
            clock: SimClock::real(),
            seed: 0,
            observers: Vec::new(),
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
        self.observers.push(Arc::new(observer));
        self
    }
}

impl std::fmt::Debug for dyn Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Observer")
    }
}

/// A running port.
#[derive(Debug, Clone)]
pub struct PortHandle {
    name: Arc<str>,
    pty: PathBuf,
    link: Option<PathBuf>,
    observations: Broadcast,
    control: mpsc::Sender<Control>,
    probe: SlaveProbe,
    stop: CancellationToken,
    done: CancellationToken,
}

impl PortHandle {
    /// The port's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The slave's path, `/dev/pts/N`.
    #[must_use]
    pub fn pty(&self) -> &Path {
        &self.pty
    }

    /// The symlink, if one was made.
    #[must_use]
    pub fn link(&self) -> Option<&Path> {
        self.link.as_deref()
    }

    /// The path a client should open: the link if there is one, else the pty.
    #[must_use]
    pub fn path(&self) -> &Path {
        self.link.as_deref().unwrap_or(&self.pty)
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
        self.control.send(command).await.map_err(|e| e.0)
    }

    /// A probe on the line from the client's side.
    #[must_use]
    pub fn probe(&self) -> &SlaveProbe {
        &self.probe
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

/// Many ports on the current tokio runtime.
#[derive(Debug, Clone, Default)]
pub struct Fleet {
    tracker: TaskTracker,
    cancel: CancellationToken,
}

impl Fleet {
    /// An empty fleet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Put `device` on a new pty described by `spec`, and start serving it.
    ///
    /// Must be called within a tokio runtime.
    ///
    /// # Errors
    /// [`FleetError`]; nothing is left behind (no pty, no link, no descriptor).
    pub fn spawn<D: Device>(&self, spec: PortSpec, device: D) -> Result<PortHandle, FleetError> {
        let line = spec.line.unwrap_or_else(|| device.line());
        let options = PtyOptions {
            baud: line.baud.unwrap_or(PtyOptions::default().baud),
            owner: spec.owner,
            mode: spec.mode,
        };
        let name = spec.name;
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
        let observations = Broadcast::new(OBSERVATION_BACKLOG);
        let mut config = ServeConfig::new(name.as_str());
        config.framing = spec.framing;
        config.line = Some(line);
        config.clock = spec.clock;
        config.seed = spec.seed;
        config.observers = spec.observers;
        config.observers.push(Arc::new(observations.clone()));
        let (control, control_rx) = mpsc::channel(CONTROL_QUEUE);
        let stop = self.cancel.child_token();
        let done = CancellationToken::new();
        let handle = PortHandle {
            name: config.name.clone(),
            pty: port.path().to_owned(),
            link: spec.link,
            observations,
            control,
            probe: port.probe(),
            stop: stop.clone(),
            done: done.clone(),
        };
        let port_name = config.name.clone();
        let task = async move {
            let _done = done.drop_guard();
            let served = serve_with_control(device, port, config, stop, Some(control_rx));
            match std::panic::AssertUnwindSafe(served).catch_unwind().await {
                Ok(Ok(())) => debug!(port = %port_name, "port stopped"),
                Ok(Err(e @ ServeError::DevicePanicked { .. })) => {
                    error!(error = %e, "port stopped");
                }
                Ok(Err(e)) => error!(error = %e, "port failed"),
                Err(_) => error!(port = %port_name, "port task panicked; port stopped"),
            }
            // The pty is closed by now (dropped with the serving loop); remove the link if it
            // is still ours.
            if let Some(slot) = slot
                && let Err(e) = slot.release()
            {
                error!(port = %port_name, error = %e, "cannot remove link");
            }
        };
        self.tracker.spawn(task);
        Ok(handle)
    }

    /// Spawn every `(spec, device)` pair, all or nothing: on the first failure every port this
    /// call already started is stopped (its pty closed, its link removed) before the error is
    /// returned.
    ///
    /// # Errors
    /// The first [`FleetError`].
    pub async fn spawn_all<D, I>(&self, ports: I) -> Result<Vec<PortHandle>, FleetError>
    where
        D: Device,
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
    }

    /// Stop every port, close every pty, remove every link, and wait for all of it.
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}
