//! The SCPI model's line framer: a message ends at LF, CR LF or a bare CR; replies end in
//! the configured terminator.
//!
//! Why not the core's [`LineFramer`](serialtwin_core::LineFramer): it ends lines at one
//! terminator (with CR LF, a bare LF too), never at a bare CR, and instruments.md §1.1 asks
//! an emulated SCPI instrument to accept LF, CR LF (pyvisa's default write termination) and
//! bare CR.

use bytes::{Buf, Bytes, BytesMut};
use serialtwin_core::{FrameError, Framer, Framing, Terminator};

/// Lines ending in CR, LF or CR LF (one terminator, also when its LF comes in a later read),
/// at most `max_len` bytes each; replies get `reply`.
///
/// # Note
/// As the core's framer, bounded: a line longer than `max_len` is discarded up to its
/// terminator and reported once as [`FrameError::TooLong`], and where it ends the frame
/// [`OVERRUN`] stands for it; nothing past `max_len + 1` bytes is ever scanned for a
/// terminator.
#[derive(Clone, Debug)]
pub struct AnyLineFramer {
    /// What ends a reply.
    reply: Terminator,
    /// Longest accepted line, terminator excluded.
    max_len: usize,
    /// Where the next search for a terminator starts, so a partial line is never rescanned.
    next_index: usize,
    /// True while discarding the rest of an overlong line (its error was already reported).
    discarding: bool,
    /// The last line ended at a CR: an LF coming next is that CR's, not an empty line.
    after_cr: bool,
}

impl AnyLineFramer {
    /// A framer for lines of at most `max_len` bytes, replies ending in `reply`.
    #[must_use]
    pub fn new(reply: Terminator, max_len: usize) -> Self {
        Self {
            reply,
            max_len,
            next_index: 0,
            discarding: false,
            after_cr: false,
        }
    }
}

impl AnyLineFramer {
    /// Take the terminator at the front of `buf` off: CR LF whole when its LF is there
    /// already (so one line's bytes are one frame, whole), else one byte, remembering a CR
    /// whose LF may come with the next read.
    fn skip_terminator(&mut self, buf: &mut BytesMut) {
        let cr = buf[0] == b'\r';
        match buf.get(1) {
            Some(b'\n') if cr => {
                buf.advance(2);
                self.after_cr = false;
            }
            _ => {
                buf.advance(1);
                self.after_cr = cr;
            }
        }
    }
}

/// What the framer hands on where an overlong line ends: a line never holds LF, so this
/// frame can only mean that one was dropped, and the instrument queues -363 for it.
pub const OVERRUN: &[u8] = b"\n";

/// The framing of a SCPI instrument whose replies end in `reply`: `scpi` (LF) or `scpi-crlf`.
#[must_use]
pub fn framing(reply: Terminator) -> Framing {
    let name = if reply == Terminator::CrLf {
        "scpi-crlf"
    } else {
        "scpi"
    };
    Framing::new(name, move || {
        AnyLineFramer::new(reply, Framing::DEFAULT_MAX_LEN)
    })
}

