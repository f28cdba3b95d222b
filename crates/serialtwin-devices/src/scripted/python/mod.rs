//! Python's side of a dialogue compiled from Python: typed values, their conversions and
//! checks, and the text patterns and formats that read and write them.
//!
//! pyvisa-sim keeps a property's value as a Python `int`, `float` or `str`, converts what a
//! setter parsed with `int()`, `float()` or `str()`, checks it against the property's specs,
//! and writes it back with `str.format`. A device served on a port must answer byte for byte
//! as pyvisa-sim does, so those conversions are Python's, edge cases included (`int(5.9)` is
//! 5, `str(1e16)` is `1e+16`, `float(" 1_0 ")` is 10.0). This module is what the
//! [scripted](super) engine runs for such values; [`pyvisa_sim`](crate::pyvisa_sim) fills it in.

pub mod format;
pub mod parse;
pub mod random;

use std::fmt;

pub use self::format::{PyFormat, py_repr_float};

/// A Python value: what a property holds.
#[derive(Clone, Debug, PartialEq)]
pub enum PyValue {
    /// An `int` (within 128 bits; wider ones are refused where they would arise).
    Int(i128),
    /// A `float`.
    Float(f64),
    /// A `str`.
    Str(String),
}

impl fmt::Display for PyValue {
    /// Python's `str()` of the value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Int(i) => write!(f, "{i}"),
            Self::Float(x) => f.write_str(&py_repr_float(*x)),
            Self::Str(s) => f.write_str(s),
        }
    }
}

/// What Python raises where a value goes wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PyError {
    /// A `ValueError`: a value pyvisa-sim's setter rejects (its `e` reply, or the next setter).
    Value(String),
    /// Anything else (`OverflowError`, `TypeError`): pyvisa-sim's call raises it to its
    /// caller, and the rest of the message is not answered.
    Other(String),
}

impl fmt::Display for PyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Value(why) => write!(f, "ValueError: {why}"),
            Self::Other(why) => f.write_str(why),
        }
    }
}

/// A spec's `type`: the Python type a property's value is converted to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PyType {
    /// `int`.
    Int,
    /// `float`.
    Float,
    /// `str`.
    Str,
}

impl PyType {
    /// The type a spec's `type` names: exactly `int`, `float` or `str`, as pyvisa-sim
    /// compares it.
    #[must_use]
    pub fn named(name: &str) -> Option<Self> {
        match name {
            "int" => Some(Self::Int),
            "float" => Some(Self::Float),
            "str" => Some(Self::Str),
            _ => None,
        }
    }

    /// Python's `int(value)`, `float(value)` or `str(value)`.
    ///
    /// # Errors
    /// What Python raises: a `ValueError` for text that is not a number of the type or a
    /// NaN made an `int`, an `OverflowError` for an infinity made an `int`. An `int` beyond
    /// 128 bits, which Python would hold, is refused as an `OverflowError` too.
    pub fn convert(self, value: &PyValue) -> Result<PyValue, PyError> {
        Ok(match (self, value) {
            (Self::Str, v) => PyValue::Str(v.to_string()),
            (Self::Float, PyValue::Float(x)) => PyValue::Float(*x),
            #[expect(
                clippy::cast_precision_loss,
                reason = "Python's float(int) rounds to the nearest double too"
            )]
            (Self::Float, PyValue::Int(i)) => PyValue::Float(*i as f64),
            (Self::Float, PyValue::Str(s)) => PyValue::Float(python_float(s)?),
            (Self::Int, PyValue::Int(i)) => PyValue::Int(*i),
            (Self::Int, PyValue::Float(x)) => PyValue::Int(float_to_int(*x)?),
            (Self::Int, PyValue::Str(s)) => PyValue::Int(python_int(s)?),
        })
    }
}

/// Python's `int(x)` of a float: toward zero.
fn float_to_int(x: f64) -> Result<i128, PyError> {
    if x.is_nan() {
        return Err(PyError::Value("cannot convert float NaN to integer".into()));
    }
    if x.is_infinite() {
        return Err(PyError::Other(
            "OverflowError: cannot convert float infinity to integer".into(),
        ));
    }
    let t = x.trunc();
    // 2^127: the first float beyond i128.
    if t.abs() >= 1.701_411_834_604_692_3e38 {
        return Err(PyError::Other(format!(
            "OverflowError: int({x}) is wider than 128 bits, which this does not hold"
        )));
    }
    #[expect(
        clippy::cast_possible_truncation,
        reason = "a whole number checked to be within i128 above"
    )]
    Ok(t as i128)
}

/// The whitespace Python's `str.strip()` removes.
fn py_strip(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || ('\x1c'..='\x1f').contains(&c))
}

