//! One short line on a Modbus frame, for `--trace` ([`NamedFraming::describe`]): the unit,
//! the function, its address and quantity or values, an exception (`modbus.md` §1, §3, §4;
//! APP §6, §7).
//!
//! ```text
//! unit 1 read holding 0x006B ×3
//! unit 1 holding ×3: 0x022B 0x0000 0x0064
//! unit 1 exception 02 (illegal data address) to read holding
//! ```
//!
//! A request (`rx`) is described as the framer decoded it: address, function code, data. A
//! reply (`tx`) as it went on the wire: [`rtu`] checks and strips its CRC, [`ascii`] its `:`,
//! hex, LRC and CR LF. Nothing in a frame is trusted: a frame too short for its function, or
//! with bytes left over, is said to be, and the describers never panic, whatever the bytes.
//!
//! Registers and values are in hex, as the standard writes them; quantities in decimal. Bits
//! (coils, discrete inputs) are written first bit first: the first coil is the least
//! significant bit of the first byte (APP §6.1). At most [`SHOWN`] values are written, then `…`.
//!
//! [`NamedFraming::describe`]: crate::registry::NamedFraming::describe

use std::fmt::Write as _;

use serialtwin_core::Direction;
use serialtwin_core::escape::escape;

/// How many registers, objects or bytes of bits a line shows before `…`.
pub const SHOWN: usize = 4;

/// A `modbus-rtu` frame: a request as decoded (no CRC), a reply with its CRC.
#[must_use]
pub fn rtu(frame: &[u8], direction: Direction) -> Option<String> {
    Some(match direction {
        Direction::Rx => adu(frame, Role::Request),
        Direction::Tx => match frame.split_last_chunk::<2>() {
            Some((body, crc)) if !body.is_empty() => {
                if super::rtu::crc16(body).to_le_bytes() == *crc {
                    adu(body, Role::Reply)
                } else {
                    format!("{}; CRC does not verify", adu(body, Role::Reply))
                }
            }
            _ => format!("too short for a frame ({} bytes)", frame.len()),
        },
    })
}

/// A `modbus-ascii` frame: a request as decoded (binary, no LRC), a reply as `:`, hex, LRC
/// and CR LF.
#[must_use]
pub fn ascii(frame: &[u8], direction: Direction) -> Option<String> {
    Some(match direction {
        Direction::Rx => adu(frame, Role::Request),
        Direction::Tx => match unhex(frame).as_deref().map(<[u8]>::split_last) {
            None => "not a Modbus ASCII frame".to_owned(),
            Some(Some((&lrc, body))) if !body.is_empty() => {
                if super::ascii::lrc(body) == lrc {
                    adu(body, Role::Reply)
                } else {
                    format!("{}; LRC does not verify", adu(body, Role::Reply))
                }
            }
            Some(_) => "too short for a frame".to_owned(),
        },
    })
}

/// The binary bytes of an ASCII frame on the wire: `:`, pairs of hex digits, then CR LF (or
/// whatever line end: FC 8 sub 3 can change it). `None` if it is not that.
pub(super) fn unhex(wire: &[u8]) -> Option<Vec<u8>> {
    let hex = wire.strip_prefix(b":")?;
    let end = hex
        .iter()
        .rposition(|b| !matches!(b, b'\r' | b'\n'))
        .map_or(0, |i| i + 1);
    let hex = &hex[..end];
    if hex.len() % 2 != 0 {
        return None;
    }
    let digit = |c: u8| {
        char::from(c)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    hex.chunks_exact(2)
        .map(|pair| Some((digit(pair[0])? << 4) | digit(pair[1])?))
        .collect()
}

/// Which way a frame went: the function code's layouts differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// From the client (rx).
    Request,
    /// From the unit (tx).
    Reply,
}

/// An ADU without its CRC or LRC: address, function code, data.
fn adu(adu: &[u8], role: Role) -> String {
    let Some((&address, pdu)) = adu.split_first() else {
        return "empty frame".to_owned();
    };
    let unit = if address == 0 {
        "broadcast".to_owned()
    } else {
        format!("unit {address}")
    };
    let Some((&function, data)) = pdu.split_first() else {
        return format!("{unit}: no function code");
    };
    let what = match role {
        Role::Request => request(function, data),
        Role::Reply => reply(function, data),
    };
    format!("{unit} {what}")
}

