//! A recorded Modbus line learned into a register map: `serialtwin learn --framing
//! modbus-rtu capture.jsonl` ([`NamedFraming::learn`]).
//!
//! A scripted device answering each recorded request byte for byte would answer only the
//! exact reads the client happened to make. A Modbus device is a set of tables, and what the
//! capture shows of them is worth more as tables: every register and bit a reply carried,
//! at its unit and address, so that any read of what was seen (in any span, by any client)
//! gets the same words. So this writes a `model = "modbus"` config:
//!
//! - one `[[device.modbus.unit]]` per unit that answered anything, with every holding and
//!   input register (as `u16`) and every coil and discrete input its replies carried, at the
//!   value **seen last**: read, or written and echoed (FC 5, 6, 15, 16, 23's write); a value
//!   that changed between reads says so in a comment, with the values in order;
//! - a holding register or coil the client wrote and the unit accepted is `writable`; one
//!   whose write was refused (an exception) is not;
//! - device identification (43/14) objects 0–2 as `vendor`, `product`, `revision`;
//! - every exception seen, every request a unit never answered, every reply that was not
//!   the answer its request asked for, and every function this does not learn, noted in
//!   comments where a person editing the map will see them;
//! - `gaps = "exception"`: what was never seen answers 02 (illegal data address), as an
//!   address the real device lacks would; a read the device refused is refused again when it
//!   touches an address that was never seen. Edit it freely (`serialtwin models modbus`);
//! - `[device.line] baud`: the recorded line's, so that the client's settings still fit.
//!
//! Only replies that are what their request asked for are learned: the right unit and
//! function, a CRC (or LRC) that verifies, and as many values as were asked.
//!
//! [`NamedFraming::learn`]: crate::registry::NamedFraming::learn

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serialtwin_core::{Direction, Framing};

use super::{ascii, describe, rtu};
use crate::learn::LearnOptions;
use crate::replay::Conversation;
use crate::scripted::escape_bytes;

/// How many values of a changing register a comment lists before `…`.
const HISTORY: usize = 8;

/// What one address was seen holding.
#[derive(Clone, Debug)]
struct Seen<T> {
    /// Every value in order, consecutive repeats folded (at most [`HISTORY`] + 1 kept).
    values: Vec<T>,
    /// How many more changes than `values` holds.
    more: usize,
    /// The last value: what the learned map holds.
    last: T,
    /// How many times a reply carried it.
    reads: usize,
    /// Whether the client wrote it and the unit accepted.
    written: bool,
}

impl<T: Copy + PartialEq> Seen<T> {
    fn new(value: T) -> Self {
        Self {
            values: vec![value],
            more: 0,
            last: value,
            reads: 0,
            written: false,
        }
    }

    fn saw(&mut self, value: T) {
        if self.last != value {
            if self.values.len() <= HISTORY {
                self.values.push(value);
            } else {
                self.more += 1;
            }
        }
        self.last = value;
    }
}

/// One of a unit's four tables.
type Table<T> = BTreeMap<u16, Seen<T>>;

