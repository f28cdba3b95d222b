//! The fleet config file: TOML in, a validated [`Plan`] out, or an error at the offending value.
//!
//! Parsing happens in two stages so that every error can name the line and column of the value
//! that is wrong: the file is parsed into a tree that keeps every value's span, each
//! `[[device]]`'s model table (`[device.<table>]`, any table a model of the registry
//! declares) is set aside for its model, and serde (with `deny_unknown_fields`) reads
//! the rest into raw tables whose checkable values keep their spans. Then `plan` checks what
//! serde cannot (models, framings, port names, links, numbers out of range, a clock faster than
//! a model follows) and asks each model's registry entry to build its devices from its table,
//! which reports its own errors at their spans. Nothing here knows a model by name.
//!
//! `check` and `run` share all of it, so whatever `run` would refuse `check` reports first:
//! what follows from the config alone is an error at its value; the disk is looked at, never
//! changed (a link's place is probed as claiming it would judge it, and a model may read a
//! file, as replay reads its capture), and what it says now is an error when something is in
//! the way and a warning when it is only busy (a link another running instance holds).

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use serialtwin_core::control::{
    Command as ControlCommand, MAX_DURATION, Target, TimelineStep, parse_duration,
};
use serialtwin_core::net::{EndpointConfig, EndpointKind, GATEWAY_TIMEOUT, Gateway, SecondClient};
use serialtwin_core::{
    Adapter, BoxDevice, Faults, Framing, LATEST_UNIX, Latency, LineConfig, LinkError, LinkSlot,
    Mismatch, SimClock, check_port_name,
};
use serialtwin_devices::registry::{self, Build, Built, Lint, Model, Table};
use toml::de::{DeTable, DeValue};
use toml::{Spanned, Value};

/// The config `serialtwin run` uses without one: a PI30 inverter at the documented default link
/// (`/tmp` in it stands for the system's temp directory, see [`default_config`]).
const DEFAULT_CONFIG: &str = include_str!("default.toml");

/// The default config, its link in the system's temp directory: `/tmp/serialtwin/ttyUSB0`,
/// or under `$TMPDIR` where that is set (as the default control socket is), so that a second
/// instance, a test suite above all, can have its own without touching a user's.
#[must_use]
pub fn default_config() -> String {
    default_config_at(0)
}

/// The default config with its link at `ttyUSB<n>` instead (a second instance's, while a
/// first holds `ttyUSB0`).
#[must_use]
pub fn default_config_at(n: u32) -> String {
    default_config_in(&std::env::temp_dir()).replace("/ttyUSB0\"", &format!("/ttyUSB{n}\""))
}

/// The default config with its link under `temp` (what [`default_config`] is for a temp
/// directory).
fn default_config_in(temp: &std::path::Path) -> String {
    let dir = temp.join("serialtwin/");
    DEFAULT_CONFIG.replace("/tmp/serialtwin/", &dir.to_string_lossy())
}

/// Where the default config's links live: `serialtwin/` in the system's temp directory.
#[must_use]
pub fn default_link_dir() -> std::path::PathBuf {
    std::env::temp_dir().join("serialtwin")
}

/// What the default config is called in messages.
pub const DEFAULT_NAME: &str = "<default config>";

/// The most copies one `[[device]]` may ask for (far beyond any pty limit).
const MAX_COUNT: u32 = 65_536;

/// A config that cannot be used: where, and why (one line).
#[derive(Debug)]
pub struct ConfigError {
    /// The file, as given.
    file: String,
    /// 1-based line and column of the offending value, when known.
    at: Option<(usize, usize)>,
    /// Why.
    reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.at {
            Some((line, col)) => write!(f, "{}:{line}:{col}: ", self.file)?,
            None => write!(f, "{}: ", self.file)?,
        }
        one_line(f, &self.reason)
    }
}

/// `text` on one line: control characters a config's values can carry into a message (a
/// model named `"pi\n30"`) escaped, so one error is one line and cannot drive a terminal.
fn one_line(f: &mut fmt::Formatter<'_>, text: &str) -> fmt::Result {
    for c in text.chars() {
        if c.is_control() {
            write!(f, "{}", c.escape_debug())?;
        } else {
            fmt::Write::write_char(f, c)?;
        }
    }
    Ok(())
}

impl std::error::Error for ConfigError {}

/// Something in a valid config that will probably not do what was meant.
#[derive(Debug)]
pub struct Warning {
    text: String,
    /// The `[[device]]` table it is about ([`Plan::tables`]), if one.
    pub table: Option<usize>,
}

impl Warning {
    fn about(mut self, table: usize) -> Self {
        self.table = Some(table);
        self
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        one_line(f, &self.text)
    }
}

/// A validated fleet, ready to spawn.
#[derive(Debug)]
pub struct Plan {
    /// Every port, in config order.
    pub ports: Vec<PortPlan>,
    /// The simulated clock all devices see.
    pub clock: SimClock,
    /// Things worth a warning.
    pub warnings: Vec<Warning>,
    /// Links other running instances hold now: warnings for `check`; `run` says nothing
    /// before it tries them (it fails on one with its own error, or the default inverter
    /// moves to the next link).
    pub busy: Vec<Warning>,
    /// The scenario: control commands at times from the start.
    pub timeline: Vec<TimelineStep>,
    /// What names each `[[device]]` table for sharding ([`crate::shard`]), in config order:
    /// its `name` as written (`{n}` and all), else its `link` as written, else its model and
    /// how many tables of that model with neither came before it (`pi30#0`).
    pub tables: Vec<String>,
}

/// One port to start.
#[derive(Debug)]
pub struct PortPlan {
    /// The port's name (`name`, else the link's file name, else the model's).
    pub name: String,
    /// The `[[device]]` table it comes from: its index in [`Plan::tables`].
    pub table: usize,
    /// The model's registry name.
    pub model: &'static str,
    /// The link to make to the pty, if any.
    pub link: Option<PathBuf>,
    /// The pty's owner (uid, gid), if set.
    pub owner: Option<(u32, u32)>,
    /// The pty's permission bits, if set.
    pub mode: Option<u32>,
    /// The port's framing: the `[[device]]`'s `framing`, else the device's own.
    pub framing: Framing,
    /// The model's line with `[device.line]` over it, when that table is written.
    pub line: Option<LineConfig>,
    /// The seed of the port's randomness.
    pub seed: u64,
    /// Faults from the start.
    pub faults: Faults,
    /// The device, built by its model.
    pub device: BoxDevice,
    /// Network endpoints in front of the port (`[device.network]`).
    pub endpoints: Vec<EndpointConfig>,
    /// A network-only port: no link, and one raw endpoint (`tcp` or `rtu_tcp`) with the
    /// default policies. The device is served on that address itself, with no pty and no
    /// bridge (`endpoints` is then empty).
    pub network_only: Option<(EndpointKind, SocketAddr)>,
}

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFleet {
    /// `[[device]]` tables.
    #[serde(default)]
    device: Vec<Spanned<RawDevice>>,
    /// `[clock]`.
    clock: Option<RawClock>,
    /// `[[timeline]]` steps.
    #[serde(default)]
    timeline: Vec<RawStep>,
}

