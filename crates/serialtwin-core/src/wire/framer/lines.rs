//! A bounded, incremental line framer over bytes.

use bytes::{Buf, Bytes, BytesMut};

use super::{FrameAt, FrameError, Framer};

/// What ends a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Terminator {
    /// `\r\n`.
    #[default]
    CrLf,
    /// `\r` alone.
    Cr,
    /// `\n` alone.
    Lf,
}

impl Terminator {
    /// The terminator's bytes.
    #[must_use]
    pub fn bytes(self) -> &'static [u8] {
        match self {
            Self::CrLf => b"\r\n",
            Self::Cr => b"\r",
            Self::Lf => b"\n",
        }
    }

    /// `crlf`, `cr` or `lf`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::CrLf => "crlf",
            Self::Cr => "cr",
            Self::Lf => "lf",
        }
    }

    /// Parse [`name`](Self::name)'s output back.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "crlf" => Some(Self::CrLf),
            "cr" => Some(Self::Cr),
            "lf" => Some(Self::Lf),
            _ => None,
        }
    }

    /// The last byte of the terminator, the one the scanner looks for.
    fn last(self) -> u8 {
        match self {
            Self::CrLf | Self::Lf => b'\n',
            Self::Cr => b'\r',
        }
    }
}

/// Lines of bytes ending in a [`Terminator`], at most `max_len` bytes each (terminator excluded).
///
/// Frames are `Bytes` without the terminator and need not be UTF-8. With [`Terminator::CrLf`]
/// a frame ends at `\n` and one `\r` before it is stripped, so a bare `\n` also ends a line (the
/// way most line-oriented instruments behave).
///
/// # Note
/// The length limit is what makes this framer safe on untrusted input: a peer that never sends a
/// terminator cannot make it buffer or scan without bound. A line longer than `max_len` is
/// discarded up to its terminator, reported once as [`FrameError::TooLong`], and decoding
/// resumes with the next line.
#[derive(Clone, Debug)]
pub struct LineFramer {
    /// What ends a line.
    terminator: Terminator,
    /// Longest accepted frame, terminator excluded.
    max_len: usize,
    /// Where the next search for the terminator starts, so a partial line is never rescanned.
    next_index: usize,
    /// True while discarding the rest of an overlong line (its error was already reported).
    discarding: bool,
}

impl LineFramer {
    /// A framer for lines ending in `terminator`, at most `max_len` bytes each.
    #[must_use]
    pub fn new(terminator: Terminator, max_len: usize) -> Self {
        Self {
            terminator,
            max_len,
            next_index: 0,
            discarding: false,
        }
    }

    /// The terminator.
    #[must_use]
    pub fn terminator(&self) -> Terminator {
        self.terminator
    }

    /// Whether the front of the next buffer handed to `decode` is the start of a frame (no
    /// partial frame is pending): where protocols that pad between frames skip their padding.
    #[must_use]
    pub fn is_between_frames(&self) -> bool {
        self.next_index == 0 && !self.discarding
    }

    /// Length of the frame ending at index `end` (exclusive of the found terminator byte).
    /// How far to look for a terminator: no further than one frame plus its terminator, so
    /// that an overlong line is found without scanning everything a peer may have sent.
    fn window_end(&self, buf: &[u8]) -> usize {
        buf.len().min(self.max_len + self.terminator.bytes().len())
    }

    /// Where the current line's terminator is, looking on from where the last look stopped.
    fn line_end(&self, buf: &[u8]) -> Option<usize> {
        let end = self.window_end(buf);
        let from = self.next_index.min(end);
        buf[from..end]
            .iter()
            .position(|&b| b == self.terminator.last())
            .map(|i| i + from)
    }

    fn frame_len(&self, line: &[u8]) -> usize {
        match self.terminator {
            Terminator::CrLf if line.last() == Some(&b'\r') => line.len() - 1,
            _ => line.len(),
        }
    }
}

impl Framer for LineFramer {
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        loop {
            let window_end = self.window_end(buf);
            let found = self.line_end(buf);
            match (self.discarding, found) {
                // End of an overlong line: drop it and its terminator, resume normally.
                (true, Some(i)) => {
                    buf.advance(i + 1);
                    self.discarding = false;
                    self.next_index = 0;
                }
                // Still inside an overlong line: drop what we have.
                (true, None) => {
                    buf.advance(window_end);
                    self.next_index = 0;
                    if buf.is_empty() {
                        return Ok(None);
                    }
                }
                (false, Some(i)) => {
                    self.next_index = 0;
                    let len = self.frame_len(&buf[..i]);
                    if len > self.max_len {
                        buf.advance(i + 1);
                        return Err(FrameError::TooLong {
                            limit: self.max_len,
                        });
                    }
                    let line = buf.split_to(len).freeze();
                    // The terminator.
                    buf.advance(i + 1 - len);
                    return Ok(Some(line));
                }
                (false, None) if buf.len() > self.max_len + self.terminator.bytes().len() - 1 => {
                    // No terminator within the limit: this line is too long. Start discarding
                    // and report it now, once.
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

    /// The next line, if it is complete and within the limit (anything else is `decode`'s).
    fn peek(&mut self, buf: &[u8]) -> Option<FrameAt> {
        if self.discarding {
            return None;
        }
        let i = self.line_end(buf)?;
        let len = self.frame_len(&buf[..i]);
        if len > self.max_len {
            return None;
        }
        self.next_index = 0;
        Some(FrameAt {
            frame: 0..len,
            used: i + 1,
        })
    }

    fn encode(&mut self, frame: &[u8], dst: &mut BytesMut) -> Result<(), FrameError> {
        dst.reserve(frame.len() + self.terminator.bytes().len());
        dst.extend_from_slice(frame);
        dst.extend_from_slice(self.terminator.bytes());
        Ok(())
    }

    fn reset(&mut self) {
        self.next_index = 0;
        self.discarding = false;
    }

    fn max_frame_len(&self) -> usize {
        self.max_len
    }
}
