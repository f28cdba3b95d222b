//! Cutting Modbus ASCII requests out of the byte stream, and framing replies (`modbus.md` §6;
//! SL §2.5.2).
//!
//! A frame is `:`, the address, function code and data as pairs of hex digits, the LRC as one
//! more pair, and CR LF. A `:` anywhere starts a frame afresh (what came before it is
//! dropped), at most 513 characters make a frame, and a frame that has waited more than 1 s
//! for its next character is dropped. Hex digits must be uppercase, as the spec writes them
//! and pymodbus and minimalmodbus send them; a frame with anything else in it, or whose LRC
//! does not verify, is dropped without an answer (reported as a [`FrameError`]).
//!
//! # Decoded frames
//! A decoded frame is the binary address, function code and data, without the LRC: the same
//! bytes a `modbus-rtu` frame decodes to, so one slave serves both. [`AsciiFramer::encode`]
//! turns a reply (address, function code, data) into `:`, hex, LRC and CR LF.

use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use serialtwin_core::{FrameError, Framer, Framing, LineSettings};

use crate::registry::NamedFraming;

/// The framing's name: `framing = "modbus-ascii"`.
pub const NAME: &str = "modbus-ascii";

/// The framing as the registry lists it, for a model's [`framings`](crate::registry::Model::framings).
pub const NAMED_FRAMING: NamedFraming = NamedFraming {
    name: NAME,
    summary: "Modbus ASCII: `:`, uppercase hex and an LRC, ending in CR LF",
    make: framing,
    // The answer to an unknown function (exception 01) carries the request's address and
    // code: no fixed frame says it.
    unknown_command: None,
    learn: Some(super::learn::learn),
    describe: Some(super::describe::ascii),
};

/// The most characters in a frame, `:` and CR LF included (SL §2.5.2).
pub const MAX_CHARS: usize = 513;

/// How long a partial frame may wait for its next character (SL §2.5.2.1).
pub const IDLE: Duration = Duration::from_secs(1);

/// Where the CR of the longest frame is: after `:` and 510 hex digits.
const LAST_CR: usize = MAX_CHARS - 2;

/// Uppercase hex digits, by value.
const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// A fresh `modbus-ascii` framing.
#[must_use]
pub fn framing() -> Framing {
    Framing::new(NAME, AsciiFramer::new)
}

/// The LRC of `bytes`: the two's complement of their 8-bit sum (SL §6.2.1).
#[must_use]
pub fn lrc(bytes: &[u8]) -> u8 {
    bytes
        .iter()
        .fold(0u8, |sum, b| sum.wrapping_add(*b))
        .wrapping_neg()
}

/// The value of an uppercase hex digit.
fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The binary frame the characters between `:` and CR spell, without its LRC.
fn unhex(chars: &[u8]) -> Result<Bytes, FrameError> {
    if !chars.len().is_multiple_of(2) {
        return Err(FrameError::Malformed(format!(
            "odd number of hex digits ({}): frame dropped",
            chars.len()
        )));
    }
    let bytes = chars
        .chunks_exact(2)
        .map(|pair| Some((hex_value(pair[0])? << 4) | hex_value(pair[1])?))
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(|| FrameError::Malformed("not an uppercase hex digit: frame dropped".into()))?;
    // Address, function code and LRC at least.
    let Some((&sent, frame)) = bytes.split_last().filter(|(_, frame)| frame.len() >= 2) else {
        return Err(FrameError::Malformed(format!(
            "{} byte(s) are too short for a frame: dropped",
            bytes.len()
        )));
    };
    let want = lrc(frame);
    if sent != want {
        return Err(FrameError::Malformed(format!(
            "LRC {sent:02X} where {want:02X} was due: frame dropped"
        )));
    }
    Ok(Bytes::copy_from_slice(frame))
}

/// The Modbus ASCII framer. See the [module docs](self).
///
/// # Note
/// A frame is at most [`MAX_CHARS`] characters: a longer one is dropped as soon as it passes
/// the limit, reported once as [`FrameError::TooLong`], and the rest of it up to the next `:`
/// is dropped too.
#[derive(Clone, Debug, Default)]
pub struct AsciiFramer {
    /// How many characters of the frame at the buffer's start (its `:` first) have been looked
    /// at; 0 between frames, when the buffer holds nothing worth keeping. Characters are looked
    /// at once, however they come.
    scanned: usize,
}

