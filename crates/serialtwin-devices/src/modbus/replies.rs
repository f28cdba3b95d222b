//! Cutting a recorded Modbus RTU line: replies by the request they answer (`modbus.md` §1–§5;
//! APP §6, §7).
//!
//! A tap (`serialtwin tap --framing modbus-rtu`) sees both directions of a real line. Requests
//! say their own length ([`request_len`](super::functions::request_len), cut by the same
//! [`RtuFramer`] that serves them). A reply does not always: a read's reply counts its bytes,
//! but a write's echo is 8 bytes, an exception 5, a diagnostics echo as long as its request,
//! and a device identification reply is only known by walking its objects. So the two
//! directions are cut by a [`pair`] of framers sharing the requests still waiting for their
//! reply: the request side ([`Requests`]) adds each request it cuts that expects an answer
//! (not a broadcast, not "listen only"), and the reply side ([`Replies`]) takes each reply's
//! length from the oldest of them with the reply's unit and function code ([`reply_len`]), and
//! checks its CRC.
//!
//! Whatever the device or the line does, every byte ends in a frame or in a
//! [`FrameError`] that says what it was, and nothing waits for ever:
//!
//! - a reply whose CRC fails at the length its request gives is dropped whole, and its
//!   request counts as answered (`reply to unit 1 read holding 0x0000 ×2 fails its CRC`);
//! - bytes that cannot start a reply to any waiting request (noise, a reply from another
//!   unit) are dropped and reported in runs, and the hunt for a reply starts again at the next
//!   byte, as [`RtuFramer`] does with requests;
//! - a reply to a later request while earlier ones wait means they were never answered (a
//!   silent unit, a request the device dropped): each is reported (`no reply to ...`);
//! - a reply while no request waits is reported with what it says, and dropped: there is
//!   nothing to pair it with;
//! - a reply whose length neither its request nor its header gives (an unknown function code,
//!   an encapsulated interface other than device identification) is cut where its CRC first
//!   verifies; while none does, and only then, silence decides: after the tap's idle timeout
//!   (`serialtwin tap --idle`, 20 ms by default: an adapter's latency) it is given up.
//!
//! At most [`MAX_PENDING`] requests wait at once (a client that pipelines, or one polling a
//! silent unit); past that the oldest is forgotten, and reported with the next reply.
//!
//! Unlike the errors of a framer that serves a device, `no reply to ...` and the report of
//! forgotten requests consume no input: they report requests, not bytes. The caller calls
//! again, as [`Cutter`](serialtwin_capture::Cutter) does after every error, and each such
//! report retires what it reports, so the calls are bounded by the requests waiting.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use crc::{Digest, Table};
use serialtwin_core::{Direction, FrameError, Framer, LineSettings};

use super::describe;
use super::functions::{MAX_ADU_LEN, RequestLen};
use super::rtu::{CRC, RtuFramer, crc16};

/// The most requests waiting for their reply at once.
pub const MAX_PENDING: usize = 16;

/// The most bytes held as not a reply before they are dropped and reported, as
/// [`RtuFramer`] does with requests.
const HELD: usize = 16;

/// The broadcast address: every unit acts, none answers (SL §2.1).
const BROADCAST: u8 = 0;

/// What the two sides of a tap share.
#[derive(Debug, Default)]
struct Shared {
    /// The requests cut and not yet answered, oldest first, as decoded (no CRC).
    pending: VecDeque<Bytes>,
    /// Requests forgotten because [`MAX_PENDING`] were waiting, not yet reported.
    forgotten: usize,
}

type Link = Arc<Mutex<Shared>>;

fn lock(link: &Link) -> std::sync::MutexGuard<'_, Shared> {
    link.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The framers of a recorded Modbus RTU line: requests (`rx`) and replies (`tx`), sharing
/// the requests waiting for their reply. What [`rtu::framing`](super::rtu::framing) gives
/// [`Framing::with_pair`](serialtwin_core::Framing::with_pair).
#[must_use]
pub fn pair() -> (Requests, Replies) {
    let link = Link::default();
    (
        Requests {
            inner: RtuFramer::new(),
            link: link.clone(),
        },
        Replies {
            link,
            scan: None,
            undecided: false,
            hunting: false,
            dropped: 0,
            why: None,
        },
    )
}

/// Whether a device answers `request` (address, function code, data): not a broadcast, and
/// not diagnostics sub-function 4, "force listen only mode" (APP §6.8.1).
#[must_use]
pub fn expects_reply(request: &[u8]) -> bool {
    !matches!(request, [] | [BROADCAST, ..] | [_, 0x08, 0x00, 0x04, ..])
}

/// The request side of a recorded line: an [`RtuFramer`] that also tells the reply side
/// what it cut.
pub struct Requests {
    inner: RtuFramer,
    link: Link,
}

