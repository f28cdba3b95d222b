//! Run-time control from outside the process: a small line protocol over a Unix socket.
//!
//! A test or a person changes a running fleet without restarting it: inject a fault, pull a
//! port's plug, change a device value (grid lost, battery at 20 %). One command per line, one
//! reply line per command (`ok …` or `error: …`):
//!
//! ```text
//! list                                   ports, one per line after "ok"
//! fault <port|*> <kind> [next=N|p=P] [cmd=PREFIX]
//!                                        kind: drop corrupt break-crc truncate noise duplicate
//!                                              delay:<ms> unplug:<ms>
//! clear <port|*>                         remove every fault rule
//! unplug <port|*> <ms>                   pull the plug now; back after <ms>
//! set <port|*> <key> <value>             a device value, e.g. `set inv0 grid off`
//! send <port> <text>                     send a frame as if the device had (escapes: \r \n \xHH)
//! line <port|*> <cts|dsr|ri|dcd|break> <on|off>
//!                                        a modem line the device drives, or break held on
//!                                        its transmit line (RFC 2217 endpoints: a pty
//!                                        carries neither)
//! ```
//!
//! The same commands make up a scenario's timeline (`at 30s: set inv0 grid off`), so what a test
//! does interactively can be written down and run unattended.
//!
//! The socket is created inside a directory only the owner can enter (`0700`) and is itself
//! `0600`: anyone who can write to it controls the fleet.

mod socket;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::escape::unescape;
use crate::fleet::{CommandError, Medium, PortHandle};
use crate::port::settings::DeviceLine;
use crate::serve::Control;
use crate::wire::fault::{FaultKind, FaultRule, When};

pub use socket::{request, serve_socket, serve_socket_ready};

/// Longest command line accepted.
const MAX_LINE: usize = 4096;

/// A parsed control command.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// List the ports.
    List,
    /// Add a fault rule to the ports.
    Fault(Target, FaultRule),
    /// Remove every fault rule.
    Clear(Target),
    /// Pull the plug; back after the duration.
    Unplug(Target, Duration),
    /// Set a device value.
    Set(Target, String, String),
    /// Send a frame as if the device had.
    Send(String, Bytes),
    /// Raise or drop a modem line the device drives, or hold its transmit line in break.
    Line(Target, DeviceLine, bool),
}

/// Which ports a command is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Every port.
    All,
    /// The port with this name.
    Port(String),
}

impl Target {
    fn parse(s: &str) -> Self {
        if s == "*" {
            Self::All
        } else {
            Self::Port(s.to_owned())
        }
    }
}

/// Why a command was not carried out.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ControlError {
    /// The line is not a command.
    #[error("{0}")]
    Syntax(String),
    /// No port has that name.
    #[error("no port named {0:?}")]
    NoSuchPort(String),
    /// The port has stopped.
    #[error("port {0:?} has stopped")]
    Stopped(String),
    /// The port refused the command (a value the device does not take, a frame for a client
    /// that does not read).
    #[error("port {port:?}: {reason}")]
    Refused {
        /// The port.
        port: String,
        /// The port's reason.
        reason: String,
    },
    /// The port did not carry the command out in time (it may still, later).
    #[error("port {0:?} did not answer within {ANSWER_WITHIN:?}")]
    NoAnswer(String),
    /// A command for every port failed on some of them.
    #[error("{} of {total} ports failed: {}", .failed.len(), join_errors(.failed))]
    Some {
        /// How many ports the command was for.
        total: usize,
        /// Each port's failure.
        failed: Vec<ControlError>,
    },
}

fn join_errors(errors: &[ControlError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// How long a port has to carry out a command: the control server answers within about this
/// long whatever a port is doing.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(1);

pub use crate::wire::fault::MAX_DURATION;

fn syntax(msg: impl Into<String>) -> ControlError {
    ControlError::Syntax(msg.into())
}

/// Parse a duration: `1500ms`, `2s`, `1.5s`, `3m`, `1h`, or bare milliseconds; at most
/// [`MAX_DURATION`].
///
/// # Errors
/// A message naming the text that is not a duration.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("bad duration {s:?} (e.g. 1500ms, 2s, 3m)");
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (s, 0.001)
    };
    let v: f64 = num.parse().map_err(|_| bad())?;
    if !v.is_finite() || v < 0.0 {
        return Err(bad());
    }
    let duration = Duration::try_from_secs_f64(v * scale).map_err(|_| bad())?;
    if duration > MAX_DURATION {
        return Err(format!(
            "duration {s:?} is longer than the most a command takes ({}h)",
            MAX_DURATION.as_secs() / 3600
        ));
    }
    Ok(duration)
}

