//! The model registry: what the `serialtwin` command knows about each model, declared by the
//! model itself.
//!
//! A model is one folder of this crate exporting a [`Model`] called `MODEL`, plus one line in
//! the `models!` list of `lib.rs` (which declares the module and puts its `MODEL` in
//! [`MODELS`](crate::MODELS)). Everything the command line does with a model goes through its
//! entry, so no code outside the model's folder names it:
//!
//! - `serialtwin models` lists [`Model::name`] and [`Model::summary`], and for one model its
//!   table, [`Model::framings`], [`Model::settable`] keys and [`Model::example`];
//! - the config parser hands a `[[device]]`'s `[device.<table>]` ([`Model::table`]) to
//!   [`Model::build`], which makes one device per copy (or a group of them), and asks
//!   [`Model::lint`] about each port;
//! - `framing = "..."` names are looked up with [`framing`] (the core's line framings and
//!   every model's own);
//! - `serialtwin ctl --help` lists every model's [`Model::settable`] keys.
//!
//! Errors keep the position of the offending value: a [`Table`] carries the byte spans of
//! the config text it came from, and a [`BuildError`] points into that text, so the command
//! line can say `fleet.toml:12:9: battery nominal voltage must be 12, 24 or 48, not 36`.
//! See `docs/models.md` for a walkthrough of adding a model.

use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use serde_spanned::Spanned;
use serialtwin_core::net::Gateway;
use serialtwin_core::{
    AsyncDevice, Awaiting, BoxDevice, Device, Direction, Framing, LineConfig, Settable, Terminator,
};
use toml::de::{DeTable, DeValue, ValueDeserializer};

/// One model: its name, what it is, its config table, and how to build its devices.
#[derive(Debug)]
pub struct Model {
    /// The `model` key of a `[[device]]`: one word, unique in the registry.
    pub name: &'static str,
    /// One line on what it emulates, for `serialtwin models`.
    pub summary: &'static str,
    /// Its settings table: `[device.<table>]` in a fleet config.
    pub table: &'static str,
    /// A complete `[[device]]` using it, with its table's keys explained in comments: what
    /// `serialtwin models <name>` shows, so it must load (the model's tests build it).
    pub example: &'static str,
    /// The framings this model brings, selectable by name anywhere a framing is named.
    pub framings: &'static [NamedFraming],
    /// Whether `parallel = true` makes a `[[device]]`'s copies one group (units that share
    /// state) rather than independent devices. The config refuses `parallel` for a model
    /// without groups, so its `build` never sees it.
    pub groups: bool,
    /// The fastest `[clock] speed` its devices follow (`f64::INFINITY`: any). A model whose
    /// state is integrated over simulated time (a PI30's plant) bounds its work per real
    /// second, and a faster clock would outrun it: `check` refuses one.
    pub max_clock_speed: f64,
    /// The keys `set <port> <key> <value>` takes, with their help: the device's own
    /// [`Device::settable`] where the keys are fixed (built from a default device), a
    /// description where they depend on the config (a script's state values).
    pub settable: fn() -> Vec<Settable>,
    /// Warnings about a port that loads but will probably not do what was meant (a link path
    /// the model's usual client misreads).
    pub lint: fn(&Lint<'_>) -> Vec<Finding>,
    /// The devices of one `[[device]]`: `count` of them, one per port, in order.
    pub build: fn(&Build<'_>) -> Result<Vec<Built>, BuildError>,
    /// The real Modbus devices this model also lends a generic bus, as units a
    /// `[[device.modbus.unit]]` names (`device = "sdm630"`): several makes on one RS-485 line,
    /// while the generic model names none of them. Empty for most models.
    pub units: &'static [BusUnit],
}

/// A real Modbus device a generic bus may carry as one of its units ([`Model::units`]).
#[derive(Debug)]
pub struct BusUnit {
    /// What `device = "..."` calls it: one word, unique in the registry.
    pub name: &'static str,
    /// One line on what it is, for messages and `serialtwin models`.
    pub summary: &'static str,
    /// The line it leaves the factory with: a bus's line when its units agree.
    pub line: fn() -> LineConfig,
    /// The unit at address `id` (1–247), its plant seeded with `seed`.
    pub build: fn(id: u8, seed: u64) -> crate::modbus::slave::Slave,
}

/// The real Modbus device called `name` ([`Model::units`]), with the model lending it.
#[must_use]
pub fn bus_unit(name: &str) -> Option<&'static BusUnit> {
    crate::MODELS
        .iter()
        .flat_map(|m| m.units)
        .find(|u| u.name == name)
}

/// Every name [`bus_unit`] knows, for messages.
#[must_use]
pub fn bus_unit_names() -> Vec<&'static str> {
    crate::MODELS
        .iter()
        .flat_map(|m| m.units)
        .map(|u| u.name)
        .collect()
}

