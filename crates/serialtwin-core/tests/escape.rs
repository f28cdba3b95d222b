//! Bytes as text and back ([`serialtwin_core::escape`]).

use serialtwin_core::escape::{escape, hex, unescape, unhex};

#[test]
fn escapes_round_trip_every_byte() {
    let all: Vec<u8> = (0..=255u8).collect();
    assert_eq!(unescape(&escape(&all)).unwrap(), all);
    assert_eq!(unhex(&hex(&all)).unwrap(), all);
    assert_eq!(escape(b"QPIGS\xb7\xa9\r"), r"QPIGS\xb7\xa9\r");
}
