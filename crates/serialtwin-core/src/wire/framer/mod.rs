//! Framers cut the byte stream into frames and turn reply frames back into bytes.
//!
//! A [`Framer`] is the object-safe core of a tokio-util `Decoder`/`Encoder` pair over `Bytes`,
//! plus what a serial line needs beyond a socket: being told about gaps of silence (Modbus RTU
//! ends a frame by 3.5 character times of quiet), and forgetting a partial frame when a client
//! leaves. Any tokio-util codec plugs in through [`CodecFramer`].
//!
//! A [`Framing`] names a framer and builds fresh instances of it, so framing can be chosen at
//! run time by name (the CLI, the tap) and instantiated once per direction.
//!
//! # Checksums
//! A framer owns its protocol's checksum, so that code working on frames of any protocol
//! (replay, learn, traces) never needs to know which one it has: [`Framer::encode`] adds it,
//! [`Framer::checksum_range`] says where it is on the wire, and [`Framer::check`] verifies
//! the one a decoded frame carries and says where the payload before it ends
//! ([`Checksum::payload`] strips it). Protocols without one (the line framers) keep the
//! defaults: every frame is all payload.

mod codec;
mod lines;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use crate::port::settings::LineSettings;

pub use self::codec::CodecFramer;
pub use self::lines::{LineFramer, Terminator};

/// Why a framer could not produce a frame. The stream stays usable after every variant.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// A frame grew past the limit; its bytes were discarded up to the next terminator.
    #[error("frame longer than {limit} bytes discarded")]
    TooLong {
        /// The framer's maximum frame length.
        limit: usize,
    },
    /// Bytes that cannot be a frame of this protocol were dropped.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// An error from a wrapped tokio-util codec.
    #[error("codec error: {0}")]
    Codec(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Cuts a byte stream into frames, and encodes frames into bytes.
///
/// Implementations must be incremental: `decode` is called after every read with everything
/// received so far and must not rescan what it already looked at. The serving loop does not
/// call it with an empty buffer (a framer should still answer `Ok(None)` to one).
pub trait Framer: Send + 'static {
    /// Take one complete frame off the front of `buf`, if there is one.
    ///
    /// # Errors
    /// A [`FrameError`] for input that was discarded; the caller logs it and calls again.
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError>;

    /// Where the next frame in `buf` is, for a caller that can use it in place instead of
    /// taking it out as `Bytes` (a fleet's lane answers a [`Device`] from the
    /// buffer): the frame is `buf[at.frame]`, and the caller removes the first `at.used` bytes
    /// once done with it.
    ///
    /// `None` when there is no complete frame, when input must be discarded and reported, or
    /// when the framer cannot say (the default): the caller then uses [`Framer::decode`],
    /// which handles every case. A framer that answers must be left as `decode` would leave
    /// it after taking the same frame.
    ///
    /// [`Device`]: crate::device::Device
    fn peek(&mut self, _buf: &[u8]) -> Option<FrameAt> {
        None
    }

    /// Append the wire form of `frame` (terminator, checksum, …) to `dst`.
    ///
    /// # Errors
    /// A [`FrameError`] if the frame cannot be encoded (for instance it is too long).
    fn encode(&mut self, frame: &[u8], dst: &mut BytesMut) -> Result<(), FrameError>;

    /// How long the line must stay quiet, with a partial frame buffered, before
    /// [`on_silence`](Self::on_silence) is called. `None` (the default): silence means nothing.
    fn silence_gap(&self, _settings: &LineSettings) -> Option<Duration> {
        None
    }

    /// The line has been quiet for [`silence_gap`](Self::silence_gap) with bytes buffered.
    ///
    /// # Errors
    /// A [`FrameError`] for a partial frame the framer dropped.
    fn on_silence(&mut self, _buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        Ok(None)
    }

    /// Forget any partial frame (the client that sent it has gone). The caller clears the buffer.
    fn reset(&mut self) {}

    /// Where the checksum is in an encoded frame, if the protocol has one (the
    /// "break the checksum" fault changes those bytes).
    fn checksum_range(&self, _encoded: &[u8]) -> Option<std::ops::Range<usize>> {
        None
    }

    /// What the checksum of `frame`, a frame as [`decode`](Self::decode) hands it over, says:
    /// whether it verifies, and where the payload before it ends.
    ///
    /// A framer whose decoded frames keep their checksum (a device may need to see it: PI30
    /// answers a bad one with `(NAK`) implements this, so that replay can match requests by
    /// payload, learn can write replies without the checksum the framer adds back, and a trace
    /// can point at frames that fail their check. Default: [`Checksum::Absent`], the protocol
    /// has none (or the framer removed it while decoding).
    fn check(&self, _frame: &[u8]) -> Checksum {
        Checksum::Absent
    }

    /// The longest frame this framer accepts. Longer input is discarded and reported, which
    /// is what bounds a port's receive buffer whatever a client sends.
    fn max_frame_len(&self) -> usize;
}