/// One `[[timeline]]` step: `at = "30s"`, `run = "set inv0 grid off"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    at: Spanned<String>,
    run: Spanned<String>,
}

/// `[clock]`: the simulated wall clock.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClock {
    /// A TOML date-time, or Unix seconds. Default: now.
    start: Option<Spanned<Value>>,
    /// How much faster than real time it runs. Default 1.
    speed: Option<Spanned<f64>>,
}

/// One `[[device]]`, without its model's table (see [`model_tables`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDevice {
    name: Option<Spanned<String>>,
    model: Spanned<String>,
    link: Option<Spanned<String>>,
    count: Option<Spanned<u32>>,
    first: Option<u32>,
    framing: Option<Spanned<String>>,
    owner: Option<Spanned<Value>>,
    mode: Option<Spanned<Value>>,
    seed: Option<u64>,
    parallel: Option<Spanned<bool>>,
    line: Option<RawLine>,
    network: Option<Spanned<RawNetwork>>,
    /// Fault rules in the control syntax without the port: `"drop next=1 cmd=QPIGS"`.
    #[serde(default)]
    faults: Vec<Spanned<String>>,
}

/// The model tables of one `[[device]]`, by key (normally one: its model's).
type ModelTables<'a> = Vec<(String, Spanned<DeValue<'a>>)>;

/// `[device.network]`: network endpoints in front of each of the device's ports.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNetwork {
    /// Raw TCP: `"127.0.0.1:0"`, `"[::1]:7000"`, or a bare port (`"7000"`, on 127.0.0.1);
    /// `{n}` as in `link`.
    tcp: Option<Spanned<String>>,
    /// RFC 2217, written as `tcp`.
    rfc2217: Option<Spanned<String>>,
    /// Modbus TCP, a gateway to the device's RTU line, written as `tcp`.
    modbus_tcp: Option<Spanned<String>>,
    /// Modbus RTU frames over TCP, written as `tcp`.
    rtu_tcp: Option<Spanned<String>>,
    /// Milliseconds the Modbus TCP gateway waits for the line's reply before it answers
    /// exception 0x0B for the silent unit (default 500).
    gateway_timeout_ms: Option<Spanned<u64>>,
    /// What a second client gets: `"refuse"` (default) or `"take-over"`.
    second_client: Option<Spanned<String>>,
    /// Seconds without a byte either way after which a client is closed; 0: never (default).
    idle_timeout_s: Option<Spanned<u64>>,
}

/// `[device.line]`: the wire, overriding the model's own.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLine {
    baud: Option<Spanned<u32>>,
    format: Option<Spanned<String>>,
    pace: Option<bool>,
    /// How paced output reaches the client: `"usb"` (in chunks) or `"native"` (whole frames).
    adapter: Option<RawAdapter>,
    /// The USB adapter's chunk interval (its latency timer), 1 to 255 ms.
    chunk_ms: Option<Spanned<u64>>,
    mismatch: Option<RawMismatch>,
    latency_ms: Option<Spanned<Value>>,
    /// Milliseconds after which a partial request is forgotten; 0: never.
    frame_timeout_ms: Option<Spanned<u64>>,
    /// The client hears its own bytes back (an echoing RS-485 adapter).
    echo: Option<bool>,
}

impl RawLine {
    /// Its `baud`, if written and one a termios line names: what a model checks its output
    /// against ([`Build::line_baud`]). Any other is refused by [`line`], with its reason.
    fn valid_baud(&self) -> Option<Spanned<u32>> {
        self.baud.clone().filter(|b| BAUDS.contains(b.get_ref()))
    }
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawAdapter {
    Usb,
    Native,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawMismatch {
    Ignore,
    Silence,
    Garbage,
}

/// Read and validate the config at `path`; relative paths in it (a replayed capture) are read
/// from its directory.
///
/// # Errors
/// A [`ConfigError`]: the file cannot be read, or as [`parse`].
pub fn load(path: &Path) -> Result<Plan, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: file.clone(),
        at: None,
        reason: format!("cannot read: {e}"),
    })?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    parse(&file, &text, dir)
}

/// Validate `text`, the config called `file`, whose relative paths are read from `base_dir`
/// (`None`: the current directory).
///
/// # Errors
/// A [`ConfigError`] at the offending value (its line and column), or for the whole file.
pub fn parse(file: &str, text: &str, base_dir: Option<&Path>) -> Result<Plan, ConfigError> {
    let here = Locator {
        file,
        text,
        base_dir,
    };
    let toml_error = |e: toml::de::Error| {
        let reason = e.message().trim().replace('\n', "; ");
        here.error(&e.span().unwrap_or(0..0), reason)
    };
    let mut doc = DeTable::parse(text).map_err(toml_error)?;
    let tables = model_tables(doc.get_mut());
    let raw = RawFleet::deserialize(toml::de::Deserializer::from(doc)).map_err(toml_error)?;
    plan(&here, &raw, tables)
}

/// Takes every model's table out of each `[[device]]` of `doc`, in device order: what is left
/// is [`RawDevice`]'s to read, and each table its model's.
fn model_tables<'a>(doc: &mut DeTable<'a>) -> Vec<ModelTables<'a>> {
    let Some(DeValue::Array(devices)) = doc.get_mut("device").map(Spanned::get_mut) else {
        return Vec::new();
    };
    devices
        .iter_mut()
        .map(|device| {
            let DeValue::Table(device) = device.get_mut() else {
                return Vec::new();
            };
            let keys: Vec<String> = device
                .keys()
                .map(|k| k.get_ref().to_string())
                .filter(|k| registry::by_table(k).is_some())
                .collect();
            keys.into_iter()
                .filter_map(|k| device.remove(k.as_str()).map(|v| (k, v)))
                .collect()
        })
        .collect()
}

/// Turns byte offsets into `file:line:column`.
struct Locator<'a> {
    file: &'a str,
    text: &'a str,
    /// Where relative paths in the config are read from.
    base_dir: Option<&'a Path>,
}

