//! What a device answers with: [`Reply`] frames, gathered in [`Replies`].

use std::time::Duration;

use bytes::Bytes;

/// One frame a device sends, optionally after a delay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// Wait this long (after the request, or after the previous reply) before sending.
    pub delay: Duration,
    /// The frame.
    pub bytes: Bytes,
    /// `true`: send `bytes` as they are, bypassing the framer's encoder (an echo of the raw
    /// request, a deliberately malformed frame). `false`: encode them with the framer.
    pub raw: bool,
}

impl Reply {
    /// A frame to be encoded, sent at once.
    pub fn frame(bytes: impl Into<Bytes>) -> Self {
        Self {
            delay: Duration::ZERO,
            bytes: bytes.into(),
            raw: false,
        }
    }

    /// Bytes sent exactly as given, bypassing the framer.
    pub fn raw(bytes: impl Into<Bytes>) -> Self {
        Self {
            raw: true,
            ..Self::frame(bytes)
        }
    }

    /// The same reply after `delay`.
    #[must_use]
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// The replies a device produces for one request: zero, one or many, in order.
///
/// The serving loop hands the same (cleared) buffer to every call, so replying allocates nothing
/// beyond the frames themselves.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Replies {
    items: Vec<Reply>,
}

impl Replies {
    /// An empty set of replies.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Reply with `frame` (encoded by the framer), at once.
    pub fn push(&mut self, frame: impl Into<Bytes>) {
        self.items.push(Reply::frame(frame));
    }

    /// Reply with `frame` after `delay`.
    pub fn push_after(&mut self, delay: Duration, frame: impl Into<Bytes>) {
        self.items.push(Reply::frame(frame).after(delay));
    }

    /// Send `bytes` exactly as given, bypassing the framer.
    pub fn push_raw(&mut self, bytes: impl Into<Bytes>) {
        self.items.push(Reply::raw(bytes));
    }

    /// Add a prepared [`Reply`].
    pub fn push_reply(&mut self, reply: Reply) {
        self.items.push(reply);
    }

    /// The replies so far.
    #[must_use]
    pub fn as_slice(&self) -> &[Reply] {
        &self.items
    }

    /// Just the frames' bytes, for assertions in tests.
    #[must_use]
    pub fn frames(&self) -> Vec<&[u8]> {
        self.items.iter().map(|r| r.bytes.as_ref()).collect()
    }

    /// Number of replies.
    #[must_use]
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// No replies (the device stays silent).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Remove every reply.
    pub fn clear(&mut self) {
        self.items.clear();
    }

    /// Take the replies out, leaving the buffer empty.
    pub fn drain(&mut self) -> std::vec::Drain<'_, Reply> {
        self.items.drain(..)
    }
}
