//! The registry entry: `model = "modbus"`, a bus of units declared in `[device.modbus]`.

use std::collections::BTreeSet;
use std::ops::Range;
use std::time::Duration;

use serde::Deserialize;
use serde_spanned::Spanned;
use serialtwin_core::{BoxDevice, Bus, CharFormat, LineConfig, Route};

use super::data::{Encoding, Kind, Order, Pad, Value};
use super::slave::{self, Declared, EVERY_ADDRESS, Slave, route, route_every, standard_line};
use super::unit::{
    Access, Counter, Gaps, Provider, Ramp, ReadOnlyWrites, Registers, Settings, Sine, Unit, Walk,
};
use super::{ascii, pymodbus, rtu, tcp};
use crate::registry::{self, Build, BuildError, Built, Model};

/// The registry's entry for Modbus units.
pub static MODEL: Model = Model {
    name: "modbus",
    summary: "Modbus RTU units on one RS-485 line (a bus): coils, discrete inputs, holding and \
              input registers of typed values; 19,200 baud 8E1",
    table: "modbus",
    example: EXAMPLE,
    framings: &[rtu::NAMED_FRAMING, ascii::NAMED_FRAMING],
    groups: false,
    max_clock_speed: f64::INFINITY,
    settable,
    lint: registry::no_lint,
    build,
    units: &[],
};

const EXAMPLE: &str = r#"[[device]]
name = "bus"
model = "modbus"
link = "/tmp/serialtwin/ttyUSB-modbus"  # mbpoll -m rtu -b 19200 -a 1 -r 1 -c 2 /tmp/serialtwin/ttyUSB-modbus

[device.modbus]
gaps = "exception"        # an undeclared address inside a unit's range: "exception" (02) or "zero"
read_only_writes = "exception"  # a write to a read-only value: "exception" (02, the standard's),
                                # "device-failure" (04) or "ignore" (acknowledged, not written)
# Or, instead of units: a pymodbus 3.16.1 simulator device file, its map, line and unit id:
# pymodbus = "meter.json"  server = "rtu"  device = "meter"   (see examples/pymodbus.toml)

[[device.modbus.unit]]
id = 1                    # the unit's address, 1-247
# device = "sdm630"       # instead of what follows: a real device (sdm630, sdm120, tracer);
                          # units with other factory lines need a [device.line]
vendor = "serialtwin"     # read device identification (43/14); all three optional
product = "meter"
revision = "1.0"

[[device.modbus.unit.holding]]   # or [[device.modbus.unit.input]]: read-only
address = 0               # the PDU address (mbpoll -r counts from 1)
type = "f32"              # u16 (default), i16, u32, i32, u64, i64, f32, f64, string
order = "ABCD"            # a value of several registers: ABCD (default), CDAB, BADC, DCBA
value = 230.5             # a number, or text for type = "string" (with registers = N)
scale = 1.0               # register value = (value - offset) / scale
offset = 0.0
writable = true           # holding registers: default true

[[device.modbus.unit.input]]
address = 10
type = "u32"
counter = { start = 0, step = 1, every_ms = 1000 }   # or, moving with the clock:
# ramp = { start = 0.0, per_second = 1.5 }
# sine = { mean = 230.0, amplitude = 5.0, period_s = 86400.0 }
# walk = { start = 20.0, step = 0.5, every_ms = 1000, min = 10.0, max = 30.0 }  # seeded

[[device.modbus.unit.coil]]      # or [[device.modbus.unit.discrete]]: read-only
address = 0
value = true
"#;

/// What `set` takes on a port of this model: per unit, as the bus says (`<unit>.<key>`, or
/// `<port>/<unit>` in a command).
fn settable() -> Vec<serialtwin_core::Settable> {
    vec![serialtwin_core::Settable::new(
        "<unit>.<table>.<address>",
        "a declared value (`set bus/1 holding.20 5`): table coil, discrete, holding or input, \
         the address decimal or 0x hex; a number, text for a string, on/off for a bit",
    )]
}