impl Locator<'_> {
    fn position(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, col)
    }

    fn error(&self, span: &Range<usize>, reason: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_owned(),
            at: Some(self.position(span.start)),
            reason: reason.into(),
        }
    }

    fn warning(&self, span: &Range<usize>, message: &str) -> Warning {
        let (line, col) = self.position(span.start);
        Warning {
            text: format!("{}:{line}:{col}: {message}", self.file),
            table: None,
        }
    }
}

fn plan<'a>(
    here: &Locator<'a>,
    raw: &RawFleet,
    mut tables: Vec<ModelTables<'a>>,
) -> Result<Plan, ConfigError> {
    if raw.device.is_empty() {
        return Err(here.error(&(0..0), "no devices: add a [[device]] table"));
    }
    let clock = clock(here, raw.clock.as_ref())?;
    let mut ports = Vec::new();
    let mut warnings = Vec::new();
    let mut busy = Vec::new();
    // Where each link and name was claimed, for duplicates.
    let mut links = Links::default();
    let mut names: HashMap<String, usize> = HashMap::new();
    // Every fixed endpoint address, and the line that asked for it.
    let mut addresses: HashMap<SocketAddr, usize> = HashMap::new();
    tables.resize_with(raw.device.len(), Vec::new);
    let mut keys = Vec::with_capacity(raw.device.len());
    let mut unnamed: HashMap<&'static str, usize> = HashMap::new();
    for (index, (device, tables)) in raw.device.iter().zip(tables).enumerate() {
        let first_port = ports.len();
        let (model, table) = model_table(here, device, tables)?;
        device_ports(here, device, model, &table, &mut ports)?;
        let d = device.get_ref();
        keys.push(match (&d.name, &d.link) {
            (Some(name), _) => name.get_ref().clone(),
            (None, Some(link)) => link.get_ref().clone(),
            (None, None) => {
                let k = unnamed.entry(model.name).or_default();
                *k += 1;
                format!("{}#{}", model.name, *k - 1)
            }
        });
        for port in &mut ports[first_port..] {
            port.table = index;
        }
        let rules = faults(here, &d.faults)?;
        for port in &mut ports[first_port..] {
            port.faults = rules.clone();
        }
        for port in &ports[first_port..] {
            let (line, _) = here.position(device.span().start);
            if let Some(link) = &port.link {
                let span = d.link.as_ref().map_or(device.span(), Spanned::span);
                let claimed = Claimed {
                    place: resolved(link),
                    port: port.name.clone(),
                    line,
                };
                if let Some(w) = check_link(here, &span, link, &claimed, &mut links)? {
                    busy.push(w.about(index));
                }
            }
            let seen = Lint {
                link: port.link.as_deref(),
                table: &table,
            };
            for finding in (model.lint)(&seen) {
                let span = finding
                    .at
                    .unwrap_or_else(|| d.link.as_ref().map_or(device.span(), Spanned::span));
                warnings.push(here.warning(&span, &finding.message).about(index));
            }
            let served = port.endpoints.iter().map(|e| e.addr);
            for addr in served.chain(port.network_only.map(|(_, addr)| addr)) {
                let fixed = addr.port() != 0;
                if let Some(other_line) = fixed.then(|| addresses.insert(addr, line)).flatten() {
                    let span = d.network.as_ref().map_or(device.span(), Spanned::span);
                    return Err(here.error(
                        &span,
                        format!(
                            "port `{}`: {} is taken by another endpoint (line {other_line}); \
                             give each its own port, `{{n}}` in it, or port 0",
                            port.name, addr
                        ),
                    ));
                }
            }
            if let Some(other_line) = names.insert(port.name.clone(), line) {
                let span = d.name.as_ref().map_or(device.span(), Spanned::span);
                return Err(here.error(
                    &span,
                    format!(
                        "duplicate port name `{}` (line {other_line} has it too); set `name`",
                        port.name
                    ),
                ));
            }
        }
    }
    clock_speed_followed(here, raw)?;
    let timeline = timeline(here, &raw.timeline, &names)?;
    Ok(Plan {
        ports,
        clock,
        warnings,
        busy,
        timeline,
        tables: keys,
    })
}

/// The links claimed so far, for duplicates and nesting in time proportional to the fleet.
#[derive(Default)]
struct Links {
    /// Each link's place ([`resolved`]), and its port and line.
    places: HashMap<PathBuf, (String, usize)>,
    /// Every directory above a claimed link, and the first port whose link is under it.
    dirs: HashMap<PathBuf, (String, usize)>,
}

/// A link the config asks for: where it really is, and whose it is.
struct Claimed {
    /// The path with its existing directories resolved ([`resolved`]).
    place: PathBuf,
    /// The port's name.
    port: String,
    /// The line of its `[[device]]`.
    line: usize,
}

