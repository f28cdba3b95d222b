//! Cutting Modbus RTU requests out of the byte stream, and putting a CRC on replies
//! (`modbus.md` §1–§3; SL §2.5.1).
//!
//! On a real line a request ends with 3.5 characters of silence. A pty carries no timing
//! (bytes come in whatever pieces the client wrote), so requests are cut by length, read off
//! the header ([`request_len`]), and checked with CRC-16/MODBUS, as pymodbus and tokio-modbus
//! do. Diagnostics (FC 8) and codes without a length rule are cut by a CRC scan instead: the
//! shortest prefix whose CRC verifies. While such a request has no verifying prefix yet, and
//! only then, silence matters: after [`idle_timeout`] without a byte it is given up.
//!
//! # Decoded frames
//! A decoded frame is the ADU without its CRC: address, function code, data. The slave then
//! never deals with the CRC, and [`RtuFramer::encode`] adds one to a reply (address,
//! function code, data). A request whose CRC fails never reaches the device (the protocol's
//! answer to it is silence, SL §2.4.2), so there is nothing a device could do with the CRC,
//! and [`Framer::check`] keeps its default ([`Checksum::Absent`]): replay matches requests by
//! their bytes, learn writes replies without a CRC, and `Framing::unframe` gives back what a
//! device pushed, because encoding a decoded frame gives back its wire bytes.
//!
//! # Resynchronisation
//! When the request at the start of the buffer is complete and its CRC fails (or its byte
//! count claims more than 256 bytes, or 256 bytes go by without a CRC verifying), one byte
//! is dropped and the hunt starts again at the next, as tokio-modbus does; every following
//! start that is just as surely not a request goes in the same error. Nothing past the first
//! byte is given up on the word of a header that has just proved wrong, so a good request
//! behind garbage, or behind a corrupted request, is found where it starts. (pymodbus drops
//! the whole buffer instead, losing every request pipelined behind a bad one.)
//!
//! While hunting, until a request is cut, only a request whose header gives its length can
//! start: a code without one (FC 8, an undefined code) is skipped like any other byte that is
//! no request. Otherwise the first such code met inside the garbage would scan everything
//! behind it, good requests included, which no CRC over the wrong start verifies, and hold
//! them until silence; and each of its up to 252 prefixes would be a chance in 65,536 of a
//! false request. The price: an FC 8 request right behind garbage, in the same write, is
//! dropped with it. The rule depends only on the bytes, never on how they came in, so every
//! chunking of a stream gives the same requests.
//!
//! When the line goes quiet with an undecided request buffered, everything that is not a
//! whole request is dropped: a request of any code found behind the garbage is kept.
//!
//! A partial request whose length is known never waits on silence: the line's frame timeout
//! (`LineConfig::frame_timeout`) drops it once stale, when the next bytes come.
//!
//! [`Checksum::Absent`]: serialtwin_core::Checksum::Absent

use std::fmt;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use crc::{CRC_16_MODBUS, Crc, Digest, Table};
use serialtwin_core::{FrameAt, FrameError, Framer, Framing, LineSettings};

use super::functions::{MAX_ADU_LEN, RequestLen, request_len};
use crate::registry::NamedFraming;

/// The framing's name: `framing = "modbus-rtu"`.
pub const NAME: &str = "modbus-rtu";

/// The framing as the registry lists it, for a model's [`framings`](crate::registry::Model::framings).
pub const NAMED_FRAMING: NamedFraming = NamedFraming {
    name: NAME,
    summary: "Modbus RTU: requests cut by function-code length and checked with CRC-16/MODBUS; \
              replies get the CRC",
    make: framing,
    // The answer to an unknown function (exception 01) carries the request's address and
    // code: no fixed frame says it.
    unknown_command: None,
    learn: Some(super::learn::learn),
    describe: Some(super::describe::rtu),
};

/// The shortest silence that gives up an undecided request (see [`idle_timeout`]).
pub const MIN_IDLE: Duration = Duration::from_millis(5);

/// CRC-16/MODBUS (poly 0x8005 reflected, init 0xFFFF, no final xor), sixteen bytes a step:
/// every request and every reply on the serving path has its CRC computed.
pub(super) static CRC: Crc<u16, Table<16>> = Crc::<u16, Table<16>>::new(&CRC_16_MODBUS);

