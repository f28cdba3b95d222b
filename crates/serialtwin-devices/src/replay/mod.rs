//! A device built from a capture: it answers the way the recorded device did.
//!
//! The capture is read as a [`Conversation`]: each request frame with the reply frames that
//! followed it. Replies go out exactly as recorded, byte for byte (checksum and terminator
//! included, bypassing the framer's encoder).
//!
//! # Matching (normal mode)
//! 1. **Exact**: the request's bytes equal a recorded request's.
//! 2. **Normalised**: both sides reduced to their leading printable-ASCII text (cut at the first
//!    byte outside 0x20–0x7E, which drops a binary checksum), trimmed of surrounding whitespace,
//!    upper-cased. A checksum the framing verifies ([`Framer::check`]) is removed first, even
//!    when its bytes are printable (PI30's `QMOD` has CRC `I\xc1`). `qpigs` typed in a terminal
//!    finds `QPIGS\xb7\xa9`. A request whose normalised form is empty is only matched exactly.
//! 3. Otherwise the **fallback**: silence (the default), `(NAK` through the framing, or a given
//!    frame.
//!
//! # Order
//! The same request seen several times replays its different replies in recorded order: the
//! n-th time a request comes, it gets the replies that followed its n-th recorded occurrence
//! (so QPIRI before and after a POP02, or a drifting QPIGS, come back in order). When a request's
//! recorded replies are exhausted it **sticks at the last** (the device's latest state), or
//! cycles back to the first with [`ReplayOptions::cycle`]. Exact and normalised matches keep
//! separate positions.
//!
//! # Strict mode
//! The conversation is replayed in recorded order as a whole: the next request must match the
//! next recorded request (exactly or normalised). A request that does not is a [`Deviation`]:
//! it is answered with the fallback, reported as the handler's error (a `!! device error:` line
//! in a trace) and kept in the [`ReplayReport`]; the position does not move, so a client that
//! sends one extra request is back in step afterwards.
//!
//! # As a model
//! `model = "replay"` in a fleet config ([`MODEL`]) serves a capture like any other device:
//! `[device.replay]` names the capture and the options above; the `[[device]]`'s `framing`
//! is the framing (default: the capture's). [`open`] reads a capture into a conversation, as
//! the model and `serialtwin replay` do.
//!
//! [`Framer::check`]: serialtwin_core::Framer::check

mod conversation;
mod model;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use serialtwin_core::escape::escape;
use serialtwin_core::{Context, Device, Framer, Framing, Replies, Reply};
use tracing::{debug, warn};

pub use self::conversation::{Conversation, ConversationError, Exchange, FrameSource};
pub use self::model::MODEL;

/// What to answer a request the capture never saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Fallback {
    /// Nothing (a real device that does not understand often says nothing).
    #[default]
    Silence,
    /// `(NAK` through the framing: what a PI30 inverter answers to an unknown command.
    Nak,
    /// This frame, through the framing.
    Frame(Bytes),
}

impl Fallback {
    /// `silence`, `nak`, or any other text as a frame (escapes `\r`, `\xNN`... allowed).
    ///
    /// # Errors
    /// A malformed escape.
    pub fn parse(text: &str) -> Result<Self, String> {
        Ok(match text {
            "silence" => Self::Silence,
            "nak" => Self::Nak,
            other => Self::Frame(serialtwin_core::escape::unescape(other)?.into()),
        })
    }

    fn push(&self, replies: &mut Replies) {
        match self {
            Self::Silence => {}
            Self::Nak => replies.push(Bytes::from_static(b"(NAK")),
            Self::Frame(f) => replies.push(f.clone()),
        }
    }
}

/// How a replay behaves.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplayOptions {
    /// Send each reply after the delay it was recorded with; otherwise at once.
    pub timing: bool,
    /// What unseen requests get.
    pub fallback: Fallback,
    /// Replay the conversation in order and report where the client deviates.
    pub strict: bool,
    /// After a request's last recorded reply, start over at its first (default: stick at the
    /// last).
    pub cycle: bool,
}

/// Where a client left the recorded conversation (strict mode).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deviation {
    /// Index of the exchange expected next (0-based).
    pub exchange: usize,
    /// The request expected, and when it was recorded; `None` past the end.
    pub expected: Option<(Bytes, Duration)>,
    /// What the client sent.
    pub got: Bytes,
}

impl fmt::Display for Deviation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.expected {
            Some((want, at)) => write!(
                f,
                "strict replay: client deviates at exchange {} (recorded at {:.6} s): \
                 expected \"{}\", got \"{}\"",
                self.exchange + 1,
                at.as_secs_f64(),
                escape(want),
                escape(&self.got)
            ),
            None => write!(
                f,
                "strict replay: client goes on after the recorded conversation's {} exchanges: \
                 got \"{}\"",
                self.exchange,
                escape(&self.got)
            ),
        }
    }
}

