//! Any tokio-util `Decoder`/`Encoder` pair as a [`Framer`].

use std::fmt;

use bytes::{Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::{FrameError, Framer};

/// Adapts a tokio-util codec (a `Decoder` whose items become `Bytes` and an
/// `Encoder<Bytes>`) into a [`Framer`].
///
/// A codec error is reported as [`FrameError::Codec`]. Codecs that keep no recovery state (most
/// binary ones) should clear what they cannot parse themselves; this adapter cannot know how.
pub struct CodecFramer<C> {
    codec: C,
    max_len: usize,
    fresh: fn() -> C,
}

impl<C> CodecFramer<C> {
    /// Wraps the codec built by `fresh`, whose frames are at most `max_len` bytes. `fresh` is
    /// also how [`Framer::reset`] forgets a partial frame.
    pub fn new(fresh: fn() -> C, max_len: usize) -> Self {
        Self {
            codec: fresh(),
            max_len,
            fresh,
        }
    }
}

impl<C> fmt::Debug for CodecFramer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CodecFramer")
            .field("codec", &std::any::type_name::<C>())
            .field("max_len", &self.max_len)
            .finish_non_exhaustive()
    }
}

impl<C> Framer for CodecFramer<C>
where
    C: Decoder + Encoder<Bytes> + Send + 'static,
    <C as Decoder>::Item: Into<Bytes>,
    <C as Decoder>::Error: std::error::Error + Send + Sync + 'static,
    <C as Encoder<Bytes>>::Error: std::error::Error + Send + Sync + 'static,
{
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        self.codec
            .decode(buf)
            .map(|item| item.map(Into::into))
            .map_err(|e| FrameError::Codec(Box::new(e)))
    }

    fn encode(&mut self, frame: &[u8], dst: &mut BytesMut) -> Result<(), FrameError> {
        self.codec
            .encode(Bytes::copy_from_slice(frame), dst)
            .map_err(|e| FrameError::Codec(Box::new(e)))
    }

    fn reset(&mut self) {
        self.codec = (self.fresh)();
    }

    fn max_frame_len(&self) -> usize {
        self.max_len
    }
}