/// `line`'s line and state: `cts on`, `break off`.
fn device_line(name: &str, state: &str) -> Result<(DeviceLine, bool), ControlError> {
    let line = DeviceLine::parse(name).ok_or_else(|| {
        syntax(format!(
            "line: {name:?} is not a line the device drives (cts, dsr, ri, dcd, break)"
        ))
    })?;
    match state {
        "on" => Ok((line, true)),
        "off" => Ok((line, false)),
        other => Err(syntax(format!("line: {other:?} is not on or off"))),
    }
}

impl Command {
    /// Parse one command line.
    ///
    /// # Errors
    /// [`ControlError::Syntax`] with a one-line reason.
    pub fn parse(line: &str) -> Result<Self, ControlError> {
        let line = line.trim();
        let mut words = line.split_whitespace();
        let verb = words.next().ok_or_else(|| syntax("empty command"))?;
        // Words a command does not take are an error, never ignored: `set inv0 grid off now`
        // must not quietly set `off`.
        let takes = match verb {
            "list" => Some(0),
            "clear" => Some(1),
            "unplug" => Some(2),
            "set" | "line" => Some(3),
            _ => None,
        };
        if let Some(n) = takes
            && let Some(extra) = line.split_whitespace().nth(n + 1)
        {
            return Err(syntax(format!(
                "{verb}: unexpected {extra:?} (it takes {n} word(s) after `{verb}`; a value is \
                 one word)"
            )));
        }
        let mut need = |what: &str| {
            words
                .next()
                .map(str::to_owned)
                .ok_or_else(|| syntax(format!("{verb}: missing {what}")))
        };
        let cmd = match verb {
            "list" => Self::List,
            "clear" => Self::Clear(Target::parse(&need("port")?)),
            "unplug" => {
                let port = Target::parse(&need("port")?);
                let after = parse_duration(&need("duration")?).map_err(syntax)?;
                Self::Unplug(port, after)
            }
            "set" => {
                let port = Target::parse(&need("port")?);
                let key = need("key")?;
                let value = need("value")?;
                Self::Set(port, key, value)
            }
            "line" => {
                let port = Target::parse(&need("port")?);
                let (line, on) = device_line(&need("line")?, &need("state")?)?;
                Self::Line(port, line, on)
            }
            "send" => {
                let port = need("port")?;
                // The rest of the line after the port and one separator, verbatim, is the
                // frame, however many separators come before the port.
                let after_port = line[verb.len()..]
                    .trim_start()
                    .strip_prefix(port.as_str())
                    .unwrap_or_default();
                let mut rest = after_port.chars();
                rest.next();
                if rest.as_str().is_empty() {
                    return Err(syntax("send: missing text"));
                }
                Self::Send(port, Bytes::from(unescape(rest.as_str()).map_err(syntax)?))
            }
            "fault" => {
                let port = Target::parse(&need("port")?);
                let kind = FaultKind::parse(&need("kind")?).map_err(syntax)?;
                let mut rule = FaultRule::next(kind, 1);
                for opt in words {
                    match opt.split_once('=') {
                        Some(("next", n)) => {
                            rule.when = When::Next(
                                n.parse().map_err(|_| syntax(format!("bad count {n:?}")))?,
                            );
                        }
                        Some(("p", p)) => {
                            let p: f64 = p
                                .parse()
                                .map_err(|_| syntax(format!("bad probability {p:?}")))?;
                            if !(0.0..=1.0).contains(&p) {
                                return Err(syntax(format!("probability {p} not in 0..=1")));
                            }
                            rule.when = When::Probability(p);
                        }
                        Some(("cmd", c)) => {
                            rule.command = Some(Bytes::from(unescape(c).map_err(syntax)?));
                        }
                        Some(("unit", u)) => {
                            rule.unit =
                                Some(u.parse().map_err(|_| syntax(format!("bad unit {u:?}")))?);
                        }
                        _ => {
                            return Err(syntax(format!(
                                "fault: unknown option {opt:?} (next=N, p=P, cmd=PREFIX, unit=N)"
                            )));
                        }
                    }
                }
                Self::Fault(port, rule)
            }
            other => {
                return Err(syntax(format!(
                    "unknown command {other:?} (list, fault, clear, unplug, set, send, line)"
                )));
            }
        };
        Ok(cmd)
    }
}