/// Where `path` really is: its longest existing directory canonicalised (symlinks and `..`
/// resolved), the rest appended with `.` and `..` taken lexically. The last component is
/// never resolved: a link there is what will be replaced, not where it points.
fn resolved(path: &Path) -> PathBuf {
    use std::path::Component;
    let absolute = if path.is_absolute() {
        path.to_owned()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    let parts: Vec<Component<'_>> = absolute.components().collect();
    for existing in (1..parts.len()).rev() {
        let head: PathBuf = parts[..existing].iter().collect();
        if let Ok(mut place) = head.canonicalize() {
            for part in &parts[existing..] {
                match part {
                    Component::ParentDir => {
                        place.pop();
                    }
                    Component::Normal(name) => place.push(name),
                    _ => {}
                }
            }
            return place;
        }
    }
    absolute
}

/// What a link path may not be, from the config alone (an error), and what the disk says
/// now (`claim`'s own judgement through [`LinkSlot::probe`]): something that is not a link
/// of ours in the way is an error, for it stays until someone moves it; a link a running
/// instance holds is a warning, for it is free once that instance stops.
fn check_link(
    here: &Locator<'_>,
    span: &Range<usize>,
    link: &Path,
    this: &Claimed,
    earlier: &mut Links,
) -> Result<Option<Warning>, ConfigError> {
    let shown = link.display();
    if let Some((port, at_line)) = earlier.places.get(&this.place) {
        return Err(here.error(
            span,
            format!(
                "duplicate link {shown} ({}): port `{port}` (line {at_line}) has it too",
                this.place.display()
            ),
        ));
    }
    let inside = earlier.dirs.get(&this.place).or_else(|| {
        this.place
            .ancestors()
            .skip(1)
            .find_map(|dir| earlier.places.get(dir))
    });
    if let Some((port, at_line)) = inside {
        return Err(here.error(
            span,
            format!(
                "link {shown} and port `{port}`'s link (line {at_line}) are one inside the \
                 other: a link is a file, never a directory of links"
            ),
        ));
    }
    let owner = (this.port.clone(), this.line);
    for dir in this.place.ancestors().skip(1) {
        earlier
            .dirs
            .entry(dir.to_owned())
            .or_insert_with(|| owner.clone());
    }
    earlier.places.insert(this.place.clone(), owner);
    for kernel in ["/proc", "/sys"] {
        if this.place.starts_with(kernel) {
            return Err(here.error(
                span,
                format!("link {shown} is in {kernel}, a kernel filesystem: no link goes there"),
            ));
        }
    }
    match LinkSlot::probe(link) {
        Ok(()) => Ok(None),
        Err(e @ LinkError::Busy { .. }) => Ok(Some(
            here.warning(span, &format!("{e}: `run` cannot start until it stops")),
        )),
        Err(e) => Err(here.error(span, format!("link {shown}: {e}"))),
    }
}

/// `[clock] speed` no faster than every model in the fleet follows (see
/// [`Model::max_clock_speed`]): the first that cannot is named.
fn clock_speed_followed(here: &Locator<'_>, raw: &RawFleet) -> Result<(), ConfigError> {
    let Some(speed) = raw.clock.as_ref().and_then(|c| c.speed.as_ref()) else {
        return Ok(());
    };
    let slowest = raw
        .device
        .iter()
        .filter_map(|d| Some((d, registry::find(d.get_ref().model.get_ref())?)))
        .min_by(|a, b| a.1.max_clock_speed.total_cmp(&b.1.max_clock_speed));
    match slowest {
        Some((device, model)) if *speed.get_ref() > model.max_clock_speed => {
            let (line, _) = here.position(device.span().start);
            Err(here.error(
                &speed.span(),
                format!(
                    "`speed` {} is faster than model `{}` (the [[device]] at line {line}) can \
                     follow: at most {} (its state is integrated over simulated time with a \
                     bounded amount of work per real second)",
                    speed.get_ref(),
                    model.name,
                    model.max_clock_speed
                ),
            ))
        }
        _ => Ok(()),
    }
}

/// The ports a timeline step acts on.
#[must_use]
pub fn step_target(command: &ControlCommand) -> Target {
    match command {
        ControlCommand::Fault(t, _)
        | ControlCommand::Clear(t)
        | ControlCommand::Unplug(t, _)
        | ControlCommand::Set(t, _, _)
        | ControlCommand::Line(t, _, _) => t.clone(),
        ControlCommand::Send(port, _) => Target::Port(port.clone()),
        ControlCommand::List => Target::All,
    }
}

/// `[[timeline]]`: each step's time and command, with ports that exist.
fn timeline(
    here: &Locator<'_>,
    raw: &[RawStep],
    names: &HashMap<String, usize>,
) -> Result<Vec<TimelineStep>, ConfigError> {
    raw.iter()
        .map(|step| {
            let at =
                parse_duration(step.at.get_ref()).map_err(|e| here.error(&step.at.span(), e))?;
            let command = ControlCommand::parse(step.run.get_ref())
                .map_err(|e| here.error(&step.run.span(), e.to_string()))?;
            if let Target::Port(port) = &step_target(&command)
                && !names.contains_key(port)
            {
                return Err(here.error(&step.run.span(), format!("no port named `{port}`")));
            }
            Ok(TimelineStep { at, command })
        })
        .collect()
}

/// `faults = [...]` of one `[[device]]`.
fn faults(here: &Locator<'_>, raw: &[Spanned<String>]) -> Result<Faults, ConfigError> {
    let mut faults = Faults::new();
    for rule in raw {
        let parsed = ControlCommand::parse(&format!("fault - {}", rule.get_ref()))
            .map_err(|e| here.error(&rule.span(), e.to_string()))?;
        if let ControlCommand::Fault(_, rule) = parsed {
            faults.add(rule);
        }
    }
    Ok(faults)
}

fn clock(here: &Locator<'_>, raw: Option<&RawClock>) -> Result<SimClock, ConfigError> {
    let Some(raw) = raw else {
        return Ok(SimClock::real());
    };
    let speed = match &raw.speed {
        Some(s) if !(s.get_ref().is_finite() && *s.get_ref() > 0.0) => {
            return Err(here.error(&s.span(), "`speed` must be a positive number"));
        }
        Some(s) => *s.get_ref(),
        None => 1.0,
    };
    let start = match &raw.start {
        None => SystemTime::now(),
        Some(v) => {
            let secs = match v.get_ref() {
                Value::Integer(secs) => *secs,
                Value::Datetime(dt) => {
                    datetime_seconds(dt).map_err(|reason| here.error(&v.span(), reason))?
                }
                _ => {
                    return Err(here.error(
                        &v.span(),
                        "`start` must be a date-time (2026-06-21T12:00:00Z) or Unix seconds",
                    ));
                }
            };
            // Simulated time runs from 1970 to the last second of 9999, as devices date it.
            let latest = i64::try_from(LATEST_UNIX).unwrap_or(i64::MAX);
            if !(0..=latest).contains(&secs) {
                return Err(here.error(
                    &v.span(),
                    format!(
                        "`start` must be from 1970-01-01T00:00:00Z (Unix 0) to \
                         9999-12-31T23:59:59Z (Unix {LATEST_UNIX}), the time serialtwin \
                         simulates; this is Unix {secs}"
                    ),
                ));
            }
            SystemTime::UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
        }
    };
    Ok(SimClock::new(start, speed))
}

/// Unix seconds of a TOML date-time, which must have a date, a time and an offset. Any
/// four-digit year is read (jiff's civil dates reach 9999-12-31; its timestamps stop a day
/// short of that, so they are not used here).
fn datetime_seconds(dt: &toml::value::Datetime) -> Result<i64, String> {
    let (Some(date), Some(time), Some(offset)) = (dt.date, dt.time, dt.offset) else {
        return Err(format!(
            "`start` needs a date, a time and an offset (2026-06-21T12:00:00Z), not {dt}"
        ));
    };
    let day = jiff::civil::Date::new(
        i16::try_from(date.year).map_err(|e| e.to_string())?,
        i8::try_from(date.month).map_err(|e| e.to_string())?,
        i8::try_from(date.day).map_err(|e| e.to_string())?,
    )
    .map_err(|e| format!("`start`: {e}"))?;
    let days = i64::from(
        jiff::civil::date(1970, 1, 1)
            .until((jiff::Unit::Day, day))
            .map_err(|e| format!("`start`: {e}"))?
            .get_days(),
    );
    let minutes = match offset {
        toml::value::Offset::Z => 0,
        toml::value::Offset::Custom { minutes } => i64::from(minutes),
    };
    Ok(days * 86_400
        + i64::from(time.hour) * 3600
        + i64::from(time.minute) * 60
        + i64::from(time.second.unwrap_or(0))
        - minutes * 60)
}

/// The model of one `[[device]]` and its table; a table of another model is a mistake, not
/// something to ignore.
fn model_table<'a>(
    here: &Locator<'_>,
    device: &Spanned<RawDevice>,
    tables: ModelTables<'a>,
) -> Result<(&'static Model, Table<'a>), ConfigError> {
    let d = device.get_ref();
    let name = d.model.get_ref();
    let Some(model) = registry::find(name) else {
        return Err(here.error(
            &d.model.span(),
            format!(
                "unknown model `{name}` (known: {}; see `serialtwin models`)",
                registry::names().join(", ")
            ),
        ));
    };
    let mut own = Table::absent();
    for (key, value) in tables {
        if key == model.table {
            own = Table::new(value);
        } else {
            return Err(here.error(
                &value.span(),
                format!(
                    "[device.{key}] does not apply to model `{}` (its table is [device.{}])",
                    model.name, model.table
                ),
            ));
        }
    }
    Ok((model, own))
}

