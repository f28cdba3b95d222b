//! A pymodbus 3.16.1 simulator device file (`ModbusSimulatorContext`'s JSON; reference
//! §10), read into [`Cells`] and the line its server entry names.
//!
//! The rules are pymodbus's (`datastore/simulator.py`, `server/simulator/http_server.py`),
//! in its order: the setup section lays out the cells, `invalid` is checked, the type
//! sections declare values, `write` opens cells to writes, `repeat` copies cells. Where
//! pymodbus would load a file and then fail every read of a cell (an unknown action
//! parameter such as the docstring's `min`), or crash on it (a wrong type, a missing value),
//! this loader refuses the file instead, at the line and column of the offending JSON value.
//! So it does with keys pymodbus ignores inside a device entry (its `setup`, a value, a
//! `repeat`): there they can only be typos. A server entry's other keys are its server
//! constructor's (`port`, `identity`, `timeout`...) and change nothing a client reads.
//!
//! Two things a file can say are refused because serialtwin serves a serial line: a server
//! entry whose `comm` is not `serial`, and a `framer` other than `rtu` or `ascii`.

use std::fmt;

use serde_json::Value as Json;

use super::unit::{Action, Cell, Cells, Kind, Number};

/// What a file and the two names chosen in it give.
#[derive(Debug)]
pub struct Loaded {
    /// The device's cells.
    pub cells: Cells,
    /// The server entry's framer.
    pub framer: Framer,
    /// `baudrate` (pymodbus's default 19200).
    pub baud: u32,
    /// `bytesize` (default 8).
    pub data_bits: u8,
    /// `parity` (default `N`).
    pub parity: serialtwin_core::Parity,
    /// `stopbits` (default 1).
    pub stop_bits: serialtwin_core::StopBits,
    /// `device_id`: the one unit answered. `None` (absent, or 0): pymodbus registers the
    /// device as unit 0, which its server context falls back to for any unit id, so every
    /// address is answered.
    pub device_id: Option<u8>,
}

/// The server entry's `framer`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framer {
    /// `rtu`.
    Rtu,
    /// `ascii`.
    Ascii,
}

/// Why a file was refused: the message, and where in the JSON text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonError {
    /// 1-based line of the offending value (of the file's start when unknown).
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// Why.
    pub message: String,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

/// A step into the JSON: an object's key or an array's index.
#[derive(Clone, Debug)]
enum Step {
    Key(String),
    Index(usize),
}

/// An error at a path, placed in the text later.
struct Fault {
    path: Vec<Step>,
    message: String,
}

type Faulty<T> = Result<T, Fault>;

fn fault(path: &[Step], message: impl Into<String>) -> Fault {
    Fault {
        path: path.to_vec(),
        message: message.into(),
    }
}

fn key(path: &[Step], name: &str) -> Vec<Step> {
    let mut path = path.to_vec();
    path.push(Step::Key(name.to_owned()));
    path
}

fn index(path: &[Step], i: usize) -> Vec<Step> {
    let mut path = path.to_vec();
    path.push(Step::Index(i));
    path
}

/// The largest block: a table has 65,536 addresses (of registers; coils count 16 a cell).
const MAX_BLOCK: u64 = 65_536;

/// The type sections, in the order pymodbus declares them.
const TYPES: [(&str, Kind); 7] = [
    ("bits", Kind::Bits),
    ("int16", Kind::Int16),
    ("uint16", Kind::Uint16),
    ("uint32", Kind::Uint32),
    ("float32", Kind::Float32),
    ("float64", Kind::Float64),
    ("string", Kind::String),
];