impl fmt::Debug for Requests {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Requests")
            .field("inner", &self.inner)
            .field("pending", &lock(&self.link).pending.len())
            .finish()
    }
}

impl Requests {
    /// `frame`, a request just cut, now waits for its reply (if it gets one).
    fn wait_for_reply(&self, frame: Option<&Bytes>) {
        let Some(frame) = frame.filter(|f| expects_reply(f)) else {
            return;
        };
        let mut shared = lock(&self.link);
        if shared.pending.len() == MAX_PENDING {
            shared.pending.pop_front();
            shared.forgotten += 1;
        }
        shared.pending.push_back(frame.clone());
    }
}

impl Framer for Requests {
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        let frame = self.inner.decode(buf)?;
        self.wait_for_reply(frame.as_ref());
        Ok(frame)
    }

    fn encode(&mut self, frame: &[u8], dst: &mut BytesMut) -> Result<(), FrameError> {
        self.inner.encode(frame, dst)
    }

    fn silence_gap(&self, settings: &LineSettings) -> Option<Duration> {
        self.inner.silence_gap(settings)
    }

    fn on_silence(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        let frame = self.inner.on_silence(buf)?;
        self.wait_for_reply(frame.as_ref());
        Ok(frame)
    }

    fn reset(&mut self) {
        self.inner.reset();
    }

    fn checksum_range(&self, encoded: &[u8]) -> Option<std::ops::Range<usize>> {
        self.inner.checksum_range(encoded)
    }

    fn max_frame_len(&self) -> usize {
        MAX_ADU_LEN
    }
}

/// The length of the reply that starts `adu` (address first, CRC included), as far as the
/// request it answers and its own header say (`modbus.md` §3). `request` is the request as
/// decoded (no CRC); `None` when no request is known, and the header is all there is.
///
/// - An exception (function code with its high bit set): 5.
/// - FC 1–4, 12, 17, 20, 21, 23: 5 + the byte count at `[2]`. FC 24: 6 + the 16-bit byte
///   count at `[2..4]`.
/// - FC 5, 6, 11, 15, 16: 8. FC 7: 5. FC 22: 10.
/// - FC 8: the request's length (an echo); without a request, [`RequestLen::Scan`] from 6 in
///   steps of 2.
/// - FC 43 with MEI type 14 (device identification): 8 header bytes, then each object's id,
///   length and bytes, then the CRC.
/// - Anything else: [`RequestLen::Scan`] from 4 in steps of 1.
#[must_use]
pub fn reply_len(request: Option<&[u8]>, adu: &[u8]) -> RequestLen {
    let Some(&function) = adu.get(1) else {
        return RequestLen::NeedHeader(2);
    };
    if function & 0x80 != 0 {
        return RequestLen::Exact(5);
    }
    let counted = |at: usize, fixed: usize| match adu.get(at) {
        Some(&count) => RequestLen::Exact(fixed + usize::from(count)),
        None => RequestLen::NeedHeader(at + 1),
    };
    match function {
        1..=4 | 12 | 17 | 20 | 21 | 23 => counted(2, 5),
        5 | 6 | 11 | 15 | 16 => RequestLen::Exact(8),
        7 => RequestLen::Exact(5),
        22 => RequestLen::Exact(10),
        24 => match adu.get(2..4) {
            Some(&[high, low]) => {
                RequestLen::Exact(6 + usize::from(u16::from_be_bytes([high, low])))
            }
            _ => RequestLen::NeedHeader(4),
        },
        8 => match request {
            Some(request) => RequestLen::Exact(request.len() + 2),
            None => RequestLen::Scan { min: 6, step: 2 },
        },
        43 => match adu.get(2) {
            Some(14) => device_id_len(adu),
            Some(_) => RequestLen::Scan { min: 4, step: 1 },
            None => RequestLen::NeedHeader(3),
        },
        _ => RequestLen::Scan { min: 4, step: 1 },
    }
}

/// A device identification reply's length: address, 43, 14, read code, conformity, more
/// follows, next object id, object count, then `{id, length, bytes}` per object, then the CRC
/// (APP §6.21).
fn device_id_len(adu: &[u8]) -> RequestLen {
    let Some(&count) = adu.get(7) else {
        return RequestLen::NeedHeader(8);
    };
    let mut at = 8;
    for _ in 0..count {
        let Some(&len) = adu.get(at + 1) else {
            return RequestLen::NeedHeader(at + 2);
        };
        at += 2 + usize::from(len);
        if at > MAX_ADU_LEN {
            break;
        }
    }
    RequestLen::Exact(at + 2)
}

/// Whether `adu` ends in the CRC of what comes before it (low byte first).
fn crc_ok(adu: &[u8]) -> bool {
    adu.len() >= 2 && {
        let (payload, sent) = adu.split_at(adu.len() - 2);
        crc16(payload).to_le_bytes() == sent
    }
}