/// The ports of one `[[device]]`, appended to `ports`.
fn device_ports(
    here: &Locator<'_>,
    device: &Spanned<RawDevice>,
    model: &'static Model,
    table: &Table<'_>,
    ports: &mut Vec<PortPlan>,
) -> Result<(), ConfigError> {
    let d = device.get_ref();
    let count = match &d.count {
        Some(c) if *c.get_ref() == 0 || *c.get_ref() > MAX_COUNT => {
            return Err(here.error(
                &c.span(),
                format!("`count` must be between 1 and {MAX_COUNT}"),
            ));
        }
        Some(c) => *c.get_ref(),
        None => 1,
    };
    let first = d.first.unwrap_or(0);
    if let Some(link) = &d.link {
        check_template(here, link, "link", count)?;
    }
    if let Some(name) = &d.name {
        check_template(here, name, "name", count)?;
    }
    let framing = d
        .framing
        .as_ref()
        .map(|f| registry::framing(f.get_ref()).map_err(|e| here.error(&f.span(), e.to_string())))
        .transpose()?;
    let owner = d.owner.as_ref().map(|o| owner(here, o)).transpose()?;
    let mode = d.mode.as_ref().map(|m| mode(here, m)).transpose()?;
    let build = Build {
        table: table.clone(),
        count: usize::try_from(count).unwrap_or(usize::MAX),
        parallel: d.parallel.clone(),
        seed: d.seed.unwrap_or(0),
        framing: framing.clone(),
        base_dir: here.base_dir,
        at: device.span(),
        line_written: d.line.is_some(),
        line_baud: d.line.as_ref().and_then(RawLine::valid_baud),
    };
    let devices = build_devices(here, device, model, &build)?;
    let line_config = d
        .line
        .as_ref()
        .map(|raw| line(here, raw, devices[0].line))
        .transpose()?;

    for (
        i,
        Built {
            device,
            framing: own,
            gateway,
            listen,
            ..
        },
    ) in devices.into_iter().enumerate()
    {
        let index = u32::try_from(i).unwrap_or(u32::MAX);
        let n = first.saturating_add(index).to_string();
        let link = d.link.as_ref().map(|l| {
            let path = PathBuf::from(l.get_ref().replace("{n}", &n));
            std::path::absolute(&path).unwrap_or(path)
        });
        let name = match (&d.name, &link) {
            (Some(name), _) => name.get_ref().replace("{n}", &n),
            (None, Some(link)) => link.file_name().map_or_else(
                || link.display().to_string(),
                |f| f.to_string_lossy().into(),
            ),
            (None, None) if count > 1 => format!("{}{n}", model.name),
            (None, None) => model.name.to_owned(),
        };
        ports.push(PortPlan {
            name: port_name(here, d, name)?,
            table: 0,
            model: model.name,
            link,
            owner,
            mode,
            framing: framing.clone().unwrap_or(own),
            line: line_config,
            seed: build.port_seed(i),
            faults: Faults::new(),
            device,
            endpoints: Vec::new(),
            network_only: None,
        });
        let port = ports.last_mut().expect("just pushed");
        let wanted = endpoints(here, d.network.as_ref(), &n, gateway.as_ref(), listen)?;
        match &wanted[..] {
            [only]
                if port.link.is_none()
                    && matches!(only.kind, EndpointKind::Tcp | EndpointKind::RtuTcp)
                    && only.second_client == SecondClient::Refuse
                    && only.idle_timeout.is_none() =>
            {
                port.network_only = Some((only.kind, only.addr));
            }
            _ => port.endpoints = wanted,
        }
    }
    Ok(())
}