/// A framing a model brings, by name.
#[derive(Debug)]
pub struct NamedFraming {
    /// What `framing = "..."` (or `--framing`) calls it.
    pub name: &'static str,
    /// One line on what it does.
    pub summary: &'static str,
    /// A fresh [`Framing`] of this name.
    pub make: fn() -> Framing,
    /// What a device speaking this protocol answers a command it does not know, as the frame
    /// it pushes (the framing adds checksum and terminator): `(NAK` for PI30. `None`: nothing
    /// (silence), or nothing the protocol says. A device learned from a capture
    /// (`serialtwin learn`) answers unknown commands with it, as the recorded one would.
    pub unknown_command: Option<&'static [u8]>,
    /// One short line on what a frame of this protocol says, shown next to its bytes by
    /// `--trace` (`unit 1 read holding 0x006B ×3` for Modbus). `None`: the bytes speak for
    /// themselves (PI30's text commands).
    pub describe: Option<Describe>,
    /// How `serialtwin learn` turns a conversation of this protocol into a config: `None`,
    /// a scripted device answering each recorded request as recorded ([`crate::learn`]);
    /// Modbus learns a register map instead, which answers any read of what was seen.
    pub learn: Option<Learn>,
}

/// Writes the fleet config (TOML) of a device answering like a recorded conversation
/// ([`NamedFraming::learn`]).
pub type Learn = fn(&crate::replay::Conversation, &Framing, &crate::learn::LearnOptions) -> String;

/// Describes one frame in one short line ([`NamedFraming::describe`]), from the frame as an
/// observer sees it ([`Seen::Frame`](serialtwin_core::Seen::Frame)): a request
/// ([`Direction::Rx`]) as the framer decoded it, a reply ([`Direction::Tx`]) as it went on the
/// wire, checksum and terminator included. `None`: nothing to say about this one.
///
/// Any bytes may come (a corrupted frame, a client speaking another protocol): a describer
/// says what it can and never panics.
pub type Describe = fn(&[u8], Direction) -> Option<String>;

/// No warnings: the [`Model::lint`] of a model with nothing to warn about.
#[must_use]
pub fn no_lint(_: &Lint<'_>) -> Vec<Finding> {
    Vec::new()
}

/// No run-time keys: the [`Model::settable`] of a model without any.
#[must_use]
pub fn nothing_settable() -> Vec<Settable> {
    Vec::new()
}

/// What [`Model::lint`] looks at: one port of a `[[device]]`.
#[derive(Debug)]
pub struct Lint<'a> {
    /// The port's link, if it has one.
    pub link: Option<&'a Path>,
    /// The model's table.
    pub table: &'a Table<'a>,
}

/// One warning from [`Model::lint`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// What will probably go wrong, and what to do instead (one line).
    pub message: String,
    /// Where in the config text; `None`: at the port's link.
    pub at: Option<Range<usize>>,
}