/// The CRC-16/MODBUS of `bytes`; on the wire it goes low byte first (`to_le_bytes`).
#[must_use]
pub fn crc16(bytes: &[u8]) -> u16 {
    CRC.checksum(bytes)
}

/// Whether `adu` ends in the CRC of what comes before it (low byte first).
fn crc_ok(adu: &[u8]) -> bool {
    adu.len() >= 2 && {
        let (payload, sent) = adu.split_at(adu.len() - 2);
        crc16(payload).to_le_bytes() == sent
    }
}

/// t3.5, the silence between two frames at `baud` (SL §2.5.1.1): 38.5 bit times (3.5
/// characters of 11 bits) up to 19,200 baud, 1.75 ms above.
#[must_use]
pub fn t35(baud: u32) -> Duration {
    if baud > 19_200 {
        Duration::from_micros(1_750)
    } else {
        Duration::from_nanos(38_500_000_000 / u64::from(baud.max(1)))
    }
}

/// How long a request whose end its header does not give may wait for its next byte:
/// max(t3.5, [`MIN_IDLE`]). t3.5 alone is shorter than a scheduler's hiccup between the
/// pieces a client's write may come in.
#[must_use]
pub fn idle_timeout(baud: u32) -> Duration {
    t35(baud).max(MIN_IDLE)
}

/// A fresh `modbus-rtu` framing. A tap, or a capture cut again, cuts replies by the request
/// they answer ([`replies::pair`](super::replies::pair)).
#[must_use]
pub fn framing() -> Framing {
    Framing::new(NAME, RtuFramer::new).with_pair(super::replies::pair)
}

/// The CRC scan of a request at the buffer's start: how many of its bytes the CRC has run
/// over, and the CRC register after them.
#[derive(Clone)]
struct Scan {
    len: usize,
    digest: Digest<'static, u16, Table<16>>,
}

/// What the bytes at the start of the buffer are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    /// A request of this many bytes (CRC included) whose CRC verifies.
    Good(usize),
    /// Not the start of a request.
    Bad(Why),
    /// The start of a request whose length is known (or soon will be): more bytes to come.
    Wait,
    /// The start of a request whose length its header does not give, and no CRC verifies yet.
    Undecided,
}

/// Why the start of the buffer is not a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Why {
    /// Complete by its header's length, but the CRC fails.
    Crc,
    /// The header claims more than [`MAX_ADU_LEN`] bytes.
    TooLong,
    /// No prefix's CRC verifies, within [`MAX_ADU_LEN`] bytes or before the line went quiet.
    NoCrc,
    /// A code without a length in its header, met while resynchronising.
    Hunting,
    /// The line went quiet before the request was whole.
    Cut,
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Crc => "CRC check failed",
            Self::TooLong => "byte count claims more than 256 bytes",
            Self::NoCrc => "no CRC verifies",
            Self::Hunting => "function code without a length met while resynchronising",
            Self::Cut => "incomplete when the line went quiet",
        })
    }
}

/// How [`judge`] looks at the start of the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Between requests: a request of any code may start here.
    Normal,
    /// Resynchronising after bytes that were no request: only a request whose header gives its
    /// length can start here (see the module docs).
    Hunting,
    /// The line went quiet: nothing more will come, so whatever is not a whole request is not
    /// one.
    Ended,
}

/// What the bytes at the start of `buf` are, looked at in `mode`. `scan` continues (and
/// keeps) the CRC scan of the request at `buf`'s start, for a caller that calls again as bytes
/// come.
fn judge(buf: &[u8], mode: Mode, scan: &mut Option<Scan>) -> Verdict {
    let incomplete = if mode == Mode::Ended {
        Verdict::Bad(Why::Cut)
    } else {
        Verdict::Wait
    };
    match request_len(buf) {
        RequestLen::NeedHeader(_) => incomplete,
        RequestLen::Exact(len) if len > MAX_ADU_LEN => Verdict::Bad(Why::TooLong),
        RequestLen::Exact(len) if buf.len() < len => incomplete,
        RequestLen::Exact(len) if crc_ok(&buf[..len]) => Verdict::Good(len),
        RequestLen::Exact(_) => Verdict::Bad(Why::Crc),
        RequestLen::Scan { .. } if mode == Mode::Hunting => Verdict::Bad(Why::Hunting),
        RequestLen::Scan { min, step } => {
            let Scan {
                mut len,
                mut digest,
            } = scan.take().unwrap_or_else(|| Scan {
                len: 0,
                digest: CRC.digest(),
            });
            let end = buf.len().min(MAX_ADU_LEN);
            while len < end {
                digest.update(&buf[len..=len]);
                len += 1;
                // Over a frame and its CRC (low byte first), CRC-16/MODBUS leaves 0.
                if len >= min && (len - min).is_multiple_of(step) && digest.clone().finalize() == 0
                {
                    return Verdict::Good(len);
                }
            }
            if mode == Mode::Ended || len >= MAX_ADU_LEN {
                Verdict::Bad(Why::NoCrc)
            } else {
                *scan = Some(Scan { len, digest });
                Verdict::Undecided
            }
        }
    }
}

