//! A capture read as a conversation: requests, each with the replies that followed it.

use std::time::Duration;

use bytes::Bytes;
use serialtwin_capture::{Capture, Cutter, Data, Record};
use serialtwin_core::{Direction, Framing, LineEvent, LineSettings};

/// One request and what the device answered before the next request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exchange {
    /// The request frame, as the framer hands it to a device (terminator removed).
    pub request: Bytes,
    /// When the request was complete, in capture time.
    pub at: Duration,
    /// The replies, exactly as they went on the wire, each with the time between the previous
    /// moment (the request for the first, the previous reply otherwise) and its completion.
    pub replies: Vec<(Duration, Bytes)>,
}

/// Where a conversation's frames came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameSource {
    /// The capture's `frame` records (recorded with the same framing).
    Recorded,
    /// The capture's `chunk` records, cut again with the framing asked for.
    Reframed,
}

/// A capture as request → replies exchanges, in recorded order.
#[derive(Clone, Debug)]
pub struct Conversation {
    /// The exchanges, in order.
    pub exchanges: Vec<Exchange>,
    /// Frames the device sent before the first request (not replayed).
    pub leading: Vec<Bytes>,
    /// The framing's name.
    pub framing: String,
    /// Where the frames came from.
    pub source: FrameSource,
    /// The line's settings as last recorded (the client's last change, else the capture's
    /// header); `None` when the capture does not say. A device learned from it must run at
    /// the same baud rate, or its client reads garbage.
    pub settings: Option<LineSettings>,
}

/// Why a capture cannot become a conversation.
#[derive(Debug, thiserror::Error)]
pub enum ConversationError {
    /// The capture has frames of another framing and no chunks to cut again.
    #[error(
        "the capture's frames were cut with `{recorded}` and it has no chunks to cut again with `{asked}`"
    )]
    NoChunks {
        /// The capture's framing.
        recorded: String,
        /// The framing asked for.
        asked: String,
    },
}

impl Conversation {
    /// The conversation in `capture`, framed by `framing`.
    ///
    /// The capture's `frame` records are used when they were cut with the same framing (by
    /// name); otherwise its `chunk` records are cut again with `framing`, one framer per
    /// direction built as a pair ([`Cutter::pair`]), exactly as the tap does.
    ///
    /// # Errors
    /// [`ConversationError::NoChunks`] when neither works.
    pub fn from_capture(capture: &Capture, framing: &Framing) -> Result<Self, ConversationError> {
        let same = capture.header.framing.as_deref() == Some(framing.name());
        let has_chunks = capture.chunks().next().is_some();
        let (frames, source) = if same || !has_chunks {
            if !same && capture.frames().next().is_some() {
                return Err(ConversationError::NoChunks {
                    recorded: capture
                        .header
                        .framing
                        .clone()
                        .unwrap_or_else(|| "none".into()),
                    asked: framing.name().to_owned(),
                });
            }
            (capture.frames().cloned().collect(), FrameSource::Recorded)
        } else {
            (reframe(capture, framing), FrameSource::Reframed)
        };
        let mut conversation = Self::from_frames(frames, framing.name(), source);
        conversation.settings = capture
            .records
            .iter()
            .rev()
            .find_map(|r| match r {
                Record::Event {
                    event: LineEvent::Settings(s),
                    ..
                } => Some(*s),
                _ => None,
            })
            .or_else(|| capture.header.settings.map(LineSettings::from));
        Ok(conversation)
    }

    /// Exchanges from frames in order: each `rx` frame starts one, the `tx` frames after it are
    /// its replies.
    #[must_use]
    pub fn from_frames(frames: Vec<Data>, framing: &str, source: FrameSource) -> Self {
        let mut exchanges: Vec<Exchange> = Vec::new();
        let mut leading = Vec::new();
        let mut last = Duration::ZERO;
        for frame in frames {
            match (frame.dir, exchanges.last_mut()) {
                (Direction::Rx, _) => {
                    last = frame.t;
                    exchanges.push(Exchange {
                        request: frame.bytes,
                        at: frame.t,
                        replies: Vec::new(),
                    });
                }
                (Direction::Tx, Some(ex)) => {
                    ex.replies
                        .push((frame.t.saturating_sub(last), frame.bytes.clone()));
                    last = frame.t;
                }
                (Direction::Tx, None) => leading.push(frame.bytes),
            }
        }
        Self {
            exchanges,
            leading,
            framing: framing.to_owned(),
            source,
            settings: None,
        }
    }

    /// The distinct requests, in order of first appearance, each with the indices of its
    /// exchanges.
    #[must_use]
    pub fn by_request(&self) -> Vec<(Bytes, Vec<usize>)> {
        let mut out: Vec<(Bytes, Vec<usize>)> = Vec::new();
        for (i, ex) in self.exchanges.iter().enumerate() {
            match out.iter_mut().find(|(r, _)| *r == ex.request) {
                Some((_, seen)) => seen.push(i),
                None => out.push((ex.request.clone(), vec![i])),
            }
        }
        out
    }
}

/// Cut the capture's chunks into frames with `framing`: requests as decoded, replies as the
/// wire bytes their framer consumed, each stamped with the chunk that completed it.
fn reframe(capture: &Capture, framing: &Framing) -> Vec<Data> {
    // Built together: a Modbus RTU reply is cut by the request it answers.
    let (mut rx, mut tx) = Cutter::pair(framing);
    let mut frames = Vec::new();
    for chunk in capture.chunks() {
        let cutter = match chunk.dir {
            Direction::Rx => &mut rx,
            Direction::Tx => &mut tx,
        };
        for (frame, wire) in cutter.feed(&chunk.bytes).into_iter().flatten() {
            frames.push(Data {
                t: chunk.t,
                dir: chunk.dir,
                bytes: match chunk.dir {
                    Direction::Rx => frame,
                    Direction::Tx => wire,
                },
            });
        }
    }
    frames
}