impl Command {
    /// Which ports the command is for; `None` for `list`, which asks none of them.
    fn target(&self) -> Option<Target> {
        match self {
            Self::List => None,
            Self::Fault(target, _)
            | Self::Clear(target)
            | Self::Unplug(target, _)
            | Self::Set(target, ..)
            | Self::Line(target, ..) => Some(target.clone()),
            Self::Send(port, _) => Some(Target::Port(port.clone())),
        }
    }

    /// What the command asks of each port it is for (`list`: nothing; see [`Command::target`]).
    fn control(&self) -> Control {
        match self {
            Self::Fault(_, rule) => Control::Fault(rule.clone()),
            // `line` never reaches a port's loop (see `Ports::execute`).
            Self::Clear(_) | Self::List | Self::Line(..) => Control::ClearFaults,
            Self::Unplug(_, after) => Control::Unplug(*after),
            Self::Set(_, key, value) => Control::Set {
                key: key.clone(),
                value: value.clone(),
                reply: None,
            },
            Self::Send(_, frame) => Control::SendFrame(frame.clone()),
        }
    }
}

/// The ports a control server or a timeline acts on, by name.
#[derive(Clone, Debug, Default)]
pub struct Ports {
    by_name: BTreeMap<String, PortHandle>,
}

impl Ports {
    /// The ports of `handles`.
    pub fn new(handles: impl IntoIterator<Item = PortHandle>) -> Self {
        Self {
            by_name: handles
                .into_iter()
                .map(|h| (h.name().to_owned(), h))
                .collect(),
        }
    }

    fn select(&self, target: &Target) -> Result<Vec<&PortHandle>, ControlError> {
        match target {
            Target::All => Ok(self.by_name.values().collect()),
            Target::Port(name) => self
                .by_name
                .get(name)
                .map(|h| vec![h])
                .ok_or_else(|| ControlError::NoSuchPort(name.clone())),
        }
    }

