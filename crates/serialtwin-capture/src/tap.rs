//! The tap: bytes passed between a client-facing transport and an [`Upstream`], every byte
//! recorded (see the crate docs).

use std::future::poll_fn;
use std::io;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use serialtwin_core::{
    BoxFramer, Direction, FrameError, Framing, LineEvent, LineSettings, Observation, Observer,
    PortEvent, PtyPort, Seen, Transport,
};

use crate::capture::{CaptureWriter, Record};

/// Read buffer size per direction.
const CHUNK: usize = 4096;

/// The device side of a tap.
pub trait Upstream: AsyncRead + AsyncWrite + Unpin + Send {
    /// The client changed its line settings to `settings` (as its port sees them: on a pty
    /// parity and data bits are never visible). Apply what applies; return the settings now in
    /// force, if known. Default: nothing to apply (a socket, a pipe).
    ///
    /// # Errors
    /// Why the settings could not be applied; the tap logs it, records it and carries on.
    fn follow(&mut self, _settings: &LineSettings) -> io::Result<Option<LineSettings>> {
        Ok(None)
    }
}

impl Upstream for tokio::net::TcpStream {}
impl Upstream for tokio::net::UnixStream {}
impl Upstream for tokio::io::DuplexStream {}
impl Upstream for PtyPort {}

/// Why a tap stopped.
#[derive(Debug, thiserror::Error)]
pub enum TapError {
    /// Reading from or writing to the device side failed.
    #[error("upstream: {0}")]
    Upstream(#[source] io::Error),
    /// Reading from or writing to the client side failed.
    #[error("client side: {0}")]
    Client(#[source] io::Error),
}

/// How a tap ended without error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TapEnd {
    /// Cancelled.
    Cancelled,
    /// The upstream closed its end (end of file).
    UpstreamClosed,
    /// The client side closed its end (a socket or pipe; a pty never does).
    ClientClosed,
}

/// A tap between a client-facing transport and an upstream.
pub struct Tap {
    name: Arc<str>,
    framing: Option<Framing>,
    observers: Vec<Arc<dyn Observer>>,
    capture: Option<CaptureWriter>,
    /// How long a direction must stay quiet before its framer gives up a frame whose end it
    /// cannot tell by length (see [`Tap::idle`]); `None`: the framer's own gap.
    idle: Option<Duration>,
}

impl std::fmt::Debug for Tap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tap")
            .field("name", &self.name)
            .field("framing", &self.framing)
            .field("observers", &self.observers.len())
            .field("capture", &self.capture)
            .field("idle", &self.idle)
            .finish()
    }
}