/// `[device.modbus]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBus {
    /// What an undeclared address inside a unit's range answers.
    gaps: Option<RawGaps>,
    /// What a write to a declared read-only value answers.
    read_only_writes: Option<Spanned<RawReadOnlyWrites>>,
    /// The units on the line.
    #[serde(default)]
    unit: Vec<Spanned<RawUnit>>,
    /// A pymodbus 3.16.1 simulator device file to serve instead of `unit`s (a path relative
    /// to the config file): its map, its line and its unit id.
    pymodbus: Option<Spanned<String>>,
    /// The file's `server_list` entry (pymodbus's `--modbus_server`, default `server`).
    server: Option<Spanned<String>>,
    /// The file's `device_list` entry (pymodbus's `--modbus_device`, default `device`).
    device: Option<Spanned<String>>,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawGaps {
    #[default]
    Exception,
    Zero,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum RawReadOnlyWrites {
    #[default]
    Exception,
    DeviceFailure,
    Ignore,
}

/// `[[device.modbus.unit]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUnit {
    id: Spanned<u32>,
    /// A real device some model lends the bus ([`registry::BusUnit`]), instead of
    /// declarations.
    device: Option<Spanned<String>>,
    vendor: Option<String>,
    product: Option<String>,
    revision: Option<String>,
    #[serde(default)]
    holding: Vec<Spanned<RawRegister>>,
    #[serde(default)]
    input: Vec<Spanned<RawRegister>>,
    #[serde(default)]
    coil: Vec<Spanned<RawBit>>,
    #[serde(default)]
    discrete: Vec<Spanned<RawBit>>,
}

/// One register value.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegister {
    address: u16,
    #[serde(rename = "type", default)]
    kind: RawKind,
    #[serde(default)]
    order: RawOrder,
    value: Option<toml::Value>,
    registers: Option<u16>,
    scale: Option<f64>,
    offset: Option<f64>,
    writable: Option<bool>,
    ramp: Option<RawRamp>,
    counter: Option<RawCounter>,
    sine: Option<RawSine>,
    walk: Option<RawWalk>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSine {
    mean: f64,
    amplitude: f64,
    period_s: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWalk {
    start: f64,
    step: f64,
    every_ms: u64,
    min: f64,
    max: f64,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawKind {
    #[default]
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F32,
    F64,
    String,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
enum RawOrder {
    #[default]
    #[serde(rename = "ABCD", alias = "abcd")]
    Abcd,
    #[serde(rename = "CDAB", alias = "cdab")]
    Cdab,
    #[serde(rename = "BADC", alias = "badc")]
    Badc,
    #[serde(rename = "DCBA", alias = "dcba")]
    Dcba,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRamp {
    start: f64,
    per_second: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCounter {
    #[serde(default)]
    start: i64,
    #[serde(default = "one")]
    step: i64,
    every_ms: u64,
}

fn one() -> i64 {
    1
}

/// One coil or discrete input.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBit {
    address: u16,
    #[serde(default)]
    value: bool,
    writable: Option<bool>,
}

/// Which table a declaration is in, for messages and defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Table {
    Holding,
    Input,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Holding => "holding register",
            Table::Input => "input register",
        }
    }
}

/// The units of one `[[device]]`, as a bus.
type ModbusBus = Bus<fn(&[u8]) -> Route, Slave>;

fn build(b: &Build<'_>) -> Result<Vec<Built>, BuildError> {
    let raw: RawBus = b.table.deserialize()?.unwrap_or_default();
    if let Some(file) = &raw.pymodbus {
        return build_from_pymodbus(b, &raw, file);
    }
    if let Some(name) = raw.server.as_ref().or(raw.device.as_ref()) {
        return Err(BuildError::at(
            name.span(),
            "`server` and `device` name entries of a `pymodbus` file",
        ));
    }
    if raw.unit.is_empty() {
        return Err(b.error(
            &[],
            "a Modbus bus needs at least one `[[device.modbus.unit]]`, with its `id`",
        ));
    }
    let gaps = match raw.gaps.unwrap_or_default() {
        RawGaps::Exception => Gaps::Exception,
        RawGaps::Zero => Gaps::Zero,
    };
    let read_only_writes = match raw.read_only_writes.as_ref().map(|r| *r.get_ref()) {
        None | Some(RawReadOnlyWrites::Exception) => ReadOnlyWrites::Exception,
        Some(RawReadOnlyWrites::DeviceFailure) => ReadOnlyWrites::DeviceFailure,
        Some(RawReadOnlyWrites::Ignore) => ReadOnlyWrites::Ignored,
    };
    let mut ids = BTreeSet::new();
    for unit in &raw.unit {
        let id = unit.get_ref().id.get_ref();
        if !ids.insert(*id) {
            return Err(BuildError::at(
                unit.get_ref().id.span(),
                format!("two units with `id = {id}` on one line"),
            ));
        }
    }
    let framing = b.framing.clone().unwrap_or_else(rtu::framing);
    let mut generic_line = standard_line();
    if framing.name() == ascii::NAME {
        // ASCII characters are 7 bits with even parity (SL §2.5.2): 10 bits on the wire.
        generic_line.format = Some(CharFormat {
            data_bits: 7,
            ..generic_line.format.unwrap_or(CharFormat::N81)
        });
    }
    let named = named_units(&raw.unit)?;
    let line = bus_line(b, &raw.unit, &named, generic_line)?;
    let addresses = raw
        .unit
        .iter()
        .map(|unit| address(unit.get_ref()))
        .collect::<Result<Vec<u8>, _>>()?;
    (0..b.count)
        .map(|copy| {
            let router: fn(&[u8]) -> Route = route;
            let mut bus: ModbusBus = Bus::new(router, framing.clone(), line);
            for (unit, named) in raw.unit.iter().zip(&named) {
                let slave = match named {
                    Some(device) => {
                        let id = address(unit.get_ref())?;
                        // Each unit its own plant: the port's seed and the unit.
                        (device.build)(id, b.port_seed(copy) ^ (u64::from(id) << 32))
                    }
                    None => slave(unit, gaps, read_only_writes, b.port_seed(copy))?,
                };
                bus = bus.with(u32::from(slave.address()), slave);
            }
            Ok(Built {
                device: BoxDevice::new(bus),
                gateway: tcp::TcpGateway::for_line(&framing, &addresses),
                listen: None,
                framing: framing.clone(),
                line,
            })
        })
        .collect()
}

/// The real device each unit names (`device = "sdm630"`), if it names one; a unit that does
/// declares nothing itself.
fn named_units(
    units: &[Spanned<RawUnit>],
) -> Result<Vec<Option<&'static registry::BusUnit>>, BuildError> {
    units
        .iter()
        .map(|unit| {
            let raw = unit.get_ref();
            let Some(name) = &raw.device else {
                return Ok(None);
            };
            let device = registry::bus_unit(name.get_ref()).ok_or_else(|| {
                BuildError::at(
                    name.span(),
                    format!(
                        "no device `{}` to put on a bus (known: {})",
                        name.get_ref(),
                        registry::bus_unit_names().join(", ")
                    ),
                )
            })?;
            let declares = !(raw.holding.is_empty()
                && raw.input.is_empty()
                && raw.coil.is_empty()
                && raw.discrete.is_empty())
                || raw.vendor.is_some()
                || raw.product.is_some()
                || raw.revision.is_some();
            if declares {
                return Err(BuildError::at(
                    unit.span(),
                    format!(
                        "unit {}: a `{}` brings its own registers and identification; declare \
                         nothing else in it",
                        raw.id.get_ref(),
                        device.name
                    ),
                ));
            }
            Ok(Some(device))
        })
        .collect()
}