/// The CRC scan of a reply at the buffer's start.
#[derive(Clone)]
struct Scan {
    len: usize,
    digest: Digest<'static, u16, Table<16>>,
}

/// What the bytes at the start of the buffer are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    /// A reply of `len` bytes whose CRC verifies, answering the waiting request at `answers`
    /// (`None`: no request waits).
    Good { len: usize, answers: Option<usize> },
    /// A reply to the waiting request at `answers`, `len` bytes long by its length rule,
    /// whose CRC fails.
    Corrupt { len: usize, answers: usize },
    /// Not the start of a reply.
    Bad(Why),
    /// The start of a reply whose length is known (or soon will be): more bytes to come.
    Wait,
    /// The start of a reply whose length nothing gives, and no CRC verifies yet.
    Undecided,
}

/// Why the start of the buffer is not a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Why {
    /// Its unit and function code answer no waiting request.
    Unasked,
    /// Complete by its length rule, but the CRC fails.
    Crc,
    /// The header claims more than [`MAX_ADU_LEN`] bytes.
    TooLong,
    /// No prefix's CRC verifies, within [`MAX_ADU_LEN`] bytes or before the line went quiet.
    NoCrc,
    /// A reply without a length rule, met while resynchronising.
    Hunting,
    /// The line went quiet before the reply was whole.
    Cut,
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unasked => "no waiting request has that unit and function code",
            Self::Crc => "CRC check failed",
            Self::TooLong => "byte count claims more than 256 bytes",
            Self::NoCrc => "no CRC verifies",
            Self::Hunting => "function code without a length met while resynchronising",
            Self::Cut => "incomplete when the line went quiet",
        })
    }
}

/// How [`judge`] looks at the start of the buffer (as [`RtuFramer`] does).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Normal,
    Hunting,
    Ended,
}

/// The waiting request a reply from `unit` with `function` answers: the oldest with that unit
/// and that function code (or its exception).
fn answered(pending: &VecDeque<Bytes>, unit: u8, function: u8) -> Option<usize> {
    pending.iter().position(|r| {
        r.first() == Some(&unit)
            && r.get(1)
                .is_some_and(|&f| f == function || f | 0x80 == function)
    })
}

