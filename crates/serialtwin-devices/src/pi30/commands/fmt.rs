//! Fixed-width number fields, the way PI30 firmware prints them.
//!
//! Fixed-length clients (ned-kelly's poller reads exactly 110 bytes of QPIGS) depend on every
//! field keeping its width, so measured values are rounded, clamped to what the field can
//! show, and zero-padded. Settings that may legitimately outgrow a field (a 120 A charging
//! current in a two-digit slot) use [`at_least`], which pads but never clamps.

/// `v` rounded to an integer, clamped to `0..=10^width - 1`, zero-padded to `width` digits.
pub(crate) fn int(v: f64, width: usize) -> String {
    let max = 10f64.powi(i32::try_from(width).unwrap_or(9)) - 1.0;
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "clamped to 0..=max just before"
    )]
    let n = v.round().clamp(0.0, max) as u64;
    format!("{n:0width$}")
}

/// `v` with `decimals` decimals, clamped to what `width` characters can show, zero-padded.
pub(crate) fn fixed(v: f64, width: usize, decimals: usize) -> String {
    let whole = i32::try_from(width.saturating_sub(decimals + 1)).unwrap_or(9);
    let step = 10f64.powi(-i32::try_from(decimals).unwrap_or(9));
    let max = 10f64.powi(whole) - step;
    let v = if v.is_finite() {
        v.clamp(0.0, max)
    } else {
        0.0
    };
    format!("{v:0width$.decimals$}")
}

/// An unsigned value zero-padded to at least `width` digits (longer values are kept whole).
pub(crate) fn at_least(v: impl Into<u64>, width: usize) -> String {
    format!("{:0width$}", v.into())
}

/// `1` or `0`.
pub(crate) fn bit(b: bool) -> char {
    if b { '1' } else { '0' }
}

/// A string of `0`/`1`, first flag first.
pub(crate) fn bits(flags: &[bool]) -> String {
    flags.iter().map(|&b| bit(b)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_hold() {
        assert_eq!(int(41.4, 4), "0041");
        assert_eq!(int(123_456.0, 5), "99999");
        assert_eq!(int(-3.0, 3), "000");
        assert_eq!(fixed(52.7, 5, 2), "52.70");
        assert_eq!(fixed(0.0, 5, 1), "000.0");
        assert_eq!(fixed(1234.0, 5, 1), "999.9");
        assert_eq!(fixed(2.66, 4, 1), "02.7");
        assert_eq!(at_least(120u16, 2), "120");
        assert_eq!(at_least(30u16, 3), "030");
        assert_eq!(bits(&[true, false, true]), "101");
    }
}