/// What [`Model::build`] gets: the model's table and what the `[[device]]` around it says.
#[derive(Debug)]
pub struct Build<'a> {
    /// `[device.<table>]`, possibly absent.
    pub table: Table<'a>,
    /// How many devices to make (`count`, at least 1).
    pub count: usize,
    /// `parallel`, for a model with [`Model::groups`]; `None` when not written.
    pub parallel: Option<Spanned<bool>>,
    /// The `[[device]]`'s `seed` (0 if not written); copy `i` gets [`Build::port_seed`].
    pub seed: u64,
    /// The `[[device]]`'s `framing`, if written: the ports' framing, over the model's own.
    pub framing: Option<Framing>,
    /// The directory of the config file, which relative paths in the table are read from
    /// (`None`: the current directory, for a config that is not a file).
    pub base_dir: Option<&'a Path>,
    /// Where the `[[device]]` is in the config text: errors about the device as a whole.
    pub at: Range<usize>,
    /// Whether the `[[device]]` wrote a `[device.line]`, which overrides the model's line: a
    /// bus whose units leave the factory with different lines needs one to say which.
    pub line_written: bool,
    /// The `baud` the `[device.line]` writes (one the config accepts), with its place in the
    /// config text: the speed the line will really have, over the model's own. A model that
    /// checks what its line can carry (a GPS's burst within its period) checks it at this one.
    pub line_baud: Option<Spanned<u32>>,
}

impl<'a> Build<'a> {
    /// One device from `table`, and nothing else said (for tests and examples).
    #[must_use]
    pub fn new(table: Table<'a>) -> Self {
        Self {
            table,
            count: 1,
            parallel: None,
            seed: 0,
            framing: None,
            base_dir: None,
            at: 0..0,
            line_written: false,
            line_baud: None,
        }
    }

    /// The seed of copy `i`: the `[[device]]`'s seed plus `i`, so that copies differ.
    #[must_use]
    pub fn port_seed(&self, i: usize) -> u64 {
        self.seed.wrapping_add(u64::try_from(i).unwrap_or(u64::MAX))
    }

    /// Whether `parallel = true` was written.
    #[must_use]
    pub fn is_parallel(&self) -> bool {
        self.parallel.as_ref().is_some_and(|p| *p.get_ref())
    }

    /// `path` as written in the table, read from the config file's directory when relative.
    #[must_use]
    pub fn resolve(&self, path: &Path) -> PathBuf {
        match self.base_dir {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path.to_owned(),
        }
    }

    /// An error about the value at `path` in the table: at that value when it is written,
    /// else at the table, else at the `[[device]]`.
    #[must_use]
    pub fn error(&self, path: &[&str], reason: impl Into<String>) -> BuildError {
        let at = self
            .table
            .span_of(path)
            .or_else(|| self.table.span())
            .unwrap_or_else(|| self.at.clone());
        BuildError::at(at, reason)
    }

    /// An error about the `[[device]]` as a whole.
    #[must_use]
    pub fn device_error(&self, reason: impl Into<String>) -> BuildError {
        BuildError::at(self.at.clone(), reason)
    }
}

/// One device [`Model::build`] made, with what the command line needs to know about it
/// before it is boxed (the config's `[device.line]` overrides the model's own line).
#[derive(Debug)]
pub struct Built {
    /// The device, boxed, so that one fleet runs every model.
    pub device: BoxDevice,
    /// Its framing ([`Device::framing`]).
    pub framing: Framing,
    /// Its line ([`Device::line`]).
    pub line: LineConfig,
    /// What a `modbus_tcp` endpoint in front of it translates to its line (a Modbus RTU
    /// device's gateway); `None`: it has no such endpoint, nor an `rtu_tcp` one.
    pub gateway: Option<Arc<dyn Gateway>>,
    /// A raw TCP address the device names for itself, and the span in the config that names
    /// it (a pyvisa-sim `TCPIP::host::port::SOCKET` resource): the config gives its port a
    /// `tcp` endpoint there. `None`: the port's endpoints are the config's alone.
    pub listen: Option<(SocketAddr, Range<usize>)>,
}