impl Tap {
    /// A tap called `name` (the port name observers see), without framing or observers.
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Self {
            name: name.into(),
            framing: None,
            observers: Vec::new(),
            capture: None,
            idle: None,
        }
    }

    /// Give up a frame whose end the framer cannot tell by length (a Modbus diagnostics
    /// request, an unknown function code) after `idle` without a byte in its direction,
    /// instead of the framer's own gap ([`Framer::silence_gap`](serialtwin_core::Framer::silence_gap)).
    ///
    /// A framer serving a pty may wait for a few milliseconds; a tap in front of real hardware
    /// sees the device's bytes through a USB adapter, which hands them over in pieces up to
    /// its latency timer apart (16 ms by default on FTDI chips): a shorter wait would cut a
    /// reply in two. Framers whose frames all say their length never ask for a gap, and this
    /// changes nothing for them.
    #[must_use]
    pub fn idle(mut self, idle: Duration) -> Self {
        self.idle = Some(idle);
        self
    }

    /// Cut both directions into frames with `framing` (one framer per direction).
    #[must_use]
    pub fn framing(mut self, framing: Framing) -> Self {
        self.framing = Some(framing);
        self
    }

    /// Add an observer (a trace); it sees frames, events and errors.
    #[must_use]
    pub fn observe(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observers.push(observer);
        self
    }

    /// Record chunks, frames, events and errors to `capture`.
    #[must_use]
    pub fn capture(mut self, capture: CaptureWriter) -> Self {
        self.capture = Some(capture);
        self
    }

    fn emit(&self, at: Instant, seen: Seen) {
        let observation = Observation {
            at,
            port: self.name.clone(),
            seen,
        };
        if let Some(c) = &self.capture {
            c.observe(&observation);
        }
        for o in &self.observers {
            o.observe(&observation);
        }
    }

    /// Pass bytes between `client` and `upstream` until `cancel` fires or a side closes.
    ///
    /// # Errors
    /// [`TapError`] when a side fails; it is recorded to the capture first.
    pub async fn run<C, U>(
        &self,
        mut client: C,
        mut upstream: U,
        cancel: &CancellationToken,
    ) -> Result<TapEnd, TapError>
    where
        C: Transport,
        U: Upstream,
    {
        let (mut rx, mut tx) = match self.framing.as_ref().map(Cutter::pair) {
            Some((rx, tx)) => (Some(rx), Some(tx)),
            None => (None, None),
        };
        // When each direction last brought bytes, for its framer's silence gap.
        let mut last = (Instant::now(), Instant::now());
        let mut from_client = vec![0u8; CHUNK];
        let mut from_upstream = vec![0u8; CHUNK];
        if let Some(settings) = client.settings() {
            debug!(tap = %self.name, %settings, "client side starts at");
        }
        let result = loop {
            let due = self.silence_due(
                &client.settings().unwrap_or_else(|| LineSettings::new(9600)),
                [(rx.as_ref(), last.0), (tx.as_ref(), last.1)],
            );
            let step = tokio::select! {
                biased;
                () = cancel.cancelled() => break Ok(TapEnd::Cancelled),
                step = poll_fn(|cx| {
                    if let Poll::Ready(event) = client.poll_event(cx) {
                        return Poll::Ready(Step::Event(event));
                    }
                    let mut buf = ReadBuf::new(&mut from_client);
                    match Pin::new(&mut client).poll_read(cx, &mut buf) {
                        Poll::Ready(Ok(())) => Poll::Ready(Step::Client(Ok(buf.filled().len()))),
                        Poll::Ready(Err(e)) => Poll::Ready(Step::Client(Err(e))),
                        Poll::Pending => Poll::Pending,
                    }
                }) => step,
                n = upstream.read(&mut from_upstream) => Step::Upstream(n),
                // Last: bytes already there are read before their direction counts as quiet.
                () = async {
                    match due {
                        Some((at, _)) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => Step::Silence(due.map_or(Direction::Rx, |(_, dir)| dir)),
            };
            let at = Instant::now();
            match step {
                Step::Silence(dir) => self.on_silence(
                    at,
                    dir,
                    match dir {
                        Direction::Rx => rx.as_mut(),
                        Direction::Tx => tx.as_mut(),
                    },
                ),
                Step::Event(event) => self.on_event(at, event, &mut upstream, rx.as_mut()),
                Step::Client(Ok(0)) => break Ok(TapEnd::ClientClosed),
                Step::Client(Ok(n)) => {
                    let bytes = Bytes::copy_from_slice(&from_client[..n]);
                    if let Some(c) = &self.capture {
                        c.chunk(at, Direction::Rx, bytes.clone());
                    }
                    if let Err(e) = upstream.write_all(&bytes).await {
                        break Err(TapError::Upstream(e));
                    }
                    last.0 = at;
                    if let Some(cutter) = rx.as_mut() {
                        self.cut(at, Direction::Rx, cutter, &bytes);
                    }
                }
                Step::Client(Err(e)) => break Err(TapError::Client(e)),
                Step::Upstream(Ok(0)) => break Ok(TapEnd::UpstreamClosed),
                Step::Upstream(Ok(n)) => {
                    let bytes = Bytes::copy_from_slice(&from_upstream[..n]);
                    if let Some(c) = &self.capture {
                        c.chunk(at, Direction::Tx, bytes.clone());
                    }
                    // Nobody there to read it: a real line's bytes would be lost too, and
                    // queueing them would hand stale bytes to the next client.
                    if client.client_present() == Some(false) {
                        debug!(tap = %self.name, bytes = n, "no client: device output dropped");
                    } else if let Err(e) = client.write_all(&bytes).await {
                        break Err(TapError::Client(e));
                    }
                    last.1 = at;
                    if let Some(cutter) = tx.as_mut() {
                        self.cut(at, Direction::Tx, cutter, &bytes);
                    }
                }
                Step::Upstream(Err(e)) => break Err(TapError::Upstream(e)),
            }
        };
        let at = Instant::now();
        match &result {
            Ok(TapEnd::Cancelled) => {}
            Ok(end) => self.note(at, format!("tap stopped: {end:?}")),
            Err(e) => self.note(at, format!("tap stopped: {e}")),
        }
        result
    }

    /// When the next silence gap ends, and in which direction: the first of the directions
    /// (requests, replies; each with when it last brought bytes) whose framer waits on one.
    fn silence_due(
        &self,
        settings: &LineSettings,
        directions: [(Option<&Cutter>, Instant); 2],
    ) -> Option<(Instant, Direction)> {
        directions
            .into_iter()
            .zip([Direction::Rx, Direction::Tx])
            .filter_map(|((cutter, since), dir)| {
                let gap = cutter?.silence_gap(settings)?;
                Some((since + self.idle.unwrap_or(gap), dir))
            })
            .min_by_key(|(at, _)| *at)
    }

    /// `dir` stayed quiet through its framer's silence gap.
    fn on_silence(&self, at: Instant, dir: Direction, cutter: Option<&mut Cutter>) {
        if let Some(cutter) = cutter {
            let cuts = cutter.on_silence();
            self.emit_cuts(at, dir, cuts);
        }
    }

    fn note(&self, at: Instant, message: String) {
        if let Some(c) = &self.capture {
            c.record(&Record::Error {
                t: c.since_start(at),
                message,
            });
        }
    }

    fn on_event<U: Upstream>(
        &self,
        at: Instant,
        event: PortEvent,
        upstream: &mut U,
        rx: Option<&mut Cutter>,
    ) {
        if event.reset_input
            && let Some(cutter) = rx
        {
            cutter.reset();
        }
        if let LineEvent::Settings(settings) = event.event {
            match upstream.follow(&settings) {
                Ok(Some(applied)) => info!(tap = %self.name, %applied, "upstream follows"),
                Ok(None) => {}
                Err(e) => {
                    warn!(tap = %self.name, %settings, error = %e, "upstream cannot follow");
                    self.emit(at, Seen::Event(event.event));
                    self.note(at, format!("upstream cannot follow {settings}: {e}"));
                    return;
                }
            }
        }
        self.emit(at, Seen::Event(event.event));
    }

    fn cut(&self, at: Instant, dir: Direction, cutter: &mut Cutter, bytes: &[u8]) {
        let cuts = cutter.feed(bytes);
        self.emit_cuts(at, dir, cuts);
    }

    fn emit_cuts(&self, at: Instant, dir: Direction, cuts: Vec<Cut>) {
        for item in cuts {
            match item {
                Ok((frame, wire)) => {
                    let shown = match dir {
                        Direction::Rx => frame,
                        Direction::Tx => wire,
                    };
                    self.emit(at, Seen::Frame(dir, shown));
                }
                Err(e) => self.emit(at, Seen::FrameError(format!("{dir}: {e}"))),
            }
        }
    }
}

enum Step {
    /// A direction's framer asked for a silence gap, and it passed.
    Silence(Direction),
    Event(PortEvent),
    Client(io::Result<usize>),
    Upstream(io::Result<usize>),
}

/// One direction's framer and its buffer: bytes in, frames out.
///
/// Each frame comes with the exact bytes the framer consumed for it (terminator, checksum, and
/// any filler before it), so a reply can be replayed byte for byte.
pub struct Cutter {
    framer: BoxFramer,
    buf: BytesMut,
    /// Bytes at the front of `buf` already consumed by calls that produced no frame (a
    /// discarded overlong frame), to be counted into the next frame's wire bytes: kept so that
    /// wire bytes concatenate back to the stream.
    pending: BytesMut,
    /// Whether bytes a reported error consumed are counted into the next frame's wire bytes
    /// (see [`Cutter::pair`]).
    carry_reported: bool,
}

impl std::fmt::Debug for Cutter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cutter")
            .field("buffered", &self.buf.len())
            .finish_non_exhaustive()
    }
}