fn saw<T: Copy + PartialEq>(table: &mut Table<T>, address: u16, value: T, how: How) {
    let seen = table
        .entry(address)
        .and_modify(|s| s.saw(value))
        .or_insert_with(|| Seen::new(value));
    match how {
        How::Read => seen.reads += 1,
        How::Written => seen.written = true,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum How {
    Read,
    Written,
}

/// What the capture showed of one unit.
#[derive(Debug, Default)]
struct UnitMap {
    holding: Table<u16>,
    input: Table<u16>,
    coil: Table<bool>,
    discrete: Table<bool>,
    /// Holding registers and coils whose write the unit refused.
    refused_holding: BTreeSet<u16>,
    refused_coil: BTreeSet<u16>,
    /// Device identification objects by id.
    identification: BTreeMap<u8, Vec<u8>>,
    /// Notes for the comment above the unit, each with how often: exceptions, silences,
    /// replies not learned.
    notes: BTreeMap<String, usize>,
    /// Whether the unit answered anything (a unit that never did stays off the map: silent).
    answered: bool,
}

impl UnitMap {
    fn note(&mut self, note: String) {
        *self.notes.entry(note).or_default() += 1;
    }
}

/// A reply as it went on the wire, back to address, function code and data, if its CRC (or
/// LRC) verifies.
fn unwire(wire: &[u8], ascii: bool) -> Option<Vec<u8>> {
    if ascii {
        let bytes = describe::unhex(wire)?;
        let (&lrc, body) = bytes.split_last()?;
        (body.len() >= 2 && ascii::lrc(body) == lrc).then(|| body.to_vec())
    } else {
        let (body, crc) = wire.split_last_chunk::<2>()?;
        (body.len() >= 2 && rtu::crc16(body).to_le_bytes() == *crc).then(|| body.to_vec())
    }
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    bytes
        .get(at..at + 2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
}

/// `quantity` words from `data`, if it holds exactly that many.
fn words(data: &[u8], quantity: u16) -> Option<Vec<u16>> {
    (data.len() == 2 * usize::from(quantity)).then(|| {
        data.chunks_exact(2)
            .map(|w| u16::from_be_bytes([w[0], w[1]]))
            .collect()
    })
}

/// `quantity` bits from `packed` (first bit in the low bit of the first byte), if it holds
/// exactly the bytes they take.
fn bits(packed: &[u8], quantity: u16) -> Option<Vec<bool>> {
    let n = usize::from(quantity);
    (packed.len() == n.div_ceil(8))
        .then(|| (0..n).map(|i| packed[i / 8] >> (i % 8) & 1 == 1).collect())
}

/// Addresses from `start` on, one per value; `None` past 65535.
fn at(start: u16, i: usize) -> Option<u16> {
    u16::try_from(usize::from(start) + i).ok()
}

/// Learn what `reply` (address, function code, data; a normal reply to `request`) says.
/// `false` if it is not what the request asked for.
#[expect(
    clippy::too_many_lines,
    reason = "one arm per function code, read side by side as APP §6 lists them"
)]
fn learn_reply(unit: &mut UnitMap, request: &[u8], reply: &[u8]) -> bool {
    let function = request[1];
    let data = &reply[2..];
    let start = u16_at(request, 2);
    let quantity = u16_at(request, 4);
    let counted = |data: &[u8]| -> Option<Vec<u8>> {
        let (&count, rest) = data.split_first()?;
        (rest.len() == usize::from(count)).then(|| rest.to_vec())
    };
    match function {
        1 | 2 => {
            let (Some(start), Some(quantity), Some(packed)) = (start, quantity, counted(data))
            else {
                return false;
            };
            let Some(values) = bits(&packed, quantity) else {
                return false;
            };
            let table = if function == 1 {
                &mut unit.coil
            } else {
                &mut unit.discrete
            };
            for (i, v) in values.into_iter().enumerate() {
                if let Some(a) = at(start, i) {
                    saw(table, a, v, How::Read);
                }
            }
            true
        }
        3 | 4 => {
            let (Some(start), Some(quantity), Some(data)) = (start, quantity, counted(data)) else {
                return false;
            };
            let Some(values) = words(&data, quantity) else {
                return false;
            };
            let table = if function == 3 {
                &mut unit.holding
            } else {
                &mut unit.input
            };
            for (i, v) in values.into_iter().enumerate() {
                if let Some(a) = at(start, i) {
                    saw(table, a, v, How::Read);
                }
            }
            true
        }
        5 | 6 if reply == request => {
            let (Some(address), Some(value)) = (start, quantity) else {
                return false;
            };
            if function == 5 {
                saw(&mut unit.coil, address, value == 0xFF00, How::Written);
            } else {
                saw(&mut unit.holding, address, value, How::Written);
            }
            true
        }
        15 | 16 if reply.get(..6) == request.get(..6) && reply.len() == 6 => {
            let (Some(start), Some(quantity)) = (start, quantity) else {
                return false;
            };
            let sent = request.get(7..).unwrap_or_default();
            if function == 15 {
                let Some(values) = bits(sent, quantity) else {
                    return false;
                };
                for (i, v) in values.into_iter().enumerate() {
                    if let Some(a) = at(start, i) {
                        saw(&mut unit.coil, a, v, How::Written);
                    }
                }
            } else {
                let Some(values) = words(sent, quantity) else {
                    return false;
                };
                for (i, v) in values.into_iter().enumerate() {
                    if let Some(a) = at(start, i) {
                        saw(&mut unit.holding, a, v, How::Written);
                    }
                }
            }
            true
        }
        22 if reply == request => {
            // Mask write: the result depends on the value before, known only if it was seen.
            let (Some(address), Some(and), Some(or)) = (start, quantity, u16_at(request, 6)) else {
                return false;
            };
            let before = unit.holding.get(&address).map(|s| s.last);
            match before {
                Some(current) => saw(
                    &mut unit.holding,
                    address,
                    (current & and) | (or & !and),
                    How::Written,
                ),
                None => unit.note(format!(
                    "mask write to holding 0x{address:04X} accepted, its value never read: not in the map"
                )),
            }
            true
        }
        23 => {
            // Written first, then read (APP §6.17).
            let (Some(read), Some(read_quantity), Some(write), Some(write_quantity)) =
                (start, quantity, u16_at(request, 6), u16_at(request, 8))
            else {
                return false;
            };
            let (Some(sent), Some(data)) = (
                request.get(11..).and_then(|w| words(w, write_quantity)),
                counted(data).and_then(|d| words(&d, read_quantity)),
            ) else {
                return false;
            };
            for (i, v) in sent.into_iter().enumerate() {
                if let Some(a) = at(write, i) {
                    saw(&mut unit.holding, a, v, How::Written);
                }
            }
            for (i, v) in data.into_iter().enumerate() {
                if let Some(a) = at(read, i) {
                    saw(&mut unit.holding, a, v, How::Read);
                }
            }
            true
        }
        43 if request.get(2) == Some(&14) && data.first() == Some(&14) => {
            // 14, code, conformity, more, next id, count, then {id, length, bytes}.
            let Some(&count) = data.get(5) else {
                return false;
            };
            let mut at = 6;
            for _ in 0..count {
                let (Some(&id), Some(&len)) = (data.get(at), data.get(at + 1)) else {
                    return false;
                };
                let Some(value) = data.get(at + 2..at + 2 + usize::from(len)) else {
                    return false;
                };
                unit.identification.insert(id, value.to_vec());
                at += 2 + usize::from(len);
            }
            true
        }
        _ => {
            unit.note(format!(
                "{}: answered, not learned (the map answers it its own way)",
                request_words(request)
            ));
            true
        }
    }
}

fn request_words(request: &[u8]) -> String {
    describe::rtu(request, Direction::Rx).unwrap_or_else(|| escape_bytes(request))
}

/// What a refused write was aimed at, so the map can keep it read-only.
fn refused(unit: &mut UnitMap, request: &[u8]) {
    let (Some(start), Some(quantity)) = (u16_at(request, 2), u16_at(request, 4)) else {
        return;
    };
    let (table, count) = match request[1] {
        5 => (&mut unit.refused_coil, 1),
        6 => (&mut unit.refused_holding, 1),
        15 => (&mut unit.refused_coil, quantity),
        16 => (&mut unit.refused_holding, quantity),
        _ => return,
    };
    for i in 0..usize::from(count) {
        if let Some(a) = at(start, i) {
            table.insert(a);
        }
    }
}

/// The units the conversation shows, by address; and what the file's opening comment says
/// about requests that reached none.
fn units(
    conversation: &Conversation,
    ascii: bool,
) -> (BTreeMap<u8, UnitMap>, BTreeMap<String, usize>) {
    let mut units: BTreeMap<u8, UnitMap> = BTreeMap::new();
    let mut general: BTreeMap<String, usize> = BTreeMap::new();
    for exchange in &conversation.exchanges {
        let request = &exchange.request[..];
        let (Some(&address), Some(&function)) = (request.first(), request.get(1)) else {
            continue;
        };
        if address == 0 {
            *general
                .entry(format!(
                    "{} (a broadcast: no unit answers)",
                    request_words(request)
                ))
                .or_default() += 1;
            continue;
        }
        let replies: Vec<Vec<u8>> = exchange
            .replies
            .iter()
            .filter_map(|(_, wire)| unwire(wire, ascii))
            .collect();
        let answer = replies
            .iter()
            .find(|r| r[0] == address && (r[1] == function || r[1] == function | 0x80));
        let unit = units.entry(address).or_default();
        match answer {
            None if replies.is_empty() && exchange.replies.is_empty() => {
                unit.note(format!("{}: no answer", request_words(request)));
            }
            None => unit.note(format!(
                "{}: answered with something else, not learned",
                request_words(request)
            )),
            Some(reply) if reply[1] & 0x80 != 0 => {
                unit.answered = true;
                let code = reply.get(2).copied().unwrap_or(0);
                unit.note(format!(
                    "{}: exception {code:02X} ({})",
                    request_words(request),
                    exception_name(code)
                ));
                refused(unit, request);
            }
            Some(reply) => {
                unit.answered = true;
                if !learn_reply(unit, request, reply) {
                    unit.note(format!(
                        "{}: the reply is not what was asked for, not learned",
                        request_words(request)
                    ));
                }
            }
        }
    }
    (units, general)
}

fn exception_name(code: u8) -> &'static str {
    match code {
        0x01 => "illegal function",
        0x02 => "illegal data address",
        0x03 => "illegal data value",
        0x04 => "server device failure",
        0x05 => "acknowledge",
        0x06 => "server busy",
        0x08 => "memory parity error",
        0x0A => "gateway path unavailable",
        0x0B => "gateway target failed to respond",
        _ => "unknown",
    }
}