/// What a decoded frame's checksum says ([`Framer::check`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checksum {
    /// The protocol puts no checksum in decoded frames: the whole frame is payload.
    Absent,
    /// The frame ends in a checksum of what comes before it, which verifies.
    Valid {
        /// The payload's length: the checksum starts at this index.
        payload: usize,
    },
    /// The frame does not end in a valid checksum: corrupted on the way, or sent without one
    /// (a person typing a command in a terminal).
    Invalid,
}

impl Checksum {
    /// `frame`'s payload: without its checksum when that verifies, else all of it (a frame
    /// whose checksum fails cannot say where its payload ends).
    #[must_use]
    pub fn payload(self, frame: &[u8]) -> &[u8] {
        match self {
            Self::Valid { payload } => frame.get(..payload).unwrap_or(frame),
            Self::Absent | Self::Invalid => frame,
        }
    }
}

/// Where [`Framer::peek`] found a frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameAt {
    /// The frame's bytes in the buffer.
    pub frame: std::ops::Range<usize>,
    /// How many bytes from the buffer's start the frame uses up (with its delimiters and any
    /// padding before it).
    pub used: usize,
}

impl<F: Framer + ?Sized> Framer for Box<F> {
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        (**self).decode(buf)
    }
    fn peek(&mut self, buf: &[u8]) -> Option<FrameAt> {
        (**self).peek(buf)
    }
    fn encode(&mut self, frame: &[u8], dst: &mut BytesMut) -> Result<(), FrameError> {
        (**self).encode(frame, dst)
    }
    fn silence_gap(&self, settings: &LineSettings) -> Option<Duration> {
        (**self).silence_gap(settings)
    }
    fn on_silence(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        (**self).on_silence(buf)
    }
    fn reset(&mut self) {
        (**self).reset();
    }
    fn checksum_range(&self, encoded: &[u8]) -> Option<std::ops::Range<usize>> {
        (**self).checksum_range(encoded)
    }
    fn check(&self, frame: &[u8]) -> Checksum {
        (**self).check(frame)
    }
    fn max_frame_len(&self) -> usize {
        (**self).max_frame_len()
    }
}

/// A boxed framer, what [`Framing::build`] returns.
pub type BoxFramer = Box<dyn Framer>;

type MakeFramer = dyn Fn() -> BoxFramer + Send + Sync;

type MakePair = dyn Fn() -> (BoxFramer, BoxFramer) + Send + Sync;

/// A named recipe for a framer: cheap to clone, builds a fresh framer per port and direction.
#[derive(Clone)]
pub struct Framing {
    name: Arc<str>,
    make: Arc<MakeFramer>,
    /// How to cut both directions of a recorded line together, when a reply's length depends
    /// on the request it answers (Modbus RTU): see [`Framing::with_pair`].
    pair: Option<Arc<MakePair>>,
}

impl Framing {
    /// Default maximum frame length of the built-in line framings.
    pub const DEFAULT_MAX_LEN: usize = 1024;

    /// A framing called `name` whose framers `make` builds.
    pub fn new<F, M>(name: impl Into<Arc<str>>, make: M) -> Self
    where
        F: Framer,
        M: Fn() -> F + Send + Sync + 'static,
    {
        Self {
            name: name.into(),
            make: Arc::new(move || Box::new(make()) as BoxFramer),
            pair: None,
        }
    }

    /// This framing, with `pair` making the framers that cut a recorded line's two
    /// directions (requests, replies) for a tap or a capture read again.
    ///
    /// A protocol whose replies say their own length (a line, a PI30 frame) needs none: one
    /// framer per direction, each on its own. A Modbus RTU reply does not: its length depends
    /// on the request it answers (a write's echo is 8 bytes, a read's is counted, a
    /// diagnostics echo is as long as the request), so the reply side must know what the
    /// request side cut, and the two are built together, sharing it.
    #[must_use]
    pub fn with_pair<Q, R, M>(mut self, pair: M) -> Self
    where
        Q: Framer,
        R: Framer,
        M: Fn() -> (Q, R) + Send + Sync + 'static,
    {
        self.pair = Some(Arc::new(move || {
            let (requests, replies) = pair();
            (
                Box::new(requests) as BoxFramer,
                Box::new(replies) as BoxFramer,
            )
        }));
        self
    }

    /// Whether this framing cuts a recorded line's replies by the requests they answer (it
    /// was given a [pair](Self::with_pair)).
    #[must_use]
    pub fn has_pair(&self) -> bool {
        self.pair.is_some()
    }

    /// Fresh framers for a recorded line's requests (what the client sends, `rx`) and replies
    /// (what the device sends, `tx`): the pair given to [`with_pair`](Self::with_pair), else
    /// two independent framers.
    #[must_use]
    pub fn build_pair(&self) -> (BoxFramer, BoxFramer) {
        match &self.pair {
            Some(pair) => pair(),
            None => (self.build(), self.build()),
        }
    }

    /// Lines ending in `terminator`, at most `max_len` bytes each.
    #[must_use]
    pub fn lines(terminator: Terminator, max_len: usize) -> Self {
        Self::new(terminator.name(), move || {
            LineFramer::new(terminator, max_len)
        })
    }