    /// Carry out `command`; the reply text on success. Each port has [`ANSWER_WITHIN`] to do
    /// its part, and a command for every port goes to all of them at once, so this returns
    /// within about that long whatever the ports are doing.
    ///
    /// # Errors
    /// [`ControlError`] for an unknown port, a port that stopped, refused or did not answer in
    /// time; for `*`, [`ControlError::Some`] with each port's failure (the others did it).
    pub async fn execute(&self, command: Command) -> Result<String, ControlError> {
        let command = self.per_unit(command);
        let Some(target) = command.target() else {
            return Ok(self.list());
        };
        let ports = self.select(&target)?;
        if let Command::Line(_, line, on) = command {
            // The lines live beside the port, with its network endpoints, not in its loop.
            let failed: Vec<ControlError> = ports
                .iter()
                .filter_map(|h| {
                    h.set_line(line, on).err().map(|e| ControlError::Refused {
                        port: h.name().to_owned(),
                        reason: e.to_string(),
                    })
                })
                .collect();
            return settle(target, ports.len(), failed);
        }
        let outcomes = futures::future::join_all(ports.iter().map(|h| {
            let control = command.control();
            async move {
                match tokio::time::timeout(ANSWER_WITHIN, h.command(control)).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(CommandError::Stopped)) => Err(ControlError::Stopped(h.name().into())),
                    Ok(Err(CommandError::Refused(reason))) => Err(ControlError::Refused {
                        port: h.name().to_owned(),
                        reason,
                    }),
                    Err(_) => Err(ControlError::NoAnswer(h.name().to_owned())),
                }
            }
        }))
        .await;
        let total = outcomes.len();
        let failed: Vec<ControlError> = outcomes.into_iter().filter_map(Result::err).collect();
        settle(target, total, failed)
    }

    /// A command for one device on a bus: `set <port>/<unit> <key> <value>` is `set <port>
    /// <unit>.<key> <value>` (what a bus takes), `fault <port>/<unit> …` is `fault <port> …
    /// unit=<unit>`: a name that is no port's but ends in `/<unit>` after a port's name. A
    /// port whose own name has a `/` is found by that name first.
    fn per_unit(&self, command: Command) -> Command {
        let on_bus = |name: &str| {
            name.rsplit_once('/')
                .filter(|(port, unit)| !unit.is_empty() && self.by_name.contains_key(*port))
                .map(|(port, unit)| (port.to_owned(), unit.to_owned()))
        };
        match command {
            Command::Fault(Target::Port(name), rule) if !self.by_name.contains_key(&name) => {
                match on_bus(&name).and_then(|(port, unit)| Some((port, unit.parse().ok()?))) {
                    Some((port, unit)) => Command::Fault(Target::Port(port), rule.for_unit(unit)),
                    None => Command::Fault(Target::Port(name), rule),
                }
            }
            Command::Set(Target::Port(name), key, value) if !self.by_name.contains_key(&name) => {
                match name.rsplit_once('/') {
                    Some((port, unit)) if !unit.is_empty() && self.by_name.contains_key(port) => {
                        Command::Set(
                            Target::Port(port.to_owned()),
                            format!("{unit}.{key}"),
                            value,
                        )
                    }
                    _ => Command::Set(Target::Port(name), key, value),
                }
            }
            other => other,
        }
    }

    /// The ports, one line each: name, current pty (or `unplugged`; `tcp:<address>` for a
    /// network-only port on its own address, `in-process` for one only its endpoints reach),
    /// link.
    fn list(&self) -> String {
        self.by_name
            .values()
            .map(|h| {
                // A network-only port has no pty: what reaches it stands in for it.
                let pty = match (h.medium(), h.current_pty()) {
                    (Medium::Tcp(addr), _) => format!("tcp:{addr}"),
                    (Medium::InProcess, _) => "in-process".to_owned(),
                    (Medium::Pty, Some(p)) => p.display().to_string(),
                    (Medium::Pty, None) => "unplugged".to_owned(),
                };
                let link = h
                    .link()
                    .map_or_else(|| "-".to_owned(), |p| p.display().to_string());
                format!("{} {pty} {link}", h.name())
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Parse and carry out one line; the reply line (`ok…` or `error: …`).
    pub async fn execute_line(&self, line: &str) -> String {
        match Command::parse(line) {
            Ok(cmd) => match self.execute(cmd).await {
                Ok(text) if text.is_empty() => "ok".to_owned(),
                Ok(text) => format!("ok\n{text}"),
                Err(e) => format!("error: {e}"),
            },
            Err(e) => format!("error: {e}"),
        }
    }
}

/// A command's outcome over its ports: the one port's error, or each failure of `*`'s.
fn settle(
    target: Target,
    total: usize,
    mut failed: Vec<ControlError>,
) -> Result<String, ControlError> {
    match (target, failed.len()) {
        (_, 0) => Ok(String::new()),
        (Target::Port(_), _) => Err(failed.remove(0)),
        (Target::All, _) => Err(ControlError::Some { total, failed }),
    }
}

/// One timed command of a scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct TimelineStep {
    /// When, from the start of the run.
    pub at: Duration,
    /// What.
    pub command: Command,
}

/// Run a scenario: each step's command at its time (tokio time, so paused tests drive it).
/// Errors are logged and the timeline goes on.
pub async fn run_timeline(steps: Vec<TimelineStep>, ports: Ports, cancel: CancellationToken) {
    let start = tokio::time::Instant::now();
    let mut steps = steps;
    steps.sort_by_key(|s| s.at);
    for step in steps {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep_until(start + step.at) => {}
        }
        match ports.execute(step.command.clone()).await {
            Ok(_) => info!(at = ?step.at, command = ?step.command, "timeline step done"),
            Err(e) => warn!(at = ?step.at, error = %e, "timeline step failed"),
        }
    }
}
