//! The fleet config file: TOML in, a validated [`Plan`] out, or an error at the offending value.
//!
//! Parsing happens in two stages so that every error can name the line and column of the value
//! that is wrong: serde (with `deny_unknown_fields`) reads the file into raw tables whose
//! checkable values keep their spans, then [`plan`] checks what serde cannot (models, framings,
//! templates, port names, duplicate links, regexes in scripts) and builds the devices. Nothing
//! is opened or created here: `check` and `run` share all of it.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use serialtwin_core::control::{Command as ControlCommand, Target, TimelineStep, parse_duration};
use serialtwin_core::{
    Device, Faults, Framing, Latency, LineConfig, Mismatch, SimClock, check_port_name,
};
use serialtwin_devices::pi30::{ConfigError as Pi30Error, Pi30, Pi30Config};
use serialtwin_devices::scripted::{Script, ScriptConfig, Scripted};
use toml::{Spanned, Value};

use crate::clients;
use crate::models::{self, AnyDevice};

/// The config `serialtwin run` uses without one: a PI30 inverter at the documented default link
/// (`/tmp` in it stands for the system's temp directory, see [`default_config`]).
const DEFAULT_CONFIG: &str = include_str!("default.toml");

/// The default config, its link in the system's temp directory: `/tmp/serialtwin/ttyUSB0`,
/// or under `$TMPDIR` where that is set (as the default control socket is), so that a second
/// instance, a test suite above all, can have its own without touching a user's.
pub(crate) fn default_config() -> String {
    let dir = std::env::temp_dir().join("serialtwin/");
    DEFAULT_CONFIG.replace("/tmp/serialtwin/", &dir.to_string_lossy())
}

/// What the default config is called in messages.
pub(crate) const DEFAULT_NAME: &str = "<default config>";

/// The most copies one `[[device]]` may ask for (far beyond any pty limit).
const MAX_COUNT: u32 = 65_536;

/// A config that cannot be used: where, and why (one line).
#[derive(Debug)]
pub(crate) struct ConfigError {
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
            Some((line, col)) => write!(f, "{}:{line}:{col}: {}", self.file, self.reason),
            None => write!(f, "{}: {}", self.file, self.reason),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Something in a valid config that will probably not do what was meant.
#[derive(Debug)]
pub(crate) struct Warning(String);

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A validated fleet, ready to spawn.
#[derive(Debug)]
pub(crate) struct Plan {
    /// Every port, in config order.
    pub(crate) ports: Vec<PortPlan>,
    /// The simulated clock all devices see.
    pub(crate) clock: SimClock,
    /// Things worth a warning.
    pub(crate) warnings: Vec<Warning>,
    /// The scenario: control commands at times from the start.
    pub(crate) timeline: Vec<TimelineStep>,
}

/// One port to start.
#[derive(Debug)]
pub(crate) struct PortPlan {
    pub(crate) name: String,
    pub(crate) model: &'static str,
    pub(crate) link: Option<PathBuf>,
    pub(crate) owner: Option<(u32, u32)>,
    pub(crate) mode: Option<u32>,
    pub(crate) framing: Option<Framing>,
    pub(crate) line: Option<LineConfig>,
    pub(crate) seed: u64,
    pub(crate) faults: Faults,
    pub(crate) device: AnyDevice,
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

/// One `[[device]]`.
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
    /// Fault rules in the control syntax without the port: `"drop next=1 cmd=QPIGS"`.
    #[serde(default)]
    faults: Vec<Spanned<String>>,
    pi30: Option<Spanned<Pi30Config>>,
    script: Option<Spanned<ScriptConfig>>,
}

/// `[device.line]`: the wire, overriding the model's own.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLine {
    baud: Option<u32>,
    format: Option<Spanned<String>>,
    pace: Option<bool>,
    mismatch: Option<RawMismatch>,
    latency_ms: Option<Spanned<Value>>,
    /// Milliseconds after which a partial request is forgotten; 0: never.
    frame_timeout_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawMismatch {
    Ignore,
    Silence,
    Garbage,
}

/// Read and validate the config at `path`.
pub(crate) fn load(path: &Path) -> Result<Plan, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: file.clone(),
        at: None,
        reason: format!("cannot read: {e}"),
    })?;
    parse(&file, &text)
}