impl AsciiFramer {
    /// A framer with nothing buffered.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

impl Framer for AsciiFramer {
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        if self.scanned == 0 {
            // Between frames: everything up to the next `:` is noise, dropped when that `:`
            // comes, or a frame's length of it at a time: however the bytes were split, the
            // same noise is reported the same way.
            let noise = match buf.iter().position(|&c| c == b':') {
                Some(start) => start,
                None if buf.len() >= MAX_CHARS => buf.len(),
                None => return Ok(None),
            };
            if noise > 0 {
                let dropped = noise.min(MAX_CHARS);
                buf.advance(dropped);
                return Err(FrameError::Malformed(format!(
                    "{dropped} character(s) outside a frame dropped"
                )));
            }
            self.scanned = 1;
        }
        while self.scanned < buf.len() {
            let at = self.scanned;
            match buf[at] {
                b':' => {
                    // A new frame starts here; the one before it is given up.
                    buf.advance(at);
                    self.scanned = 1;
                    return Err(FrameError::Malformed(format!(
                        "frame restarted by `:` ({at} character(s) dropped)"
                    )));
                }
                b'\r' => {
                    let Some(&next) = buf.get(at + 1) else {
                        // The LF is still to come.
                        return Ok(None);
                    };
                    self.scanned = 0;
                    if next != b'\n' {
                        buf.advance(at + 1);
                        return Err(FrameError::Malformed(
                            "CR not followed by LF: frame dropped".into(),
                        ));
                    }
                    let frame = buf.split_to(at + 2);
                    return unhex(&frame[1..at]).map(Some);
                }
                _ if at >= LAST_CR => {
                    // Past the last place the CR can be: too long. Its rest goes as noise.
                    buf.advance(at + 1);
                    self.scanned = 0;
                    return Err(FrameError::TooLong { limit: MAX_CHARS });
                }
                _ => self.scanned += 1,
            }
        }
        Ok(None)
    }

    /// `:`, `frame` (address, function code, data) and its LRC in uppercase hex, CR LF.
    fn encode(&mut self, frame: &[u8], dst: &mut BytesMut) -> Result<(), FrameError> {
        let chars = 1 + 2 * (frame.len() + 1) + 2;
        if chars > MAX_CHARS {
            return Err(FrameError::TooLong { limit: MAX_CHARS });
        }
        dst.reserve(chars);
        dst.extend_from_slice(b":");
        for &b in frame.iter().chain(&[lrc(frame)]) {
            dst.extend_from_slice(&[HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xF)]]);
        }
        dst.extend_from_slice(b"\r\n");
        Ok(())
    }

    /// [`IDLE`] while a frame is partly received; `None` between frames.
    fn silence_gap(&self, _settings: &LineSettings) -> Option<Duration> {
        (self.scanned > 0).then_some(IDLE)
    }

    /// The partial frame waited too long: dropped.
    fn on_silence(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        if self.scanned == 0 {
            return Ok(None);
        }
        self.scanned = 0;
        let stale = buf.len();
        buf.clear();
        Err(FrameError::Malformed(format!(
            "partial frame idle for {} s dropped ({stale} character(s))",
            IDLE.as_secs()
        )))
    }

    fn reset(&mut self) {
        self.scanned = 0;
    }

    /// The two LRC digits before CR LF.
    fn checksum_range(&self, encoded: &[u8]) -> Option<std::ops::Range<usize>> {
        (encoded.len() >= 5 && encoded.ends_with(b"\r\n"))
            .then(|| encoded.len() - 4..encoded.len() - 2)
    }

    fn max_frame_len(&self) -> usize {
        MAX_CHARS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_vector_round_trips() {
        let frame = [0x01, 0x03, 0x00, 0x6B, 0x00, 0x03];
        assert_eq!(lrc(&frame), 0x8E);
        let mut wire = BytesMut::new();
        AsciiFramer::new().encode(&frame, &mut wire).unwrap();
        assert_eq!(&wire[..], b":0103006B00038E\r\n");
        assert_eq!(AsciiFramer::new().checksum_range(&wire), Some(13..15));
        let got = AsciiFramer::new().decode(&mut wire).unwrap();
        assert_eq!(got.as_deref(), Some(&frame[..]));
        assert!(wire.is_empty());
    }
}