impl Built {
    /// A device whose answers never wait.
    pub fn new<D: Device>(device: D) -> Self {
        Self {
            framing: device.framing(),
            line: device.line(),
            gateway: None,
            listen: None,
            device: BoxDevice::new(device),
        }
    }

    /// A device whose answers wait ([`AsyncDevice`], served as [`Awaiting`]).
    pub fn awaiting<D: AsyncDevice>(device: D) -> Self {
        Self {
            framing: device.framing(),
            line: device.line(),
            gateway: None,
            listen: None,
            device: BoxDevice::new(Awaiting(device)),
        }
    }
}

/// Why a model cannot build its devices from its table: one line, and where.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct BuildError {
    /// The byte range of the offending value in the config text, when known.
    pub at: Option<Range<usize>>,
    /// Why (one line).
    pub reason: String,
}

impl BuildError {
    /// An error at `at`.
    pub fn at(at: Range<usize>, reason: impl Into<String>) -> Self {
        Self {
            at: Some(at),
            reason: reason.into(),
        }
    }

    /// From a TOML error, keeping its position.
    fn from_toml(e: &toml::de::Error) -> Self {
        Self {
            at: e.span(),
            reason: e.message().trim().replace('\n', "; "),
        }
    }
}

/// A model's table in a fleet config (`[device.<table>]`), with the position of every value in
/// the config text it came from.
#[derive(Clone, Debug, Default)]
pub struct Table<'a> {
    value: Option<Spanned<DeValue<'a>>>,
}

impl<'a> Table<'a> {
    /// No table: the `[[device]]` did not write one.
    #[must_use]
    pub fn absent() -> Self {
        Self::default()
    }

    /// The table parsed out of a config text (spans are offsets into that text).
    #[must_use]
    pub fn new(value: Spanned<DeValue<'a>>) -> Self {
        Self { value: Some(value) }
    }

    /// The table written on its own as TOML: for tests and examples.
    ///
    /// # Errors
    /// TOML that does not parse.
    pub fn parse(text: &'a str) -> Result<Self, BuildError> {
        let table = DeTable::parse(text).map_err(|e| BuildError::from_toml(&e))?;
        // The whole text is the table (a document's own span is empty).
        Ok(Self::new(Spanned::new(
            0..text.len(),
            DeValue::Table(table.into_inner()),
        )))
    }

    /// Whether the `[[device]]` wrote the table.
    #[must_use]
    pub fn is_present(&self) -> bool {
        self.value.is_some()
    }

    /// Where the table is.
    #[must_use]
    pub fn span(&self) -> Option<Range<usize>> {
        self.value.as_ref().map(Spanned::span)
    }

    /// Where the value at `path` (keys from the table down) is, if it is written.
    #[must_use]
    pub fn span_of(&self, path: &[&str]) -> Option<Range<usize>> {
        let mut value = self.value.as_ref()?;
        for key in path {
            value = value.get_ref().get(*key)?;
        }
        Some(value.span())
    }

    /// The table as `T` (serde), or `None` if it is absent. Spans inside `T` (fields of type
    /// [`Spanned`]) are offsets into the config text.
    ///
    /// # Errors
    /// What serde says, at the offending value.
    pub fn deserialize<T: Deserialize<'a>>(&self) -> Result<Option<T>, BuildError> {
        let Some(value) = &self.value else {
            return Ok(None);
        };
        let at = value.span();
        T::deserialize(ValueDeserializer::from(value.clone()))
            .map(Some)
            .map_err(|e| {
                let mut error = BuildError::from_toml(&e);
                error.at.get_or_insert(at);
                error
            })
    }
}

/// The model called `name`.
#[must_use]
pub fn find(name: &str) -> Option<&'static Model> {
    crate::MODELS.iter().copied().find(|m| m.name == name)
}

/// The model whose table is called `table`.
#[must_use]
pub fn by_table(table: &str) -> Option<&'static Model> {
    crate::MODELS.iter().copied().find(|m| m.table == table)
}

/// A framing name nobody knows.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown framing `{name}` (known: {})", framing_names().join(", "))]
pub struct UnknownFraming {
    /// The name asked for.
    pub name: String,
}