/// Takes the request of `len` bytes off the front of `buf`, without its CRC.
fn cut(buf: &mut BytesMut, len: usize) -> Bytes {
    let mut adu = buf.split_to(len);
    adu.truncate(len - 2);
    adu.freeze()
}

fn dropped(count: usize, why: Why, after: &str) -> FrameError {
    FrameError::Malformed(format!(
        "{count} byte(s) dropped{after}: {why} at the first"
    ))
}

/// The most bytes held as not a request before they are dropped and reported (see
/// [`RtuFramer`]'s `dropped`): few, so that what a framer waiting for the rest of a request
/// holds stays within a request's length and a little.
const HELD: usize = 16;

/// The Modbus RTU server framer: cuts requests, adds a CRC to replies. See the
/// [module docs](self) for how requests are cut and what happens after a bad CRC.
///
/// # Note
/// Input is bounded by [`MAX_ADU_LEN`]: no request is looked for past 256 bytes from where it
/// starts, so whatever a client sends, the buffer does not grow past a few reads.
#[derive(Clone, Default)]
pub struct RtuFramer {
    /// The CRC scan of the request at the buffer's start, when its header does not give its
    /// length: bytes that come one at a time each go through the CRC once.
    scan: Option<Scan>,
    /// Whether the buffer starts with such a request and no CRC verifies yet: only then does
    /// silence mean anything ([`Framer::silence_gap`]), so a port whose requests all have
    /// known lengths can be served without watching the clock.
    undecided: bool,
    /// Whether bytes were dropped since the last request was cut: until a request whose
    /// header gives its length verifies, no other kind is looked for (see the module docs).
    hunting: bool,
    /// Bytes at the buffer's start judged not to be a request and not yet dropped, and why
    /// the first of them was not: a run of them is dropped and reported in one go when the
    /// request after it is found, the line goes quiet or [`HELD`] have gathered, so that
    /// however the bytes were split into reads, the same runs are reported the same way (and
    /// each report consumes what it reports).
    dropped: usize,
    why: Option<Why>,
}

impl RtuFramer {
    /// A framer with nothing buffered.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Drop the bytes held as not a request, and say so in one error.
    fn report(&mut self, buf: &mut BytesMut, after: &str) -> FrameError {
        let why = self.why.take().unwrap_or(Why::NoCrc);
        let count = std::mem::take(&mut self.dropped);
        buf.advance(count);
        dropped(count, why, after)
    }
}

impl fmt::Debug for RtuFramer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RtuFramer")
            .field("scanned", &self.scan.as_ref().map(|s| s.len))
            .field("undecided", &self.undecided)
            .field("hunting", &self.hunting)
            .field("dropped", &self.dropped)
            .field("why", &self.why)
            .finish()
    }
}

