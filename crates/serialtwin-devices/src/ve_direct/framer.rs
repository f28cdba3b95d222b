//! VE.Direct on the wire: text blocks and HEX frames, each with its own checksum.
//!
//! - A **text block** is a run of `\r\n<LABEL>\t<VALUE>` fields ended by `\r\nChecksum\t` and
//!   one byte that makes the sum of every byte of the block, from its first `\r` to that byte,
//!   0 mod 256 (instruments.md §4.1; vedirect-m8 `input_read`, `OpenDTU` `rxData`). The byte can
//!   be anything, `\r`, `\n`, `\t` and `:` included, and no line end follows it.
//! - A **HEX frame** is `:`, one hex digit of command, the payload bytes as two upper-case hex
//!   digits each, one checksum byte in hex and `\n`; the command nibble plus the payload bytes
//!   plus the checksum byte is 0x55 mod 256 (§4.2; mppsolar `vedHexChecksum`, `OpenDTU`
//!   `calcHexFrameCheckSum`).
//!
//! The device pushes a block without its checksum byte (ending in `Checksum\t`) and a HEX
//! frame without its checksum and `\n` (`:7D5ED00`); this framer adds them. A block may come
//! in pieces with HEX frames between them, as real chargers send async frames between the
//! fields of a block (instruments.md §4.3): each piece starts with `\r\n`, the framer keeps
//! the sum of the pieces so far, and the last piece's checksum byte covers the whole block
//! and none of the HEX bytes. From the client it cuts LF lines: HEX frames are the only thing
//! a host writes.

use bytes::{Bytes, BytesMut};
use serialtwin_core::{Checksum, FrameAt, FrameError, Framer, Framing, LineFramer, Terminator};

/// The longest line accepted from a client, `\n` excluded: a set of a 4-byte value is 19
/// characters; the rest is room for a chatty host. Longer input is discarded and reported.
pub const MAX_LINE: usize = 64;

/// The framing's name, as `framing = "ve-direct"` writes it.
pub const NAME: &str = "ve-direct";

/// What ends every text block, before its checksum byte.
pub const CHECKSUM_LABEL: &[u8] = b"\r\nChecksum\t";

/// The HEX checksum's target: nibble + payload + checksum ≡ this (mod 256).
const HEX_SUM: u8 = 0x55;

/// A fresh VE.Direct framing.
#[must_use]
pub fn framing() -> Framing {
    Framing::new(NAME, VeDirectFramer::new)
}

/// The byte that makes `block`'s bytes sum to 0 mod 256.
#[must_use]
pub fn text_checksum(block: &[u8]) -> u8 {
    0u8.wrapping_sub(block.iter().fold(0u8, |sum, b| sum.wrapping_add(*b)))
}

/// The HEX checksum byte for a command nibble and its payload bytes.
#[must_use]
pub fn hex_checksum(command: u8, payload: &[u8]) -> u8 {
    HEX_SUM.wrapping_sub(payload.iter().fold(command, |sum, b| sum.wrapping_add(*b)))
}