/// The endpoints `[device.network]` asks for, for the port numbered `n`, whose device has
/// `gateway` for Modbus TCP (a Modbus RTU device) or not, and names its own raw TCP address
/// (`listen`: a pyvisa-sim SOCKET resource) or not. A device's own address is its `tcp`
/// endpoint, with `[device.network]`'s policies: a `tcp` written beside it must be that
/// address, since one port has one raw endpoint and a client looks for the device there.
fn endpoints(
    here: &Locator<'_>,
    network: Option<&Spanned<RawNetwork>>,
    n: &str,
    gateway: Option<&Arc<dyn Gateway>>,
    listen: Option<(SocketAddr, Range<usize>)>,
) -> Result<Vec<EndpointConfig>, ConfigError> {
    let Some(network) = network else {
        return Ok(listen
            .map(|(addr, _)| EndpointConfig::new(EndpointKind::Tcp, addr))
            .into_iter()
            .collect());
    };
    let raw = network.get_ref();
    let second_client = match raw.second_client.as_ref() {
        None => SecondClient::Refuse,
        Some(s) => match s.get_ref().as_str() {
            "refuse" => SecondClient::Refuse,
            "take-over" => SecondClient::TakeOver,
            other => {
                return Err(here.error(
                    &s.span(),
                    format!("second_client is \"refuse\" or \"take-over\", not {other:?}"),
                ));
            }
        },
    };
    let idle_timeout = raw
        .idle_timeout_s
        .as_ref()
        .map(|s| *s.get_ref())
        .filter(|&s| s > 0)
        .map(Duration::from_secs);
    let gateway_timeout = match raw.gateway_timeout_ms.as_ref() {
        None => GATEWAY_TIMEOUT,
        Some(ms) if (1..=60_000).contains(ms.get_ref()) => Duration::from_millis(*ms.get_ref()),
        Some(ms) => {
            return Err(here.error(
                &ms.span(),
                format!(
                    "gateway_timeout_ms is 1 to 60000 milliseconds, not {}",
                    ms.get_ref()
                ),
            ));
        }
    };
    let mut out = Vec::new();
    for (kind, addr) in [
        (EndpointKind::Tcp, &raw.tcp),
        (EndpointKind::Rfc2217, &raw.rfc2217),
        (EndpointKind::ModbusTcp, &raw.modbus_tcp),
        (EndpointKind::RtuTcp, &raw.rtu_tcp),
    ] {
        let Some(addr) = addr else {
            if let (EndpointKind::Tcp, Some((own, _))) = (kind, &listen) {
                out.push(EndpointConfig {
                    second_client,
                    idle_timeout,
                    ..EndpointConfig::new(kind, *own)
                });
            }
            continue;
        };
        let modbus = matches!(kind, EndpointKind::ModbusTcp | EndpointKind::RtuTcp);
        if modbus && gateway.is_none() {
            return Err(here.error(
                &addr.span(),
                format!(
                    "{} is for a Modbus device whose line speaks Modbus RTU; this one's does \
                     not (use `tcp` or `rfc2217`)",
                    kind.name()
                ),
            ));
        }
        let addr = listen_addr(here, kind, addr, n)?;
        if let (EndpointKind::Tcp, Some((own, at))) = (kind, &listen)
            && addr != *own
        {
            let (line, _) = here.position(at.start);
            return Err(here.error(
                &raw.tcp.as_ref().map_or(network.span(), Spanned::span),
                format!(
                    "tcp: {addr} is not {own}, the address the device's resource names (line \
                     {line}), where its clients connect: leave `tcp` out, or write {own}"
                ),
            ));
        }
        out.push(EndpointConfig {
            second_client,
            idle_timeout,
            gateway: gateway.filter(|_| kind == EndpointKind::ModbusTcp).cloned(),
            gateway_timeout,
            ..EndpointConfig::new(kind, addr)
        });
    }
    if out.is_empty() {
        return Err(here.error(
            &network.span(),
            "[device.network] without an endpoint: add `tcp`, `rfc2217`, `modbus_tcp` or `rtu_tcp`",
        ));
    }
    Ok(out)
}

/// The address an endpoint's `addr` (for the port numbered `n`) says to listen on.
fn listen_addr(
    here: &Locator<'_>,
    kind: EndpointKind,
    addr: &Spanned<String>,
    n: &str,
) -> Result<SocketAddr, ConfigError> {
    let text = addr.get_ref().replace("{n}", n);
    let parsed = match text.parse::<u16>() {
        Ok(port) => Ok(SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port))),
        Err(_) => text.parse::<SocketAddr>(),
    };
    parsed.map_err(|_| {
        here.error(
            &addr.span(),
            format!(
                "{}: {text:?} is not an address to listen on (\"127.0.0.1:0\", \"[::1]:7000\", \
                 or a port: \"7000\")",
                kind.name()
            ),
        )
    })
}

/// The model's devices for one `[[device]]`, one per copy.
fn build_devices(
    here: &Locator<'_>,
    device: &Spanned<RawDevice>,
    model: &Model,
    build: &Build<'_>,
) -> Result<Vec<Built>, ConfigError> {
    if let Some(parallel) = &device.get_ref().parallel
        && !model.groups
    {
        let grouping: Vec<&str> = serialtwin_devices::MODELS
            .iter()
            .filter(|m| m.groups)
            .map(|m| m.name)
            .collect();
        return Err(here.error(
            &parallel.span(),
            format!(
                "`parallel` does not apply to model `{}` (models with parallel groups: {})",
                model.name,
                grouping.join(", ")
            ),
        ));
    }
    let devices = (model.build)(build)
        .map_err(|e| here.error(&e.at.unwrap_or_else(|| device.span()), e.reason))?;
    if devices.len() != build.count {
        return Err(here.error(
            &device.span(),
            format!(
                "model `{}` made {} device(s) for count = {} (a bug in the model)",
                model.name,
                devices.len(),
                build.count
            ),
        ));
    }
    Ok(devices)
}

/// A port's `name` must be one word of the control protocol: the error points at the `name`
/// it came from, or at the `link` whose file name it is. Checked per copy: `{n}` is part of the
/// name each copy gets.
fn port_name(here: &Locator<'_>, d: &RawDevice, name: String) -> Result<String, ConfigError> {
    check_port_name(&name).map_err(|e| match (&d.name, &d.link) {
        (Some(written), _) => here.error(&written.span(), e.to_string()),
        (None, Some(link)) => here.error(
            &link.span(),
            format!("{e}; it is the link's file name: set `name`"),
        ),
        (None, None) => here.error(&d.model.span(), e.to_string()),
    })?;
    Ok(name)
}

/// `{n}` is the only placeholder, and copies need it.
fn check_template(
    here: &Locator<'_>,
    value: &Spanned<String>,
    key: &str,
    count: u32,
) -> Result<(), ConfigError> {
    let text = value.get_ref();
    if text.replace("{n}", "").contains(['{', '}']) {
        return Err(here.error(
            &value.span(),
            format!("`{key}` may only contain the placeholder {{n}} (the copy's number)"),
        ));
    }
    if count > 1 && !text.contains("{n}") {
        return Err(here.error(
            &value.span(),
            format!("`{key}` needs {{n}} when count = {count}: each copy needs its own {key}"),
        ));
    }
    if key == "link" && text.trim().is_empty() {
        return Err(here.error(&value.span(), "`link` is empty"));
    }
    Ok(())
}