/// A TOML basic string holding `bytes` (escapes for anything but printable ASCII).
fn toml_string(bytes: &[u8]) -> String {
    let mut s = String::from("\"");
    for c in String::from_utf8_lossy(bytes).chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(s, "\\u{:04X}", u32::from(c));
            }
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

fn notes(out: &mut String, notes: &BTreeMap<String, usize>) {
    for (note, count) in notes {
        let _ = writeln!(out, "# {note} (seen {count} time(s))");
    }
}

/// The comment after a value: how it changed over the capture, whether the client wrote it;
/// nothing for a value only ever read the same.
fn history<T: Copy>(seen: &Seen<T>, show: impl Fn(T) -> String) -> String {
    let mut parts = Vec::new();
    if seen.values.len() > 1 {
        let values: Vec<String> = seen.values.iter().map(|v| show(*v)).collect();
        parts.push(format!(
            "changed: {}{} (the last kept)",
            values.join(", "),
            if seen.more > 0 { ", …" } else { "" }
        ));
    }
    if seen.written {
        parts.push("written by the client".to_owned());
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("  # {}", parts.join("; "))
    }
}

fn registers(out: &mut String, name: &str, table: &Table<u16>, refused: &BTreeSet<u16>) {
    for (address, seen) in table {
        let _ = writeln!(out, "\n[[device.modbus.unit.{name}]]");
        let _ = writeln!(out, "address = {address}");
        let _ = writeln!(
            out,
            "value = {}{}",
            seen.last,
            history(seen, |v| format!("0x{v:04X}"))
        );
        if name == "holding" && refused.contains(address) && !seen.written {
            out.push_str("writable = false  # a write was refused\n");
        }
    }
}

