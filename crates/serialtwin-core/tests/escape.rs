//! Bytes as text and back ([`serialtwin_core::escape`]).

use serialtwin_core::escape::{escape, hex, unescape, unhex};

#[test]
fn escapes_round_trip_every_byte() {
    let all: Vec<u8> = (0..=255u8).collect();
    assert_eq!(unescape(&escape(&all)).unwrap(), all);
    assert_eq!(unhex(&hex(&all)).unwrap(), all);
    assert_eq!(escape(b"QPIGS\xb7\xa9\r"), r"QPIGS\xb7\xa9\r");
}

/// Caught by the `template` fuzz target's reference reading of escapes: `\x+F` and a hex pair
/// `+f` were read as 0x0F (`u8::from_str_radix` takes a sign).
#[test]
fn hex_digits_are_hex_digits_only() {
    for text in [r"\x+F", r"\x-1", r"\x F", r"\x4", r"\xg0"] {
        assert!(unescape(text).is_err(), "{text:?}");
    }
    for text in ["+f", "-1", "0x", "+1+1"] {
        assert!(unhex(text).is_err(), "{text:?}");
    }
    assert_eq!(unescape(r"\x0F\xa0").unwrap(), [0x0f, 0xa0]);
    assert_eq!(unhex("0F a0").unwrap(), [0x0f, 0xa0]);
}