/// `owner`: a uid, or `"user"`, `"user:group"`, `"uid:gid"`.
fn owner(here: &Locator<'_>, value: &Spanned<Value>) -> Result<(u32, u32), ConfigError> {
    use nix::unistd::{Group, Uid, User};
    let bad = |reason: String| here.error(&value.span(), reason);
    let user_of = |name: &str| -> Result<User, ConfigError> {
        let found = match name.parse::<u32>() {
            Ok(uid) => User::from_uid(Uid::from_raw(uid)),
            Err(_) => User::from_name(name),
        };
        found
            .ok()
            .flatten()
            .ok_or_else(|| bad(format!("no such user `{name}`")))
    };
    match value.get_ref() {
        Value::Integer(uid) => {
            let uid = u32::try_from(*uid).map_err(|_| bad(format!("bad uid {uid}")))?;
            let gid = User::from_uid(Uid::from_raw(uid))
                .ok()
                .flatten()
                .map_or(uid, |u| u.gid.as_raw());
            Ok((uid, gid))
        }
        Value::String(s) => match s.split_once(':') {
            None => user_of(s).map(|u| (u.uid.as_raw(), u.gid.as_raw())),
            Some((user, group)) => {
                let uid = match user.parse::<u32>() {
                    Ok(uid) => uid,
                    Err(_) => user_of(user)?.uid.as_raw(),
                };
                let gid = match group.parse::<u32>() {
                    Ok(gid) => gid,
                    Err(_) => Group::from_name(group)
                        .ok()
                        .flatten()
                        .ok_or_else(|| bad(format!("no such group `{group}`")))?
                        .gid
                        .as_raw(),
                };
                Ok((uid, gid))
            }
        },
        _ => Err(bad(
            "`owner` must be a uid or a string \"user\", \"user:group\" or \"uid:gid\"".into(),
        )),
    }
}

/// `mode`: permission bits, as a TOML integer (`0o660`) or an octal string (`"0660"`).
fn mode(here: &Locator<'_>, value: &Spanned<Value>) -> Result<u32, ConfigError> {
    let bad = || {
        here.error(
            &value.span(),
            "`mode` must be permission bits: 0o660 or \"0660\" (octal, at most 0o7777)",
        )
    };
    let bits = match value.get_ref() {
        Value::Integer(i) => u32::try_from(*i).map_err(|_| bad())?,
        Value::String(s) => {
            let digits = s.strip_prefix("0o").unwrap_or(s);
            u32::from_str_radix(digits, 8).map_err(|_| bad())?
        }
        _ => return Err(bad()),
    };
    if bits > 0o7777 {
        return Err(bad());
    }
    Ok(bits)
}

/// The baud rates a line may have: termios' named rates, B50 to B4000000.
const BAUDS: std::ops::RangeInclusive<u32> = 50..=4_000_000;

/// `ms` milliseconds of `key`, at most [`MAX_DURATION`] (what a control command's durations
/// may be too).
fn millis(
    here: &Locator<'_>,
    span: Range<usize>,
    key: &str,
    ms: u64,
) -> Result<Duration, ConfigError> {
    let d = Duration::from_millis(ms);
    if d > MAX_DURATION {
        return Err(here.error(
            &span,
            format!(
                "`{key}` must be at most {} ms ({} h), not {ms}",
                MAX_DURATION.as_millis(),
                MAX_DURATION.as_secs() / 3600
            ),
        ));
    }
    Ok(d)
}

/// `latency_ms`: milliseconds (50) or a range `[min, max]` with `min <= max`.
fn latency_ms(here: &Locator<'_>, latency: &Spanned<Value>) -> Result<Latency, ConfigError> {
    let format = || {
        here.error(
            &latency.span(),
            "`latency_ms` must be milliseconds (50) or a range [min, max]",
        )
    };
    let ms = |v: &Value| match v {
        Value::Integer(i) => u64::try_from(*i)
            .map_err(|_| format())
            .and_then(|ms| millis(here, latency.span(), "latency_ms", ms)),
        _ => Err(format()),
    };
    match latency.get_ref() {
        v @ Value::Integer(_) => Ok(Latency::Fixed(ms(v)?)),
        Value::Array(a) if a.len() == 2 => {
            let (min, max) = (ms(&a[0])?, ms(&a[1])?);
            if min > max {
                return Err(here.error(
                    &latency.span(),
                    format!(
                        "`latency_ms` range [{}, {}]: the minimum is more than the maximum",
                        min.as_millis(),
                        max.as_millis()
                    ),
                ));
            }
            Ok(Latency::Range { min, max })
        }
        _ => Err(format()),
    }
}