/// What a function is called in a line; `None` for codes this describer does not know.
fn name(function: u8) -> Option<&'static str> {
    Some(match function {
        0x01 => "read coils",
        0x02 => "read discrete inputs",
        0x03 => "read holding",
        0x04 => "read input",
        0x05 => "write coil",
        0x06 => "write register",
        0x07 => "read exception status",
        0x08 => "diagnostics",
        0x0B => "get comm event counter",
        0x0F => "write coils",
        0x10 => "write registers",
        0x11 => "report server id",
        0x16 => "mask write",
        0x17 => "read/write",
        0x2B => "encapsulated interface",
        _ => return None,
    })
}

/// `name`, or `function 0x41 (unknown)`.
fn named(function: u8) -> String {
    name(function).map_or_else(
        || format!("function 0x{function:02X} (unknown)"),
        str::to_owned,
    )
}

/// What an exception code means (APP §7).
fn exception(code: u8) -> &'static str {
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

/// A function's data, read field by field; running short is an error naming the function.
struct Fields<'a> {
    function: &'a str,
    data: &'a [u8],
    at: usize,
}

/// The line for data too short for its function.
type Short = String;

impl<'a> Fields<'a> {
    fn new(function: &'a str, data: &'a [u8]) -> Self {
        Self {
            function,
            data,
            at: 0,
        }
    }

    /// The next `n` bytes.
    fn take(&mut self, n: usize) -> Result<&'a [u8], Short> {
        let end = self.at.saturating_add(n);
        let bytes = self.data.get(self.at..end).ok_or_else(|| {
            format!(
                "{}: too short, {} data bytes of at least {end}",
                self.function,
                self.data.len()
            )
        })?;
        self.at = end;
        Ok(bytes)
    }

    fn u8(&mut self) -> Result<u8, Short> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, Short> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// The rest of the data.
    fn rest(&mut self) -> &'a [u8] {
        let rest = self.data.get(self.at..).unwrap_or_default();
        self.at = self.data.len();
        rest
    }

    /// `line`, and what is left over if anything is.
    fn end(&self, mut line: String) -> String {
        let extra = self.data.len().saturating_sub(self.at);
        if extra > 0 {
            let _ = write!(line, "; {} too many", n_bytes(extra));
        }
        line
    }
}

/// A request's line (after the unit).
fn request(function: u8, data: &[u8]) -> String {
    let Some(name) = name(function) else {
        return named(function);
    };
    let mut f = Fields::new(name, data);
    match request_fields(function, name, &mut f) {
        Ok(line) => f.end(line),
        Err(short) => short,
    }
}

fn request_fields(function: u8, name: &str, f: &mut Fields<'_>) -> Result<String, Short> {
    Ok(match function {
        0x01..=0x04 => {
            let (address, quantity) = (f.u16()?, f.u16()?);
            format!("{name} 0x{address:04X} ×{quantity}")
        }
        0x05 => {
            let (address, value) = (f.u16()?, f.u16()?);
            format!("{name} 0x{address:04X} {}", coil(value))
        }
        0x06 => {
            let (address, value) = (f.u16()?, f.u16()?);
            format!("{name} 0x{address:04X} = 0x{value:04X}")
        }
        0x08 => diagnostics(f.u16()?, " data", f.rest()),
        0x0F => {
            let (address, quantity, count) = (f.u16()?, f.u16()?, f.u8()?);
            let packed = f.take(usize::from(count))?;
            format!(
                "{name} 0x{address:04X} ×{quantity}: {}",
                bits(packed, usize::from(quantity))
            )
        }
        0x10 => {
            let (address, quantity, count) = (f.u16()?, f.u16()?, f.u8()?);
            let values = f.take(usize::from(count))?;
            format!("{name} 0x{address:04X} ×{quantity}: {}", words(values))
        }
        0x16 => {
            let (address, and, or) = (f.u16()?, f.u16()?, f.u16()?);
            format!("{name} 0x{address:04X} and 0x{and:04X} or 0x{or:04X}")
        }
        0x17 => {
            let (read, read_quantity) = (f.u16()?, f.u16()?);
            let (write, write_quantity, count) = (f.u16()?, f.u16()?, f.u8()?);
            let values = f.take(usize::from(count))?;
            format!(
                "{name} read 0x{read:04X} ×{read_quantity}, write 0x{write:04X} \
                 ×{write_quantity}: {}",
                words(values)
            )
        }
        0x2B => match f.u8()? {
            0x0E => {
                let (code, object) = (f.u8()?, f.u8()?);
                format!("read device id code {code} object {object}")
            }
            mei => {
                let rest = f.rest();
                format!("{name} MEI 0x{mei:02X}, {}", n_bytes(rest.len()))
            }
        },
        // Known, without fields (FC 7, 11, 17).
        _ => name.to_owned(),
    })
}

