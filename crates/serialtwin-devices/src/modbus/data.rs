//! Values in registers: how an engineering value (230.5 V, a serial number, a set of flags)
//! becomes Modbus registers, and back.
//!
//! A register is a big-endian `u16` (APP §4.2). Anything wider is a vendor convention, named
//! here as minimalmodbus names it (reference §8): the value's bytes in big-endian order are
//! `A B C D` (`A B C D E F G H` for 64 bits), and an [`Order`] says how they land in the
//! registers. [`Order::Abcd`] is high word first (Eastron SDM floats); [`Order::Cdab`] is low
//! word first (`EPEver` counters); [`Order::Badc`] and [`Order::Dcba`] also swap the two bytes
//! of each register. For 64-bit values "word first" means the whole register order is
//! reversed (`GH EF CD AB` for [`Order::Cdab`]), as pymodbus' `word_order="little"` does.
//!
//! Numbers may carry a scale and an offset: the register holds
//! `(engineering − offset) / scale`, rounded to the nearest integer for integer types, and
//! decoding gives `raw × scale + offset` back. Strings and bit fields ignore scale, offset and
//! order: a string is two characters per register, the first in the high byte.
//!
//! ```
//! use serialtwin_devices::modbus::data::{Encoding, Kind, Order, Value};
//!
//! let volts = Encoding::new(Kind::F32);
//! assert_eq!(volts.encode(&Value::Float(230.5))?, [0x4366, 0x8000]);
//! let energy = Encoding::new(Kind::U32).with_order(Order::Cdab).scaled(0.01, 0.0)?;
//! assert_eq!(energy.encode(&Value::Float(1234.56))?, [0xE240, 0x0001]);
//! assert_eq!(energy.decode(&[0xE240, 0x0001])?, Value::Float(1234.56));
//! # Ok::<(), serialtwin_devices::modbus::data::DataError>(())
//! ```

use std::fmt;

use thiserror::Error;

/// How a value's big-endian bytes `A B C D` are laid out in registers (reference §8).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Order {
    /// High word first, bytes big-endian in each (minimalmodbus `BYTEORDER_BIG`).
    #[default]
    Abcd,
    /// Low word first (minimalmodbus `BYTEORDER_LITTLE_SWAP`).
    Cdab,
    /// High word first, the bytes of each register swapped (`BYTEORDER_BIG_SWAP`).
    Badc,
    /// Low word first, the bytes of each register swapped: fully little-endian
    /// (`BYTEORDER_LITTLE`).
    Dcba,
}

impl Order {
    /// Every order, for loops in tests and help texts.
    pub const ALL: [Order; 4] = [Order::Abcd, Order::Cdab, Order::Badc, Order::Dcba];

    fn words_reversed(self) -> bool {
        matches!(self, Order::Cdab | Order::Dcba)
    }

    fn bytes_swapped(self) -> bool {
        matches!(self, Order::Badc | Order::Dcba)
    }
}

/// What fills a string's unused characters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Pad {
    /// `0x00`.
    #[default]
    Nul,
    /// `0x20`, as the pymodbus simulator pads.
    Space,
}

impl Pad {
    fn byte(self) -> u8 {
        match self {
            Pad::Nul => 0,
            Pad::Space => b' ',
        }
    }
}

/// The type of a value held in one or more registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// One register, unsigned.
    U16,
    /// One register, two's complement.
    I16,
    /// Two registers, unsigned.
    U32,
    /// Two registers, two's complement.
    I32,
    /// Four registers, unsigned.
    U64,
    /// Four registers, two's complement.
    I64,
    /// Two registers, IEEE 754 single precision.
    F32,
    /// Four registers, IEEE 754 double precision.
    F64,
    /// ASCII text, two characters per register, the first in the high byte.
    Ascii {
        /// How many registers the text occupies (at least 1).
        registers: u16,
        /// What fills the characters the text does not use.
        pad: Pad,
    },
    /// Flags: an unsigned field of 1 to 4 registers, set with [`Value::Bits`] (bit 0 is the
    /// least significant bit of the last register in [`Order::Abcd`]).
    Bits {
        /// How many registers (1 to 4).
        registers: u8,
    },
}