/// `digits` with single `_`s between digits (Python's numeric literal rule), without them.
fn digits_without_underscores(digits: &str) -> Option<String> {
    let bytes = digits.as_bytes();
    let mut out = String::with_capacity(digits.len());
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'_' {
            let between = i > 0
                && bytes[i - 1].is_ascii_digit()
                && bytes.get(i + 1).is_some_and(u8::is_ascii_digit);
            if !between {
                return None;
            }
        } else {
            out.push(char::from(b));
        }
    }
    Some(out)
}

/// Python's `float(text)`.
fn python_float(text: &str) -> Result<f64, PyError> {
    let bad = || PyError::Value(format!("could not convert string to float: {text:?}"));
    let s = py_strip(text);
    let (sign, body) = match s.as_bytes().first() {
        Some(b'-') => (-1.0, &s[1..]),
        Some(b'+') => (1.0, &s[1..]),
        _ => (1.0, s),
    };
    let lower = body.to_ascii_lowercase();
    match lower.as_str() {
        "inf" | "infinity" => return Ok(sign * f64::INFINITY),
        "nan" => return Ok(f64::NAN.copysign(sign)),
        _ => {}
    }
    // Digits, an optional point, digits, an optional exponent: at least one digit before
    // the exponent, `_` only between digits.
    let (mantissa, exponent) = match lower.find('e') {
        Some(i) => (&lower[..i], Some(&lower[i + 1..])),
        None => (lower.as_str(), None),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit() || b == b'_');
    if whole.is_empty() && fraction.is_empty() || !all_digits(whole) || !all_digits(fraction) {
        return Err(bad());
    }
    let whole = digits_without_underscores(whole).ok_or_else(bad)?;
    let fraction = digits_without_underscores(fraction).ok_or_else(bad)?;
    // Python reads "5." and ".5"; Rust wants a digit on each side of the point.
    let mut clean = format!(
        "{}.{}",
        if whole.is_empty() { "0" } else { &whole },
        if fraction.is_empty() { "0" } else { &fraction }
    );
    if let Some(exponent) = exponent {
        let digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
        if digits.is_empty() || !all_digits(digits) {
            return Err(bad());
        }
        let digits = digits_without_underscores(digits).ok_or_else(bad)?;
        clean.push('e');
        if exponent.starts_with('-') {
            clean.push('-');
        }
        clean.push_str(&digits);
    }
    let x: f64 = clean.parse().map_err(|_| bad())?;
    Ok(sign * x)
}