/// A reply's line (after the unit).
fn reply(function: u8, data: &[u8]) -> String {
    if function & 0x80 != 0 {
        let to = named(function & 0x7F);
        return match data {
            [code] => format!("exception {code:02X} ({}) to {to}", exception(*code)),
            [] => format!("exception to {to}: too short, no code"),
            [code, extra @ ..] => format!(
                "exception {code:02X} ({}) to {to}; {} too many",
                exception(*code),
                n_bytes(extra.len())
            ),
        };
    }
    let Some(name) = name(function) else {
        return named(function);
    };
    let mut f = Fields::new(name, data);
    match reply_fields(function, name, &mut f) {
        Ok(line) => f.end(line),
        Err(short) => short,
    }
}

fn reply_fields(function: u8, name: &str, f: &mut Fields<'_>) -> Result<String, Short> {
    Ok(match function {
        0x01 | 0x02 => {
            let table = if function == 0x01 {
                "coils"
            } else {
                "discrete inputs"
            };
            let count = f.u8()?;
            let packed = f.take(usize::from(count))?;
            format!(
                "{table}, {}: {}",
                n_bytes(packed.len()),
                bits(packed, packed.len() * 8)
            )
        }
        0x03 | 0x04 | 0x17 => {
            let table = match function {
                0x03 => "holding",
                0x04 => "input",
                _ => "read/write holding",
            };
            let count = f.u8()?;
            let values = f.take(usize::from(count))?;
            format!("{table} ×{}: {}", values.len().div_ceil(2), words(values))
        }
        0x05 => {
            let (address, value) = (f.u16()?, f.u16()?);
            format!("wrote coil 0x{address:04X} {}", coil(value))
        }
        0x06 => {
            let (address, value) = (f.u16()?, f.u16()?);
            format!("wrote register 0x{address:04X} = 0x{value:04X}")
        }
        0x08 => diagnostics(f.u16()?, " answers", f.rest()),
        0x0F | 0x10 => {
            let (address, quantity) = (f.u16()?, f.u16()?);
            let table = if function == 0x0F {
                "coils"
            } else {
                "registers"
            };
            format!("wrote {table} 0x{address:04X} ×{quantity}")
        }
        0x16 => {
            let (address, and, or) = (f.u16()?, f.u16()?, f.u16()?);
            format!("masked 0x{address:04X} and 0x{and:04X} or 0x{or:04X}")
        }
        0x2B => match f.u8()? {
            0x0E => device_id(f)?,
            mei => {
                let rest = f.rest();
                format!("{name} MEI 0x{mei:02X}, {}", n_bytes(rest.len()))
            }
        },
        // Known, without fields decoded (FC 7, 11, 17).
        _ => {
            let rest = f.rest();
            format!("{name}, {}", n_bytes(rest.len()))
        }
    })
}