/// Read `text`, a simulator file, serving `server` of its `server_list` and `device` of its
/// `device_list`; `seed` seeds the `random` action.
///
/// # Errors
/// Anything pymodbus refuses, or would fail on when serving, with its line and column.
pub fn load(text: &str, server: &str, device: &str, seed: u64) -> Result<Loaded, JsonError> {
    let json: Json = serde_json::from_str(text).map_err(|e| JsonError {
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    read_file(&json, server, device, seed).map_err(|f| {
        let at = locate(text, &f.path).unwrap_or(0);
        let before = &text[..at];
        let line = before.matches('\n').count() + 1;
        let column = before.rfind('\n').map_or(at, |n| at - n - 1) + 1;
        JsonError {
            line,
            column,
            message: f.message,
        }
    })
}

fn object<'a>(
    json: &'a Json,
    path: &[Step],
    what: &str,
) -> Faulty<&'a serde_json::Map<String, Json>> {
    json.as_object()
        .ok_or_else(|| fault(path, format!("{what} must be an object")))
}

fn only_keys(
    map: &serde_json::Map<String, Json>,
    path: &[Step],
    known: &[&str],
    what: &str,
) -> Faulty<()> {
    match map.keys().find(|k| !known.contains(&k.as_str())) {
        Some(unknown) => Err(fault(
            &key(path, unknown),
            format!(
                "unknown key {unknown:?} in {what} (known: {})",
                known.join(", ")
            ),
        )),
        None => Ok(()),
    }
}

fn required<'a>(
    map: &'a serde_json::Map<String, Json>,
    path: &[Step],
    name: &str,
    what: &str,
) -> Faulty<&'a Json> {
    map.get(name)
        .ok_or_else(|| fault(path, format!("{what} needs {name:?}")))
}

fn read_file(json: &Json, server: &str, device: &str, seed: u64) -> Faulty<Loaded> {
    let top = object(json, &[], "the file")?;
    only_keys(top, &[], &["server_list", "device_list"], "the file")?;
    let servers = object(
        required(top, &[], "server_list", "the file")?,
        &key(&[], "server_list"),
        "server_list",
    )?;
    let devices = object(
        required(top, &[], "device_list", "the file")?,
        &key(&[], "device_list"),
        "device_list",
    )?;
    let names =
        |map: &serde_json::Map<String, Json>| map.keys().cloned().collect::<Vec<_>>().join(", ");
    let server_path = key(&key(&[], "server_list"), server);
    let entry = servers.get(server).ok_or_else(|| {
        fault(
            &key(&[], "server_list"),
            format!("server_list has no {server:?} (it has: {})", names(servers)),
        )
    })?;
    let device_path = key(&key(&[], "device_list"), device);
    let device_json = devices.get(device).ok_or_else(|| {
        fault(
            &key(&[], "device_list"),
            format!("device_list has no {device:?} (it has: {})", names(devices)),
        )
    })?;
    let mut loaded = read_server(entry, &server_path)?;
    let (cells, offsets, type_exception) = read_device(device_json, &device_path)?;
    loaded.cells = Cells::new(cells, offsets, type_exception, seed);
    Ok(loaded)
}