/// The framing called `name`: the core's line framings (`crlf`, `cr`, `lf`), then every
/// model's own.
///
/// # Errors
/// [`UnknownFraming`], which lists the known names.
pub fn framing(name: &str) -> Result<Framing, UnknownFraming> {
    Framing::by_name(name)
        .or_else(|| {
            crate::MODELS
                .iter()
                .flat_map(|m| m.framings)
                .find(|f| f.name == name)
                .map(|f| (f.make)())
        })
        .ok_or_else(|| UnknownFraming { name: name.into() })
}

/// What the protocol of the framing called `name` answers a command it does not know
/// ([`NamedFraming::unknown_command`]); `None` for the core's line framings, which belong to no
/// protocol, and for names nobody knows.
#[must_use]
pub fn unknown_command(name: &str) -> Option<&'static [u8]> {
    crate::MODELS
        .iter()
        .flat_map(|m| m.framings)
        .find(|f| f.name == name)
        .and_then(|f| f.unknown_command)
}

/// How the protocol of the framing called `name` describes its frames
/// ([`NamedFraming::describe`]); `None` for the core's line framings, for framings that do not,
/// and for names nobody knows.
#[must_use]
pub fn describer(name: &str) -> Option<Describe> {
    crate::MODELS
        .iter()
        .flat_map(|m| m.framings)
        .find(|f| f.name == name)
        .and_then(|f| f.describe)
}

/// How a conversation framed by the framing called `name` is learned
/// ([`NamedFraming::learn`]); `None`: as a scripted device.
#[must_use]
pub fn learner(name: &str) -> Option<Learn> {
    crate::MODELS
        .iter()
        .flat_map(|m| m.framings)
        .find(|f| f.name == name)
        .and_then(|f| f.learn)
}

/// Every framing name [`framing`] knows, the core's first.
#[must_use]
pub fn framing_names() -> Vec<&'static str> {
    let mut names = Framing::builtin_names().to_vec();
    names.extend(
        crate::MODELS
            .iter()
            .flat_map(|m| m.framings)
            .map(|f| f.name),
    );
    names
}

/// One line on each of the core's framings, as [`NamedFraming::summary`] says a model's.
#[must_use]
pub fn builtin_framing_summary(name: &str) -> Option<&'static str> {
    Some(match Terminator::from_name(name)? {
        Terminator::CrLf => "lines ending in CR LF (a bare LF also ends a request)",
        Terminator::Cr => "lines ending in CR",
        Terminator::Lf => "lines ending in LF",
    })
}

/// Every model's name, in registry order, for messages.
#[must_use]
pub fn names() -> Vec<&'static str> {
    crate::MODELS.iter().map(|m| m.name).collect()
}