/// A 43/14 reply after the MEI type: code, conformity, more follows, next object id, number
/// of objects, then each object's id, length and value.
fn device_id(f: &mut Fields<'_>) -> Result<String, Short> {
    let (code, conformity, more, next, count) = (f.u8()?, f.u8()?, f.u8()?, f.u8()?, f.u8()?);
    let mut line = format!("device id code {code} conformity 0x{conformity:02X}:");
    for i in 0..count {
        let (id, len) = (f.u8()?, f.u8()?);
        let value = f.take(usize::from(len))?;
        if usize::from(i) < SHOWN {
            let sep = if i == 0 { " " } else { ", " };
            let _ = write!(line, "{sep}0x{id:02X} \"{}\"", escape(value));
        } else if usize::from(i) == SHOWN {
            line.push_str(" …");
        }
    }
    if more == 0xFF {
        let _ = write!(line, "; more from 0x{next:02X}");
    }
    Ok(line)
}

/// `1 byte`, `2 bytes`.
fn n_bytes(n: usize) -> String {
    if n == 1 {
        "1 byte".to_owned()
    } else {
        format!("{n} bytes")
    }
}

/// Diagnostics: the sub-function and its data, after `data` (a request) or `answers` (a reply).
fn diagnostics(sub: u16, verb: &str, data: &[u8]) -> String {
    let mut line = format!("diagnostics sub 0x{sub:04X}");
    if !data.is_empty() {
        let _ = write!(line, "{verb} {}", words(data));
    }
    line
}

/// A coil value: on (`0xFF00`), off (`0x0000`), or neither (exception 03 for a unit).
fn coil(value: u16) -> String {
    match value {
        0xFF00 => "on".to_owned(),
        0x0000 => "off".to_owned(),
        _ => format!("0x{value:04X} (neither on nor off)"),
    }
}

/// Big-endian registers, at most [`SHOWN`]; an odd last byte on its own.
fn words(bytes: &[u8]) -> String {
    let mut shown: Vec<String> = bytes
        .chunks(2)
        .take(SHOWN)
        .map(|w| match w {
            [hi, lo] => format!("0x{:04X}", u16::from_be_bytes([*hi, *lo])),
            [b] => format!("0x{b:02X}"),
            _ => String::new(),
        })
        .collect();
    if bytes.len() > SHOWN * 2 {
        shown.push("…".to_owned());
    }
    if shown.is_empty() {
        "none".to_owned()
    } else {
        shown.join(" ")
    }
}