fn read_server(json: &Json, path: &[Step]) -> Faulty<Loaded> {
    let map = object(json, path, "a server entry")?;
    let text = |name: &str| -> Faulty<Option<&str>> {
        map.get(name)
            .map(|v| {
                v.as_str()
                    .ok_or_else(|| fault(&key(path, name), format!("{name:?} must be text")))
            })
            .transpose()
    };
    let whole = |name: &str, default: u64| -> Faulty<u64> {
        map.get(name).map_or(Ok(default), |v| {
            v.as_u64()
                .ok_or_else(|| fault(&key(path, name), format!("{name:?} must be a whole number")))
        })
    };
    let comm = text("comm")?.ok_or_else(|| fault(path, "a server entry needs \"comm\""))?;
    if comm != "serial" {
        return Err(fault(
            &key(path, "comm"),
            format!("serialtwin serves a serial line: \"comm\" must be \"serial\", not {comm:?}"),
        ));
    }
    let framer = match text("framer")? {
        Some("rtu") => Framer::Rtu,
        Some("ascii") => Framer::Ascii,
        Some(other) => {
            return Err(fault(
                &key(path, "framer"),
                format!("a serial line's \"framer\" is \"rtu\" or \"ascii\", not {other:?}"),
            ));
        }
        None => return Err(fault(path, "a server entry needs \"framer\"")),
    };
    let baud = u32::try_from(whole("baudrate", 19_200)?)
        .ok()
        .filter(|&b| b > 0)
        .ok_or_else(|| fault(&key(path, "baudrate"), "\"baudrate\" must be above 0"))?;
    let data_bits = u8::try_from(whole("bytesize", 8)?)
        .ok()
        .filter(|b| (5..=8).contains(b))
        .ok_or_else(|| fault(&key(path, "bytesize"), "\"bytesize\" must be 5 to 8"))?;
    let parity = match text("parity")?.unwrap_or("N") {
        "N" => serialtwin_core::Parity::None,
        "E" => serialtwin_core::Parity::Even,
        "O" => serialtwin_core::Parity::Odd,
        other => {
            return Err(fault(
                &key(path, "parity"),
                format!("\"parity\" is \"N\", \"E\" or \"O\", not {other:?}"),
            ));
        }
    };
    let stop_bits = match whole("stopbits", 1)? {
        1 => serialtwin_core::StopBits::One,
        2 => serialtwin_core::StopBits::Two,
        other => {
            return Err(fault(
                &key(path, "stopbits"),
                format!("\"stopbits\" is 1 or 2, not {other}"),
            ));
        }
    };
    let device_id = match map.get("device_id") {
        None => None,
        Some(v) => {
            let id = v
                .as_u64()
                .and_then(|id| u8::try_from(id).ok())
                .filter(|&id| id <= super::slave::MAX_ADDRESS)
                .ok_or_else(|| {
                    fault(
                        &key(path, "device_id"),
                        "\"device_id\" must be a unit address, 0 to 247",
                    )
                })?;
            (id != 0).then_some(id)
        }
    };
    // The other keys are the server constructor's (`port`, `identity`, `timeout`...): the
    // pty is serialtwin's own, and the rest does not change what a client reads.
    Ok(Loaded {
        cells: Cells::new(Vec::new(), [0; 4], false, 0),
        framer,
        baud,
        data_bits,
        parity,
        stop_bits,
        device_id,
    })
}

/// An address or `[start, end]` (inclusive), as pymodbus's `invalid`, `write` and type
/// sections take them.
fn span(json: &Json, path: &[Step]) -> Faulty<(usize, usize)> {
    let number = |v: &Json, path: &[Step]| -> Faulty<usize> {
        v.as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| fault(path, "an address is a whole number, 0 or more"))
    };
    match json {
        Json::Array(pair) if pair.len() == 2 => Ok((
            number(&pair[0], &index(path, 0))?,
            number(&pair[1], &index(path, 1))?,
        )),
        Json::Array(_) => Err(fault(path, "an address range is [start, end]")),
        other => {
            let n = number(other, path)?;
            Ok((n, n))
        }
    }
}

fn number(json: &Json) -> Option<Number> {
    if let Some(n) = json.as_i64() {
        Some(Number::Int(i128::from(n)))
    } else if let Some(n) = json.as_u64() {
        Some(Number::Int(i128::from(n)))
    } else {
        json.as_f64().map(Number::Float)
    }
}

/// An action by name, with its parameters.
fn action(
    name: &Json,
    parameters: Option<&Json>,
    path: &[Step],
    parameters_path: &[Step],
) -> Faulty<Option<Action>> {
    let name = match name {
        Json::Null => return Ok(None),
        Json::String(name) => name.as_str(),
        _ => return Err(fault(path, "an action is a name or null")),
    };
    let empty = serde_json::Map::new();
    let parameters = match parameters {
        None | Some(Json::Null) => &empty,
        Some(p) => object(p, parameters_path, "\"parameters\"")?,
    };
    let bound = |name: &str| -> Faulty<Option<Number>> {
        parameters
            .get(name)
            .map(|v| {
                number(v).ok_or_else(|| {
                    fault(
                        &key(parameters_path, name),
                        format!("{name:?} must be a number"),
                    )
                })
            })
            .transpose()
    };
    let bounded = |what: &str| -> Faulty<(Option<Number>, Option<Number>)> {
        // Anything else would reach the action as a keyword it does not take: every read of
        // the cell would answer 04.
        only_keys(parameters, parameters_path, &["minval", "maxval"], what)?;
        Ok((bound("minval")?, bound("maxval")?))
    };
    Ok(Some(match name {
        "increment" => {
            let (min, max) = bounded("increment's parameters")?;
            Action::Increment { min, max }
        }
        "random" => {
            let (min, max) = bounded("random's parameters")?;
            Action::Random {
                min: min.unwrap_or(Number::Int(1)),
                max: max.unwrap_or(Number::Int(65_536)),
            }
        }
        "timestamp" => Action::Timestamp,
        "uptime" => Action::Uptime,
        "reset" => Action::Reset,
        other => {
            return Err(fault(
                path,
                format!(
                    "unknown action {other:?} (pymodbus's own: increment, random, timestamp, \
                     uptime, reset; custom actions need Python)"
                ),
            ));
        }
    }))
}

