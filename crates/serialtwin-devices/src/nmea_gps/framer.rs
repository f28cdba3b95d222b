//! NMEA 0183 sentences on the wire: `$` + fields + `*` + XOR checksum + CR LF.
//!
//! The checksum is the XOR of every byte strictly between the start delimiter (`$`, or `!`
//! for encapsulated sentences) and `*`, written as two upper-case hex digits (gpsd
//! www/NMEA.adoc, "NMEA Encoding Conventions"). A device pushes a sentence with its start
//! delimiter and without checksum or terminator (`$GPGGA,...`); this framer adds both. A line
//! that is not a sentence (the text some receivers print as they boot) carries no checksum: it
//! is written as it is, with CR LF.
//! Decoding keeps a sentence as it came, delimiter and checksum included, so that
//! [`Framer::check`] can tell replay, learn and traces whether it verifies.

use bytes::{Bytes, BytesMut};
use serialtwin_core::{Checksum, FrameAt, FrameError, Framer, Framing, LineFramer, Terminator};

/// The longest line accepted from a client, terminator excluded: gpsd's `NMEA_MAX` (102,
/// include/gpsd.h), more than the standard's 82 so that a long proprietary probe is still
/// one frame. Longer input (a binary probe with no LF in it) is discarded and reported.
pub const MAX_LINE: usize = 102;

/// The framing's name, as `framing = "nmea"` writes it.
pub const NAME: &str = "nmea";

/// A fresh NMEA framing.
#[must_use]
pub fn framing() -> Framing {
    Framing::new(NAME, NmeaFramer::new)
}

/// The XOR checksum of a sentence's body (the bytes between the delimiter and `*`).
#[must_use]
pub fn checksum(body: &[u8]) -> u8 {
    body.iter().fold(0, |sum, b| sum ^ b)
}

/// NMEA sentences: lines ending in LF (CR LF as sent; a bare LF accepted, as gpsd accepts
/// it), replies checksummed.
#[derive(Debug)]
pub struct NmeaFramer(LineFramer);

impl NmeaFramer {
    /// A framer accepting lines of up to [`MAX_LINE`] bytes.
    #[must_use]
    pub fn new() -> Self {
        Self(LineFramer::new(Terminator::CrLf, MAX_LINE))
    }
}

impl Default for NmeaFramer {
    fn default() -> Self {
        Self::new()
    }
}

/// Whether `b` starts a sentence.
fn is_delimiter(b: u8) -> bool {
    matches!(b, b'$' | b'!')
}