impl Kind {
    /// How many registers a value of this kind occupies.
    #[must_use]
    pub fn registers(self) -> usize {
        match self {
            Kind::U16 | Kind::I16 => 1,
            Kind::U32 | Kind::I32 | Kind::F32 => 2,
            Kind::U64 | Kind::I64 | Kind::F64 => 4,
            Kind::Ascii { registers, .. } => usize::from(registers),
            Kind::Bits { registers } => usize::from(registers),
        }
    }

    /// The inclusive range of raw values an integer kind holds; `None` for floats and text.
    fn integer_range(self) -> Option<(i128, i128)> {
        Some(match self {
            Kind::U16 => (0, u16::MAX.into()),
            Kind::I16 => (i16::MIN.into(), i16::MAX.into()),
            Kind::U32 => (0, u32::MAX.into()),
            Kind::I32 => (i32::MIN.into(), i32::MAX.into()),
            Kind::U64 => (0, u64::MAX.into()),
            Kind::I64 => (i64::MIN.into(), i64::MAX.into()),
            Kind::Bits { registers } => (0, (1_i128 << (16 * u32::from(registers))) - 1),
            Kind::F32 | Kind::F64 | Kind::Ascii { .. } => return None,
        })
    }

    fn is_signed(self) -> bool {
        matches!(self, Kind::I16 | Kind::I32 | Kind::I64)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::U16 => f.write_str("u16"),
            Kind::I16 => f.write_str("i16"),
            Kind::U32 => f.write_str("u32"),
            Kind::I32 => f.write_str("i32"),
            Kind::U64 => f.write_str("u64"),
            Kind::I64 => f.write_str("i64"),
            Kind::F32 => f.write_str("f32"),
            Kind::F64 => f.write_str("f64"),
            Kind::Ascii { registers, .. } => write!(f, "ascii string of {registers} registers"),
            Kind::Bits { registers } => write!(f, "bit field of {registers} registers"),
        }
    }
}

/// An engineering value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A whole number, exact for every integer kind (what an unscaled integer decodes to).
    Int(i128),
    /// A number (what floats and scaled integers decode to).
    Float(f64),
    /// Text, for [`Kind::Ascii`].
    Text(String),
    /// Flags, for [`Kind::Bits`].
    Bits(u64),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(v) => write!(f, "{v}"),
            Value::Float(v) => write!(f, "{v}"),
            Value::Text(v) => write!(f, "{v:?}"),
            Value::Bits(v) => write!(f, "{v:#x}"),
        }
    }
}

/// Why a value cannot be encoded, or registers cannot be decoded.
#[derive(Clone, Debug, Error, PartialEq)]
pub enum DataError {
    /// The value, once offset and scaled, does not fit the type.
    #[error("{value} is out of range for a {kind}")]
    OutOfRange {
        /// The engineering value.
        value: String,
        /// The register type.
        kind: Kind,
    },
    /// NaN or an infinity given for an integer type.
    #[error("{value} cannot be stored in an integer {kind}")]
    NotFinite {
        /// The engineering value.
        value: f64,
        /// The register type.
        kind: Kind,
    },
    /// A string longer than its registers hold.
    #[error("{len} characters do not fit in {registers} registers (at most {})", 2 * *registers as usize)]
    TooLong {
        /// The string's length in bytes.
        len: usize,
        /// The registers declared for it.
        registers: u16,
    },
    /// A string with a character outside ASCII, to encode or decoded.
    #[error("the text has a character outside ASCII")]
    NotAscii,
    /// Text given for a number, a number for text, and so on.
    #[error("a {kind} cannot hold {value}")]
    WrongValue {
        /// The value given.
        value: String,
        /// The register type.
        kind: Kind,
    },
    /// Decoding got the wrong number of registers.
    #[error("a {kind} takes {expected} registers, not {got}")]
    WrongLength {
        /// The register type.
        kind: Kind,
        /// What it takes.
        expected: usize,
        /// What was given.
        got: usize,
    },
    /// A type that occupies no register, or a bit field wider than 4 registers.
    #[error(
        "a {0} is not a valid register type (strings take 1 or more registers, bit fields 1 to 4)"
    )]
    BadKind(Kind),
    /// A scale of zero, or a scale or offset that is not finite.
    #[error(
        "scale {scale} and offset {offset}: the scale must be finite and non-zero, the offset finite"
    )]
    BadScale {
        /// The scale given.
        scale: f64,
        /// The offset given.
        offset: f64,
    },
}

