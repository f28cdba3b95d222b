//! SCPI parameters: numbers (with `MINimum`, `MAXimum`, `DEFault` and units), booleans and
//! choices of mnemonics.
//!
//! Facts: a decimal numeric parameter is `NRf` (`5`, `-1.5`, `2.5E-3`), optionally followed by a
//! unit with a multiplier (SCPI-99 Vol. 1 §7.7.3: `mV` is milli-volt; mega is written `MA`
//! except in `MHZ` and `MOHM`, case not telling milli from mega); `MINimum`, `MAXimum` and
//! `DEFault` stand for the limits and the default (SCPI-99 Vol. 1 §7.2.1.1). A boolean is
//! `ON`, `OFF` or a number, non-zero being on (§7.3); its query answers `1` or `0`. Character
//! data is a mnemonic, read in short or long form, any case; its query answers the short form
//! (§7.6). Errors as scpi-parser raises them (`SCPI_ParamNumber`, `SCPI_ParamBool`,
//! `SCPI_ParamChoice`): a word where a number goes is -104, an unknown word where a boolean
//! or choice goes -224, a unit the parameter does not take -131.

use super::header::{Mnemonic, ScpiError};

/// A numeric parameter, read.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Number {
    /// A value, in the property's unit (multiplier applied).
    Value(f64),
    /// `MINimum`.
    Min,
    /// `MAXimum`.
    Max,
    /// `DEFault`.
    Default,
}

/// Multipliers by their SCPI spelling, upper-case (SCPI-99 Vol. 1 §7.7.3), longest first so
/// that `MA` (mega) is tried before `M` (milli).
const MULTIPLIERS: &[(&str, f64)] = &[
    ("EX", 1e18),
    ("PE", 1e15),
    ("MA", 1e6),
    ("T", 1e12),
    ("G", 1e9),
    ("K", 1e3),
    ("M", 1e-3),
    ("U", 1e-6),
    ("N", 1e-9),
    ("P", 1e-12),
    ("F", 1e-15),
    ("A", 1e-18),
];

/// The scale `suffix` gives a value of a property in `unit` (`mV` for `V`: 0.001), if it is
/// that unit at all.
fn scale(suffix: &str, unit: &str) -> Option<f64> {
    let (suffix, unit) = (suffix.to_ascii_uppercase(), unit.to_ascii_uppercase());
    if suffix == unit {
        return Some(1.0);
    }
    // The two units whose mega is written with `M` alone.
    if (unit == "HZ" || unit == "OHM") && suffix == format!("M{unit}") {
        return Some(1e6);
    }
    MULTIPLIERS
        .iter()
        .find(|(prefix, _)| suffix.strip_prefix(prefix) == Some(unit.as_str()))
        .map(|&(_, factor)| factor)
}

/// The length of the `NRf` number at the front of `text` (0: none).
fn numeral_len(text: &str) -> usize {
    let b = text.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let int = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
    i += int;
    let mut frac = 0;
    if b.get(i) == Some(&b'.') {
        frac = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        i += 1 + frac;
    }
    if int + frac == 0 {
        return 0;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(b.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        let exp = b[j..].iter().take_while(|c| c.is_ascii_digit()).count();
        if exp > 0 {
            i = j + exp;
        }
    }
    i
}

/// Read a numeric parameter of a property in `unit` (`None`: it takes no unit).
///
/// # Errors
/// -104 for a word that is none of `MIN`/`MAX`/`DEF` or text that is no number, -131 for a
/// unit it does not take, -222 for a number too large to be held (`1E999`).
pub fn number(text: &str, unit: Option<&str>) -> Result<Number, ScpiError> {
    if text.starts_with(|c: char| c.is_ascii_alphabetic()) {
        let word = |long: &str| Mnemonic::parse(long).is_ok_and(|m| m.is(text));
        return if word("MINimum") {
            Ok(Number::Min)
        } else if word("MAXimum") {
            Ok(Number::Max)
        } else if word("DEFault") {
            Ok(Number::Default)
        } else {
            Err(ScpiError::DATA_TYPE)
        };
    }
    let len = numeral_len(text);
    if len == 0 {
        return Err(ScpiError::DATA_TYPE);
    }
    let value: f64 = text[..len].parse().map_err(|_| ScpiError::DATA_TYPE)?;
    let suffix = text[len..].trim_start();
    let factor = match (suffix, unit) {
        ("", _) => 1.0,
        (suffix, Some(unit)) if suffix.bytes().all(|b| b.is_ascii_alphabetic()) => {
            scale(suffix, unit).ok_or(ScpiError::INVALID_SUFFIX)?
        }
        (suffix, _) if suffix.bytes().all(|b| b.is_ascii_alphabetic()) => {
            return Err(ScpiError::INVALID_SUFFIX);
        }
        _ => return Err(ScpiError::SYNTAX),
    };
    let value = value * factor;
    if value.is_finite() {
        Ok(Number::Value(value))
    } else {
        Err(ScpiError::OUT_OF_RANGE)
    }
}

/// Read a boolean parameter.
///
/// # Errors
/// -224 for a word other than `ON`/`OFF`, -104 for anything else that is no number.
pub fn boolean(text: &str) -> Result<bool, ScpiError> {
    if text.eq_ignore_ascii_case("ON") {
        Ok(true)
    } else if text.eq_ignore_ascii_case("OFF") {
        Ok(false)
    } else if text.starts_with(|c: char| c.is_ascii_alphabetic()) {
        Err(ScpiError::ILLEGAL_VALUE)
    } else {
        match number(text, None)? {
            Number::Value(v) => Ok(v.round() != 0.0),
            _ => Err(ScpiError::DATA_TYPE),
        }
    }
}

/// Read a choice among `choices`: the index of the one `text` spells.
///
/// # Errors
/// -224 for a word that is none of them, -104 for something that is no word.
pub fn choice(text: &str, choices: &[Mnemonic]) -> Result<usize, ScpiError> {
    if !text.starts_with(|c: char| c.is_ascii_alphabetic())
        || !text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(ScpiError::DATA_TYPE);
    }
    choices
        .iter()
        .position(|c| c.is(text))
        .ok_or(ScpiError::ILLEGAL_VALUE)
}