/// The value of one hex digit, either case (gpsd compares case-insensitively).
fn hex_value(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

impl Framer for NmeaFramer {
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        self.0.decode(buf)
    }

    fn peek(&mut self, buf: &[u8]) -> Option<FrameAt> {
        self.0.peek(buf)
    }

    /// A sentence (starting with its delimiter) gets the checksum of what follows the
    /// delimiter; any other line goes as it is.
    fn encode(&mut self, frame: &[u8], dst: &mut BytesMut) -> Result<(), FrameError> {
        dst.reserve(frame.len() + 5);
        dst.extend_from_slice(frame);
        match frame.split_first() {
            Some((&first, body)) if is_delimiter(first) => {
                dst.extend_from_slice(format!("*{:02X}\r\n", checksum(body)).as_bytes());
            }
            _ => dst.extend_from_slice(b"\r\n"),
        }
        Ok(())
    }

    fn reset(&mut self) {
        self.0.reset();
    }

    /// The two hex digits before CR LF.
    fn checksum_range(&self, encoded: &[u8]) -> Option<std::ops::Range<usize>> {
        let end = encoded.len().checked_sub(2)?;
        (end >= 4 && is_delimiter(encoded[0]) && encoded.get(end - 3) == Some(&b'*'))
            .then(|| end - 2..end)
    }

    /// A sentence that ends in `*hh` matching its body verifies; one without (a person
    /// typing, a receiver that leaves it out) or with a wrong one does not. A line that is not
    /// a sentence has no checksum.
    fn check(&self, frame: &[u8]) -> Checksum {
        let n = frame.len();
        if frame.first().is_none_or(|b| !is_delimiter(*b)) {
            return Checksum::Absent;
        }
        if n < 4 || frame[n - 3] != b'*' {
            return Checksum::Invalid;
        }
        match (hex_value(frame[n - 2]), hex_value(frame[n - 1])) {
            (Some(hi), Some(lo)) if hi << 4 | lo == checksum(&frame[1..n - 3]) => {
                Checksum::Valid { payload: n - 3 }
            }
            _ => Checksum::Invalid,
        }
    }

    fn max_frame_len(&self) -> usize {
        self.0.max_frame_len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(sentence: &str) -> String {
        let mut dst = BytesMut::new();
        NmeaFramer::new()
            .encode(sentence.as_bytes(), &mut dst)
            .unwrap();
        String::from_utf8(dst.to_vec()).unwrap()
    }

    /// The checksums of instruments.md §3.2's verified burst (recomputed there and accepted
    /// by pynmea2 and gpsd), and of NMEA.adoc's ZDA example.
    #[test]
    fn checksums_are_those_of_verified_sentences() {
        let verified = [
            "$GPRMC,123519.00,A,4807.0380,N,01131.0000,E,0.13,309.6,150324,,,A*6E",
            "$GPVTG,309.6,T,,M,0.13,N,0.24,K,A*05",
            "$GPGGA,123519.00,4807.0380,N,01131.0000,E,1,08,0.9,545.4,M,47.0,M,,*61",
            "$GPGSA,A,3,04,05,09,12,17,20,24,28,,,,,1.8,0.9,1.6*36",
            "$GPGSV,3,3,10,30,02,140,,02,05,350,*7D",
            "$GPGLL,4807.0380,N,01131.0000,E,123519.00,A,A*66",
            "$GPGGA,123519.00,,,,,0,00,99.99,,,,,,*6B",
            "$GPZDA,160012.71,11,03,2004,-1,00*7D",
        ];
        for wire in verified {
            let (sentence, _) = wire.split_once('*').unwrap();
            assert_eq!(encoded(sentence), format!("{wire}\r\n"));
            let frame = wire.as_bytes();
            assert_eq!(
                framing().check(frame),
                Checksum::Valid {
                    payload: sentence.len()
                }
            );
            let on_wire = format!("{wire}\r\n");
            assert_eq!(
                framing().unframe(on_wire.as_bytes()).as_deref(),
                Some(sentence.as_bytes())
            );
        }
    }

    #[test]
    fn bad_missing_or_lower_case_checksums() {
        let check = |s: &str| framing().check(s.as_bytes());
        assert!(matches!(
            check("$GPGSV,3,3,10,30,02,140,,02,05,350,*7d"),
            Checksum::Valid { .. }
        ));
        assert!(matches!(
            check("$PSRF100,0,38400,8,1,0*3c"),
            Checksum::Valid { .. }
        ));
        assert_eq!(check("$PSRF100,0,38400,8,1,0*3D"), Checksum::Invalid);
        assert_eq!(check("$PSRF100,0,38400,8,1,0"), Checksum::Invalid);
        assert_eq!(check("$*"), Checksum::Invalid);
        assert_eq!(check("*"), Checksum::Absent);
        assert_eq!(check(""), Checksum::Absent);
        assert_eq!(check("\u{b5}b\u{6}\u{4}*00"), Checksum::Absent);
        // A line that is not a sentence goes as it is, and comes back whole.
        assert_eq!(encoded("u-blox AG"), "u-blox AG\r\n");
        assert_eq!(
            framing().unframe(b"u-blox AG\r\n").as_deref(),
            Some(&b"u-blox AG"[..])
        );
        assert_eq!(NmeaFramer::new().checksum_range(b"ab*12\r\n"), None);
        let wire = encoded("$GPZDA,160012.71,11,03,2004,-1,00");
        let range = NmeaFramer::new().checksum_range(wire.as_bytes()).unwrap();
        assert_eq!(&wire[range], "7D");
    }

    /// gpsd's probes (binary and text, without a line end among them) and overlong junk are
    /// cut or discarded, never buffered without bound.
    #[test]
    fn probes_and_junk_are_cut_or_discarded() {
        let mut framer = NmeaFramer::new();
        let mut buf = BytesMut::from(&b"$PSRF100,0,38400,8,1,0*3C\r\n\xb5b\x06\x04\x00"[..]);
        assert_eq!(
            framer.decode(&mut buf).unwrap().as_deref(),
            Some(&b"$PSRF100,0,38400,8,1,0*3C"[..])
        );
        assert_eq!(framer.decode(&mut buf).unwrap(), None);
        buf.extend_from_slice(&[0xAA; 300]);
        assert!(matches!(
            framer.decode(&mut buf),
            Err(FrameError::TooLong { limit: MAX_LINE })
        ));
        buf.extend_from_slice(b"\n$PGRMCE*0E\n");
        let mut cut = Vec::new();
        loop {
            match framer.decode(&mut buf) {
                Ok(Some(f)) => cut.push(f),
                Ok(None) => break,
                Err(_) => {}
            }
        }
        assert_eq!(cut, [Bytes::from_static(b"$PGRMCE*0E")]);
    }
}
