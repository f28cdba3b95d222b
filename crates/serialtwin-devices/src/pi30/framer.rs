//! Cutting PI30 requests out of the byte stream, and putting a checksum on replies.
//!
//! A PI30 frame ends in `\r`; the two bytes before it are a checksum that the escapes keep
//! clear of `\r`, so "read until CR" is safe. Decoding leaves the CRC in the frame: what a
//! failed check means (NAK, or a CRC-less command typed by a person) is the device's to say.
//! [`Framer::check`] verifies it (under either escape rule) for everyone else who looks at
//! frames: replay, learn, traces.

use bytes::{Buf, Bytes, BytesMut};
use serialtwin_core::{Checksum, FrameAt, FrameError, Framer, LineFramer, Terminator};

use super::crc::{self, CrcVariant};

/// Default longest request, CRC included. The longest real command is `PLEDC` with ten digits
/// or `DAT` with fourteen; 256 leaves room for garbage without buffering it forever.
pub const DEFAULT_MAX_LEN: usize = 256;

/// The PI30 framer: frames end in `\r`; replies get a CRC (in the configured variant) and `\r`.
///
/// Bytes between frames that cannot start a command are skipped: NUL (the HID path pads its
/// 8-byte reports with NULs after the `\r`) and LF (a terminal sending CRLF). Inside a frame
/// every byte is data, NUL included: a request CRC may be 0x00 under the reference escapes
/// (`QED20250305` has CRC 0x7200).
///
/// # Note
/// A frame longer than the limit is discarded up to its `\r`, reported once as
/// [`FrameError::TooLong`], and decoding resumes with the next frame.
#[derive(Clone, Debug)]
pub struct Pi30Framer {
    /// How reply checksums are escaped.
    variant: CrcVariant,
    /// CR-terminated, bounded, incremental line cutting (the core's).
    lines: LineFramer,
    /// True while dropping the rest of an overlong frame (its error was already reported).
    /// Done here, not by the line framer, which would go straight on to the next frame in the
    /// same buffer without skipping the padding before it.
    discarding: bool,
}

impl Pi30Framer {
    /// A framer whose replies carry `variant` checksums, accepting frames of up to
    /// [`DEFAULT_MAX_LEN`] bytes.
    #[must_use]
    pub fn new(variant: CrcVariant) -> Self {
        Self::with_max_len(variant, DEFAULT_MAX_LEN)
    }

    /// A framer accepting frames of up to `max_len` bytes (CRC included, `\r` excluded).
    #[must_use]
    pub fn with_max_len(variant: CrcVariant, max_len: usize) -> Self {
        Self {
            variant,
            lines: LineFramer::new(Terminator::Cr, max_len.max(1)),
            discarding: false,
        }
    }

    /// The reply checksum variant.
    #[must_use]
    pub fn variant(&self) -> CrcVariant {
        self.variant
    }
}

/// Bytes that are padding when they appear where a frame would start.
fn is_filler(b: u8) -> bool {
    matches!(b, 0x00 | b'\n')
}

impl Framer for Pi30Framer {
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        loop {
            if self.discarding {
                let Some(end) = buf.iter().position(|&b| b == b'\r') else {
                    buf.clear();
                    return Ok(None);
                };
                buf.advance(end + 1);
                self.discarding = false;
                self.lines.reset();
            }
            if self.lines.is_between_frames() {
                let filler = buf.iter().take_while(|&&b| is_filler(b)).count();
                buf.advance(filler);
            }
            match self.lines.decode(buf) {
                // A bare `\r` (a person pressing Enter): nothing to answer.
                Ok(Some(frame)) if frame.is_empty() => {}
                Ok(other) => return Ok(other),
                Err(e) => {
                    // An overlong frame whose `\r` has not come yet: drop the rest as it comes.
                    self.discarding = !self.lines.is_between_frames();
                    return Err(e);
                }
            }
        }
    }

    /// The next frame after any padding, when it is complete, within the limit and not a bare
    /// `\r` (those are `decode`'s).
    fn peek(&mut self, buf: &[u8]) -> Option<FrameAt> {
        let filler = if self.lines.is_between_frames() {
            buf.iter().take_while(|&&b| is_filler(b)).count()
        } else {
            0
        };
        let at = self.lines.peek(&buf[filler..])?;
        if at.frame.is_empty() {
            // The line framer took the bare `\r` as `decode` would; `decode` skips it.
            return None;
        }
        Some(FrameAt {
            frame: at.frame.start + filler..at.frame.end + filler,
            used: at.used + filler,
        })
    }

    fn encode(&mut self, frame: &[u8], dst: &mut BytesMut) -> Result<(), FrameError> {
        dst.reserve(frame.len() + 3);
        dst.extend_from_slice(frame);
        dst.extend_from_slice(&self.variant.checksum(frame));
        dst.extend_from_slice(b"\r");
        Ok(())
    }

    fn reset(&mut self) {
        self.discarding = false;
        self.lines.reset();
    }

    fn max_frame_len(&self) -> usize {
        self.lines.max_frame_len()
    }

    /// The two CRC bytes before the final `\r`.
    fn checksum_range(&self, encoded: &[u8]) -> Option<std::ops::Range<usize>> {
        (encoded.len() >= 3 && encoded.ends_with(b"\r"))
            .then(|| encoded.len() - 3..encoded.len() - 1)
    }

    /// The last two bytes, when they are the CRC of the rest under either escape rule (the
    /// rule requests are accepted under, whatever this framer writes).
    fn check(&self, frame: &[u8]) -> Checksum {
        match crc::strip_valid(frame) {
            Some(payload) => Checksum::Valid {
                payload: payload.len(),
            },
            None => Checksum::Invalid,
        }
    }
}