/// The value of one hex digit, either case.
fn hex_value(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// A HEX frame's command nibble and bytes (payload, then checksum if present) from the text
/// after `:`: `None` unless it is one hex digit and pairs of hex digits.
#[must_use]
pub fn hex_bytes(after_colon: &[u8]) -> Option<(u8, Vec<u8>)> {
    let (&command, rest) = after_colon.split_first()?;
    let command = hex_value(command)?;
    if !rest.len().is_multiple_of(2) {
        return None;
    }
    let bytes = rest
        .chunks_exact(2)
        .map(|pair| Some(hex_value(pair[0])? << 4 | hex_value(pair[1])?))
        .collect::<Option<Vec<u8>>>()?;
    Some((command, bytes))
}

/// VE.Direct: LF lines from the client, text blocks and HEX frames checksummed on the way out.
#[derive(Debug)]
pub struct VeDirectFramer {
    lines: LineFramer,
    /// The sum of a block's pieces encoded so far, while the block has not ended.
    block_sum: u8,
}

impl VeDirectFramer {
    /// A framer accepting client lines of up to [`MAX_LINE`] bytes.
    #[must_use]
    pub fn new() -> Self {
        Self {
            lines: LineFramer::new(Terminator::Lf, MAX_LINE),
            block_sum: 0,
        }
    }
}

impl Default for VeDirectFramer {
    fn default() -> Self {
        Self::new()
    }
}

impl Framer for VeDirectFramer {
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        self.lines.decode(buf)
    }

    fn peek(&mut self, buf: &[u8]) -> Option<FrameAt> {
        self.lines.peek(buf)
    }

    /// A block ending in `Checksum\t` gets its checksum byte, over the pieces of the block
    /// before it too; a piece of a block (starting `\r\n`) goes as it is, counted; a HEX frame
    /// (`:` and hex digits) gets its checksum in hex and `\n`; anything else is a line, and
    /// gets `\n` (so that whatever a client's line was, it goes back as the same line).
    fn encode(&mut self, frame: &[u8], dst: &mut BytesMut) -> Result<(), FrameError> {
        dst.reserve(frame.len() + 3);
        dst.extend_from_slice(frame);
        if frame.ends_with(CHECKSUM_LABEL) {
            let before = std::mem::take(&mut self.block_sum);
            dst.extend_from_slice(&[text_checksum(frame).wrapping_sub(before)]);
        } else if frame.starts_with(b"\r\n") {
            self.block_sum = frame
                .iter()
                .fold(self.block_sum, |sum, b| sum.wrapping_add(*b));
        } else if let Some(after) = frame.strip_prefix(b":")
            && let Some((command, payload)) = hex_bytes(after)
        {
            dst.extend_from_slice(format!("{:02X}\n", hex_checksum(command, &payload)).as_bytes());
        } else {
            dst.extend_from_slice(b"\n");
        }
        Ok(())
    }

    fn reset(&mut self) {
        self.lines.reset();
        self.block_sum = 0;
    }

    /// A block's last byte; a HEX frame's two digits before `\n`.
    fn checksum_range(&self, encoded: &[u8]) -> Option<std::ops::Range<usize>> {
        let n = encoded.len();
        if encoded.first() == Some(&b':') && encoded.last() == Some(&b'\n') && n >= 5 {
            return Some(n - 3..n - 1);
        }
        (n > CHECKSUM_LABEL.len() && encoded[..n - 1].ends_with(CHECKSUM_LABEL)).then(|| n - 1..n)
    }

    /// A HEX frame (without its `\n`) verifies when its sum is 0x55; a text block when its
    /// bytes sum to 0. A line that is not hex digits after `:` is no HEX frame, and has no
    /// checksum, like anything else.
    fn check(&self, frame: &[u8]) -> Checksum {
        let n = frame.len();
        if let Some(after) = frame.strip_prefix(b":")
            && let Some((command, bytes)) = hex_bytes(after)
        {
            return if !bytes.is_empty() && hex_checksum(command, &bytes) == 0 {
                Checksum::Valid { payload: n - 2 }
            } else {
                Checksum::Invalid
            };
        }
        if n > CHECKSUM_LABEL.len() && frame[..n - 1].ends_with(CHECKSUM_LABEL) {
            return if text_checksum(frame) == 0 {
                Checksum::Valid { payload: n - 1 }
            } else {
                Checksum::Invalid
            };
        }
        Checksum::Absent
    }

    fn max_frame_len(&self) -> usize {
        self.lines.max_frame_len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(frame: &[u8]) -> Vec<u8> {
        let mut dst = BytesMut::new();
        VeDirectFramer::new().encode(frame, &mut dst).unwrap();
        dst.to_vec()
    }

    /// instruments.md §4.1's `SmartSolar` block, parsed by vedirect-m8 and mppsolar: 195 bytes,
    /// checksum 0xDC.
    #[test]
    fn the_verified_block_gets_its_checksum() {
        let block = b"\r\nPID\t0xA053\r\nFW\t159\r\nSER#\tHQ2133ABCDE\r\nV\t13410\r\nI\t4200\
\r\nVPV\t18760\r\nPPV\t58\r\nCS\t3\r\nMPPT\t2\r\nOR\t0x00000000\r\nERR\t0\r\nLOAD\tON\r\nIL\t300\
\r\nH19\t10342\r\nH20\t35\r\nH21\t210\r\nH22\t112\r\nH23\t305\r\nHSDS\t187\r\nChecksum\t";
        let wire = encoded(block);
        assert_eq!(wire.len(), 195);
        assert_eq!(wire.last(), Some(&0xDC));
        assert_eq!(framing().check(&wire), Checksum::Valid { payload: 194 });
        assert_eq!(VeDirectFramer::new().checksum_range(&wire), Some(194..195));
        let mut broken = wire.clone();
        broken[10] ^= 1;
        assert_eq!(framing().check(&broken), Checksum::Invalid);
    }

    /// A block in two pieces with async frames between them (as emonhub#160's capture has
    /// them before `ERR`): the checksum byte is the whole block's, the HEX bytes left out.
    #[test]
    fn a_block_in_pieces_gets_the_whole_blocks_checksum() {
        let first = &b"\r\nPID\t0xA053\r\nFW\t159\r\nSER#\tHQ2133ABCDE\r\nV\t13410\r\nI\t4200\
\r\nVPV\t18760\r\nPPV\t58\r\nCS\t3\r\nMPPT\t2\r\nOR\t0x00000000"[..];
        let rest = &b"\r\nERR\t0\r\nLOAD\tON\r\nIL\t300\r\nH19\t10342\r\nH20\t35\r\nH21\t210\
\r\nH22\t112\r\nH23\t305\r\nHSDS\t187\r\nChecksum\t"[..];
        let mut framer = VeDirectFramer::new();
        let mut wire = BytesMut::new();
        for frame in [first, b":ADBED001A0D", b":A02020002000000", rest] {
            framer.encode(frame, &mut wire).unwrap();
        }
        let wire = wire.to_vec();
        let hex = b":ADBED001A0D5C\n:A0202000200000045\n";
        assert_eq!(&wire[first.len()..first.len() + hex.len()], hex);
        assert_eq!(wire.last(), Some(&0xDC));
        // The next block starts afresh.
        let mut again = BytesMut::new();
        framer.encode(&[first, rest].concat(), &mut again).unwrap();
        assert_eq!(again.last(), Some(&0xDC));
    }

    /// Every frame of §4.2's table (all sums checked there = 0x55).
    #[test]
    fn hex_frames_get_the_checksums_of_the_verified_ones() {
        for wire in [
            ":154\n",
            ":55941B6\n",
            ":7D5ED008C\n",
            ":7D5ED00460541\n",
            ":70010003E\n",
            ":70010007800C6\n",
            ":A0102000345\n",
            ":ADBED001A0D5C\n",
            ":4AAAAFD\n",
        ] {
            let frame = &wire.as_bytes()[..wire.len() - 3];
            assert_eq!(encoded(frame), wire.as_bytes(), "{wire}");
            let decoded = wire.trim_end().as_bytes();
            assert_eq!(
                framing().check(decoded),
                Checksum::Valid {
                    payload: decoded.len() - 2
                },
                "{wire}"
            );
            let range = VeDirectFramer::new()
                .checksum_range(wire.as_bytes())
                .unwrap();
            assert_eq!(&wire[range], &wire[wire.len() - 3..wire.len() - 1]);
        }
        assert_eq!(framing().check(b":154"), Checksum::Valid { payload: 2 });
        assert_eq!(framing().check(b":155"), Checksum::Invalid);
        assert_eq!(framing().check(b":1G4"), Checksum::Absent);
        assert_eq!(framing().check(b":15"), Checksum::Absent);
        assert_eq!(framing().check(b":1"), Checksum::Invalid);
        assert_eq!(framing().check(b"hello"), Checksum::Absent);
        assert_eq!(framing().check(b""), Checksum::Absent);
        // Lower-case digits are read too; replies are written upper-case.
        assert!(matches!(
            framing().check(b":7d5ed008c"),
            Checksum::Valid { .. }
        ));
    }

    /// A host's lines are cut at LF; junk without one is discarded, never buffered unbounded.
    #[test]
    fn client_lines_are_cut_and_junk_discarded() {
        let mut framer = VeDirectFramer::new();
        let mut buf = BytesMut::from(&b":154\n:7D5ED"[..]);
        assert_eq!(
            framer.decode(&mut buf).unwrap().as_deref(),
            Some(&b":154"[..])
        );
        assert_eq!(framer.decode(&mut buf).unwrap(), None);
        buf.extend_from_slice(&[b'x'; 200]);
        assert!(matches!(
            framer.decode(&mut buf),
            Err(FrameError::TooLong { limit: MAX_LINE })
        ));
    }
}