/// A frame and its wire bytes, or why input was discarded.
pub type Cut = Result<(Bytes, Bytes), FrameError>;

impl Cutter {
    /// A cutter with a fresh framer of `framing`.
    #[must_use]
    pub fn new(framing: &Framing) -> Self {
        Self::with(framing.build())
    }

    /// The cutters of a recorded line's requests (`rx`) and replies (`tx`), built together
    /// ([`Framing::build_pair`]): a protocol whose replies are cut by the request they answer
    /// (Modbus RTU) shares what the request side cut with the reply side.
    ///
    /// With such a pair, bytes a framer reports dropping (noise, a reply whose CRC fails) stay
    /// out of the next frame's wire bytes, so that a recorded reply is the reply alone, as
    /// replay and learn need it; the capture's chunks still hold every byte. Otherwise (two
    /// independent framers, as [`Cutter::new`] makes them) they are counted into the next
    /// frame, so that frames concatenate back to the stream.
    #[must_use]
    pub fn pair(framing: &Framing) -> (Self, Self) {
        let (requests, replies) = framing.build_pair();
        let carry_reported = !framing.has_pair();
        let cutter = |framer| Self {
            carry_reported,
            ..Self::with(framer)
        };
        (cutter(requests), cutter(replies))
    }

    fn with(framer: BoxFramer) -> Self {
        Self {
            framer,
            buf: BytesMut::new(),
            pending: BytesMut::new(),
            carry_reported: true,
        }
    }

