//! Framers cut the byte stream into frames and turn reply frames back into bytes.
//!
//! A [`Framer`] is the object-safe core of a tokio-util `Decoder`/`Encoder` pair over `Bytes`,
//! plus what a serial line needs beyond a socket: being told about gaps of silence (Modbus RTU
//! ends a frame by 3.5 character times of quiet), and forgetting a partial frame when a client
//! leaves. Any tokio-util codec plugs in through [`CodecFramer`].
//!
//! A [`Framing`] names a framer and builds fresh instances of it, so framing can be chosen at
//! run time by name (the CLI, the tap) and instantiated once per direction.

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

    /// The longest frame this framer accepts. Longer input is discarded and reported, which
    /// is what bounds a port's receive buffer whatever a client sends.
    fn max_frame_len(&self) -> usize;
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
    fn max_frame_len(&self) -> usize {
        (**self).max_frame_len()
    }
}

/// A boxed framer, what [`Framing::build`] returns.
pub type BoxFramer = Box<dyn Framer>;

type MakeFramer = dyn Fn() -> BoxFramer + Send + Sync;

/// A named recipe for a framer: cheap to clone, builds a fresh framer per port and direction.
#[derive(Clone)]
pub struct Framing {
    name: Arc<str>,
    make: Arc<MakeFramer>,
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