/// How one value is stored: its type, register order, scale and offset.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Encoding {
    kind: Kind,
    order: Order,
    scale: f64,
    offset: f64,
}

impl Encoding {
    /// A value of `kind`, in [`Order::Abcd`], unscaled.
    #[must_use]
    pub const fn new(kind: Kind) -> Self {
        Self {
            kind,
            order: Order::Abcd,
            scale: 1.0,
            offset: 0.0,
        }
    }

    /// The same, laid out in `order` (ignored by strings and bit fields).
    #[must_use]
    pub const fn with_order(mut self, order: Order) -> Self {
        self.order = order;
        self
    }

    /// The same, the register holding `(engineering − offset) / scale` (ignored by strings and
    /// bit fields).
    ///
    /// # Errors
    /// [`DataError::BadScale`] if `scale` is zero or not finite, or `offset` not finite.
    pub fn scaled(mut self, scale: f64, offset: f64) -> Result<Self, DataError> {
        if scale == 0.0 || !scale.is_finite() || !offset.is_finite() {
            return Err(DataError::BadScale { scale, offset });
        }
        self.scale = scale;
        self.offset = offset;
        Ok(self)
    }

    /// The register type.
    #[must_use]
    pub const fn kind(&self) -> Kind {
        self.kind
    }

    /// The register order.
    #[must_use]
    pub const fn order(&self) -> Order {
        self.order
    }

    /// The scale (1 unless [`Encoding::scaled`]).
    #[must_use]
    pub const fn scale(&self) -> f64 {
        self.scale
    }

    /// The offset (0 unless [`Encoding::scaled`]).
    #[must_use]
    pub const fn offset(&self) -> f64 {
        self.offset
    }

    /// How many registers a value occupies.
    #[must_use]
    pub fn registers(&self) -> usize {
        self.kind.registers()
    }

    #[expect(clippy::float_cmp, reason = "exactly the defaults, set from literals")]
    fn unscaled(&self) -> bool {
        self.scale == 1.0 && self.offset == 0.0
    }

    fn check_kind(&self) -> Result<(), DataError> {
        match self.kind {
            Kind::Ascii { registers: 0, .. } | Kind::Bits { registers: 0 | 5.. } => {
                Err(DataError::BadKind(self.kind))
            }
            _ => Ok(()),
        }
    }

    fn wrong(&self, value: &Value) -> DataError {
        DataError::WrongValue {
            value: value.to_string(),
            kind: self.kind,
        }
    }