/// The device entry's cells, the tables' offsets and `type exception`.
fn read_device(json: &Json, path: &[Step]) -> Faulty<(Vec<Cell>, [usize; 4], bool)> {
    let map = object(json, path, "a device entry")?;
    let mut known = vec!["setup", "invalid", "write", "repeat"];
    known.extend(TYPES.iter().map(|(name, _)| *name));
    only_keys(map, path, &known, "a device entry")?;

    let Setup {
        total,
        offsets,
        type_exception,
        default_values,
        default_actions,
        defaults_path,
    } = read_setup(map, path)?;
    let mut cells = vec![Cell::default(); total];
    let in_range = |(start, end): (usize, usize), path: &[Step], what: &str| -> Faulty<()> {
        if start >= total || end >= total {
            Err(fault(
                path,
                format!("{what} [{start}, {end}] is past the device's {total} registers"),
            ))
        } else {
            Ok(())
        }
    };

    // invalid: pymodbus marks these before the type sections, where every cell is still
    // invalid; a type section may declare them after. Only the range is checked.
    let invalid_path = key(path, "invalid");
    for (i, entry) in list(
        required(map, path, "invalid", "a device entry")?,
        &invalid_path,
    )? {
        let at = index(&invalid_path, i);
        let (start, end) = span(entry, &at)?;
        if start <= end {
            in_range((start, end), &at, "invalid")?;
        }
    }

    for (section, kind) in TYPES {
        let Some(entries) = map.get(section) else {
            continue;
        };
        let section_path = key(path, section);
        for (i, entry) in list(entries, &section_path)? {
            let at = index(&section_path, i);
            declare(
                &mut cells,
                kind,
                section,
                entry,
                &at,
                default_values,
                default_actions,
                &defaults_path,
            )?;
        }
    }

    open_writes(&mut cells, map, path)?;
    repeat(&mut cells, map, path)?;
    Ok((cells, offsets, type_exception))
}

/// What the `setup` section says.
struct Setup<'a> {
    total: usize,
    offsets: [usize; 4],
    type_exception: bool,
    default_values: &'a serde_json::Map<String, Json>,
    default_actions: &'a serde_json::Map<String, Json>,
    defaults_path: Vec<Step>,
}