/// `pymodbus = "meter.json"`: one unit serving the file's device on the line its server
/// entry sets.
fn build_from_pymodbus(
    b: &Build<'_>,
    raw: &RawBus,
    file: &Spanned<String>,
) -> Result<Vec<Built>, BuildError> {
    if let Some(unit) = raw.unit.first() {
        return Err(BuildError::at(
            unit.span(),
            "a `pymodbus` file declares the unit: no `[[device.modbus.unit]]` beside it",
        ));
    }
    if let Some(given) = &raw.read_only_writes {
        return Err(BuildError::at(
            given.span(),
            "a `pymodbus` file says what writes to read-only values answer (02): no \
             `read_only_writes` beside it",
        ));
    }
    if raw.gaps.is_some() {
        return Err(b.error(
            &["gaps"],
            "a `pymodbus` file says what undeclared addresses answer (02): no `gaps` beside it",
        ));
    }
    if b.framing.is_some() {
        return Err(b.device_error(
            "a `pymodbus` file's server entry sets the framer: no `framing` beside it",
        ));
    }
    let path = match b.base_dir {
        Some(dir) => dir.join(file.get_ref()),
        None => std::path::PathBuf::from(file.get_ref()),
    };
    let at_file = |why: String| BuildError::at(file.span(), format!("{}: {why}", path.display()));
    let bytes = serialtwin_core::input_file::read_regular(
        &path,
        MAX_SIMULATOR_FILE,
        "a pymodbus device file",
    )
    .map_err(|e| at_file(e.to_string()))?;
    let text = String::from_utf8(bytes).map_err(|e| at_file(e.to_string()))?;
    let name = |given: &Option<Spanned<String>>, default: &'static str| {
        given
            .as_ref()
            .map_or(default.to_owned(), |n| n.get_ref().clone())
    };
    let (server, device) = (name(&raw.server, "server"), name(&raw.device, "device"));
    (0..b.count)
        .map(|copy| {
            let loaded = pymodbus::load(&text, &server, &device, b.port_seed(copy))
                .map_err(|e| BuildError::at(file.span(), format!("{}:{e}", path.display())))?;
            let framing = match loaded.framer {
                pymodbus::Framer::Rtu => rtu::framing(),
                pymodbus::Framer::Ascii => ascii::framing(),
            };
            let line = LineConfig {
                format: Some(CharFormat {
                    data_bits: loaded.data_bits,
                    parity: loaded.parity,
                    stop_bits: loaded.stop_bits,
                }),
                ..LineConfig {
                    baud: Some(loaded.baud),
                    ..standard_line()
                }
            };
            let mut unit = Unit::default();
            unit.use_cells(loaded.cells);
            let bus: ModbusBus = if let Some(id) = loaded.device_id {
                let slave =
                    Slave::new(id, unit).map_err(|e| BuildError::at(file.span(), e.to_string()))?;
                Bus::new(route as fn(&[u8]) -> Route, framing.clone(), line)
                    .with(u32::from(id), slave)
            } else {
                let slave = Slave::new(1, unit)
                    .map_err(|e| BuildError::at(file.span(), e.to_string()))?
                    .answering_every_address();
                Bus::new(route_every as fn(&[u8]) -> Route, framing.clone(), line)
                    .with(EVERY_ADDRESS, slave)
            };
            Ok(Built {
                device: BoxDevice::new(bus),
                // Every address answers when the file names no unit: 0 and 0xFF are unit 1.
                gateway: tcp::TcpGateway::for_line(&framing, &[loaded.device_id.unwrap_or(1)]),
                listen: None,
                framing,
                line,
            })
        })
        .collect()
}