/// Validate `text`, the config called `file`.
pub(crate) fn parse(file: &str, text: &str) -> Result<Plan, ConfigError> {
    let here = Locator { file, text };
    let raw: RawFleet = toml::from_str(text).map_err(|e| {
        let reason = e.message().trim().replace('\n', "; ");
        match e.span() {
            Some(span) => here.error(&span, reason),
            None => here.error(&(0..0), reason),
        }
    })?;
    plan(&here, &raw)
}

/// Turns byte offsets into `file:line:column`.
struct Locator<'a> {
    file: &'a str,
    text: &'a str,
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

    /// The span of the value at `path` inside `[[device]]` number `device`, if it is written.
    fn value_span(&self, device: usize, path: &[&str]) -> Option<Range<usize>> {
        let doc = toml::de::DeTable::parse(self.text).ok()?;
        let root = toml::de::DeValue::Table(doc.into_inner());
        let mut value = root.get("device")?.get_ref().get(device)?;
        for key in path {
            value = value.get_ref().get(*key)?;
        }
        Some(value.span())
    }

    fn warning(&self, span: &Range<usize>, message: &str) -> Warning {
        let (line, col) = self.position(span.start);
        Warning(format!("{}:{line}:{col}: {message}", self.file))
    }
}

fn plan(here: &Locator<'_>, raw: &RawFleet) -> Result<Plan, ConfigError> {
    if raw.device.is_empty() {
        return Err(here.error(&(0..0), "no devices: add a [[device]] table"));
    }
    let clock = clock(here, raw.clock.as_ref())?;
    let mut ports = Vec::new();
    let mut warnings = Vec::new();
    // Where each link and name was claimed, for duplicates.
    let mut links: HashMap<PathBuf, (String, usize)> = HashMap::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    for (index, device) in raw.device.iter().enumerate() {
        let first_port = ports.len();
        device_ports(here, index, device, &mut ports)?;
        let d = device.get_ref();
        let rules = faults(here, &d.faults)?;
        for port in &mut ports[first_port..] {
            port.faults = rules.clone();
        }
        for port in &ports[first_port..] {
            let (line, _) = here.position(device.span().start);
            if let Some(link) = &port.link {
                let span = d.link.as_ref().map_or(device.span(), Spanned::span);
                if let Some((other, other_line)) = links.get(link) {
                    return Err(here.error(
                        &span,
                        format!(
                            "duplicate link {}: port `{other}` (line {other_line}) has it too",
                            link.display()
                        ),
                    ));
                }
                links.insert(link.clone(), (port.name.clone(), line));
                if let Some(message) = clients::warning(&link.to_string_lossy(), port.model) {
                    warnings.push(here.warning(&span, &message));
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
    let timeline = timeline(here, &raw.timeline, &names)?;
    Ok(Plan {
        ports,
        clock,
        warnings,
        timeline,
    })
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
            let target = match &command {
                ControlCommand::Fault(t, _)
                | ControlCommand::Clear(t)
                | ControlCommand::Unplug(t, _)
                | ControlCommand::Set(t, _, _) => t.clone(),
                ControlCommand::Send(port, _) => Target::Port(port.clone()),
                ControlCommand::List => Target::All,
            };
            if let Target::Port(port) = &target
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
        Some(v) => match v.get_ref() {
            Value::Integer(secs) if *secs >= 0 => {
                SystemTime::UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
            }
            Value::Datetime(dt) => {
                let ts: jiff::Timestamp = dt.to_string().parse().map_err(|e| {
                    here.error(
                        &v.span(),
                        format!("`start` needs a date, a time and an offset: {e}"),
                    )
                })?;
                SystemTime::try_from(ts).map_err(|e| here.error(&v.span(), e.to_string()))?
            }
            _ => {
                return Err(here.error(
                    &v.span(),
                    "`start` must be a date-time (2026-06-21T12:00:00Z) or Unix seconds",
                ));
            }
        },
    };
    Ok(SimClock::new(start, speed))
}

/// The ports of one `[[device]]`, appended to `ports`.
fn device_ports(
    here: &Locator<'_>,
    index: usize,
    device: &Spanned<RawDevice>,
    ports: &mut Vec<PortPlan>,
) -> Result<(), ConfigError> {
    let d = device.get_ref();
    let model_name = d.model.get_ref();
    let Some(model) = models::find(model_name) else {
        let known: Vec<_> = models::MODELS.iter().map(|m| m.name).collect();
        return Err(here.error(
            &d.model.span(),
            format!(
                "unknown model `{model_name}` (known: {}; see `serialtwin models`)",
                known.join(", ")
            ),
        ));
    };
    // A settings table of another model is a mistake, not something to ignore.
    for (table, span) in [
        ("pi30", d.pi30.as_ref().map(Spanned::span)),
        ("script", d.script.as_ref().map(Spanned::span)),
    ] {
        if let Some(span) = span
            && table != model.table
        {
            return Err(here.error(
                &span,
                format!(
                    "[device.{table}] does not apply to model `{}` (its table is [device.{}])",
                    model.name, model.table
                ),
            ));
        }
    }

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
    let framing = match &d.framing {
        None => None,
        Some(f) => Some(
            serialtwin_devices::framing_by_name(f.get_ref()).ok_or_else(|| {
                let mut known: Vec<&str> = Framing::builtin_names().to_vec();
                known.extend_from_slice(serialtwin_devices::framing_names());
                here.error(
                    &f.span(),
                    format!(
                        "unknown framing `{}` (known: {})",
                        f.get_ref(),
                        known.join(", ")
                    ),
                )
            })?,
        ),
    };
    let owner = d.owner.as_ref().map(|o| owner(here, o)).transpose()?;
    let mode = d.mode.as_ref().map(|m| mode(here, m)).transpose()?;
    let mut devices = devices(here, index, device, model.name, count)?;
    let line_config = d
        .line
        .as_ref()
        .map(|raw| line(here, raw, devices[0].line()))
        .transpose()?;

    for (i, device) in devices.drain(..).enumerate() {
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
            model: model.name,
            link,
            owner,
            mode,
            framing: framing.clone(),
            line: line_config,
            seed: port_seed(d, usize::try_from(index).unwrap_or(usize::MAX)),
            faults: Faults::new(),
            device,
        });
    }
    Ok(())
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

/// The seed of copy `i` of a `[[device]]`: its `seed` (default 0) plus `i`.
fn port_seed(d: &RawDevice, i: usize) -> u64 {
    d.seed
        .unwrap_or(0)
        .wrapping_add(u64::try_from(i).unwrap_or(u64::MAX))
}

/// The model's devices, one per copy.
fn devices(
    here: &Locator<'_>,
    index: usize,
    device: &Spanned<RawDevice>,
    model: &str,
    count: u32,
) -> Result<Vec<AnyDevice>, ConfigError> {
    let d = device.get_ref();
    let n = usize::try_from(count).unwrap_or(usize::MAX);
    match model {
        "pi30" => {
            let config = d
                .pi30
                .as_ref()
                .map(|c| c.get_ref().clone())
                .unwrap_or_default();
            let table = d.pi30.as_ref().map_or(d.model.span(), Spanned::span);
            // Point at the value the model rejects when it is written, else at the table.
            let at = |e: &Pi30Error| {
                let key: &[&str] = match e {
                    Pi30Error::BatteryVoltage(_) => &["pi30", "battery", "nominal_voltage"],
                    Pi30Error::FieldCount {
                        command: "QPIGS", ..
                    } => &["pi30", "qpigs_fields"],
                    Pi30Error::FieldCount { .. } => &["pi30", "qpiri_fields"],
                    Pi30Error::Text(name) => &["pi30", name],
                    Pi30Error::GroupSize { .. } => &[],
                };
                let span = Some(key)
                    .filter(|k| !k.is_empty())
                    .and_then(|k| here.value_span(index, k))
                    .unwrap_or_else(|| table.clone());
                here.error(&span, e.to_string())
            };
            if let Some(parallel) = &d.parallel
                && *parallel.get_ref()
            {
                let mut config = config;
                config.plant.seed = config.plant.seed.wrapping_add(port_seed(d, 0));
                let group = Pi30::group(config, n).map_err(|e| match e {
                    Pi30Error::GroupSize { .. } => here.error(&parallel.span(), e.to_string()),
                    e => at(&e),
                })?;
                return Ok(group.into_iter().map(AnyDevice::Pi30).collect());
            }
            // Each copy's plant gets the port's seed on top of the configured one, so copies
            // (and ports given their own `seed`) do not share one load and cloud pattern.
            (0..n)
                .map(|i| {
                    let mut config = config.clone();
                    config.plant.seed = config.plant.seed.wrapping_add(port_seed(d, i));
                    Pi30::new(config).map(AnyDevice::Pi30).map_err(|e| at(&e))
                })
                .collect()
        }
        "scripted" => {
            if let Some(parallel) = &d.parallel {
                return Err(here.error(&parallel.span(), "`parallel` applies to model `pi30` only"));
            }
            let Some(script) = &d.script else {
                return Err(here.error(
                    &device.span(),
                    "model `scripted` needs its dialogue in a [device.script] table",
                ));
            };
            let compiled = Script::compile(script.get_ref()).map_err(|e| {
                let span = e.span.clone().unwrap_or_else(|| script.span());
                here.error(&span, e.to_string())
            })?;
            let compiled = Arc::new(compiled);
            Ok((0..n)
                .map(|_| AnyDevice::Scripted(Scripted::new(Arc::clone(&compiled))))
                .collect())
        }
        other => unreachable!("model `{other}` is listed but not built"),
    }
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

/// `[device.line]` over the model's own line.
fn line(here: &Locator<'_>, raw: &RawLine, own: LineConfig) -> Result<LineConfig, ConfigError> {
    let mut line = own;
    if let Some(baud) = raw.baud {
        line.baud = Some(baud);
    }
    if let Some(format) = &raw.format {
        line.format = Some(format.get_ref().parse().map_err(
            |e: serialtwin_core::BadCharFormat| here.error(&format.span(), e.to_string()),
        )?);
    }
    if let Some(pace) = raw.pace {
        line.pace = pace;
    }
    if let Some(ms) = raw.frame_timeout_ms {
        line.frame_timeout = (ms > 0).then(|| Duration::from_millis(ms));
    }
    if let Some(m) = raw.mismatch {
        line.mismatch = match m {
            RawMismatch::Ignore => Mismatch::Ignore,
            RawMismatch::Silence => Mismatch::Silence,
            RawMismatch::Garbage => Mismatch::Garbage,
        };
    }
    if let Some(latency) = &raw.latency_ms {
        let ms = |v: &Value| match v {
            Value::Integer(i) => u64::try_from(*i).ok().map(Duration::from_millis),
            _ => None,
        };
        line.latency = match latency.get_ref() {
            v @ Value::Integer(_) => ms(v).map(Latency::Fixed),
            Value::Array(a) if a.len() == 2 => match (ms(&a[0]), ms(&a[1])) {
                (Some(min), Some(max)) if min <= max => Some(Latency::Range { min, max }),
                _ => None,
            },
            _ => None,
        }
        .ok_or_else(|| {
            here.error(
                &latency.span(),
                "`latency_ms` must be milliseconds (50) or a range [min, max]",
            )
        })?;
    }
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plant_seeds(plan: &Plan) -> Vec<(u64, u64)> {
        plan.ports
            .iter()
            .map(|p| match &p.device {
                AnyDevice::Pi30(d) => (p.seed, d.config().plant.seed),
                AnyDevice::Scripted(_) => panic!("not a pi30"),
            })
            .collect()
    }

    #[test]
    fn copies_get_their_own_seed_and_their_own_plant() {
        let plan = parse(
            "t.toml",
            "[[device]]\nmodel = 'pi30'\ncount = 3\nseed = 10\nlink = '/tmp/x/ttyUSB{n}'\n\
             [device.pi30.plant]\nseed = 100\n",
        )
        .unwrap();
        assert_eq!(plant_seeds(&plan), [(10, 110), (11, 111), (12, 112)]);
        // A parallel group shares one plant: it gets the first copy's seed.
        let plan = parse(
            "t.toml",
            "[[device]]\nmodel = 'pi30'\ncount = 2\nparallel = true\nlink = '/tmp/x/ttyUSB{n}'\n",
        )
        .unwrap();
        assert_eq!(plant_seeds(&plan), [(0, 0), (1, 0)]);
    }

    #[test]
    fn the_line_table_overrides_the_models_line() {
        let plan = parse(
            "t.toml",
            "[[device]]\nmodel = 'pi30'\nlink = '/tmp/x/ttyUSB0'\n\
             [device.line]\nbaud = 9600\nformat = '7E1'\npace = false\nmismatch = 'silence'\nlatency_ms = [5, 9]\n\
             frame_timeout_ms = 250\n",
        )
        .unwrap();
        let line = plan.ports[0].line.unwrap();
        assert_eq!(line.baud, Some(9600));
        assert_eq!(line.format.map(|f| f.to_string()).as_deref(), Some("7E1"));
        assert!(!line.pace);
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
}