/// A deviation, as the device's error.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ReplayError(pub Deviation);

/// What a replay has done so far; shared with whoever started it.
#[derive(Debug, Default)]
pub struct ReplayReport {
    inner: Mutex<Counts>,
}

/// The counts in a [`ReplayReport`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Requests answered from an exact match.
    pub exact: u64,
    /// Requests answered from a normalised match.
    pub normalised: u64,
    /// Requests answered with the fallback (unseen, or deviating).
    pub fallback: u64,
    /// Strict mode: exchanges replayed in order.
    pub in_order: usize,
    /// Strict mode: where the client deviated.
    pub deviations: Vec<Deviation>,
}

impl ReplayReport {
    /// The counts now.
    #[must_use]
    pub fn counts(&self) -> Counts {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Leading printable-ASCII text, trimmed, upper-cased (see the module docs).
#[must_use]
pub fn normalise(request: &[u8]) -> Vec<u8> {
    normal_text(request).to_ascii_uppercase()
}

/// What [`normalise`] upper-cases: the leading printable-ASCII text, trimmed. A slice of
/// `request`, so that a matcher on the serving path (a scripted device's `match =
/// "normalised"`) compares it with a normalised key (`eq_ignore_ascii_case`) without
/// allocating, and still matches exactly what replay matches.
#[must_use]
pub fn normal_text(request: &[u8]) -> &[u8] {
    let end = request
        .iter()
        .position(|b| !(0x20..=0x7e).contains(b))
        .unwrap_or(request.len());
    request[..end].trim_ascii()
}

/// [`normal_text`] after removing the checksum `framer` verifies, if the frame carries one:
/// for code that normalises every request and keeps a framer of its own for it.
#[must_use]
pub fn normal_text_with<'a, F: Framer + ?Sized>(framer: &F, request: &'a [u8]) -> &'a [u8] {
    normal_text(framer.check(request).payload(request))
}

/// [`normalise`] after removing the checksum `framing` verifies, if the frame carries one.
#[must_use]
pub fn normalise_for(framing: &Framing, request: &[u8]) -> Vec<u8> {
    normal_text_with(&*framing.build(), request).to_ascii_uppercase()
}