    /// The built-in framing called `name`: `crlf`, `cr` or `lf` (lines of at most
    /// [`DEFAULT_MAX_LEN`](Self::DEFAULT_MAX_LEN) bytes). Device crates add their own names.
    #[must_use]
    pub fn by_name(name: &str) -> Option<Self> {
        Terminator::from_name(name).map(|t| Self::lines(t, Self::DEFAULT_MAX_LEN))
    }

    /// The names [`by_name`](Self::by_name) knows.
    #[must_use]
    pub fn builtin_names() -> &'static [&'static str] {
        &["crlf", "cr", "lf"]
    }

    /// This framing's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A fresh framer.
    #[must_use]
    pub fn build(&self) -> BoxFramer {
        (self.make)()
    }

    /// [`Framer::check`] of `frame` (a decoded frame), by a fresh framer: for occasional
    /// questions; code that asks per frame keeps a framer of its own.
    #[must_use]
    pub fn check(&self, frame: &[u8]) -> Checksum {
        self.build().check(frame)
    }

    /// The frame this framing encodes into exactly `wire` (one whole frame as it went on the
    /// line), if there is one: what a device pushed before the framer added its terminator
    /// and checksum. `None` when `wire` is not one frame, or when its checksum or terminator
    /// is not the one this framing would write (a corrupted reply, another checksum rule), so
    /// that such bytes are kept as they are.
    #[must_use]
    pub fn unframe(&self, wire: &[u8]) -> Option<Bytes> {
        let mut framer = self.build();
        let mut buf = BytesMut::from(wire);
        let frame = framer.decode(&mut buf).ok()??;
        if !buf.is_empty() {
            return None;
        }
        let payload = Bytes::copy_from_slice(framer.check(&frame).payload(&frame));
        let mut encoded = BytesMut::with_capacity(wire.len());
        (framer.encode(&payload, &mut encoded).is_ok() && encoded.as_ref() == wire)
            .then_some(payload)
    }
}

impl Default for Framing {
    /// CRLF lines of at most [`DEFAULT_MAX_LEN`](Self::DEFAULT_MAX_LEN) bytes.
    fn default() -> Self {
        Self::lines(Terminator::CrLf, Self::DEFAULT_MAX_LEN)
    }
}

impl fmt::Debug for Framing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Framing").field(&self.name).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// LF lines ending in a one-byte sum of the payload: a checksum the framer leaves in the
    /// decoded frame, as PI30's does.
    struct Summed(LineFramer);

    fn sum(payload: &[u8]) -> u8 {
        payload.iter().fold(0u8, |s, b| s.wrapping_add(*b))
    }

    impl Framer for Summed {
        fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
            self.0.decode(buf)
        }
        fn encode(&mut self, frame: &[u8], dst: &mut BytesMut) -> Result<(), FrameError> {
            dst.extend_from_slice(frame);
            dst.extend_from_slice(&[sum(frame), b'\n']);
            Ok(())
        }
        fn check(&self, frame: &[u8]) -> Checksum {
            match frame.split_last() {
                Some((&s, payload)) if s == sum(payload) => Checksum::Valid {
                    payload: payload.len(),
                },
                _ => Checksum::Invalid,
            }
        }
        fn max_frame_len(&self) -> usize {
            self.0.max_frame_len()
        }
    }

    fn summed() -> Framing {
        Framing::new("summed", || {
            Summed(LineFramer::new(Terminator::Lf, Framing::DEFAULT_MAX_LEN))
        })
    }

    #[test]
    fn line_framings_have_no_checksum() {
        let crlf = Framing::default();
        assert_eq!(crlf.check(b"OK"), Checksum::Absent);
        assert_eq!(Checksum::Absent.payload(b"OK"), b"OK");
        assert_eq!(crlf.unframe(b"OK\r\n").as_deref(), Some(&b"OK"[..]));
        // Not what this framing writes, or not one frame: kept as it is.
        assert_eq!(crlf.unframe(b"OK\n"), None);
        assert_eq!(crlf.unframe(b"OK\r\nOK\r\n"), None);
        assert_eq!(crlf.unframe(b"OK"), None);
    }

    #[test]
    fn a_framer_checks_strips_and_adds_its_own_checksum() {
        let summed = summed();
        let good = [b'A', b'B', sum(b"AB")];
        assert_eq!(summed.check(&good), Checksum::Valid { payload: 2 });
        assert_eq!(summed.check(&good).payload(&good), b"AB");
        assert_eq!(summed.check(b"ABC"), Checksum::Invalid);
        assert_eq!(Checksum::Invalid.payload(b"ABC"), b"ABC");
        // Through the box every port holds.
        assert_eq!(summed.build().check(&good), Checksum::Valid { payload: 2 });
        let mut wire = good.to_vec();
        wire.push(b'\n');
        assert_eq!(summed.unframe(&wire).as_deref(), Some(&b"AB"[..]));
        wire[2] ^= 1;
        assert_eq!(summed.unframe(&wire), None, "a broken checksum stays raw");
    }
}