/// The first `n` bits of `packed`, first bit first (the least significant bit of the first
/// byte), in groups of eight, at most [`SHOWN`] groups.
fn bits(packed: &[u8], n: usize) -> String {
    let n = n.min(packed.len() * 8);
    let shown = n.min(SHOWN * 8);
    let mut line = String::with_capacity(shown + shown / 8 + 2);
    for i in 0..shown {
        if i > 0 && i % 8 == 0 {
            line.push(' ');
        }
        line.push(if (packed[i / 8] >> (i % 8)) & 1 == 1 {
            '1'
        } else {
            '0'
        });
    }
    if n > shown {
        line.push_str(" …");
    }
    if line.is_empty() {
        "none".to_owned()
    } else {
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request as the framer hands it over: hex, without the CRC.
    fn rx(hex: &str) -> String {
        rtu(&bytes(hex), Direction::Rx).unwrap()
    }

    /// A reply as it goes on the wire: hex, CRC added unless `hex` already ends in one.
    fn tx(hex: &str) -> String {
        let mut wire = bytes(hex);
        wire.extend_from_slice(&super::super::rtu::crc16(&wire).to_le_bytes());
        rtu(&wire, Direction::Tx).unwrap()
    }

    fn bytes(hex: &str) -> Vec<u8> {
        hex.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    #[test]
    fn the_reference_frames() {
        // modbus.md §1, verified frames (RTU, CRC included on the wire).
        let wire = |hex: &str, direction| rtu(&bytes(hex), direction).unwrap();
        // A request as the trace gets it has lost its CRC.
        assert_eq!(rx("01 03 00 6B 00 03"), "unit 1 read holding 0x006B ×3");
        assert_eq!(
            wire("01 03 06 02 2B 00 00 00 64 05 7A", Direction::Tx),
            "unit 1 holding ×3: 0x022B 0x0000 0x0064"
        );
        assert_eq!(
            wire("01 83 02 C0 F1", Direction::Tx),
            "unit 1 exception 02 (illegal data address) to read holding"
        );
        assert_eq!(
            wire("01 83 03 01 31", Direction::Tx),
            "unit 1 exception 03 (illegal data value) to read holding"
        );
        assert_eq!(rx("01 05 00 AC FF 00"), "unit 1 write coil 0x00AC on");
        assert_eq!(
            wire("01 05 00 AC FF 00 4C 1B", Direction::Tx),
            "unit 1 wrote coil 0x00AC on"
        );
        assert_eq!(
            rx("01 08 00 00 A5 37"),
            "unit 1 diagnostics sub 0x0000 data 0xA537"
        );
        assert_eq!(
            wire("01 08 00 00 A5 37 DA 8D", Direction::Tx),
            "unit 1 diagnostics sub 0x0000 answers 0xA537"
        );
        // A corrupted reply is still described, and said to be.
        assert_eq!(
            wire("01 83 02 C0 F2", Direction::Tx),
            "unit 1 exception 02 (illegal data address) to read holding; CRC does not verify"
        );
    }

    #[test]
    fn requests_of_every_function() {
        assert_eq!(rx("01 01 00 13 00 25"), "unit 1 read coils 0x0013 ×37");
        assert_eq!(
            rx("01 02 00 C4 00 16"),
            "unit 1 read discrete inputs 0x00C4 ×22"
        );
        assert_eq!(rx("11 04 00 08 00 01"), "unit 17 read input 0x0008 ×1");
        assert_eq!(rx("01 05 00 AC 00 00"), "unit 1 write coil 0x00AC off");
        assert_eq!(
            rx("01 05 00 AC 12 34"),
            "unit 1 write coil 0x00AC 0x1234 (neither on nor off)"
        );
        assert_eq!(
            rx("01 06 00 01 00 03"),
            "unit 1 write register 0x0001 = 0x0003"
        );
        assert_eq!(
            rx("01 08 00 01 00 00"),
            "unit 1 diagnostics sub 0x0001 data 0x0000"
        );
        assert_eq!(rx("01 08 00 0B"), "unit 1 diagnostics sub 0x000B");
        // APP §6.11: coils 20-29 (0x0013, 10 of them) = CD 01.
        assert_eq!(
            rx("01 0F 00 13 00 0A 02 CD 01"),
            "unit 1 write coils 0x0013 ×10: 10110011 10"
        );
        assert_eq!(
            rx("01 10 00 01 00 02 04 00 0A 01 02"),
            "unit 1 write registers 0x0001 ×2: 0x000A 0x0102"
        );
        assert_eq!(
            rx("01 16 00 04 00 F2 00 25"),
            "unit 1 mask write 0x0004 and 0x00F2 or 0x0025"
        );
        assert_eq!(
            rx("01 17 00 03 00 06 00 0E 00 03 06 00 FF 00 FF 00 FF"),
            "unit 1 read/write read 0x0003 ×6, write 0x000E ×3: 0x00FF 0x00FF 0x00FF"
        );
        assert_eq!(
            rx("01 2B 0E 01 00"),
            "unit 1 read device id code 1 object 0"
        );
        assert_eq!(
            rx("01 2B 0D 01 02"),
            "unit 1 encapsulated interface MEI 0x0D, 2 bytes"
        );
        assert_eq!(rx("01 07"), "unit 1 read exception status");
        assert_eq!(rx("01 11"), "unit 1 report server id");
        assert_eq!(rx("01 41 00 01"), "unit 1 function 0x41 (unknown)");
        assert_eq!(rx("01 83 02"), "unit 1 function 0x83 (unknown)");
        // Broadcast: address 0.
        assert_eq!(
            rx("00 06 00 01 00 03"),
            "broadcast write register 0x0001 = 0x0003"
        );
        assert_eq!(rx("00 05 00 AC FF 00"), "broadcast write coil 0x00AC on");
        // More values than shown.
        assert_eq!(
            rx("01 10 00 00 00 05 0A 00 01 00 02 00 03 00 04 00 05"),
            "unit 1 write registers 0x0000 ×5: 0x0001 0x0002 0x0003 0x0004 …"
        );
    }

    #[test]
    fn replies_of_every_function() {
        // APP §6.1: coils 20-38, CD 6B B2 0E 1B.
        assert_eq!(
            tx("01 01 05 CD 6B B2 0E 1B"),
            "unit 1 coils, 5 bytes: 10110011 11010110 01001101 01110000 …"
        );
        assert_eq!(
            tx("01 02 03 AC DB 35"),
            "unit 1 discrete inputs, 3 bytes: 00110101 11011011 10101100"
        );
        assert_eq!(tx("01 04 02 00 0A"), "unit 1 input ×1: 0x000A");
        assert_eq!(
            tx("01 03 0A 00 01 00 02 00 03 00 04 00 05"),
            "unit 1 holding ×5: 0x0001 0x0002 0x0003 0x0004 …"
        );
        assert_eq!(tx("01 05 00 AC 00 00"), "unit 1 wrote coil 0x00AC off");
        assert_eq!(
            tx("01 06 00 01 00 03"),
            "unit 1 wrote register 0x0001 = 0x0003"
        );
        assert_eq!(tx("01 0F 00 13 00 0A"), "unit 1 wrote coils 0x0013 ×10");
        assert_eq!(tx("01 10 00 01 00 02"), "unit 1 wrote registers 0x0001 ×2");
        assert_eq!(
            tx("01 16 00 04 00 F2 00 25"),
            "unit 1 masked 0x0004 and 0x00F2 or 0x0025"
        );
        assert_eq!(
            tx("01 17 0C 00 FE 0A CD 00 01 00 03 00 0D 00 FF"),
            "unit 1 read/write holding ×6: 0x00FE 0x0ACD 0x0001 0x0003 …"
        );
        // 43/14: code 1, conformity 0x81, no more, three objects.
        assert_eq!(
            tx("01 2B 0E 01 81 00 00 03 00 02 61 62 01 01 6D 02 03 31 2E 30"),
            "unit 1 device id code 1 conformity 0x81: 0x00 \"ab\", 0x01 \"m\", 0x02 \"1.0\""
        );
        assert_eq!(
            tx("01 2B 0E 02 82 FF 03 01 00 01 41"),
            "unit 1 device id code 2 conformity 0x82: 0x00 \"A\"; more from 0x03"
        );
        assert_eq!(tx("01 07 6D"), "unit 1 read exception status, 1 byte");
        assert_eq!(tx("01 41 00"), "unit 1 function 0x41 (unknown)");
    }

    #[test]
    fn exceptions_to_every_function() {
        for (function, name) in [
            (0x81, "read coils"),
            (0x82, "read discrete inputs"),
            (0x84, "read input"),
            (0x85, "write coil"),
            (0x86, "write register"),
            (0x88, "diagnostics"),
            (0x8F, "write coils"),
            (0x90, "write registers"),
            (0x96, "mask write"),
            (0x97, "read/write"),
            (0xAB, "encapsulated interface"),
        ] {
            assert_eq!(
                tx(&format!("01 {function:02X} 01")),
                format!("unit 1 exception 01 (illegal function) to {name}")
            );
        }
        assert_eq!(
            tx("01 C1 01"),
            "unit 1 exception 01 (illegal function) to function 0x41 (unknown)"
        );
        for (code, meaning) in [
            (0x04, "server device failure"),
            (0x05, "acknowledge"),
            (0x06, "server busy"),
            (0x08, "memory parity error"),
            (0x0A, "gateway path unavailable"),
            (0x0B, "gateway target failed to respond"),
            (0x42, "unknown"),
        ] {
            assert_eq!(
                tx(&format!("07 86 {code:02X}")),
                format!("unit 7 exception {code:02X} ({meaning}) to write register")
            );
        }
        assert_eq!(
            tx("01 83"),
            "unit 1 exception to read holding: too short, no code"
        );
    }

    #[test]
    fn frames_too_short_or_too_long_say_so() {
        assert_eq!(rx(""), "empty frame");
        assert_eq!(rx("01"), "unit 1: no function code");
        assert_eq!(
            rx("01 03 00 6B 00"),
            "unit 1 read holding: too short, 3 data bytes of at least 4"
        );
        assert_eq!(
            rx("01 10 00 01 00 02 04 00 0A"),
            "unit 1 write registers: too short, 7 data bytes of at least 9"
        );
        assert_eq!(
            rx("01 2B 0E 01"),
            "unit 1 encapsulated interface: too short, 2 data bytes of at least 3"
        );
        assert_eq!(
            tx("01 03 06 02 2B"),
            "unit 1 read holding: too short, 3 data bytes of at least 7"
        );
        assert_eq!(
            rx("01 03 00 6B 00 03 00"),
            "unit 1 read holding 0x006B ×3; 1 byte too many"
        );
        assert_eq!(
            rtu(&[0x01, 0x03], Direction::Tx).unwrap(),
            "too short for a frame (2 bytes)"
        );
    }

    #[test]
    fn ascii_replies_are_read_off_their_hex() {
        // modbus.md §6: the request `01 03 00 6B 00 03`, LRC 0x8E.
        assert_eq!(
            ascii(&bytes("01 03 00 6B 00 03"), Direction::Rx).unwrap(),
            "unit 1 read holding 0x006B ×3"
        );
        // Its wire form's LRC verifies (read as a reply, whose layout differs).
        let line = ascii(b":0103006B00038E\r\n", Direction::Tx).unwrap();
        assert!(!line.contains("LRC"), "{line}");
        // The reply of §1 in ASCII: LRC of 01 03 06 02 2B 00 00 00 64.
        let body = bytes("01 03 06 02 2B 00 00 00 64");
        let lrc = super::super::ascii::lrc(&body);
        let wire = format!(":010306022B00000064{lrc:02X}\r\n");
        assert_eq!(
            ascii(wire.as_bytes(), Direction::Tx).unwrap(),
            "unit 1 holding ×3: 0x022B 0x0000 0x0064"
        );
        // No line end, and the last pair taken for the LRC, which does not verify.
        assert_eq!(
            ascii(b":018302", Direction::Tx).unwrap(),
            "unit 1 exception to read holding: too short, no code; LRC does not verify"
        );
        assert_eq!(
            ascii(b":0183027A\r\n", Direction::Tx).unwrap(),
            "unit 1 exception 02 (illegal data address) to read holding"
        );
        assert_eq!(
            ascii(b"QPIGS\r", Direction::Tx).unwrap(),
            "not a Modbus ASCII frame"
        );
        assert_eq!(
            ascii(b":0G\r\n", Direction::Tx).unwrap(),
            "not a Modbus ASCII frame"
        );
        assert_eq!(
            ascii(b":01\r\n", Direction::Tx).unwrap(),
            "too short for a frame"
        );
    }

    #[test]
    fn random_bytes_never_panic() {
        // A small xorshift: the same bytes every run, no dependency.
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut frame = Vec::new();
        for _ in 0..20_000 {
            frame.clear();
            let len = usize::try_from(next() % 40).unwrap();
            for _ in 0..len {
                frame.push(next().to_le_bytes()[0]);
            }
            // Often a function code the describer decodes, so that layouts are exercised.
            if frame.len() > 1 && next() % 2 == 0 {
                let codes = [1, 2, 3, 4, 5, 6, 8, 15, 16, 22, 23, 43, 0x83];
                frame[1] = codes[usize::try_from(next() % 13).unwrap()];
                if frame.len() > 2 && frame[1] == 43 {
                    frame[2] = 0x0E;
                }
            }
            for direction in [Direction::Rx, Direction::Tx] {
                let line = rtu(&frame, direction).unwrap();
                assert!(!line.is_empty() && !line.contains('\n'), "{frame:02X?}");
                let line = ascii(&frame, direction).unwrap();
                assert!(!line.is_empty() && !line.contains('\n'), "{frame:02X?}");
            }
            // ASCII replies as hex on the wire, whatever the bytes inside.
            let mut wire = String::from(":");
            for b in &frame {
                let _ = write!(wire, "{b:02X}");
            }
            wire.push_str("\r\n");
            let _ = ascii(wire.as_bytes(), Direction::Tx);
        }
    }
}