    /// The registers that hold `value`, [`Encoding::registers`] of them.
    ///
    /// # Errors
    /// The value does not fit the type once offset and scaled ([`DataError::OutOfRange`]),
    /// NaN or an infinity for an integer type ([`DataError::NotFinite`]), a string too long
    /// or not ASCII, or a value of the wrong sort ([`DataError::WrongValue`]).
    pub fn encode(&self, value: &Value) -> Result<Vec<u16>, DataError> {
        self.check_kind()?;
        match self.kind {
            Kind::Ascii { registers, pad } => {
                let Value::Text(text) = value else {
                    return Err(self.wrong(value));
                };
                encode_ascii(text, registers, pad)
            }
            Kind::F32 => {
                let raw = self.raw_float(value)?;
                #[expect(
                    clippy::cast_possible_truncation,
                    reason = "rounding to the nearest f32 is the point; overflow is caught below"
                )]
                let single = raw as f32;
                if raw.is_finite() && single.is_infinite() {
                    return Err(self.out_of_range(value));
                }
                Ok(words_from_be(&single.to_be_bytes(), self.order))
            }
            Kind::F64 => {
                let raw = self.raw_float(value)?;
                Ok(words_from_be(&raw.to_be_bytes(), self.order))
            }
            Kind::Bits { registers } => {
                let raw = match value {
                    Value::Bits(bits) => i128::from(*bits),
                    Value::Int(int) => *int,
                    _ => return Err(self.wrong(value)),
                };
                let bytes = self.integer_bytes(raw, value)?;
                let n = 2 * usize::from(registers);
                Ok(words_from_be(&bytes[16 - n..], Order::Abcd))
            }
            _ => {
                let raw = self.raw_integer(value)?;
                let bytes = self.integer_bytes(raw, value)?;
                let n = 2 * self.registers();
                Ok(words_from_be(&bytes[16 - n..], self.order))
            }
        }
    }

    fn out_of_range(&self, value: &Value) -> DataError {
        DataError::OutOfRange {
            value: value.to_string(),
            kind: self.kind,
        }
    }

    /// The engineering value of a number, as a float.
    fn number(&self, value: &Value) -> Result<f64, DataError> {
        match value {
            #[expect(
                clippy::cast_precision_loss,
                reason = "a float register or a scaled value is as precise as f64 anyway"
            )]
            Value::Int(int) => Ok(*int as f64),
            Value::Float(float) => Ok(*float),
            _ => Err(self.wrong(value)),
        }
    }

    fn raw_float(&self, value: &Value) -> Result<f64, DataError> {
        let engineering = self.number(value)?;
        Ok((engineering - self.offset) / self.scale)
    }

    fn raw_integer(&self, value: &Value) -> Result<i128, DataError> {
        if let Value::Int(int) = value
            && self.unscaled()
        {
            return Ok(*int);
        }
        let engineering = self.number(value)?;
        if !engineering.is_finite() {
            return Err(DataError::NotFinite {
                value: engineering,
                kind: self.kind,
            });
        }
        let raw = ((engineering - self.offset) / self.scale).round();
        // Well outside every integer kind, and keeps the cast below exact.
        if !raw.is_finite() || raw.abs() >= 1e37 {
            return Err(self.out_of_range(value));
        }
        #[expect(
            clippy::cast_possible_truncation,
            reason = "rounded and bounded just above: the cast is exact"
        )]
        Ok(raw as i128)
    }

    /// `raw` as 16 big-endian bytes, once checked against the kind's range.
    fn integer_bytes(&self, raw: i128, value: &Value) -> Result<[u8; 16], DataError> {
        let (min, max) = self.kind.integer_range().ok_or_else(|| self.wrong(value))?;
        if raw < min || raw > max {
            return Err(self.out_of_range(value));
        }
        Ok(raw.to_be_bytes())
    }

    /// The value `words` hold.
    ///
    /// # Errors
    /// [`DataError::WrongLength`] unless `words` has [`Encoding::registers`] registers;
    /// [`DataError::NotAscii`] for a string register holding a byte above 0x7F.
    pub fn decode(&self, words: &[u16]) -> Result<Value, DataError> {
        self.check_kind()?;
        if words.len() != self.registers() {
            return Err(DataError::WrongLength {
                kind: self.kind,
                expected: self.registers(),
                got: words.len(),
            });
        }
        match self.kind {
            Kind::Ascii { pad, .. } => {
                let mut bytes = be_from_words(words, Order::Abcd);
                while bytes.last().is_some_and(|&b| b == 0 || b == pad.byte()) {
                    bytes.pop();
                }
                if !bytes.is_ascii() {
                    return Err(DataError::NotAscii);
                }
                Ok(Value::Text(bytes.into_iter().map(char::from).collect()))
            }
            Kind::Bits { .. } => {
                let bytes = be_from_words(words, Order::Abcd);
                Ok(Value::Bits(
                    bytes.iter().fold(0, |acc, &b| (acc << 8) | u64::from(b)),
                ))
            }
            Kind::F32 => {
                let bytes = be_from_words(words, self.order);
                let single = f32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
                Ok(Value::Float(self.engineering(f64::from(single))))
            }
            Kind::F64 => {
                let mut be = [0; 8];
                be.copy_from_slice(&be_from_words(words, self.order));
                Ok(Value::Float(self.engineering(f64::from_be_bytes(be))))
            }
            _ => {
                let bytes = be_from_words(words, self.order);
                let fill = if self.kind.is_signed() && bytes[0] & 0x80 != 0 {
                    0xFF
                } else {
                    0
                };
                let mut wide = [fill; 16];
                wide[16 - bytes.len()..].copy_from_slice(&bytes);
                let raw = i128::from_be_bytes(wide);
                if self.unscaled() {
                    Ok(Value::Int(raw))
                } else {
                    #[expect(
                        clippy::cast_precision_loss,
                        reason = "a scaled value is a float; 64-bit counts lose what f64 lacks"
                    )]
                    let raw = raw as f64;
                    Ok(Value::Float(self.engineering(raw)))
                }
            }
        }
    }

    fn engineering(&self, raw: f64) -> f64 {
        if self.unscaled() {
            raw
        } else {
            raw * self.scale + self.offset
        }
    }
}