impl Framer for AnyLineFramer {
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        loop {
            if self.after_cr && !buf.is_empty() {
                if buf[0] == b'\n' {
                    buf.advance(1);
                }
                self.after_cr = false;
            }
            let window = buf.len().min(self.max_len + 1);
            let from = self.next_index.min(window);
            let found = buf[from..window]
                .iter()
                .position(|&b| b == b'\n' || b == b'\r')
                .map(|i| i + from);
            match (self.discarding, found) {
                // The end of an overlong line: drop it and its terminator, and say so.
                (true, Some(i)) => {
                    buf.advance(i);
                    self.skip_terminator(buf);
                    self.discarding = false;
                    self.next_index = 0;
                    return Ok(Some(Bytes::from_static(OVERRUN)));
                }
                // Still inside an overlong line: drop what there is.
                (true, None) => {
                    buf.advance(window);
                    self.next_index = 0;
                    if buf.is_empty() {
                        return Ok(None);
                    }
                }
                (false, Some(i)) => {
                    let line = buf.split_to(i).freeze();
                    self.skip_terminator(buf);
                    self.next_index = 0;
                    return Ok(Some(line));
                }
                // No terminator within the limit: report the line once, then discard it.
                (false, None) if buf.len() > self.max_len => {
                    self.discarding = true;
                    buf.advance(window);
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
        dst.reserve(frame.len() + 2);
        dst.extend_from_slice(frame);
        dst.extend_from_slice(self.reply.bytes());
        Ok(())
    }

    fn reset(&mut self) {
        self.next_index = 0;
        self.discarding = false;
        self.after_cr = false;
    }

    fn max_frame_len(&self) -> usize {
        self.max_len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(framer: &mut AnyLineFramer, buf: &mut BytesMut) -> Vec<Result<Vec<u8>, String>> {
        let mut out = Vec::new();
        loop {
            match framer.decode(buf) {
                Ok(Some(f)) => out.push(Ok(f.to_vec())),
                Ok(None) => return out,
                Err(e) => out.push(Err(e.to_string())),
            }
        }
    }

    #[test]
    fn lf_crlf_and_cr_each_end_one_line() {
        let mut f = AnyLineFramer::new(Terminator::Lf, 16);
        let mut buf = BytesMut::from(&b"A\nB\r\nC\rD\n\nE"[..]);
        let got = frames(&mut f, &mut buf);
        let want: Vec<Result<Vec<u8>, String>> = vec![
            Ok(b"A".to_vec()),
            Ok(b"B".to_vec()),
            Ok(b"C".to_vec()),
            Ok(b"D".to_vec()),
            Ok(vec![]),
        ];
        assert_eq!(got, want);
        assert_eq!(&buf[..], b"E");
    }

    #[test]
    fn a_crlf_split_across_reads_is_one_terminator() {
        let mut f = AnyLineFramer::new(Terminator::Lf, 16);
        let mut buf = BytesMut::from(&b"*IDN?\r"[..]);
        assert_eq!(frames(&mut f, &mut buf), vec![Ok(b"*IDN?".to_vec())]);
        buf.extend_from_slice(b"\n*OPC?\r\n");
        assert_eq!(frames(&mut f, &mut buf), vec![Ok(b"*OPC?".to_vec())]);
        assert!(buf.is_empty());
    }

    #[test]
    fn an_overlong_line_is_reported_once_and_the_next_one_served() {
        let mut f = AnyLineFramer::new(Terminator::Lf, 4);
        let mut buf = BytesMut::from(&b"ABCDEFGH"[..]);
        assert_eq!(frames(&mut f, &mut buf).len(), 1);
        assert!(buf.len() <= 4, "bounded: {buf:?}");
        buf.extend_from_slice(b"IJK\r\nOK\n");
        assert_eq!(
            frames(&mut f, &mut buf),
            vec![Ok(OVERRUN.to_vec()), Ok(b"OK".to_vec())]
        );
        // Exactly max_len is fine; one more is not.
        let mut buf = BytesMut::from(&b"ABCD\nABCDE\n"[..]);
        let got = frames(&mut f, &mut buf);
        assert_eq!(got[0], Ok(b"ABCD".to_vec()));
        assert!(got[1].is_err(), "{got:?}");
        assert_eq!(got[2..], [Ok(OVERRUN.to_vec())]);
    }

    #[test]
    fn reads_of_any_size_cut_the_same_frames() {
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        for _ in 0..2000 {
            let stream: Vec<u8> = (0..24)
                .map(|_| {
                    state = state
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1);
                    [b'A', b'B', b'\r', b'\n'][usize::try_from(state >> 62).unwrap()]
                })
                .collect();
            let mut whole = AnyLineFramer::new(Terminator::Lf, 4);
            let want = frames(&mut whole, &mut BytesMut::from(&stream[..]));
            let mut bytewise = AnyLineFramer::new(Terminator::Lf, 4);
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            for &b in &stream {
                buf.extend_from_slice(&[b]);
                got.extend(frames(&mut bytewise, &mut buf));
            }
            assert_eq!(got, want, "{stream:?}");
        }
    }

    #[test]
    fn a_reply_unframes_whole() {
        for reply in [Terminator::Lf, Terminator::CrLf] {
            assert_eq!(
                framing(reply).unframe(b"1;0\r\n").as_deref(),
                (reply == Terminator::CrLf).then_some(&b"1;0"[..])
            );
            assert_eq!(
                framing(reply).unframe(b"1;0\n").as_deref(),
                (reply == Terminator::Lf).then_some(&b"1;0"[..])
            );
        }
    }

    #[test]
    fn replies_end_in_the_configured_terminator() {
        let mut dst = BytesMut::new();
        AnyLineFramer::new(Terminator::Lf, 8)
            .encode(b"1", &mut dst)
            .unwrap();
        AnyLineFramer::new(Terminator::CrLf, 8)
            .encode(b"0", &mut dst)
            .unwrap();
        assert_eq!(&dst[..], b"1\n0\r\n");
    }
}