/// Why a capture cannot be replayed.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The capture cannot be read.
    #[error(transparent)]
    Capture(#[from] serialtwin_capture::CaptureError),
    /// Neither the capture nor the caller says how to cut it into frames.
    #[error("the capture was recorded without a framing: choose one (known: {})",
        crate::registry::framing_names().join(", "))]
    NoFraming,
    /// The capture names a framing nobody knows.
    #[error("the capture's {0}")]
    Framing(#[from] crate::registry::UnknownFraming),
    /// Its frames cannot be used with the framing asked for.
    #[error(transparent)]
    Conversation(#[from] ConversationError),
    /// Not one request in it.
    #[error("no requests in the capture (with framing `{framing}`)")]
    Empty {
        /// The framing it was read with.
        framing: String,
    },
}

/// The conversation in the capture at `path`, framed by `framing` (default: the capture's
/// own), and that framing. An incomplete last record (a recorder that was killed) and record
/// types this version does not know are skipped with a warning.
///
/// # Errors
/// An [`OpenError`] (a missing file, no framing, no requests).
pub fn open(
    path: &std::path::Path,
    framing: Option<Framing>,
) -> Result<(Conversation, Framing), OpenError> {
    let capture = serialtwin_capture::read(path)?;
    if let Some((line, len)) = capture.truncated {
        warn!(
            "{}:{line}: the last record is incomplete ({len} bytes; was the recorder killed?): \
             using the {} complete record(s) before it",
            path.display(),
            capture.records.len()
        );
    }
    if capture.skipped > 0 {
        warn!(
            "{}: skipped {} record(s) of types this version does not know",
            path.display(),
            capture.skipped
        );
    }
    let framing = match (framing, capture.header.framing.as_deref()) {
        (Some(framing), _) => framing,
        (None, Some(name)) => crate::registry::framing(name)?,
        (None, None) => return Err(OpenError::NoFraming),
    };
    let conversation = Conversation::from_capture(&capture, &framing)?;
    if conversation.exchanges.is_empty() {
        return Err(OpenError::Empty {
            framing: framing.name().to_owned(),
        });
    }
    Ok((conversation, framing))
}

/// A device answering from a recorded conversation.
#[derive(Debug)]
pub struct Replay {
    conversation: Arc<Conversation>,
    framing: Framing,
    options: ReplayOptions,
    /// Exchange indices by exact request, and where each request's next reply is.
    exact: HashMap<Bytes, (Vec<usize>, usize)>,
    /// The same by normalised request.
    normal: HashMap<Vec<u8>, (Vec<usize>, usize)>,
    /// Strict mode: the next exchange expected.
    next: usize,
    report: Arc<ReplayReport>,
}

impl Replay {
    /// A device replaying `conversation`, framed by `framing`.
    #[must_use]
    pub fn new(conversation: Arc<Conversation>, framing: Framing, options: ReplayOptions) -> Self {
        let mut exact: HashMap<Bytes, (Vec<usize>, usize)> = HashMap::new();
        let mut normal: HashMap<Vec<u8>, (Vec<usize>, usize)> = HashMap::new();
        for (i, ex) in conversation.exchanges.iter().enumerate() {
            exact.entry(ex.request.clone()).or_default().0.push(i);
            let key = normalise_for(&framing, &ex.request);
            if !key.is_empty() {
                normal.entry(key).or_default().0.push(i);
            }
        }
        Self {
            conversation,
            framing,
            options,
            exact,
            normal,
            next: 0,
            report: Arc::default(),
        }
    }

    /// The report this device keeps.
    #[must_use]
    pub fn report(&self) -> Arc<ReplayReport> {
        Arc::clone(&self.report)
    }

    /// The conversation.
    #[must_use]
    pub fn conversation(&self) -> &Conversation {
        &self.conversation
    }

    fn push_exchange(&self, index: usize, replies: &mut Replies) {
        for (delay, bytes) in &self.conversation.exchanges[index].replies {
            let delay = if self.options.timing {
                *delay
            } else {
                Duration::ZERO
            };
            replies.push_reply(Reply::raw(bytes.clone()).after(delay));
        }
    }

    /// The exchange to answer `request` with in normal mode, and whether it matched exactly.
    fn lookup(&mut self, request: &Bytes) -> Option<(usize, bool)> {
        let cycle = self.options.cycle;
        let take = |(list, pos): &mut (Vec<usize>, usize)| {
            let i = if cycle {
                list[*pos % list.len()]
            } else {
                list[(*pos).min(list.len() - 1)]
            };
            *pos += 1;
            i
        };
        if let Some(entry) = self.exact.get_mut(request) {
            return Some((take(entry), true));
        }
        let key = normalise_for(&self.framing, request);
        if key.is_empty() {
            return None;
        }
        self.normal.get_mut(&key).map(|e| (take(e), false))
    }

    /// The replies to `request`.
    ///
    /// # Errors
    /// In strict mode, the [`ReplayError`] of a deviation (its fallback is pushed).
    pub fn answer(&mut self, request: &Bytes, replies: &mut Replies) -> Result<(), ReplayError> {
        if self.options.strict {
            return self.answer_strict(request, replies);
        }
        if let Some((i, exact)) = self.lookup(request) {
            let mut counts = self.report.lock();
            if exact {
                counts.exact += 1;
            } else {
                counts.normalised += 1;
            }
            drop(counts);
            debug!(exchange = i + 1, exact, "replaying");
            self.push_exchange(i, replies);
        } else {
            self.report.lock().fallback += 1;
            debug!(request = %escape(request), "not in the capture: fallback");
            self.options.fallback.push(replies);
        }
        Ok(())
    }

    fn answer_strict(&mut self, request: &Bytes, replies: &mut Replies) -> Result<(), ReplayError> {
        let expected = self.conversation.exchanges.get(self.next);
        let matched = expected.and_then(|ex| {
            if ex.request == *request {
                Some(true)
            } else {
                let key = normalise_for(&self.framing, request);
                (!key.is_empty() && key == normalise_for(&self.framing, &ex.request))
                    .then_some(false)
            }
        });
        if let Some(exact) = matched {
            let i = self.next;
            self.next += 1;
            let mut counts = self.report.lock();
            counts.in_order = self.next;
            if exact {
                counts.exact += 1;
            } else {
                counts.normalised += 1;
            }
            drop(counts);
            self.push_exchange(i, replies);
            return Ok(());
        }
        let deviation = Deviation {
            exchange: self.next,
            expected: expected.map(|ex| (ex.request.clone(), ex.at)),
            got: request.clone(),
        };
        // (Logged once, by the serving loop, as the error this returns.)
        let mut counts = self.report.lock();
        counts.fallback += 1;
        counts.deviations.push(deviation.clone());
        drop(counts);
        self.options.fallback.push(replies);
        Err(ReplayError(deviation))
    }
}

impl Device for Replay {
    type Error = ReplayError;

    fn framing(&self) -> Framing {
        self.framing.clone()
    }

    /// (A copy of each request: a deviation keeps it, and replay is not a throughput path.)
    fn handle(
        &mut self,
        request: &[u8],
        _ctx: &mut Context,
        replies: &mut Replies,
    ) -> Result<(), Self::Error> {
        self.answer(&Bytes::copy_from_slice(request), replies)
    }
}