/// What the bytes at the start of `buf` are, given the waiting requests.
fn judge(buf: &[u8], pending: &VecDeque<Bytes>, mode: Mode, scan: &mut Option<Scan>) -> Verdict {
    let incomplete = if mode == Mode::Ended {
        Verdict::Bad(Why::Cut)
    } else {
        Verdict::Wait
    };
    let (Some(&unit), Some(&function)) = (buf.first(), buf.get(1)) else {
        return incomplete;
    };
    let answers = if pending.is_empty() {
        None
    } else {
        match answered(pending, unit, function) {
            Some(i) => Some(i),
            None => return Verdict::Bad(Why::Unasked),
        }
    };
    let request = answers.map(|i| &pending[i][..]);
    match reply_len(request, buf) {
        RequestLen::NeedHeader(_) => incomplete,
        RequestLen::Exact(len) if len > MAX_ADU_LEN => Verdict::Bad(Why::TooLong),
        RequestLen::Exact(len) if buf.len() < len => incomplete,
        RequestLen::Exact(len) if crc_ok(&buf[..len]) => Verdict::Good { len, answers },
        RequestLen::Exact(len) => match answers {
            // Where the reply was due and as long as its request says: the device's (or
            // the line's) corrupted answer, not noise.
            Some(answers) if mode == Mode::Normal => Verdict::Corrupt { len, answers },
            _ => Verdict::Bad(Why::Crc),
        },
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
                if len >= min && (len - min).is_multiple_of(step) && digest.clone().finalize() == 0
                {
                    return Verdict::Good { len, answers };
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

/// A request in words, for messages.
fn request_words(request: &[u8]) -> String {
    describe::rtu(request, Direction::Rx).unwrap_or_else(|| "a request".into())
}

/// The reply side of a recorded line. See the [module docs](self).
pub struct Replies {
    link: Link,
    /// The CRC scan of a reply whose length nothing gives, at the buffer's start.
    scan: Option<Scan>,
    /// Whether the buffer starts with such a reply and no CRC verifies yet.
    undecided: bool,
    /// Whether bytes were dropped since the last reply was cut: until a reply whose length is
    /// known verifies, no other kind is looked for.
    hunting: bool,
    /// Bytes at the buffer's start judged not to be a reply and not yet dropped, and why the
    /// first was not (reported in one go, as [`RtuFramer`] does).
    dropped: usize,
    why: Option<Why>,
}

impl fmt::Debug for Replies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Replies")
            .field("pending", &lock(&self.link).pending.len())
            .field("scanned", &self.scan.as_ref().map(|s| s.len))
            .field("undecided", &self.undecided)
            .field("hunting", &self.hunting)
            .field("dropped", &self.dropped)
            .field("why", &self.why)
            .finish()
    }
}

impl Replies {
    /// Drop the bytes held as not a reply, and say so in one error.
    fn report(&mut self, buf: &mut BytesMut, after: &str) -> FrameError {
        let why = self.why.take().unwrap_or(Why::NoCrc);
        let count = std::mem::take(&mut self.dropped);
        buf.advance(count);
        FrameError::Malformed(format!(
            "{count} byte(s) from the device dropped{after}: {why} at the first"
        ))
    }

    /// A judged reply at the buffer's start (nothing held before it): cut, or reported.
    fn take(
        &mut self,
        buf: &mut BytesMut,
        shared: &mut Shared,
        verdict: Verdict,
    ) -> Result<Option<Bytes>, FrameError> {
        self.scan = None;
        self.undecided = false;
        self.hunting = false;
        match verdict {
            Verdict::Good {
                len,
                answers: Some(0),
            } => {
                shared.pending.pop_front();
                let mut adu = buf.split_to(len);
                adu.truncate(len - 2);
                Ok(Some(adu.freeze()))
            }
            Verdict::Good {
                answers: Some(_), ..
            }
            | Verdict::Corrupt { answers: 1.., .. } => {
                // A later request's reply: the ones before it were never answered. Each is
                // reported before the reply is cut (the buffer is left as it is).
                let skipped = shared.pending.pop_front().unwrap_or_default();
                Err(FrameError::Malformed(format!(
                    "no reply to {}",
                    request_words(&skipped)
                )))
            }
            Verdict::Good { len, answers: None } => {
                let wire = buf.split_to(len);
                Err(FrameError::Malformed(format!(
                    "{len}-byte reply with no request waiting, dropped: {}",
                    describe::rtu(&wire, Direction::Tx).unwrap_or_default()
                )))
            }
            Verdict::Corrupt { len, .. } => {
                let request = shared.pending.pop_front().unwrap_or_default();
                buf.advance(len);
                Err(FrameError::Malformed(format!(
                    "reply to {} fails its CRC: {len} byte(s) dropped",
                    request_words(&request)
                )))
            }
            Verdict::Bad(_) | Verdict::Wait | Verdict::Undecided => Ok(None),
        }
    }
}

impl Framer for Replies {
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        let link = self.link.clone();
        let mut shared = lock(&link);
        if shared.forgotten > 0 {
            let count = std::mem::take(&mut shared.forgotten);
            return Err(FrameError::Malformed(format!(
                "{count} request(s) forgotten unanswered: more than {MAX_PENDING} were waiting"
            )));
        }
        loop {
            let mode = if self.hunting {
                Mode::Hunting
            } else {
                Mode::Normal
            };
            match judge(&buf[self.dropped..], &shared.pending, mode, &mut self.scan) {
                verdict @ (Verdict::Good { .. } | Verdict::Corrupt { .. }) if self.dropped == 0 => {
                    return self.take(buf, &mut shared, verdict);
                }
                // What was not a reply before this one, dropped before it is cut.
                Verdict::Good { .. } | Verdict::Corrupt { .. } => {
                    return Err(self.report(buf, ""));
                }
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

    /// Replies are recorded, never sent: the bytes with their CRC, as [`RtuFramer`] would.
    fn encode(&mut self, frame: &[u8], dst: &mut BytesMut) -> Result<(), FrameError> {
        RtuFramer::new().encode(frame, dst)
    }

    /// While a reply's length is unknown and no CRC verifies, or bytes are held as no reply:
    /// [`rtu::idle_timeout`](super::rtu::idle_timeout) (a tap sets its own, see the module
    /// docs).
    fn silence_gap(&self, settings: &LineSettings) -> Option<Duration> {
        (self.undecided || self.dropped > 0).then(|| super::rtu::idle_timeout(settings.baud))
    }

    /// The line went quiet: a reply still undecided is given up, with everything behind it
    /// up to the first whole reply.
    fn on_silence(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        let link = self.link.clone();
        let mut shared = lock(&link);
        self.undecided = false;
        self.hunting = false;
        while self.dropped < buf.len() {
            match judge(
                &buf[self.dropped..],
                &shared.pending,
                Mode::Ended,
                &mut self.scan,
            ) {
                verdict @ (Verdict::Good { .. } | Verdict::Corrupt { .. }) if self.dropped == 0 => {
                    return self.take(buf, &mut shared, verdict);
                }
                Verdict::Bad(why) => {
                    self.scan = None;
                    self.dropped += 1;
                    self.why.get_or_insert(why);
                }
                _ => break,
            }
        }
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