/// The `setup` section: the cells' count, the tables' offsets, the defaults.
fn read_setup<'a>(map: &'a serde_json::Map<String, Json>, path: &[Step]) -> Faulty<Setup<'a>> {
    let setup_path = key(path, "setup");
    let setup = object(
        required(map, path, "setup", "a device entry")?,
        &setup_path,
        "\"setup\"",
    )?;
    only_keys(
        setup,
        &setup_path,
        &[
            "co size",
            "di size",
            "hr size",
            "ir size",
            "shared blocks",
            "type exception",
            "defaults",
        ],
        "\"setup\"",
    )?;
    let sizes = block_sizes(setup, &setup_path)?;
    let flag = |name: &str| -> Faulty<bool> {
        required(setup, &setup_path, name, "\"setup\"")?
            .as_bool()
            .ok_or_else(|| {
                fault(
                    &key(&setup_path, name),
                    format!("{name:?} must be true or false"),
                )
            })
    };
    let shared = flag("shared blocks")?;
    let type_exception = flag("type exception")?;
    let [co, di, ir, hr] = sizes;
    let (offsets, total) = if shared {
        ([0; 4], sizes.into_iter().max().unwrap_or(0))
    } else {
        ([0, co, co + di, co + di + ir], co + di + ir + hr)
    };
    let defaults_path = key(&setup_path, "defaults");
    let defaults = object(
        required(setup, &setup_path, "defaults", "\"setup\"")?,
        &defaults_path,
        "\"defaults\"",
    )?;
    only_keys(
        defaults,
        &defaults_path,
        &["value", "action"],
        "\"defaults\"",
    )?;
    let type_names: Vec<&str> = TYPES.iter().map(|(name, _)| *name).collect();
    let value_path = key(&defaults_path, "value");
    let default_values = object(
        required(defaults, &defaults_path, "value", "\"defaults\"")?,
        &value_path,
        "\"value\"",
    )?;
    only_keys(
        default_values,
        &value_path,
        &type_names,
        "the default values",
    )?;
    let action_path = key(&defaults_path, "action");
    let default_actions = object(
        required(defaults, &defaults_path, "action", "\"defaults\"")?,
        &action_path,
        "\"action\"",
    )?;
    only_keys(
        default_actions,
        &action_path,
        &type_names,
        "the default actions",
    )?;
    // pymodbus checks every default action's name, used or not.
    for (name, value) in default_actions {
        action(value, None, &key(&action_path, name), &action_path)?;
    }

    Ok(Setup {
        total,
        offsets,
        type_exception,
        default_values,
        default_actions,
        defaults_path,
    })
}

/// `co size`, `di size`, `ir size`, `hr size`, in registers, in that order.
fn block_sizes(setup: &serde_json::Map<String, Json>, setup_path: &[Step]) -> Faulty<[usize; 4]> {
    let mut sizes = [0_usize; 4];
    for (slot, name) in ["co size", "di size", "ir size", "hr size"]
        .into_iter()
        .enumerate()
    {
        let value = required(setup, setup_path, name, "\"setup\"")?;
        sizes[slot] = value
            .as_u64()
            .filter(|&n| n <= MAX_BLOCK)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| {
                fault(
                    &key(setup_path, name),
                    format!("{name:?} must be a whole number of registers, 0 to {MAX_BLOCK}"),
                )
            })?;
    }
    Ok(sizes)
}

/// The `write` section: the only cells a client may write, each declared.
fn open_writes(
    cells: &mut [Cell],
    map: &serde_json::Map<String, Json>,
    path: &[Step],
) -> Faulty<()> {
    let total = cells.len();
    let write_path = key(path, "write");
    for (i, entry) in list(required(map, path, "write", "a device entry")?, &write_path)? {
        let at = index(&write_path, i);
        let (start, end) = span(entry, &at)?;
        for address in start..=end {
            let cell = cells.get_mut(address).ok_or_else(|| {
                fault(
                    &at,
                    format!("write [{start}, {end}] is past the device's {total} registers"),
                )
            })?;
            if cell.kind == Kind::Invalid {
                return Err(fault(
                    &at,
                    format!("write: register {address} is not declared"),
                ));
            }
            cell.writable = true;
        }
    }

    Ok(())
}

/// The `repeat` section, after everything else.
fn repeat(cells: &mut [Cell], map: &serde_json::Map<String, Json>, path: &[Step]) -> Faulty<()> {
    let total = cells.len();
    let repeat_path = key(path, "repeat");
    for (i, entry) in list(
        required(map, path, "repeat", "a device entry")?,
        &repeat_path,
    )? {
        let at = index(&repeat_path, i);
        let rule = object(entry, &at, "a repeat")?;
        only_keys(rule, &at, &["addr", "to"], "a repeat")?;
        let from_path = key(&at, "addr");
        let to_path = key(&at, "to");
        let (from, from_end) = match required(rule, &at, "addr", "a repeat")? {
            pair @ Json::Array(_) => span(pair, &from_path)?,
            _ => return Err(fault(&from_path, "a repeat's \"addr\" is [start, end]")),
        };
        let (to, to_end) = match required(rule, &at, "to", "a repeat")? {
            pair @ Json::Array(_) => span(pair, &to_path)?,
            _ => return Err(fault(&to_path, "a repeat's \"to\" is [start, end]")),
        };
        // pymodbus: the source index steps from `from` to `from_end` and starts again, and
        // each cell is copied as it is when reached (an overlap copies copies).
        let mut source: Option<usize> = None;
        for target in to..=to_end {
            let next = match source {
                Some(s) if s < from_end => s + 1,
                _ => from,
            };
            source = Some(next);
            if target >= total || next >= total {
                return Err(fault(
                    &at,
                    format!("repeat reaches past the device's {total} registers"),
                ));
            }
            cells[target] = cells[next];
        }
    }
    Ok(())
}

