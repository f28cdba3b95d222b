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

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(f: &mut LineFramer, buf: &mut BytesMut, bytes: &[u8]) -> Vec<Result<Bytes, String>> {
        buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        loop {
            match f.decode(buf) {
                Ok(Some(frame)) => out.push(Ok(frame)),
                Ok(None) => return out,
                Err(e) => out.push(Err(e.to_string())),
            }
        }
    }

    #[expect(clippy::unnecessary_wraps, reason = "compared against decode results")]
    fn ok(s: &[u8]) -> Result<Bytes, String> {
        Ok(Bytes::copy_from_slice(s))
    }

    /// Everything `bytes` yields fed in `chunk`-sized reads, through `peek` where it answers
    /// (taking the frame out as a caller would) and `decode` where it does not; and what is
    /// left in the buffer.
    fn through_peek(
        f: &mut LineFramer,
        bytes: &[u8],
        chunk: usize,
    ) -> (Vec<Result<Bytes, String>>, BytesMut) {
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for piece in bytes.chunks(chunk) {
            buf.extend_from_slice(piece);
            while !buf.is_empty() {
                if let Some(at) = f.peek(&buf) {
                    out.push(ok(&buf[at.frame]));
                    buf.advance(at.used);
                    continue;
                }
                match f.decode(&mut buf) {
                    Ok(Some(frame)) => out.push(Ok(frame)),
                    Ok(None) => break,
                    Err(e) => out.push(Err(e.to_string())),
                }
            }
        }
        (out, buf)
    }

    #[test]
    fn peek_finds_what_decode_would_take() {
        let mut input = b"QPIGS\r\nQMOD\r\n\r\nA\nB\r\n".to_vec();
        input.extend_from_slice(&[b'x'; 40]);
        input.extend_from_slice(b"\r\nAFTER\r\n");
        // One over the limit, ended by a bare `\n`: within the window a CRLF framer looks at.
        input.extend_from_slice(&[b'z'; 17]);
        input.extend_from_slice(b"\n");
        input.extend_from_slice(&[b'y'; 10]);
        input.extend_from_slice(b"\r\nPART");
        for terminator in [Terminator::CrLf, Terminator::Cr, Terminator::Lf] {
            for chunk in [1, 2, 3, 7, 16, 64, input.len()] {
                let mut by_decode = LineFramer::new(terminator, 16);
                let mut buf = BytesMut::new();
                let mut expected = Vec::new();
                for piece in input.chunks(chunk) {
                    expected.extend(feed(&mut by_decode, &mut buf, piece));
                }
                let mut by_peek = LineFramer::new(terminator, 16);
                let (got, left) = through_peek(&mut by_peek, &input, chunk);
                assert_eq!(got, expected, "{terminator:?}, reads of {chunk}");
                assert_eq!(left, buf, "{terminator:?}, reads of {chunk}");
                assert_eq!(
                    by_peek.is_between_frames(),
                    by_decode.is_between_frames(),
                    "{terminator:?}, reads of {chunk}"
                );
            }
        }
        // It does answer: a complete line is found in place, its terminator counted as used.
        let mut f = LineFramer::new(Terminator::CrLf, 16);
        assert_eq!(
            f.peek(b"QPI\r\nQ"),
            Some(FrameAt {
                frame: 0..3,
                used: 5
            })
        );
        assert_eq!(f.peek(b"QPI"), None);
    }

    #[test]
    fn frames_split_across_reads() {
        let mut f = LineFramer::new(Terminator::CrLf, 64);
        let mut buf = BytesMut::new();
        assert!(feed(&mut f, &mut buf, b"QP").is_empty());
        assert!(feed(&mut f, &mut buf, b"GS\r").is_empty());
        assert_eq!(feed(&mut f, &mut buf, b"\nQ"), vec![ok(b"QPGS")]);
        assert_eq!(buf.as_ref(), b"Q");
    }

    #[test]
    fn several_frames_in_one_read() {
        let mut f = LineFramer::new(Terminator::CrLf, 64);
        let mut buf = BytesMut::new();
        assert_eq!(
            feed(&mut f, &mut buf, b"a\r\nbb\r\n\r\nccc\r\n"),
            vec![ok(b"a"), ok(b"bb"), ok(b""), ok(b"ccc")]
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn each_terminator() {
        let mut cr = LineFramer::new(Terminator::Cr, 64);
        let mut buf = BytesMut::new();
        assert_eq!(
            feed(&mut cr, &mut buf, b"QPI\rQID\r"),
            vec![ok(b"QPI"), ok(b"QID")]
        );

        let mut lf = LineFramer::new(Terminator::Lf, 64);
        let mut buf = BytesMut::new();
        // A CR before LF is data for the LF framer.
        assert_eq!(
            feed(&mut lf, &mut buf, b"a\r\nb\n"),
            vec![ok(b"a\r"), ok(b"b")]
        );

        let mut crlf = LineFramer::new(Terminator::CrLf, 64);
        let mut buf = BytesMut::new();
        // A lone CR is data; a bare LF still ends the line.
        assert_eq!(
            feed(&mut crlf, &mut buf, b"a\rb\r\nc\n"),
            vec![ok(b"a\rb"), ok(b"c")]
        );
    }

    #[test]
    fn binary_bytes_inside_a_frame() {
        let mut f = LineFramer::new(Terminator::Cr, 64);
        let mut buf = BytesMut::new();
        assert_eq!(
            feed(&mut f, &mut buf, b"(\x00\xff\x28\x0a\x01\r"),
            vec![ok(b"(\x00\xff\x28\x0a\x01")]
        );
    }

    #[test]
    fn overlong_frame_then_good_frame() {
        let mut f = LineFramer::new(Terminator::CrLf, 8);
        let mut buf = BytesMut::new();
        let got = feed(&mut f, &mut buf, b"0123456789abcdef\r\nok\r\n");
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].as_ref().unwrap_err().contains("longer than 8"));
        assert_eq!(got[1], ok(b"ok"));
    }

    #[test]
    fn overlong_frame_across_many_reads_reported_once() {
        let mut f = LineFramer::new(Terminator::CrLf, 8);
        let mut buf = BytesMut::new();
        let mut errors = 0;
        for _ in 0..1000 {
            errors += feed(&mut f, &mut buf, b"xxxxxxx").len();
            assert!(buf.len() <= 10, "buffer grew to {}", buf.len());
        }
        assert_eq!(errors, 1);
        assert_eq!(feed(&mut f, &mut buf, b"\r\nPING\r\n"), vec![ok(b"PING")]);
    }

    #[test]
    fn exactly_max_len_is_accepted_one_more_is_not() {
        let mut f = LineFramer::new(Terminator::CrLf, 4);
        let mut buf = BytesMut::new();
        assert_eq!(feed(&mut f, &mut buf, b"abcd\r\n"), vec![ok(b"abcd")]);
        let got = feed(&mut f, &mut buf, b"abcde\r\nz\r\n");
        assert!(got[0].is_err(), "{got:?}");
        assert_eq!(got[1..], [ok(b"z")]);
        // Split exactly at the CR of a max-length line.
        assert!(feed(&mut f, &mut buf, b"wxyz\r").is_empty());
        assert_eq!(feed(&mut f, &mut buf, b"\n"), vec![ok(b"wxyz")]);
    }

    #[test]
    fn reset_forgets_discarding() {
        let mut f = LineFramer::new(Terminator::Lf, 4);
        let mut buf = BytesMut::new();
        assert_eq!(feed(&mut f, &mut buf, b"toolong").len(), 1);
        f.reset();
        buf.clear();
        assert_eq!(feed(&mut f, &mut buf, b"ok\n"), vec![ok(b"ok")]);
    }

    #[test]
    fn encode_appends_terminator() {
        let mut f = LineFramer::new(Terminator::CrLf, 64);
        let mut dst = BytesMut::new();
        f.encode(b"correct result", &mut dst).unwrap();
        assert_eq!(dst.as_ref(), b"correct result\r\n");
    }
}