fn encode_ascii(text: &str, registers: u16, pad: Pad) -> Result<Vec<u16>, DataError> {
    if !text.is_ascii() {
        return Err(DataError::NotAscii);
    }
    let capacity = 2 * usize::from(registers);
    if text.len() > capacity {
        return Err(DataError::TooLong {
            len: text.len(),
            registers,
        });
    }
    let mut bytes = text.as_bytes().to_vec();
    bytes.resize(capacity, pad.byte());
    Ok(words_from_be(&bytes, Order::Abcd))
}

/// Big-endian bytes (an even number) into registers laid out in `order`.
fn words_from_be(bytes: &[u8], order: Order) -> Vec<u16> {
    let mut words: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|pair| {
            let word = u16::from_be_bytes([pair[0], pair[1]]);
            if order.bytes_swapped() {
                word.swap_bytes()
            } else {
                word
            }
        })
        .collect();
    if order.words_reversed() {
        words.reverse();
    }
    words
}

/// Registers laid out in `order` back into the value's big-endian bytes.
fn be_from_words(words: &[u16], order: Order) -> Vec<u8> {
    let mut ordered = words.to_vec();
    if order.words_reversed() {
        ordered.reverse();
    }
    ordered
        .into_iter()
        .flat_map(|word| {
            if order.bytes_swapped() {
                word.swap_bytes()
            } else {
                word
            }
            .to_be_bytes()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_vectors() {
        assert_eq!(
            Encoding::new(Kind::F32).encode(&Value::Float(230.5)),
            Ok(vec![0x4366, 0x8000])
        );
        assert_eq!(
            Encoding::new(Kind::U32)
                .with_order(Order::Cdab)
                .encode(&Value::Int(123_456)),
            Ok(vec![0xE240, 0x0001])
        );
        let text = Encoding::new(Kind::Ascii {
            registers: 3,
            pad: Pad::Nul,
        });
        assert_eq!(
            text.encode(&Value::Text("SDM630".into())),
            Ok(vec![0x5344, 0x4D36, 0x3330])
        );
    }

    #[test]
    fn decode_of_the_wrong_length_is_an_error() {
        let e = Encoding::new(Kind::U32);
        assert!(matches!(
            e.decode(&[1]),
            Err(DataError::WrongLength {
                expected: 2,
                got: 1,
                ..
            })
        ));
    }

    #[test]
    fn bad_kinds_are_errors_not_panics() {
        for kind in [
            Kind::Ascii {
                registers: 0,
                pad: Pad::Nul,
            },
            Kind::Bits { registers: 0 },
            Kind::Bits { registers: 5 },
        ] {
            assert_eq!(
                Encoding::new(kind).encode(&Value::Int(0)),
                Err(DataError::BadKind(kind))
            );
            assert_eq!(
                Encoding::new(kind).decode(&[]),
                Err(DataError::BadKind(kind))
            );
        }
    }
}