fn list<'a>(json: &'a Json, path: &[Step]) -> Faulty<impl Iterator<Item = (usize, &'a Json)>> {
    json.as_array()
        .map(|entries| entries.iter().enumerate())
        .ok_or_else(|| fault(path, "this section is a list"))
}

/// One entry of a type section.
#[expect(
    clippy::too_many_arguments,
    reason = "the entry and the defaults it falls back on"
)]
fn declare(
    cells: &mut [Cell],
    kind: Kind,
    section: &str,
    entry: &Json,
    at: &[Step],
    default_values: &serde_json::Map<String, Json>,
    default_actions: &serde_json::Map<String, Json>,
    defaults_path: &[Step],
) -> Faulty<()> {
    let total = cells.len();
    let (addr_json, addr_path, fields) = match entry {
        Json::Object(fields) => {
            only_keys(
                fields,
                at,
                &["addr", "value", "action", "parameters"],
                "a value",
            )?;
            (
                required(fields, at, "addr", "a value")?,
                key(at, "addr"),
                Some(fields),
            )
        }
        other => (other, at.to_vec(), None),
    };
    let (start, end) = span(addr_json, &addr_path)?;
    if end >= total {
        return Err(fault(
            &addr_path,
            format!("{section} [{start}, {end}] is past the device's {total} registers"),
        ));
    }
    let field = |name: &str| fields.and_then(|f| f.get(name));
    let (value, value_path) = match field("value") {
        Some(v) => (Some(v), key(at, "value")),
        None => (
            default_values.get(section),
            key(&key(defaults_path, "value"), section),
        ),
    };
    let (action_json, action_path) = match field("action") {
        Some(a) => (a, key(at, "action")),
        None => (
            default_actions.get(section).unwrap_or(&Json::Null),
            key(&key(defaults_path, "action"), section),
        ),
    };
    let action = action(
        action_json,
        field("parameters"),
        &action_path,
        &key(at, "parameters"),
    )?;
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Err(fault(
            at,
            format!("no value, and no default value for {section}"),
        ));
    };
    let used = |address: usize| {
        fault(
            at,
            format!("{section}: register {address} is declared twice"),
        )
    };

    if kind == Kind::String {
        return declare_string(cells, value, &value_path, (start, end), action, at);
    }
    let number = number(value)
        .ok_or_else(|| fault(&value_path, format!("a {section} value is a number")))?;
    let words = kind
        .encode(number)
        .ok_or_else(|| fault(&value_path, format!("{value} does not fit a {section}")))?;
    let step = words.len();
    let mut address = start;
    while address <= end {
        for (k, &word) in words.iter().enumerate() {
            // pymodbus takes a slice: a value running past the end is cut short.
            let Some(cell) = cells.get_mut(address + k) else {
                break;
            };
            if cell.kind != Kind::Invalid {
                return Err(used(address + k));
            }
            cell.value = word;
            if k == 0 {
                cell.kind = kind;
                cell.action = action;
            } else {
                cell.kind = Kind::Next;
            }
        }
        address += step;
    }
    Ok(())
}