/// `[device.line]` over the model's own line.
fn line(here: &Locator<'_>, raw: &RawLine, own: LineConfig) -> Result<LineConfig, ConfigError> {
    let mut line = own;
    if let Some(baud) = &raw.baud {
        if !BAUDS.contains(baud.get_ref()) {
            return Err(here.error(
                &baud.span(),
                format!(
                    "`baud` must be from {} to {} (the rates a termios line names), not {}",
                    BAUDS.start(),
                    BAUDS.end(),
                    baud.get_ref()
                ),
            ));
        }
        line.baud = Some(*baud.get_ref());
    }
    if let Some(format) = &raw.format {
        line.format = Some(format.get_ref().parse().map_err(
            |e: serialtwin_core::BadCharFormat| here.error(&format.span(), e.to_string()),
        )?);
    }
    if let Some(pace) = raw.pace {
        line.pace = pace;
    }
    if let Some(echo) = raw.echo {
        line.echo = echo;
    }
    match raw.adapter {
        Some(RawAdapter::Native) => line.adapter = Adapter::Native,
        // The model's chunk interval, if its adapter is a USB one already.
        Some(RawAdapter::Usb) if !matches!(line.adapter, Adapter::Usb { .. }) => {
            line.adapter = Adapter::default();
        }
        Some(RawAdapter::Usb) | None => {}
    }
    if let Some(ms) = &raw.chunk_ms {
        let range = Adapter::MIN_CHUNK.as_millis()..=Adapter::MAX_CHUNK.as_millis();
        let chunk = match line.adapter {
            Adapter::Usb { .. } if range.contains(&u128::from(*ms.get_ref())) => {
                Duration::from_millis(*ms.get_ref())
            }
            Adapter::Usb { .. } => {
                return Err(here.error(
                    &ms.span(),
                    format!(
                        "`chunk_ms` must be from {} to {} (a USB adapter's latency timer), not {}",
                        range.start(),
                        range.end(),
                        ms.get_ref()
                    ),
                ));
            }
            Adapter::Native => {
                return Err(here.error(
                    &ms.span(),
                    "`chunk_ms` is a USB adapter's: a native UART writes each frame whole"
                        .to_owned(),
                ));
            }
        };
        line.adapter = Adapter::Usb { chunk };
    }
    if let Some(ms) = &raw.frame_timeout_ms {
        let timeout = millis(here, ms.span(), "frame_timeout_ms", *ms.get_ref())?;
        line.frame_timeout = (!timeout.is_zero()).then_some(timeout);
    }
    if let Some(m) = raw.mismatch {
        line.mismatch = match m {
            RawMismatch::Ignore => Mismatch::Ignore,
            RawMismatch::Silence => Mismatch::Silence,
            RawMismatch::Garbage => Mismatch::Garbage,
        };
    }
    if let Some(latency) = &raw.latency_ms {
        line.latency = latency_ms(here, latency)?;
    }
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tests and second instances move the default link with `$TMPDIR`; a user who sets
    /// nothing gets the documented `/tmp/serialtwin/ttyUSB0` (the temp dir is `/tmp` then).
    #[test]
    fn the_unredirected_default_link_is_the_documented_one() {
        let config = default_config_in(std::path::Path::new("/tmp"));
        assert!(
            config.contains("link = \"/tmp/serialtwin/ttyUSB0\""),
            "{config}"
        );
        let moved = default_config_in(std::path::Path::new("/run/user/1000/t"));
        assert!(
            moved.contains("link = \"/run/user/1000/t/serialtwin/ttyUSB0\""),
            "{moved}"
        );
        assert!(!moved.contains("/tmp/serialtwin"), "{moved}");
    }

    #[test]
    fn modbus_endpoints_are_for_modbus_rtu_lines() {
        let plan = |device: &str, network: &str| {
            parse(
                "t.toml",
                &format!(
                    "[[device]]\nlink = '/tmp/x/ttyUSB0'\n{device}\n[device.network]\n{network}\n"
                ),
                None,
            )
            .map_err(|e| e.to_string())
        };
        let bus = "model = 'modbus'\n[[device.modbus.unit]]\nid = 3\n";
        let ok = plan(
            bus,
            "modbus_tcp = '0'\nrtu_tcp = '0'\ngateway_timeout_ms = 800",
        )
        .unwrap();
        let endpoints = &ok.ports[0].endpoints;
        assert_eq!(endpoints.len(), 2);
        assert_eq!(endpoints[0].kind, EndpointKind::ModbusTcp);
        assert!(endpoints[0].gateway.is_some());
        assert_eq!(endpoints[0].gateway_timeout, Duration::from_millis(800));
        assert_eq!(endpoints[1].kind, EndpointKind::RtuTcp);
        // A PI30 speaks no Modbus; nor does a Modbus line framed as ASCII speak RTU.
        for (device, key) in [
            ("model = 'pi30'", "modbus_tcp"),
            ("model = 'pi30'", "rtu_tcp"),
            (
                &format!("framing = 'modbus-ascii'\n{bus}")[..],
                "modbus_tcp",
            ),
        ] {
            let err = plan(device, &format!("{key} = '0'")).unwrap_err();
            assert!(
                err.contains(&format!("{key} is for a Modbus device")),
                "{err}"
            );
            assert!(err.contains("t.toml:"), "{err}");
        }
        for bad in [0, 60_001] {
            let err = plan(
                bus,
                &format!("modbus_tcp = '0'\ngateway_timeout_ms = {bad}"),
            )
            .unwrap_err();
            assert!(err.contains("gateway_timeout_ms is 1 to 60000"), "{err}");
        }
    }

    #[test]
    fn the_line_table_overrides_the_models_line() {
        let plan = parse(
            "t.toml",
            "[[device]]\nmodel = 'pi30'\nlink = '/tmp/x/ttyUSB0'\n\
             [device.line]\nbaud = 9600\nformat = '7E1'\npace = false\nmismatch = 'silence'\nlatency_ms = [5, 9]\n\
             frame_timeout_ms = 250\necho = true\n",
            None,
        )
        .unwrap();
        let line = plan.ports[0].line.unwrap();
        assert_eq!(line.baud, Some(9600));
        assert_eq!(line.format.map(|f| f.to_string()).as_deref(), Some("7E1"));
        assert!(!line.pace);
        assert!(line.echo);
        assert_eq!(line.mismatch, Mismatch::Silence);
        assert_eq!(line.frame_timeout, Some(Duration::from_millis(250)));
        assert_eq!(
            line.latency,
            Latency::Range {
                min: Duration::from_millis(5),
                max: Duration::from_millis(9)
            }
        );
    }

    #[test]
    fn the_line_says_how_paced_output_reaches_the_client() {
        let line_of = |table: &str| {
            parse(
                "t.toml",
                &format!(
                    "[[device]]\nmodel = 'pi30'\nlink = '/tmp/x/ttyUSB0'\n[device.line]\n{table}"
                ),
                None,
            )
            .map(|plan| plan.ports[0].line.unwrap().adapter)
            .map_err(|e| e.to_string())
        };
        // The PI30's own: an untuned FTDI adapter.
        assert_eq!(
            line_of("").unwrap(),
            Adapter::Usb {
                chunk: Duration::from_millis(16)
            }
        );
        assert_eq!(
            line_of("chunk_ms = 1\n").unwrap(),
            Adapter::Usb {
                chunk: Duration::from_millis(1)
            }
        );
        assert_eq!(line_of("adapter = 'native'\n").unwrap(), Adapter::Native);
        assert_eq!(
            line_of("adapter = 'usb'\nchunk_ms = 255\n").unwrap(),
            Adapter::Usb {
                chunk: Duration::from_millis(255)
            }
        );
        for (table, message) in [
            ("chunk_ms = 0\n", "`chunk_ms` must be from 1 to 255"),
            ("chunk_ms = 256\n", "`chunk_ms` must be from 1 to 255"),
            (
                "adapter = 'native'\nchunk_ms = 4\n",
                "`chunk_ms` is a USB adapter's",
            ),
            ("adapter = 'pci'\n", "unknown variant `pci`"),
        ] {
            let e = line_of(table).unwrap_err();
            assert!(e.contains(message), "{table}: {e}");
        }
    }

    #[test]
    fn copies_get_their_seeds_and_the_ports_framing() {
        let plan = parse(
            "t.toml",
            "[[device]]\nmodel = 'scripted'\ncount = 3\nseed = 10\nlink = '/tmp/x/ttyUSB{n}'\n\
             framing = 'lf'\nscript = {}\n",
            None,
        )
        .unwrap();
        let seeds: Vec<u64> = plan.ports.iter().map(|p| p.seed).collect();
        assert_eq!(seeds, [10, 11, 12]);
        assert!(plan.ports.iter().all(|p| p.framing.name() == "lf"));
    }

    /// A model's table called like a `[[device]]` key would be taken from the device.
    #[test]
    fn no_model_table_is_called_like_a_device_key() {
        let e = toml::from_str::<RawDevice>("model = 'x'\nno_such_key = 1\n").unwrap_err();
        let expected = e
            .message()
            .split("expected one of")
            .nth(1)
            .unwrap()
            .to_owned();
        assert!(expected.contains("`parallel`"), "{expected}");
        for model in serialtwin_devices::MODELS {
            assert!(
                !expected.contains(&format!("`{}`", model.table)),
                "{}",
                model.table
            );
        }
    }
}