impl Framer for RtuFramer {
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        loop {
            let mode = if self.hunting {
                Mode::Hunting
            } else {
                Mode::Normal
            };
            match judge(&buf[self.dropped..], mode, &mut self.scan) {
                Verdict::Good(len) if self.dropped == 0 => {
                    self.scan = None;
                    self.undecided = false;
                    self.hunting = false;
                    return Ok(Some(cut(buf, len)));
                }
                // What was not a request before this one, dropped before it is cut.
                Verdict::Good(_) => return Err(self.report(buf, "")),
                Verdict::Bad(why) => {
                    self.scan = None;
                    self.hunting = true;
                    self.dropped += 1;
                    self.why.get_or_insert(why);
                    if self.dropped == HELD {
                        return Err(self.report(buf, ""));
                    }
                }
                verdict => {
                    self.undecided = verdict == Verdict::Undecided;
                    return Ok(None);
                }
            }
        }
    }

    /// A complete request of known length at the start, whose CRC verifies (the common
    /// case); `decode` does the rest.
    fn peek(&mut self, buf: &[u8]) -> Option<FrameAt> {
        if self.dropped > 0 {
            // Bytes judged not to be a request lead the buffer: `decode` drops them first.
            return None;
        }
        let RequestLen::Exact(len) = request_len(buf) else {
            return None;
        };
        if len > MAX_ADU_LEN || buf.len() < len || !crc_ok(&buf[..len]) {
            return None;
        }
        self.scan = None;
        self.undecided = false;
        self.hunting = false;
        Some(FrameAt {
            frame: 0..len - 2,
            used: len,
        })
    }

    /// `frame` (address, function code, data) and its CRC, low byte first.
    fn encode(&mut self, frame: &[u8], dst: &mut BytesMut) -> Result<(), FrameError> {
        if frame.len() + 2 > MAX_ADU_LEN {
            return Err(FrameError::TooLong { limit: MAX_ADU_LEN });
        }
        dst.reserve(frame.len() + 2);
        dst.extend_from_slice(frame);
        dst.extend_from_slice(&crc16(frame).to_le_bytes());
        Ok(())
    }

    /// [`idle_timeout`] at the client's baud rate while the buffer starts with a request
    /// whose length its header does not give and no CRC verifies yet; `None` otherwise.
    fn silence_gap(&self, settings: &LineSettings) -> Option<Duration> {
        self.undecided.then(|| idle_timeout(settings.baud))
    }

    /// The undecided request ended without a CRC verifying: it is dropped, and so is
    /// everything after it up to the first whole request (of any code: all that will come is
    /// there), or all of it.
    fn on_silence(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        self.undecided = false;
        self.hunting = false;
        loop {
            if buf.is_empty() {
                break;
            }
            if self.dropped == buf.len() {
                break;
            }
            match judge(&buf[self.dropped..], Mode::Ended, &mut self.scan) {
                Verdict::Good(len) if self.dropped == 0 => {
                    self.scan = None;
                    return Ok(Some(cut(buf, len)));
                }
                Verdict::Bad(why) => {
                    self.scan = None;
                    self.dropped += 1;
                    self.why.get_or_insert(why);
                }
                _ => break,
            }
        }
        // What is left is empty or starts with a whole request: `decode` takes it from here.
        self.scan = None;
        if self.dropped == 0 {
            Ok(None)
        } else {
            Err(self.report(buf, " after silence"))
        }
    }

    fn reset(&mut self) {
        self.scan = None;
        self.undecided = false;
        self.hunting = false;
        self.dropped = 0;
        self.why = None;
    }

    /// The last two bytes.
    fn checksum_range(&self, encoded: &[u8]) -> Option<std::ops::Range<usize>> {
        (encoded.len() > 2).then(|| encoded.len() - 2..encoded.len())
    }

    fn max_frame_len(&self) -> usize {
        MAX_ADU_LEN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_s_worked_example_and_the_catalogue_check_value() {
        // SL §6.2.2: 02 07 → 0x1241, sent 41 12.
        assert_eq!(crc16(&[0x02, 0x07]), 0x1241);
        assert_eq!(crc16(b"123456789"), 0x4B37);
    }

    #[test]
    fn t35_follows_the_baud_rate_up_to_19200() {
        assert_eq!(t35(9600), Duration::from_nanos(4_010_416));
        assert_eq!(t35(19_200), Duration::from_nanos(2_005_208));
        assert_eq!(t35(115_200), Duration::from_micros(1_750));
        assert_eq!(idle_timeout(9600), MIN_IDLE);
        assert_eq!(idle_timeout(2400), Duration::from_nanos(16_041_666));
    }

    #[test]
    fn silence_matters_only_while_a_request_is_undecided() {
        let settings = LineSettings::new(9600);
        let mut framer = RtuFramer::new();
        let mut buf = BytesMut::from(&[0x01, 0x03, 0x00][..]);
        assert_eq!(framer.decode(&mut buf).unwrap(), None);
        assert_eq!(framer.silence_gap(&settings), None, "length known");
        let mut buf = BytesMut::from(&[0x01, 0x08, 0x00, 0x00][..]);
        assert_eq!(framer.decode(&mut buf).unwrap(), None);
        assert_eq!(framer.silence_gap(&settings), Some(MIN_IDLE), "FC 8");
        framer.reset();
        assert_eq!(framer.silence_gap(&settings), None, "after a reset");
    }
}