/// A `string` entry: space-padded text, two characters a register, high byte first.
fn declare_string(
    cells: &mut [Cell],
    value: &Json,
    value_path: &[Step],
    (start, end): (usize, usize),
    action: Option<Action>,
    at: &[Step],
) -> Faulty<()> {
    let value_path = value_path.to_vec();
    let used = |address: usize| fault(at, format!("string: register {address} is declared twice"));
    let Json::String(text) = value else {
        return Err(fault(&value_path, "a string's value is text"));
    };
    if !text.is_ascii() {
        return Err(fault(
            &value_path,
            "a string's value is ASCII text (pymodbus packs UTF-8 bytes into registers unchecked)",
        ));
    }
    let registers = (end + 1).saturating_sub(start);
    if registers == 0 || text.len() > 2 * registers {
        return Err(fault(
            &value_path,
            format!("{text:?} is too long for registers {start} to {end}"),
        ));
    }
    // Space-padded, two characters a register, high byte first.
    let padded = format!("{text:<width$}", width = 2 * registers);
    let bytes = padded.as_bytes();
    for i in 0..registers {
        let cell = &mut cells[start + i];
        if cell.kind != Kind::Invalid {
            return Err(used(start + i));
        }
        cell.value = u16::from_be_bytes([bytes[2 * i], bytes[2 * i + 1]]);
        cell.kind = Kind::Next;
    }
    cells[start].kind = Kind::String;
    cells[start].action = action;
    Ok(())
}

/// The byte offset in `text` (valid JSON) of the value at `path`.
fn locate(text: &str, path: &[Step]) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut at = skip_space(bytes, 0);
    for step in path {
        match step {
            Step::Key(wanted) => {
                if bytes.get(at) != Some(&b'{') {
                    return None;
                }
                at = skip_space(bytes, at + 1);
                loop {
                    if bytes.get(at) != Some(&b'"') {
                        return None;
                    }
                    let key_end = skip_value(bytes, at)?;
                    let name: String = serde_json::from_str(&text[at..key_end]).ok()?;
                    at = skip_space(bytes, key_end);
                    at = skip_space(bytes, at + 1); // the ':'
                    if &name == wanted {
                        break;
                    }
                    at = skip_space(bytes, skip_value(bytes, at)?);
                    if bytes.get(at) != Some(&b',') {
                        return None;
                    }
                    at = skip_space(bytes, at + 1);
                }
            }
            Step::Index(n) => {
                if bytes.get(at) != Some(&b'[') {
                    return None;
                }
                at = skip_space(bytes, at + 1);
                for _ in 0..*n {
                    at = skip_space(bytes, skip_value(bytes, at)?);
                    if bytes.get(at) != Some(&b',') {
                        return None;
                    }
                    at = skip_space(bytes, at + 1);
                }
            }
        }
    }
    Some(at)
}

fn skip_space(bytes: &[u8], mut at: usize) -> usize {
    while bytes.get(at).is_some_and(u8::is_ascii_whitespace) {
        at += 1;
    }
    at
}

