//! pyvisa-sim's end of message: a request ends with the device's `q` bytes, exactly, and a
//! reply gets its `r` bytes.
//!
//! Not a [`LineFramer`](serialtwin_core::LineFramer): pyvisa-sim compares the `q` eom byte
//! for byte (`\r\n` sent to a `q: "\n"` device leaves a `\r` in the request, which then
//! matches nothing), and that exactness is kept, not improved on.

use bytes::{Buf, Bytes, BytesMut};
use serialtwin_core::{FrameError, Framer, Framing};

/// The longest request or reply: pyvisa-sim has no limit, a port needs one.
pub const MAX_LEN: usize = 4096;

/// The framing of a device whose requests end in `query` and replies in `reply`.
#[must_use]
pub fn framing(query: &[u8], reply: &[u8]) -> Framing {
    let (query, reply) = (query.to_vec(), reply.to_vec());
    Framing::new("pyvisa-sim", move || EomFramer {
        query: query.clone(),
        reply: reply.clone(),
        discarding: false,
        searched: 0,
    })
}

/// Requests cut at `query`, replies ended with `reply`.
#[derive(Debug)]
pub struct EomFramer {
    query: Vec<u8>,
    reply: Vec<u8>,
    /// Inside a request longer than [`MAX_LEN`], dropped up to its end.
    discarding: bool,
    /// How many starting positions at the front of the buffer are known not to begin the
    /// terminator: a request that arrives a byte at a time is searched once, not once per
    /// byte.
    searched: usize,
}

impl Framer for EomFramer {
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        let eom = self.query.len();
        loop {
            let window = buf.len().min(MAX_LEN + eom);
            let from = self.searched.min(window);
            let found = if eom == 0 {
                // No terminator (the loader refuses one): no request ever ends.
                None
            } else {
                buf[from..window]
                    .windows(eom)
                    .position(|w| w == self.query)
                    .map(|i| i + from)
            };
            // Positions whose whole terminator-length window was seen: not a start.
            self.searched = match found {
                Some(_) => 0,
                None => window.saturating_sub(eom.saturating_sub(1)),
            };
            match (self.discarding, found) {
                (true, Some(i)) => {
                    buf.advance(i + eom);
                    self.discarding = false;
                }
                (true, None) => {
                    // Keep what could be the start of the terminator.
                    let dropped = window.saturating_sub(eom.saturating_sub(1));
                    buf.advance(dropped);
                    self.searched = 0;
                    if dropped == 0 || buf.len() < eom {
                        return Ok(None);
                    }
                }
                (false, Some(i)) => {
                    let frame = buf.split_to(i).freeze();
                    buf.advance(eom);
                    return Ok(Some(frame));
                }
                (false, None) if buf.len() >= MAX_LEN + eom => {
                    self.discarding = true;
                    buf.advance(window.saturating_sub(eom.saturating_sub(1)));
                    self.searched = 0;
                    return Err(FrameError::TooLong { limit: MAX_LEN });
                }
                (false, None) => return Ok(None),
            }
        }
    }

    fn encode(&mut self, frame: &[u8], dst: &mut BytesMut) -> Result<(), FrameError> {
        dst.extend_from_slice(frame);
        dst.extend_from_slice(&self.reply);
        Ok(())
    }

    fn reset(&mut self) {
        self.discarding = false;
        self.searched = 0;
    }

    fn max_frame_len(&self) -> usize {
        MAX_LEN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(framing: &Framing, input: &[u8]) -> Vec<Result<Bytes, FrameError>> {
        let mut framer = framing.build();
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        loop {
            match framer.decode(&mut buf) {
                Ok(Some(frame)) => out.push(Ok(frame)),
                Ok(None) => return out,
                Err(e) => out.push(Err(e)),
            }
        }
    }

    #[test]
    fn requests_end_with_the_exact_eom() {
        let crlf = framing(b"\r\n", b"\n");
        let frames = cut(&crlf, b"?IDN\r\n*RST\n!CAL\r\n");
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].as_ref().unwrap(), &b"?IDN"[..]);
        // A bare LF ends nothing: it stays in the request, as in pyvisa-sim.
        assert_eq!(frames[1].as_ref().unwrap(), &b"*RST\n!CAL"[..]);
        let lf = framing(b"\n", b"\r\n");
        let frames = cut(&lf, b"VOLT?\r\n");
        assert_eq!(frames[0].as_ref().unwrap(), &b"VOLT?\r"[..]);
        let mut out = BytesMut::new();
        lf.build().encode(b"1.000", &mut out).unwrap();
        assert_eq!(&out[..], b"1.000\r\n");
    }

    #[test]
    fn bytes_one_at_a_time_cut_what_a_whole_read_cuts() {
        for (eom, input) in [
            (&b"\r\n"[..], &b"?IDN\r\nA\rB\r\n\r\n\r\rX\r\n"[..]),
            (b"\n", b"a\nbb\n\nccc\n"),
            (b"END", b"xENyENDzEENDENDEND"),
        ] {
            let framing = framing(eom, b"\n");
            let whole = cut(&framing, input);
            let mut framer = framing.build();
            let mut buf = BytesMut::new();
            let mut bytewise = Vec::new();
            for &b in input {
                buf.extend_from_slice(&[b]);
                while let Some(frame) = framer.decode(&mut buf).transpose() {
                    bytewise.push(frame);
                }
            }
            let show = |v: &[Result<Bytes, FrameError>]| format!("{v:?}");
            assert_eq!(show(&bytewise), show(&whole), "{input:?}");
        }
    }

    #[test]
    fn an_overlong_request_is_dropped_whole() {
        let lf = framing(b"\n", b"\n");
        let mut input = vec![b'A'; MAX_LEN * 3];
        input.extend_from_slice(b"\nOK?\n");
        let frames = cut(&lf, &input);
        assert!(
            matches!(frames[0], Err(FrameError::TooLong { .. })),
            "{frames:?}"
        );
        assert_eq!(frames.last().unwrap().as_ref().unwrap(), &b"OK?"[..]);
        assert_eq!(frames.len(), 2, "{frames:?}");
    }
}