impl fmt::Display for Model {
    /// The long description `serialtwin models <name>` prints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}: {}", self.name, self.summary)?;
        writeln!(f, "\nconfig table: [device.{}]", self.table)?;
        if self.groups {
            writeln!(
                f,
                "parallel = true: a [[device]]'s copies are one group sharing their state"
            )?;
        }
        if !self.units.is_empty() {
            writeln!(f, "\nunits it lends a `modbus` bus (device = \"...\"):")?;
            for unit in self.units {
                writeln!(f, "  {:<16} {}", unit.name, unit.summary)?;
            }
        }
        if !self.framings.is_empty() {
            writeln!(f, "\nframings it brings:")?;
            for framing in self.framings {
                writeln!(f, "  {:<16} {}", framing.name, framing.summary)?;
            }
        }
        let settable = (self.settable)();
        if !settable.is_empty() {
            writeln!(
                f,
                "\nrun-time values (serialtwin ctl set <port> <key> <value>):"
            )?;
            for s in &settable {
                writeln!(f, "  {:<16} {}", s.key, s.help)?;
            }
        }
        writeln!(f, "\nexample:\n")?;
        for line in self.example.trim_end().lines() {
            if line.is_empty() {
                writeln!(f)?;
            } else {
                writeln!(f, "  {line}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn names_tables_and_framings_are_unique() {
        let mut names = HashSet::new();
        let mut tables = HashSet::new();
        let mut units = HashSet::new();
        for unit in crate::MODELS.iter().flat_map(|m| m.units) {
            assert!(units.insert(unit.name), "bus unit {} twice", unit.name);
            assert!(!unit.summary.contains('\n'), "{}: one line", unit.name);
        }
        for m in crate::MODELS {
            assert!(names.insert(m.name), "model {} twice", m.name);
            assert!(tables.insert(m.table), "table {} twice", m.table);
            assert!(!m.summary.contains('\n'), "{}: one line", m.name);
        }
        let framings = framing_names();
        let unique: HashSet<_> = framings.iter().collect();
        assert_eq!(unique.len(), framings.len(), "{framings:?}");
        for name in framings {
            assert!(framing(name).is_ok(), "{name}");
        }
        let e = framing("crlf2").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("unknown framing `crlf2` (known: crlf, cr, lf")
        );
    }

    #[test]
    fn a_framing_says_what_its_protocol_answers_an_unknown_command() {
        for name in ["pi30", "pi30-mppsolar", "pi30-reference"] {
            assert_eq!(unknown_command(name), Some(&b"(NAK"[..]), "{name}");
        }
        // Lines belong to no protocol: nothing to say, silence.
        for name in ["crlf", "cr", "lf", "nonsense"] {
            assert_eq!(unknown_command(name), None, "{name}");
        }
    }

    #[test]
    fn a_framing_may_describe_its_frames() {
        for name in ["modbus-rtu", "modbus-ascii"] {
            let describe = describer(name).unwrap_or_else(|| panic!("{name}"));
            assert_eq!(
                describe(&[0x01, 0x03, 0x00, 0x6B, 0x00, 0x03], Direction::Rx).as_deref(),
                Some("unit 1 read holding 0x006B ×3"),
                "{name}"
            );
        }
        for name in [
            "pi30",
            "pi30-mppsolar",
            "pi30-reference",
            "crlf",
            "nonsense",
        ] {
            assert!(describer(name).is_none(), "{name}");
        }
    }

    #[test]
    fn every_example_is_one_device_of_its_model() {
        for m in crate::MODELS {
            let doc = DeTable::parse(m.example)
                .unwrap_or_else(|e| panic!("{}: {e}", m.name))
                .into_inner();
            let devices = doc["device"].get_ref().as_array().expect("[[device]]");
            assert_eq!(devices.len(), 1, "{}", m.name);
            let device = devices[0].get_ref();
            assert_eq!(
                device.get("model").unwrap().get_ref().as_str(),
                Some(m.name)
            );
            assert!(device.get(m.table).is_some(), "{}: shows its table", m.name);
        }
    }

    #[test]
    fn a_table_keeps_the_position_of_its_values() {
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct T {
            #[expect(dead_code, reason = "only the error matters")]
            volts: f64,
        }
        let text = "volts = 1.5\n";
        let table = Table::parse(text).unwrap();
        assert_eq!(table.span_of(&["volts"]), Some(8..11));
        assert!(table.deserialize::<T>().unwrap().is_some());
        let text = "volts = 'x'\n";
        let e = Table::parse(text).unwrap().deserialize::<T>().unwrap_err();
        assert_eq!(e.at, Some(8..11));
        assert!(e.reason.contains("invalid type"), "{e}");
        let text = "\nvolt = 1.0\n";
        let e = Table::parse(text).unwrap().deserialize::<T>().unwrap_err();
        assert_eq!(e.at, Some(1..5));
        assert!(Table::absent().deserialize::<T>().unwrap().is_none());
        let build = Build::new(Table::parse("a = { b = 1 }").unwrap());
        assert_eq!(build.error(&["a", "b"], "no").at, Some(10..11));
        assert_eq!(build.error(&["c"], "no").at, Some(0..13));
    }
}