/// The offset just after the value starting at `at`.
fn skip_value(bytes: &[u8], at: usize) -> Option<usize> {
    match *bytes.get(at)? {
        b'"' => {
            let mut i = at + 1;
            loop {
                match *bytes.get(i)? {
                    b'\\' => i += 2,
                    b'"' => return Some(i + 1),
                    _ => i += 1,
                }
            }
        }
        open @ (b'{' | b'[') => {
            let close = if open == b'{' { b'}' } else { b']' };
            let mut i = skip_space(bytes, at + 1);
            if bytes.get(i) == Some(&close) {
                return Some(i + 1);
            }
            loop {
                if open == b'{' {
                    i = skip_space(bytes, skip_value(bytes, i)?); // the key
                    i = skip_space(bytes, i + 1); // the ':'
                }
                i = skip_space(bytes, skip_value(bytes, i)?);
                match *bytes.get(i)? {
                    b',' => i = skip_space(bytes, i + 1),
                    c if c == close => return Some(i + 1),
                    _ => return None,
                }
            }
        }
        _ => {
            let mut i = at;
            while bytes
                .get(i)
                .is_some_and(|c| !matches!(c, b',' | b']' | b'}') && !c.is_ascii_whitespace())
            {
                i += 1;
            }
            Some(i)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"{
  "server_list": {"rtu": {"comm": "serial", "port": "/dev/x", "framer": "rtu",
                          "baudrate": 9600, "parity": "N", "device_id": 3}},
  "device_list": {"meter": {
    "setup": {"co size": 4, "di size": 4, "hr size": 16, "ir size": 16,
              "shared blocks": true, "type exception": true,
              "defaults": {"value": {"bits": 0, "uint16": 0, "uint32": 0, "float32": 0.0,
                                     "float64": 0.0, "string": " "},
                           "action": {"bits": null, "uint16": null, "uint32": null,
                                      "float32": null, "float64": null, "string": null}}},
    "invalid": [1], "write": [3],
    "bits": [{"addr": 2, "value": 7}],
    "uint16": [{"addr": 3, "value": 17001}],
    "uint32": [{"addr": [4, 5], "value": 617001}],
    "float32": [{"addr": [6, 7], "value": 230.5}],
    "string": [{"addr": [8, 10], "value": "SDM63"}],
    "repeat": []}}
}"#;

    fn values(loaded: &Loaded) -> Vec<(Kind, u16)> {
        loaded
            .cells
            .cells()
            .iter()
            .map(|c| (c.kind, c.value))
            .collect()
    }

    #[test]
    fn the_reference_file_lays_out_its_cells() {
        let loaded = load(FILE, "rtu", "meter", 0).unwrap();
        assert_eq!(loaded.baud, 9600);
        assert_eq!(loaded.device_id, Some(3));
        let cells = values(&loaded);
        assert_eq!(cells[1], (Kind::Invalid, 0));
        assert_eq!(cells[2], (Kind::Bits, 7));
        assert_eq!(cells[4..6], [(Kind::Uint32, 9), (Kind::Next, 27_177)]);
        assert_eq!(cells[6..8], [(Kind::Float32, 0x4366), (Kind::Next, 0x8000)]);
        // "SDM63" in [8, 10]: space-padded to three registers.
        assert_eq!(
            cells[8..11],
            [
                (Kind::String, u16::from_be_bytes(*b"SD")),
                (Kind::Next, u16::from_be_bytes(*b"M6")),
                (Kind::Next, u16::from_be_bytes(*b"3 ")),
            ]
        );
        assert!(loaded.cells.cells()[3].writable);
    }

    #[test]
    fn errors_name_the_line_and_column_of_the_value() {
        let bad = FILE.replace("\"value\": 17001", "\"value\": -1");
        let error = load(&bad, "rtu", "meter", 0).unwrap_err();
        assert_eq!((error.line, error.column), (13, 37), "{error}");
        assert!(error.message.contains("does not fit a uint16"), "{error}");

        let bad = FILE.replace("\"addr\": [4, 5]", "\"addr\": [4, 99]");
        let error = load(&bad, "rtu", "meter", 0).unwrap_err();
        assert_eq!(error.line, 14, "{error}");
        assert!(
            error.message.contains("past the device's 16 registers"),
            "{error}"
        );

        let bad = FILE.replace("\"framer\": \"rtu\"", "\"framer\": \"socket\"");
        let error = load(&bad, "rtu", "meter", 0).unwrap_err();
        assert_eq!((error.line, error.column), (2, 73), "{error}");

        let bad = FILE.replace("\"repeat\": []", "\"repeat\": [], \"colour\": 1");
        let error = load(&bad, "rtu", "meter", 0).unwrap_err();
        assert!(error.message.contains("unknown key \"colour\""), "{error}");

        let bad = FILE.replace("{\"addr\": 2, \"value\": 7}", "{\"addr\": 3, \"value\": 7}");
        let error = load(&bad, "rtu", "meter", 0).unwrap_err();
        assert!(
            error.message.contains("register 3 is declared twice"),
            "{error}"
        );

        let error = load(FILE, "tcp", "meter", 0).unwrap_err();
        assert!(
            error.message.contains("has no \"tcp\" (it has: rtu)"),
            "{error}"
        );

        let error = load("{\"server_list\": ", "rtu", "meter", 0).unwrap_err();
        assert_eq!(error.line, 1, "{error}");
    }
}