/// Python's `int(text)` (base 10).
fn python_int(text: &str) -> Result<i128, PyError> {
    let bad = || PyError::Value(format!("invalid literal for int() with base 10: {text:?}"));
    let s = py_strip(text);
    let (negative, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if body.is_empty() || !body.bytes().all(|b| b.is_ascii_digit() || b == b'_') {
        return Err(bad());
    }
    let digits = digits_without_underscores(body).ok_or_else(bad)?;
    let magnitude: i128 = digits.parse().map_err(|_| {
        PyError::Other(format!(
            "OverflowError: int({text:?}) is wider than 128 bits, which this does not hold"
        ))
    })?;
    Ok(if negative { -magnitude } else { magnitude })
}

/// A property's `specs`: the type its values are converted to, and what they must be.
#[derive(Clone, Debug, PartialEq)]
pub struct Specs {
    /// `type`.
    pub kind: PyType,
    /// `min`, converted to `kind`.
    pub min: Option<PyValue>,
    /// `max`, converted to `kind`.
    pub max: Option<PyValue>,
    /// `valid`, each converted to `kind`; empty: anything.
    pub valid: Vec<PyValue>,
}

/// `a < b` for two values of one spec type.
fn less(a: &PyValue, b: &PyValue) -> bool {
    match (a, b) {
        (PyValue::Int(a), PyValue::Int(b)) => a < b,
        (PyValue::Float(a), PyValue::Float(b)) => a < b,
        (PyValue::Str(a), PyValue::Str(b)) => a < b,
        _ => false,
    }
}

impl Specs {
    /// pyvisa-sim's `Property.validate_value`: `value` converted to the type, then checked
    /// against `min`, `max` and `valid` (a NaN passes `min` and `max`, as in Python).
    ///
    /// # Errors
    /// The conversion's error, or a `ValueError` naming the broken bound.
    pub fn validate(&self, value: &PyValue) -> Result<PyValue, PyError> {
        let value = self.kind.convert(value)?;
        if let Some(min) = &self.min
            && less(&value, min)
        {
            return Err(PyError::Value(format!(
                "{value} is less than the minimum {min}"
            )));
        }
        if let Some(max) = &self.max
            && less(max, &value)
        {
            return Err(PyError::Value(format!(
                "{value} is more than the maximum {max}"
            )));
        }
        if !self.valid.is_empty() && !self.valid.contains(&value) {
            return Err(PyError::Value(format!(
                "{value} does not belong to the list of valid values"
            )));
        }
        Ok(value)
    }
}

/// A property: its value starts as `initial`; `specs` (none: any value, kept as given)
/// checks each new one.
#[derive(Clone, Debug, PartialEq)]
pub struct Property {
    /// Its name, which `ctl set` takes.
    pub name: String,
    /// Its value at power-on (already checked against `specs`).
    pub initial: PyValue,
    /// Its specs.
    pub specs: Option<Specs>,
}

impl Property {
    /// The value `value` becomes once checked: converted and validated by the specs, or as
    /// it is with none.
    ///
    /// # Errors
    /// As [`Specs::validate`].
    pub fn validate(&self, value: &PyValue) -> Result<PyValue, PyError> {
        match &self.specs {
            Some(specs) => specs.validate(value),
            None => Ok(value.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_are_pythons() {
        let f = |s: &str| PyType::Float.convert(&PyValue::Str(s.into()));
        for (text, want) in [
            ("1.0", 1.0),
            (" 12.5\n", 12.5),
            ("1_000.5", 1000.5),
            (".5", 0.5),
            ("5.", 5.0),
            ("-1e3", -1000.0),
            ("1E-2", 0.01),
            ("+7", 7.0),
            ("1_0e1_0", 1e11),
        ] {
            assert_eq!(f(text), Ok(PyValue::Float(want)), "{text:?}");
        }
        assert_eq!(f("-inf"), Ok(PyValue::Float(f64::NEG_INFINITY)));
        assert!(matches!(f("nan"), Ok(PyValue::Float(x)) if x.is_nan()));
        for bad in [
            "", ".", "1__0", "_1", "1_", "1e", "e5", "0x10", "1.0.0", "- 1", "1_.5",
        ] {
            assert!(matches!(f(bad), Err(PyError::Value(_))), "{bad:?}");
        }
        let i = |v: PyValue| PyType::Int.convert(&v);
        assert_eq!(i(PyValue::Float(5.9)), Ok(PyValue::Int(5)));
        assert_eq!(i(PyValue::Float(-5.9)), Ok(PyValue::Int(-5)));
        assert_eq!(i(PyValue::Str(" -0_7 ".into())), Ok(PyValue::Int(-7)));
        assert!(matches!(
            i(PyValue::Str("5.0".into())),
            Err(PyError::Value(_))
        ));
        assert!(matches!(
            i(PyValue::Float(f64::NAN)),
            Err(PyError::Value(_))
        ));
        assert!(matches!(
            i(PyValue::Float(f64::INFINITY)),
            Err(PyError::Other(_))
        ));
        let s = |v: PyValue| PyType::Str.convert(&v);
        assert_eq!(s(PyValue::Float(5.0)), Ok(PyValue::Str("5.0".into())));
        assert_eq!(s(PyValue::Float(1e16)), Ok(PyValue::Str("1e+16".into())));
        assert_eq!(s(PyValue::Int(-3)), Ok(PyValue::Str("-3".into())));
    }

    #[test]
    fn specs_check_as_pyvisa_sim_does() {
        let specs = Specs {
            kind: PyType::Float,
            min: Some(PyValue::Float(1.0)),
            max: Some(PyValue::Float(6.0)),
            valid: Vec::new(),
        };
        assert_eq!(
            specs.validate(&PyValue::Float(6.0)),
            Ok(PyValue::Float(6.0))
        );
        assert!(specs.validate(&PyValue::Float(6.001)).is_err());
        assert!(specs.validate(&PyValue::Float(0.5)).is_err());
        assert!(
            specs.validate(&PyValue::Float(f64::NAN)).is_ok(),
            "NaN passes"
        );
        let choice = Specs {
            kind: PyType::Int,
            min: None,
            max: None,
            valid: vec![PyValue::Int(0), PyValue::Int(1)],
        };
        assert_eq!(choice.validate(&PyValue::Float(1.7)), Ok(PyValue::Int(1)));
        assert!(choice.validate(&PyValue::Int(2)).is_err());
        let rail = Specs {
            kind: PyType::Str,
            min: None,
            max: None,
            valid: vec![PyValue::Str("P6V".into())],
        };
        assert!(rail.validate(&PyValue::Str("P25V".into())).is_err());
        assert!(rail.validate(&PyValue::Str("P6V".into())).is_ok());
    }
}
