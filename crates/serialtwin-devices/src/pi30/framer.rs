//! Cutting PI30 requests out of the byte stream, and putting a checksum on replies.
//!
//! A PI30 frame ends in `\r`; the two bytes before it are a checksum that the escapes keep
//! clear of `\r`, so "read until CR" is safe. The framer does not check the request CRC: the
//! device does, because what a failed check means (NAK, or a CRC-less command typed by a
//! person) is protocol, not framing.

use bytes::{Buf, Bytes, BytesMut};
use serialtwin_core::{FrameError, Framer};

use super::crc::CrcVariant;

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
    /// Longest accepted frame, `\r` excluded.
    max_len: usize,
    /// Where the next search for `\r` starts, so a partial frame is never rescanned.
    next_index: usize,
    /// True while dropping the rest of an overlong frame (its error was already reported).
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
            max_len: max_len.max(1),
            next_index: 0,
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
            if !self.discarding && self.next_index == 0 {
                let filler = buf.iter().take_while(|&&b| is_filler(b)).count();
                buf.advance(filler);
            }
            // Never look further than one frame plus its terminator.
            let window_end = buf.len().min(self.max_len + 1);
            let found = buf[self.next_index.min(window_end)..window_end]
                .iter()
                .position(|&b| b == b'\r')
                .map(|i| i + self.next_index);
            match (self.discarding, found) {
                // The end of an overlong frame: drop it with its `\r` and carry on.
                (true, Some(i)) => {
                    buf.advance(i + 1);
                    self.discarding = false;
                    self.next_index = 0;
                }
                // Still inside an overlong frame.
                (true, None) => {
                    buf.advance(window_end);
                    self.next_index = 0;
                    if buf.is_empty() {
                        return Ok(None);
                    }
                }
                // A bare `\r` (a person pressing Enter): nothing to answer.
                (false, Some(0)) => {
                    buf.advance(1);
                    self.next_index = 0;
                }
                (false, Some(i)) => {
                    self.next_index = 0;
                    let frame = buf.split_to(i);
                    buf.advance(1);
                    return Ok(Some(frame.freeze()));
                }
                (false, None) if buf.len() > self.max_len => {
                    self.discarding = true;
                    buf.advance(window_end);
                    self.next_index = 0;
                    return Err(FrameError::TooLong {
                        limit: self.max_len,
                    });
                }
                (false, None) => {
                    self.next_index = buf.len();
                    return Ok(None);
                }
            }
        }
    }

    fn encode(&mut self, frame: &[u8], dst: &mut BytesMut) -> Result<(), FrameError> {
        dst.reserve(frame.len() + 3);
        dst.extend_from_slice(frame);
        dst.extend_from_slice(&self.variant.checksum(frame));
        dst.extend_from_slice(b"\r");
        Ok(())
    }

    fn reset(&mut self) {
        self.next_index = 0;
        self.discarding = false;
    }

    fn max_frame_len(&self) -> usize {
        self.max_len
    }

    /// The two CRC bytes before the final `\r`.
    fn checksum_range(&self, encoded: &[u8]) -> Option<std::ops::Range<usize>> {
        (encoded.len() >= 3 && encoded.ends_with(b"\r"))
            .then(|| encoded.len() - 3..encoded.len() - 1)
    }
}
