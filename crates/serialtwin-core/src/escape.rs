//! Bytes as text and back: the one escaping every part of serialtwin shares.
//!
//! The trace, captures, scripted devices, `learn` and the control protocol all write bytes for
//! people and read them back: printable ASCII as is, `\r \n \t \\`, anything else `\xNN`;
//! `\0` and `\e` are accepted on input too. Hex (`hex`, `unhex`) is the lossless form.

use std::fmt::Write as _;

/// `bytes` as lowercase hex digits, no separators.
#[must_use]
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Hex digits (spaces allowed between bytes) back to bytes.
///
/// # Errors
/// A reason for an odd count or a non-hex digit.
pub fn unhex(text: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if !digits.len().is_multiple_of(2) {
        return Err("an odd number of hex digits".into());
    }
    digits
        .chunks(2)
        .map(|pair| {
            let s = std::str::from_utf8(pair).map_err(|_| "not a hex digit".to_owned())?;
            hex_byte(s).ok_or_else(|| format!("`{s}` is not a hex byte"))
        })
        .collect()
}

/// Two hex digits as a byte. Not `u8::from_str_radix` alone, which takes a sign (`+f`).
fn hex_byte(digits: &str) -> Option<u8> {
    if digits.len() != 2 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u8::from_str_radix(digits, 16).ok()
}

/// `bytes` as readable text: printable ASCII as is, `\r`, `\n`, `\t`, `\\`, else `\xNN`.
#[must_use]
pub fn escape(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(char::from(b)),
            _ => {
                let _ = write!(s, "\\x{b:02x}");
            }
        }
    }
    s
}

/// The inverse of [`escape`] (also `\0` and `\e`).
///
/// # Errors
/// A reason for an unknown or malformed escape.
pub fn unescape(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        out.push(unescape_one(chars.next(), || chars.next())?);
    }
    Ok(out)
}

/// The byte an escape stands for, given the character after the backslash (`None`: the text
/// ended there) and a source of the characters after it (for `\xNN`). Shared with formats
/// that add escapes of their own, such as scripted-device templates.
///
/// # Errors
/// A reason for an unknown or malformed escape.
pub fn unescape_one(
    after_backslash: Option<char>,
    mut next: impl FnMut() -> Option<char>,
) -> Result<u8, String> {
    Ok(match after_backslash {
        Some('r') => b'\r',
        Some('n') => b'\n',
        Some('t') => b'\t',
        Some('0') => 0,
        Some('e') => 0x1b,
        Some('\\') => b'\\',
        Some('x') => {
            let digits: String = (0..2).map_while(|_| next()).collect();
            hex_byte(&digits)
                .ok_or_else(|| format!("`\\x{digits}`: write `\\x` and two hex digits"))?
        }
        Some(c) => {
            return Err(format!(
                "unknown escape `\\{c}` (known: \\r \\n \\t \\0 \\e \\\\ \\xNN)"
            ));
        }
        None => return Err("a lone `\\` at the end".into()),
    })
}