fn coils(out: &mut String, name: &str, table: &Table<bool>, refused: &BTreeSet<u16>) {
    for (address, seen) in table {
        let _ = writeln!(out, "\n[[device.modbus.unit.{name}]]");
        let _ = writeln!(out, "address = {address}");
        let _ = writeln!(
            out,
            "value = {}{}",
            seen.last,
            history(seen, |v| if v { "on" } else { "off" }.to_owned())
        );
        if name == "coil" && refused.contains(address) && !seen.written {
            out.push_str("writable = false  # a write was refused\n");
        }
    }
}

/// The fleet config (TOML) of a `modbus` device whose register map holds what
/// `conversation` showed (see the [module docs](self)).
#[must_use]
pub fn learn(conversation: &Conversation, framing: &Framing, options: &LearnOptions) -> String {
    let ascii = framing.name() == ascii::NAME;
    let (units, general) = units(conversation, ascii);
    let answering: Vec<(&u8, &UnitMap)> = units.iter().filter(|(_, u)| u.answered).collect();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Learned by `serialtwin learn` from {} (framing {}): {} exchange(s), {} unit(s) answering.",
        options.source,
        framing.name(),
        conversation.exchanges.len(),
        answering.len()
    );
    out.push_str(
        "# A register map: every register and bit the replies carried, at its unit and address, with\n\
         # the value seen last (read, or written and echoed). Any read of what was seen gets the same\n\
         # words; what was never seen answers exception 02 (gaps = \"exception\"). Values are u16\n\
         # registers as they went on the wire: give them types, orders and scales\n\
         # (`serialtwin models modbus`) once you know what they mean.\n",
    );
    let silent: Vec<String> = units
        .iter()
        .filter(|(_, u)| !u.answered)
        .map(|(id, _)| id.to_string())
        .collect();
    if !silent.is_empty() {
        let _ = writeln!(
            out,
            "# Never answered, and left off the map (silent): unit(s) {}.",
            silent.join(", ")
        );
        for (_, unit) in units.iter().filter(|(_, u)| !u.answered) {
            notes(&mut out, &unit.notes);
        }
    }
    notes(&mut out, &general);
    out.push_str("\n[[device]]\n");
    let _ = writeln!(out, "name = {}", toml_string(options.name.as_bytes()));
    out.push_str("model = \"modbus\"\n");
    let _ = writeln!(out, "framing = {}", toml_string(framing.name().as_bytes()));
    if let Some(link) = &options.link {
        let _ = writeln!(out, "link = {}", toml_string(link.as_bytes()));
    }
    if let Some(settings) = &conversation.settings {
        let _ = writeln!(
            out,
            "\n[device.line]\nbaud = {}  # as recorded",
            settings.baud
        );
    }
    out.push_str("\n[device.modbus]\ngaps = \"exception\"\n");
    for (id, unit) in answering {
        let _ = writeln!(out, "\n[[device.modbus.unit]]");
        notes(&mut out, &unit.notes);
        let _ = writeln!(out, "id = {id}");
        for (key, object) in [("vendor", 0u8), ("product", 1), ("revision", 2)] {
            if let Some(value) = unit.identification.get(&object) {
                let _ = writeln!(out, "{key} = {}", toml_string(value));
            }
        }
        for (object, value) in unit.identification.range(3..) {
            let _ = writeln!(
                out,
                "# identification object 0x{object:02X}: {} (not in the map)",
                toml_string(value)
            );
        }
        registers(&mut out, "holding", &unit.holding, &unit.refused_holding);
        registers(&mut out, "input", &unit.input, &BTreeSet::new());
        coils(&mut out, "coil", &unit.coil, &unit.refused_coil);
        coils(&mut out, "discrete", &unit.discrete, &BTreeSet::new());
    }
    out
}