/// The bus's line: its units' factory line (a unit declared here has the standard's,
/// `generic`), when they agree. Units leaving the factory with different lines cannot all
/// be right on one wire: unless `[device.line]` says which, the second line is an error.
fn bus_line(
    b: &Build<'_>,
    units: &[Spanned<RawUnit>],
    named: &[Option<&'static registry::BusUnit>],
    generic: LineConfig,
) -> Result<LineConfig, BuildError> {
    let described = |device: Option<&registry::BusUnit>, line: &LineConfig| {
        let speed = line
            .baud
            .map_or_else(|| "any speed".to_owned(), |b| b.to_string());
        let format = line.format.map(|f| format!(" {f}")).unwrap_or_default();
        match device {
            Some(d) => format!("a `{}` ({speed}{format})", d.name),
            None => format!("a declared unit (the standard's {speed}{format})"),
        }
    };
    let mut first: Option<(LineConfig, String, u32)> = None;
    for (unit, device) in units.iter().zip(named) {
        let line = device.map_or(generic, |d| (d.line)());
        let Some((agreed, who, id)) = &first else {
            first = Some((
                line,
                described(*device, &line),
                *unit.get_ref().id.get_ref(),
            ));
            continue;
        };
        if line != *agreed && !b.line_written {
            let at = unit
                .get_ref()
                .device
                .as_ref()
                .map_or_else(|| unit.get_ref().id.span(), Spanned::span);
            return Err(BuildError::at(
                at,
                format!(
                    "unit {} is {} but unit {id} is {who}: units with different factory \
                     lines on one bus need a `[device.line]` saying which the wire has",
                    unit.get_ref().id.get_ref(),
                    described(*device, &line),
                ),
            ));
        }
    }
    Ok(first.map_or(generic, |(line, _, _)| line))
}

/// A unit's address, from its `id`.
fn address(unit: &RawUnit) -> Result<u8, BuildError> {
    slave::address_in_config(&unit.id, "a unit's `id`")
}

/// One unit, as its table says.
fn slave(
    raw: &Spanned<RawUnit>,
    gaps: Gaps,
    read_only_writes: ReadOnlyWrites,
    seed: u64,
) -> Result<Slave, BuildError> {
    let unit = raw.get_ref();
    let id = *unit.id.get_ref();
    let address = address(unit)?;
    let mut settings = Settings {
        gaps,
        read_only_writes,
        ..Settings::default()
    };
    for (object, text) in [
        (0x00, &unit.vendor),
        (0x01, &unit.product),
        (0x02, &unit.revision),
    ] {
        if let Some(text) = text {
            settings
                .identification
                .insert(object, text.as_bytes().to_vec());
        }
    }
    let mut built = Unit::new(settings).map_err(|e| BuildError::at(raw.span(), e.to_string()))?;
    let mut taken = Taken::default();
    // What `set` may change later, as declared.
    let mut declared_here = Vec::new();
    for (table, entries) in [(Table::Holding, &unit.holding), (Table::Input, &unit.input)] {
        for entry in entries {
            let registers = match table {
                Table::Holding => &mut built.holding,
                Table::Input => &mut built.input,
            };
            // Each walk its own: the port's seed, the unit and the address.
            let seed = seed ^ (u64::from(id) << 32) ^ u64::from(entry.get_ref().address);
            let declared = declare(registers, table, entry, &mut taken, seed)
                .map_err(|why| BuildError::at(entry.span(), format!("unit {id}: {why}")))?;
            let noted = match table {
                Table::Holding => slave::Table::Holding,
                Table::Input => slave::Table::Input,
            };
            declared_here.push((noted, entry.get_ref().address, declared));
        }
    }
    for (name, entries, writable_by_default) in [
        ("coil", &unit.coil, true),
        ("discrete input", &unit.discrete, false),
    ] {
        let mut addresses = BTreeSet::new();
        for entry in entries {
            let bit = entry.get_ref();
            let at = |why: String| BuildError::at(entry.span(), format!("unit {id}: {why}"));
            if !addresses.insert(bit.address) {
                return Err(at(format!("{name} {} is declared twice", bit.address)));
            }
            let access = match (bit.writable, writable_by_default) {
                (Some(true), false) => {
                    return Err(at("discrete inputs are read-only".to_owned()));
                }
                (Some(true) | None, true) => Access::ReadWrite,
                (Some(false) | None, _) => Access::ReadOnly,
            };
            let (bits, noted) = if writable_by_default {
                (&mut built.coils, slave::Table::Coil)
            } else {
                (&mut built.discrete_inputs, slave::Table::Discrete)
            };
            bits.set(bit.address, bit.value, access);
            declared_here.push((noted, bit.address, Declared::Bit(access)));
        }
    }
    let mut slave =
        Slave::new(address, built).map_err(|e| BuildError::at(unit.id.span(), e.to_string()))?;
    for (table, address, declared) in declared_here {
        slave.note_declared(table, address, declared);
    }
    Ok(slave)
}

/// The registers declared so far in each table, to refuse overlaps.
#[derive(Default)]
struct Taken {
    holding: Vec<Range<u32>>,
    input: Vec<Range<u32>>,
}

/// The shortest step of a random walk: a read catches up on the steps since the last, and a
/// port idle for a day must not cost a second of them.
const MIN_WALK_STEP_MS: u64 = 100;

/// The longest pymodbus simulator file `pymodbus = "..."` reads: 16 MiB, far more than a
/// device's registers take, and a bound on what a path that keeps giving can make it hold.
const MAX_SIMULATOR_FILE: u64 = 16 << 20;

/// The provider of a value that moves (`ramp`, `counter`, `sine` or `walk`), if it does;
/// `seed` seeds a walk.
fn moving(raw: &RawRegister, seed: u64) -> Result<Option<Box<dyn Provider>>, String> {
    let given = [
        raw.ramp.is_some(),
        raw.counter.is_some(),
        raw.sine.is_some(),
        raw.walk.is_some(),
    ];
    if given.iter().filter(|&&g| g).count() > 1 {
        return Err("a value moves one way: a `ramp`, a `counter`, a `sine` or a `walk`".into());
    }
    let finite = |name: &str, x: f64| {
        if x.is_finite() {
            Ok(x)
        } else {
            Err(format!("`{name}` must be a finite number"))
        }
    };
    if let Some(r) = &raw.ramp {
        return Ok(Some(Box::new(Ramp {
            start: finite("start", r.start)?,
            per_second: finite("per_second", r.per_second)?,
        })));
    }
    if let Some(c) = &raw.counter {
        if c.every_ms == 0 {
            return Err("a counter's `every_ms` must be at least 1".into());
        }
        return Ok(Some(Box::new(Counter {
            start: c.start,
            step: c.step,
            every: Duration::from_millis(c.every_ms),
        })));
    }
    if let Some(s) = &raw.sine {
        let period = finite("period_s", s.period_s)?;
        if period <= 0.0 || period > 1e9 {
            return Err("a sine's `period_s` must be above 0 (seconds)".into());
        }
        return Ok(Some(Box::new(Sine {
            mean: finite("mean", s.mean)?,
            amplitude: finite("amplitude", s.amplitude)?,
            period: Duration::from_secs_f64(period),
        })));
    }
    if let Some(w) = &raw.walk {
        if w.every_ms < MIN_WALK_STEP_MS {
            return Err(format!(
                "a walk's `every_ms` must be at least {MIN_WALK_STEP_MS}"
            ));
        }
        let (min, max) = (finite("min", w.min)?, finite("max", w.max)?);
        if min > max {
            return Err("a walk's `min` must not be above its `max`".into());
        }
        return Ok(Some(Box::new(Walk::new(
            finite("start", w.start)?,
            finite("step", w.step)?,
            Duration::from_millis(w.every_ms),
            (min, max),
            seed,
        ))));
    }
    Ok(None)
}

/// Declare one register value in `registers`.
fn declare(
    registers: &mut Registers,
    table: Table,
    entry: &Spanned<RawRegister>,
    taken: &mut Taken,
    seed: u64,
) -> Result<Declared, String> {
    let raw = entry.get_ref();
    let kind = match raw.kind {
        RawKind::U16 => Kind::U16,
        RawKind::I16 => Kind::I16,
        RawKind::U32 => Kind::U32,
        RawKind::I32 => Kind::I32,
        RawKind::U64 => Kind::U64,
        RawKind::I64 => Kind::I64,
        RawKind::F32 => Kind::F32,
        RawKind::F64 => Kind::F64,
        RawKind::String => Kind::Ascii {
            registers: raw
                .registers
                .filter(|n| (1..=123).contains(n))
                .ok_or("a string needs `registers`, from 1 to 123")?,
            pad: Pad::Nul,
        },
    };
    if raw.registers.is_some() && !matches!(raw.kind, RawKind::String) {
        return Err("`registers` is for `type = \"string\"` only".to_owned());
    }
    let order = match raw.order {
        RawOrder::Abcd => Order::Abcd,
        RawOrder::Cdab => Order::Cdab,
        RawOrder::Badc => Order::Badc,
        RawOrder::Dcba => Order::Dcba,
    };
    let mut encoding = Encoding::new(kind).with_order(order);
    if raw.scale.is_some() || raw.offset.is_some() {
        encoding = encoding
            .scaled(raw.scale.unwrap_or(1.0), raw.offset.unwrap_or(0.0))
            .map_err(|e| e.to_string())?;
    }
    let span = u32::from(raw.address)
        ..u32::from(raw.address) + u32::try_from(kind.registers()).unwrap_or(u32::MAX);
    if span.end > 0x1_0000 {
        return Err(format!(
            "{} at {} runs past address 65535",
            table.name(),
            raw.address
        ));
    }
    let list = match table {
        Table::Holding => &mut taken.holding,
        Table::Input => &mut taken.input,
    };
    if let Some(other) = list
        .iter()
        .find(|r| r.start < span.end && span.start < r.end)
    {
        return Err(format!(
            "{} at {} overlaps the one at {}",
            table.name(),
            raw.address,
            other.start
        ));
    }
    list.push(span);
    let moving = moving(raw, seed)?;
    if let Some(provider) = moving {
        if raw.value.is_some() {
            return Err("a value that moves has no `value`".into());
        }
        if raw.writable == Some(true) {
            return Err("a value that moves is read-only".into());
        }
        return registers
            .set_provider(raw.address, encoding, provider)
            .map(|()| Declared::Moving)
            .map_err(|e| e.to_string());
    }
    let access = match (table, raw.writable) {
        (Table::Input, Some(true)) => return Err("input registers are read-only".into()),
        (Table::Input, _) | (Table::Holding, Some(false)) => Access::ReadOnly,
        (Table::Holding, _) => Access::ReadWrite,
    };
    let value = match (&raw.value, kind) {
        (None, Kind::Ascii { .. }) => Value::Text(String::new()),
        (None, _) => Value::Int(0),
        (Some(toml::Value::String(text)), Kind::Ascii { .. }) => Value::Text(text.clone()),
        (Some(_), Kind::Ascii { .. }) => return Err("a string's `value` is text".into()),
        (Some(toml::Value::Integer(n)), _) => Value::Int(i128::from(*n)),
        (Some(toml::Value::Float(x)), _) => Value::Float(*x),
        (Some(_), _) => return Err(format!("a {kind}'s `value` is a number")),
    };
    registers
        .set_value(raw.address, &encoding, &value, access)
        .map(|()| Declared::Registers(encoding, access))
        .map_err(|e| format!("{} at {}: {e}", table.name(), raw.address))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Table as ConfigTable;

    fn built(table: &str) -> Result<Vec<Built>, BuildError> {
        let table = ConfigTable::parse(table)?;
        build(&Build::new(table))
    }

    fn error(table: &str) -> String {
        built(table).unwrap_err().reason
    }

    #[test]
    fn the_example_builds() {
        let text = EXAMPLE.split_once("[device.modbus]").unwrap().1;
        // The example's table, rooted where `[device.modbus]` begins.
        let table = text.replace("device.modbus.", "");
        let devices = built(&table).unwrap();
        assert_eq!(devices.len(), 1);
        assert_eq!(devices[0].line.baud, Some(19_200));
    }

    #[test]
    fn values_swing_and_walk_from_the_config() {
        built(
            "[[unit]]\nid = 1\n[[unit.input]]\naddress = 0\ntype = 'f32'\n\
             sine = { mean = 230.0, amplitude = 5.0, period_s = 86400.0 }\n\
             [[unit.input]]\naddress = 2\ntype = 'f32'\n\
             walk = { start = 20.0, step = 0.5, every_ms = 1000, min = 10.0, max = 30.0 }\n",
        )
        .unwrap();
    }

    #[test]
    fn a_pymodbus_file_sets_the_line_and_the_unit() {
        // The example file where it lies: nothing written anywhere.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
        let build_with = |table: &str| {
            let table = ConfigTable::parse(table).unwrap();
            let b = Build {
                base_dir: Some(&dir),
                ..Build::new(table)
            };
            build(&b)
        };
        let built =
            build_with("pymodbus = 'pymodbus-meter.json'\nserver = 'rtu'\ndevice = 'meter'\n")
                .unwrap();
        assert_eq!(built[0].line.baud, Some(9600));
        assert_eq!(built[0].line.format.unwrap().to_string(), "8N1");
        assert_eq!(built[0].framing.name(), "modbus-rtu");
        for (table, expected) in [
            (
                "pymodbus = 'pymodbus-meter.json'\n",
                "server_list has no \"server\" (it has: rtu)",
            ),
            ("pymodbus = 'gone.json'\n", "gone.json"),
            // A device that never ends is refused, not read until memory runs out.
            (
                "pymodbus = '/dev/zero'\n",
                "/dev/zero: not a regular file (a character device)",
            ),
            (
                "pymodbus = 'pymodbus-meter.json'\nserver = 'rtu'\ndevice = 'meter'\n[[unit]]\nid = 1\n",
                "no `[[device.modbus.unit]]` beside it",
            ),
            (
                "pymodbus = 'pymodbus-meter.json'\nserver = 'rtu'\ndevice = 'meter'\ngaps = 'zero'\n",
                "no `gaps` beside it",
            ),
            (
                "server = 'rtu'\n[[unit]]\nid = 1\n",
                "name entries of a `pymodbus` file",
            ),
        ] {
            let got = build_with(table).unwrap_err().reason;
            assert!(got.contains(expected), "{table:?}: {got}");
        }
        let got = build_with(
            "pymodbus = 'pymodbus-meter.json'\nserver = 'rtu'\ndevice = 'meter'\nread_only_writes = 'ignore'\n",
        )
        .unwrap_err()
        .reason;
        assert!(got.contains("no `read_only_writes` beside it"), "{got}");
    }

    #[test]
    fn an_ascii_line_sends_7e1_characters() {
        let table = ConfigTable::parse("[[unit]]\nid = 1\n").unwrap();
        let rtu_line = build(&Build::new(table.clone())).unwrap()[0].line;
        assert_eq!(rtu_line.format.unwrap().to_string(), "8E1");
        let ascii = Build {
            framing: Some(ascii::framing()),
            ..Build::new(table)
        };
        let built = &build(&ascii).unwrap()[0];
        assert_eq!(built.framing.name(), "modbus-ascii");
        assert_eq!(built.line.format.unwrap().to_string(), "7E1");
    }

    #[test]
    fn a_unit_may_be_a_real_device_and_the_bus_takes_its_factory_line() {
        let devices =
            built("[[unit]]\nid = 1\ndevice = 'sdm630'\n[[unit]]\nid = 2\ndevice = 'sdm630'\n")
                .unwrap();
        assert_eq!(devices[0].line.baud, Some(9600));
        assert_eq!(devices[0].line.format.unwrap().to_string(), "8N1");
        // A meter and a charge controller: 9600 and 115200. The conflict is at the second.
        let text = "[[unit]]\nid = 1\ndevice = 'sdm630'\n[[unit]]\nid = 7\ndevice = 'tracer'\n";
        let e = built(text).unwrap_err();
        assert_eq!(e.at, Some(text.find("'tracer'").unwrap()..text.len() - 1));
        assert!(
            e.reason
                .contains("unit 7 is a `tracer` (115200 8N1) but unit 1 is a `sdm630` (9600 8N1)"),
            "{e}"
        );
        // A declared unit has the standard's line: a conflict too, at its id.
        let text = "[[unit]]\nid = 1\ndevice = 'sdm120'\n[[unit]]\nid = 2\n";
        let e = built(text).unwrap_err();
        assert!(
            e.reason
                .contains("declared unit (the standard's 19200 8E1)"),
            "{e}"
        );
        // With `[device.line]` written, the config's line wins and the bus builds.
        let written = Build {
            line_written: true,
            ..Build::new(ConfigTable::parse(text).unwrap())
        };
        assert_eq!(build(&written).unwrap().len(), 1);
    }

    #[test]
    fn declarations_that_cannot_be_are_refused_with_the_reason() {
        for (table, expected) in [
            ("", "needs at least one"),
            ("[[unit]]\nid = 0\n", "from 1 to 247, not 0"),
            ("[[unit]]\nid = 248\n", "from 1 to 247, not 248"),
            (
                "[[unit]]\nid = 3\n[[unit]]\nid = 3\n",
                "two units with `id = 3`",
            ),
            (
                "[[unit]]\nid = 1\n[[unit.holding]]\naddress = 0\ntype = 'u32'\n[[unit.holding]]\naddress = 1\n",
                "overlaps the one at 0",
            ),
            (
                "[[unit]]\nid = 1\n[[unit.holding]]\naddress = 65535\ntype = 'u32'\n",
                "runs past address 65535",
            ),
            (
                "[[unit]]\nid = 1\n[[unit.holding]]\naddress = 0\nvalue = 70000\n",
                "holding register at 0",
            ),
            (
                "[[unit]]\nid = 1\n[[unit.input]]\naddress = 0\nwritable = true\n",
                "input registers are read-only",
            ),
            (
                "[[unit]]\nid = 1\n[[unit.discrete]]\naddress = 0\nwritable = true\n",
                "discrete inputs are read-only",
            ),
            (
                "[[unit]]\nid = 1\n[[unit.holding]]\naddress = 0\ntype = 'string'\n",
                "a string needs `registers`",
            ),
            (
                "[[unit]]\nid = 1\n[[unit.holding]]\naddress = 0\nvalue = 1\nramp = { start = 0.0, per_second = 1.0 }\n",
                "a value that moves has no `value`",
            ),
            (
                "[[unit]]\nid = 1\n[[unit.holding]]\naddress = 0\ncolour = 1\n",
                "unknown field `colour`",
            ),
            (
                "[[unit]]\nid = 1\ndevice = 'sdm999'\n",
                "no device `sdm999` to put on a bus (known: sdm630, sdm120, tracer)",
            ),
            (
                "[[unit]]\nid = 1\ndevice = 'sdm630'\n[[unit.holding]]\naddress = 0\n",
                "a `sdm630` brings its own registers",
            ),
            (
                "[[unit]]\nid = 0\ndevice = 'tracer'\n",
                "from 1 to 247, not 0",
            ),
            (
                "[[unit]]\nid = 1\n[[unit.input]]\naddress = 0\ntype = 'f32'\nsine = { mean = 1.0, amplitude = 1.0, period_s = 60.0 }\nramp = { start = 0.0, per_second = 1.0 }\n",
                "a value moves one way",
            ),
            (
                "[[unit]]\nid = 1\n[[unit.input]]\naddress = 0\ntype = 'f32'\nwalk = { start = 1.0, step = 1.0, every_ms = 10, min = 0.0, max = 2.0 }\n",
                "`every_ms` must be at least 100",
            ),
            (
                "[[unit]]\nid = 1\n[[unit.input]]\naddress = 0\ntype = 'f32'\nwalk = { start = 1.0, step = 1.0, every_ms = 1000, min = 3.0, max = 2.0 }\n",
                "`min` must not be above its `max`",
            ),
            (
                "[[unit]]\nid = 1\n[[unit.input]]\naddress = 0\ntype = 'f32'\nsine = { mean = 1.0, amplitude = 1.0, period_s = 0.0 }\n",
                "`period_s` must be above 0",
            ),
        ] {
            let got = error(table);
            assert!(got.contains(expected), "{table:?}: {got}");
        }
    }
}