    /// How long the line must stay quiet, with bytes buffered, before
    /// [`on_silence`](Self::on_silence): the framer's
    /// [`Framer::silence_gap`](serialtwin_core::Framer::silence_gap). `None`: silence means
    /// nothing now.
    #[must_use]
    pub fn silence_gap(&self, settings: &LineSettings) -> Option<Duration> {
        if self.buf.is_empty() {
            return None;
        }
        self.framer.silence_gap(settings)
    }

    /// The line stayed quiet for [`silence_gap`](Self::silence_gap): what the framer makes of
    /// what it holds, then every frame behind it.
    pub fn on_silence(&mut self) -> Vec<Cut> {
        let before = self.buf.clone();
        let first = self.framer.on_silence(&mut self.buf);
        let used = before.len() - self.buf.len();
        self.pending.extend_from_slice(&before[..used]);
        let mut out = Vec::new();
        match first {
            Ok(Some(frame)) => out.push(Ok((frame, self.pending.split().freeze()))),
            Ok(None) => {}
            Err(e) => {
                if !self.carry_reported {
                    self.pending.clear();
                }
                out.push(Err(e));
            }
        }
        if !self.buf.is_empty() {
            out.extend(self.feed(&[]));
        }
        out
    }

    /// Add `bytes`; return every frame now complete, in order.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Cut> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        loop {
            let before = self.buf.clone();
            match self.framer.decode(&mut self.buf) {
                Ok(Some(frame)) => {
                    let used = before.len() - self.buf.len();
                    self.pending.extend_from_slice(&before[..used]);
                    out.push(Ok((frame, self.pending.split().freeze())));
                }
                Ok(None) => {
                    let used = before.len() - self.buf.len();
                    self.pending.extend_from_slice(&before[..used]);
                    break;
                }
                Err(e) => {
                    let used = before.len() - self.buf.len();
                    self.pending.extend_from_slice(&before[..used]);
                    if !self.carry_reported {
                        self.pending.clear();
                    }
                    out.push(Err(e));
                    if self.buf.is_empty() {
                        break;
                    }
                }
            }
        }
        out
    }

    /// Forget a partial frame.
    pub fn reset(&mut self) {
        self.framer.reset();
        self.buf.clear();
        self.pending.clear();
    }

    /// Bytes buffered that are not yet part of a frame.
    #[must_use]
    pub fn buffered(&self) -> usize {
        self.buf.len() + self.pending.len()
    }
}
