//! The serving loop: one transport, one framer, one line, one device.
//!
//! Generic over the [`Transport`], so the same device is served on a pty, a TCP socket or an
//! in-memory `duplex` in a unit test. It stops when the [`CancellationToken`] fires, when the
//! transport ends, or when the device panics (that port only; the panic is logged with the
//! port's name and returned as [`ServeError::DevicePanicked`]).

use std::future::poll_fn;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures::FutureExt;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};
use tracing::{debug, error, warn};

use crate::clock::SimClock;
#[cfg(doc)]
use crate::device::{AsyncDevice, Device};
use crate::device::{Body, Context, Replies, Reply};
use crate::fault::{self, FaultKind, FaultRule, Faults};
use crate::framer::{BoxFramer, FrameError, Framer, Framing};
use crate::gate::{Gates, Source};
use crate::line::{Line, LineConfig};
use crate::observe::{Direction, Observation, Observer, Seen};
use crate::pty::PtyPort;
use crate::pty::ReadNow;
use crate::pty::lane::{HOT, Lent, Scratch, Step};
use crate::settings::{LineEvent, LineSettings, Session};
use crate::spare::Spare;
use crate::transport::{PortEvent, Transport};

mod outbox;

use outbox::{Drawn, Outbox, Progress, Queued};

/// Bytes reserved per read: small, because a serial request is small and every port pays it.
const READ_CHUNK: usize = 128;
/// The most a read grows to while a client streams (each full read doubles the room).
const MAX_READ_CHUNK: usize = 4096;
/// The most client input held unanswered while replies are still going out: past it the port
/// stops reading, and the client's writes wait in the pty (it still sees line events).
const MAX_HELD_INPUT: usize = 16 * 1024;

/// Commands the outside world sends to a running port.
#[derive(Debug)]
#[non_exhaustive]
pub enum Control {
    /// Send these bytes to the client exactly as given (after the line stage).
    SendRaw(Bytes),
    /// Encode this frame with the port's framer and send it, as if the device had.
    SendFrame(Bytes),
    /// Add a fault rule.
    Fault(FaultRule),
    /// Remove every fault rule.
    ClearFaults,
    /// Pull the plug now; the port comes back after this long (ports served by a [`Fleet`]
    /// only; elsewhere the serving loop ends).
    ///
    /// [`Fleet`]: crate::fleet::Fleet
    Unplug(Duration),
    /// Change a device value by name (see [`Device::set`]); the reply says whether it took.
    Set {
        /// The value's name, e.g. `grid`.
        key: String,
        /// The new value, e.g. `off`.
        value: String,
        /// Where the outcome goes.
        reply: Option<tokio::sync::oneshot::Sender<Result<(), String>>>,
    },
}

/// A [`Control`] command, and where to say how it went.
#[derive(Debug)]
pub(crate) struct Order {
    pub(crate) control: Control,
    /// Told once the command took effect (`Ok`) or was refused (why).
    pub(crate) done: Option<tokio::sync::oneshot::Sender<Result<(), String>>>,
}

impl PartialEq for Control {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::SendRaw(a), Self::SendRaw(b)) | (Self::SendFrame(a), Self::SendFrame(b)) => {
                a == b
            }
            (Self::Fault(a), Self::Fault(b)) => a == b,
            (Self::ClearFaults, Self::ClearFaults) => true,
            (Self::Unplug(a), Self::Unplug(b)) => a == b,
            (
                Self::Set {
                    key: k1, value: v1, ..
                },
                Self::Set {
                    key: k2, value: v2, ..
                },
            ) => k1 == k2 && v1 == v2,
            _ => false,
        }
    }
}

/// Why serving stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The transport failed.
    #[error("i/o error on port {port}: {source}")]
    Io {
        /// The port's name.
        port: Arc<str>,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The device's handler panicked; this port stopped, the others go on.
    #[error("device on port {port} panicked: {message}")]
    DevicePanicked {
        /// The port's name.
        port: Arc<str>,
        /// The panic message.
        message: String,
    },
}

/// How to serve one port.
#[derive(Clone)]
pub struct ServeConfig {
    /// The port's name (logs, observations, the device's context).
    pub name: Arc<str>,
    /// Framing to use instead of the device's own.
    pub framing: Option<Framing>,
    /// Line to use instead of the device's own.
    pub line: Option<LineConfig>,
    /// The simulated wall clock the device sees.
    pub clock: SimClock,
    /// Seed of the port's random source.
    pub seed: u64,
    /// Who sees every frame and event.
    pub observers: Vec<Arc<dyn Observer>>,
    /// Faults injected from the start.
    pub faults: Faults,
}

impl ServeConfig {
    /// A configuration for a port called `name`: the device's framing and line, the real
    /// clock, seed 0, no observers.
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Self {
            name: name.into(),
            framing: None,
            line: None,
            clock: SimClock::real(),
            seed: 0,
            observers: Vec::new(),
            faults: Faults::new(),
        }
    }

    /// Add an observer.
    #[must_use]
    pub fn observe(mut self, observer: impl Observer) -> Self {
        self.observers.push(Arc::new(observer));
        self
    }
}

impl std::fmt::Debug for ServeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeConfig")
            .field("name", &self.name)
            .field("framing", &self.framing)
            .field("line", &self.line)
            .field("clock", &self.clock)
            .field("seed", &self.seed)
            .field("observers", &self.observers.len())
            .field("faults", &self.faults)
            .finish()
    }
}

/// Why a serving session ended without error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Cancelled, or the transport ended.
    Done,
    /// An unplug was asked for: the owner closes the transport and brings a new one after
    /// this long.
    Unplug(Duration),
    /// Nothing to do but wait, and nothing a lane cannot do: the owner may lend the port to
    /// its lane (see [`crate::pty::lane`]), and calls `run` again when it has it back.
    Lend,
}

/// Where [`Server::answer_ready`] stopped.
enum Answering {
    /// Every complete request is answered, or replies wait in the outbox before the next is.
    Drained,
    /// The device must wait to answer this one ([`Server::answer_later`]).
    Later(Bytes),
    /// The device panicked (logged): the port stops with this message.
    Panicked(String),
    /// A fault pulled the plug.
    Unplugged,
}

/// What answering a request without waiting left to do.
enum Answered {
    /// Nothing: the replies, if any, are in the pending write.
    Done,
    /// Replies that wait or pass through the line stage or faults: [`Server::deliver`] them,
    /// the first after this latency.
    Deliver(Duration),
    /// The device panicked (logged): the port stops with this message.
    Panicked(String),
}

/// A request frame: cut out of the receive buffer, or still in it (a lane, see
/// [`Framer::peek`]).
enum Request<'a> {
    Cut(Bytes),
    InPlace(&'a [u8]),
}

impl Request<'_> {
    fn as_slice(&self) -> &[u8] {
        match self {
            Self::Cut(b) => b,
            Self::InPlace(s) => s,
        }
    }

    /// The frame as `Bytes` (a copy only if it is still in the buffer).
    fn to_bytes(&self) -> Bytes {
        match self {
            Self::Cut(b) => b.clone(),
            Self::InPlace(s) => Bytes::copy_from_slice(s),
        }
    }

    fn into_bytes(self) -> Bytes {
        match self {
            Self::Cut(b) => b,
            Self::InPlace(s) => Bytes::copy_from_slice(s),
        }
    }
}

/// What one read of the transport produced.
enum Recv {
    Data,
    Event(PortEvent),
    Eof,
}

/// What ended a [`Server::wait`].
enum Wake {
    Cancelled,
    /// A reply is due, or everything was sent, or writing failed.
    Output(std::io::Result<Progress>),
    Read(std::io::Result<Recv>),
    /// A command, or `None` once the channel closed.
    Control(Option<Order>),
    Silence,
    Unprompted(Option<Reply>),
}

/// Serve `device` on `io` until `cancel` fires or the transport ends.
///
/// Handler errors are logged (and observed) and serving goes on; an I/O error ends it.
///
/// # Errors
/// [`ServeError::Io`] if the transport fails; [`ServeError::DevicePanicked`] if the device
/// panicked.
pub async fn serve<D: Body, T: Transport>(
    device: D,
    io: T,
    config: ServeConfig,
    cancel: CancellationToken,
) -> Result<(), ServeError> {
    serve_with_control(device, io, config, cancel, None).await
}

/// [`serve`], also obeying [`Control`] commands from `control`.
///
/// # Errors
/// As [`serve`].
pub async fn serve_with_control<D: Body, T: Transport>(
    device: D,
    io: T,
    config: ServeConfig,
    cancel: CancellationToken,
    control: Option<mpsc::Receiver<Control>>,
) -> Result<(), ServeError> {
    let mut server = Server::new(device, io, config);
    let mut control = control.map(ControlRx::Plain);
    match server.run(&cancel, &mut control).await? {
        // (`Lend` is never returned here: this server has no lane.)
        Outcome::Done | Outcome::Lend => Ok(()),
        Outcome::Unplug(_) => {
            warn!(port = %server.name, "unplug asked for on a transport that cannot come back: serving ends");
            Ok(())
        }
    }
}

/// The state of one serving loop. It outlives its transport: after an unplug the owner
/// puts a new transport in with [`Server::replug`], and the device's state, the faults and
/// the context go on.
#[repr(C, align(64))]
pub(crate) struct Server<D, T> {
    // Laid out as declared (`repr(C)`, on a cache line's start): what a lane touches for every
    // request first, so that a port whose state has gone cold on a big fleet costs a few cache
    // lines per request rather than one per field (see `pty::lane`). The transport's own
    // fields are laid out the same way.
    /// Received bytes not yet decoded.
    rx: BytesMut,
    /// Encoded replies waiting to go out in one write (see [`Server::coalescing`]).
    coalesced: BytesMut,
    /// Reply buffer, reused for every request.
    replies: Replies,
    framer: BoxFramer,
    /// How much room the next read gets: small while requests are small, growing while reads
    /// keep filling it (a client streaming data), back to small once they do not.
    read_chunk: usize,
    /// Whether the device answers every request at once and sends nothing unprompted: what a
    /// lane can serve (read once, when serving starts).
    lane_device: bool,
    /// Whether the device sends unprompted frames (asked for only if it does).
    streams: bool,
    /// Whether replies go straight into the pending write: no faults, nobody watching, no
    /// latency or pacing, the client at the line's rate. Worked out again whenever one of
    /// those changes (see [`Server::refresh_direct`]), so that answering a request asks one
    /// question instead of five.
    direct: std::cell::Cell<bool>,
    /// Whether an observer was watching when last asked (asked again when the watch gate opens).
    watching: std::cell::Cell<bool>,
    io: T,
    device: D,
    ctx: Context,
    /// A frame cut and waiting to be answered: one the framer completed on a gap of silence,
    /// or one a lane left for the task (its device must wait to answer it).
    waiting: Option<Bytes>,
    /// The injected faults.
    faults: Faults,
    /// The request being answered (for per-command faults); `None` while sending unprompted.
    request: Option<Bytes>,
    /// Set when a fault pulled the plug; the loop returns [`Outcome::Unplug`].
    unplug: Option<Duration>,
    line: Line,
    observers: Vec<Arc<dyn Observer>>,
    pub(crate) name: Arc<str>,
    /// Encoding buffer, reused for every reply.
    tx: BytesMut,
    /// When bytes last arrived (for silence-delimited framing).
    last_rx: Instant,
    /// Cancellation, control and the observers' interest, looked at only after they woke us.
    gates: Gates,
    /// Whether the transport can go to a lane now; `None`: this server is never lent.
    can_lend: Option<fn(&T) -> bool>,
    /// A panic seen on a lane, for the task to report.
    panicked: Option<String>,
    /// Replies and bytes not yet sent (everything that waits: latency, delays, pacing, faults,
    /// a full line).
    outbox: Outbox,
    /// An incomplete request waiting in `rx`: when its last bytes came, and how many it has.
    /// It is dropped when a session begins or ends, or when more bytes come after the line's
    /// frame timeout (see [`LineConfig::frame_timeout`]).
    partial: Option<(Instant, usize)>,
    /// How many bytes at the end of `rx` were read since the session notes were last brought up
    /// to date: they may be a client's that opened after a departure not yet reported, so a
    /// departure does not take them for the departed client's (see [`Server::departed`]).
    unconfirmed: usize,
}

/// What a lane touches per request fits the first three cache lines of a `Server` on a pty
/// (checked when compiling: a field added in front has to earn its place).
const _: () =
    assert!(std::mem::offset_of!(Server<(), PtyPort>, io) + PtyPort::LANE_HOT <= LANE_HOT);

/// See the layout of [`Server`] and [`Lent::hot`].
const LANE_HOT: usize = 3 * 64;

impl<D: Body, T: Transport> Server<D, T> {
    pub(crate) fn new(device: D, io: T, config: ServeConfig) -> Self {
        let framer = config
            .framing
            .clone()
            .unwrap_or_else(|| device.body_framing())
            .build();
        let line = Line::new(config.line.unwrap_or_else(|| device.body_line()));
        let initial = io.settings().unwrap_or_else(|| LineSettings {
            baud: line.config().baud.unwrap_or(LineSettings::default().baud),
            ..LineSettings::default()
        });

        let session = Session {
            open: io.client_present(),
            count: u64::from(io.client_present() == Some(true)),
        };

        let ctx = Context::new(
            config.name.clone(),
            initial,
            session,
            config.clock,
            config.seed,
        );
        let streams = device.body_sends_unprompted();
        let lane_device = device.answers_at_once() && !streams;
        let gates = Gates::new();
        for o in &config.observers {
            o.when_watched(gates.waker());
        }
        Self {
            device,
            io,
            faults: config.faults,
            request: None,
            unplug: None,
            framer,
            line,
            ctx,
            observers: config.observers,
            name: config.name,
            rx: BytesMut::with_capacity(READ_CHUNK),
            tx: BytesMut::new(),
            replies: Replies::new(),
            last_rx: Instant::now(),
            waiting: None,
            coalesced: BytesMut::new(),
            read_chunk: READ_CHUNK,
            gates,
            watching: std::cell::Cell::new(false),
            lane_device,
            streams,
            can_lend: None,
            panicked: None,
            direct: std::cell::Cell::new(false),
            outbox: Outbox::default(),
            partial: None,
            unconfirmed: 0,
        }
    }

    /// Let [`Server::run`] return [`Outcome::Lend`] when the port is quiet and `can_lend` says
    /// the transport may go too.
    pub(crate) fn lend_when(&mut self, can_lend: fn(&T) -> bool) {
        self.can_lend = Some(can_lend);
    }

    /// Put a new transport in after an unplug; returns the old one.
    pub(crate) fn replug(&mut self, io: T) -> T {
        self.rx.clear();
        self.framer.reset();
        self.waiting = None;
        self.partial = None;
        // What was on its way out is lost with the line.
        self.outbox.clear();
        self.coalesced.clear();
        self.line.abort(Instant::now());
        if let Some(settings) = io.settings() {
            self.ctx.set_settings(settings);
        }
        self.refresh_direct();
        let session = Session {
            open: io.client_present(),
            ..self.ctx.session()
        };
        self.ctx.set_session(session);
        std::mem::replace(&mut self.io, io)
    }

    /// Serve until cancelled, the transport ends, or an unplug is asked for.
    pub(crate) async fn run(
        &mut self,
        cancel: &CancellationToken,
        control: &mut Option<ControlRx>,
    ) -> Result<Outcome, ServeError> {
        self.unplug = None;
        // One cancellation future for the whole loop, and it and the control channel behind
        // gates: they are polled only after they woke the task, not on every pass (see `gate`).
        let future = std::pin::pin!(cancel.cancelled());
        // A new cancellation future and perhaps a new control channel: look at all of them.
        self.gates.open_all();
        let mut cancelled = Cancelled {
            future,
            gates: self.gates.clone(),
        };
        loop {
            // What a lane left for the task (see `Lent for Server`).
            if let Some(message) = self.panicked.take() {
                return Err(self.device_panicked(message));
            }
            if self.unplug.is_some() {
                return Ok(self.outcome());
            }
            // Answer everything complete before waiting again; a request whose device must
            // wait is awaited here, and answering goes on after it.
            loop {
                match self.answer_ready() {
                    Answering::Drained => break,
                    Answering::Later(frame) => {
                        if self.answer_later(frame, &mut cancelled).await?.is_none() {
                            return Ok(self.outcome());
                        }
                    }
                    Answering::Panicked(message) => return Err(self.device_panicked(message)),
                    // Pulled out mid-batch: requests the client already sent are lost with
                    // the line (`replug` forgets them), as on real hardware.
                    Answering::Unplugged => return Ok(self.outcome()),
                }
            }
            // An idle port keeps no buffers (see `spare`).
            Spare::Read.give_back(&mut self.rx);
            // Replies to everything that one read brought go out in one write.
            if !self.coalesced.is_empty() {
                self.write_coalesced().await?;
            }
            if self.lendable(control.as_ref()) {
                return Ok(Outcome::Lend);
            }
            let held = self.rx.len();
            match self.wait(&mut cancelled, control).await {
                Wake::Cancelled => return Ok(self.outcome()),
                Wake::Read(r) => match r.map_err(|e| self.io_error(e))? {
                    Recv::Data => {
                        // Only silence-delimited framing needs to know when (a clock read
                        // per request otherwise).
                        if self.framer.silence_gap(&self.ctx.settings()).is_some() {
                            self.last_rx = Instant::now();
                        }
                        self.take_in(held, true);
                    }
                    Recv::Event(event) => self.on_event(event, self.rx.len()),
                    Recv::Eof => {
                        debug!(port = %self.name, "transport closed");
                        return Ok(self.outcome());
                    }
                },
                Wake::Output(Ok(Progress::Due)) => self.release(),
                Wake::Output(Err(e)) => return Err(self.io_error(e)),
                Wake::Control(None) => *control = None,
                Wake::Control(Some(order)) => self.obey(order),
                Wake::Silence => self.on_silence(),
                Wake::Output(Ok(Progress::Sent)) | Wake::Unprompted(None) => {}
                Wake::Unprompted(Some(reply)) => self.send(reply),
            }
        }
    }

    /// Whether the port could be served by a lane now: a device that answers without waiting,
    /// nothing pending, nothing to apply to replies, nobody watching, no silence framing, no
    /// source waiting to be looked at, and a transport that says it can go.
    fn lendable(&self, control: Option<&ControlRx>) -> bool {
        self.can_lend.is_some()
            && self.lane_device
            && self.unplug.is_none()
            && self.waiting.is_none()
            && self.coalesced.is_empty()
            && self.outbox.is_empty()
            && self.gates_quiet(control)
            && self.quiet_now()
    }

    /// Whether cancellation and the control channel have nothing the task has not seen.
    pub(crate) fn gates_quiet(&self, control: Option<&ControlRx>) -> bool {
        !self.gates.is_open(Source::Cancel)
            && (control.is_none() || !self.gates.is_open(Source::Control))
    }

    /// What a lane needs of the port, looked at again after each of its requests: replies go
    /// straight out, the framer does not cut on silence, the transport can stay.
    fn quiet_now(&self) -> bool {
        self.sends_directly()
            && self.framer.silence_gap(&self.ctx.settings()).is_none()
            && self.can_lend.is_some_and(|can_lend| can_lend(&self.io))
    }

    fn device_panicked(&self, message: String) -> ServeError {
        ServeError::DevicePanicked {
            port: self.name.clone(),
            message,
        }
    }

    /// How a session that ended without error ended.
    fn outcome(&mut self) -> Outcome {
        match self.unplug.take() {
            Some(after) => Outcome::Unplug(after),
            None => Outcome::Done,
        }
    }

    /// Wait for the next thing to do: cancellation, output due or sent, input or a line event,
    /// a control command, the end of a silence gap, or an unprompted frame from the device —
    /// looked at in that order. One `poll_fn` rather than a `select!`: this runs twice per request, and every
    /// instruction here is paid by every port.
    async fn wait(
        &mut self,
        cancelled: &mut Cancelled<'_, '_>,
        control: &mut Option<ControlRx>,
    ) -> Wake {
        let silence = self.silence_deadline();
        let Self {
            device,
            ctx,
            io,
            rx,
            read_chunk,
            gates,
            outbox,
            streams,
            ..
        } = self;
        // While replies wait to go out, input is read up to a limit (line events still come).
        let read = outbox.is_empty() || rx.len() < MAX_HELD_INPUT;
        // The device's future lives for the whole wait (it must be cancel-safe, not restarted
        // on every wake-up); a timer exists only while a silence gap is running.
        let mut unprompted = std::pin::pin!(streams.then(|| device.body_unprompted(ctx)));
        let mut silence = std::pin::pin!(silence.map(tokio::time::sleep_until));
        poll_fn(|cx| {
            if cancelled.poll(cx).is_ready() {
                return Poll::Ready(Wake::Cancelled);
            }
            if let Poll::Ready(progress) = outbox.poll_write(io, cx) {
                return Poll::Ready(Wake::Output(progress));
            }
            if let Poll::Ready(r) = poll_recv(io, rx, read_chunk, read, cx) {
                return Poll::Ready(Wake::Read(r));
            }
            if let Some(control) = control.as_mut()
                && let Poll::Ready(cmd) =
                    gates.poll(Source::Control, cx, |cx| control.poll_recv(cx))
            {
                return Poll::Ready(Wake::Control(cmd));
            }
            if let Some(sleep) = silence.as_mut().as_pin_mut()
                && sleep.poll(cx).is_ready()
            {
                return Poll::Ready(Wake::Silence);
            }
            match unprompted.as_mut().as_pin_mut() {
                Some(unprompted) => unprompted.poll(cx).map(Wake::Unprompted),
                None => Poll::Pending,
            }
        })
        .await
    }

    /// Whether any observer is watching now (asked again only after one said it may be; on a
    /// lane nobody is, or the port would have been recalled).
    fn watched(&self) -> bool {
        if self.gates.take(Source::Watch) {
            self.watching
                .set(self.observers.iter().any(|o| o.is_watching()));
            self.refresh_direct();
        }
        self.watching.get()
    }

    /// Work out again whether replies go straight out (see [`Server::direct`]): after faults
    /// came or went, the client changed its settings, or an observer's interest changed.
    fn refresh_direct(&self) {
        self.direct.set(
            self.faults.is_empty() && !self.watching.get() && self.coalescing(&self.ctx.settings()),
        );
    }

    /// Tell the observers what was seen; `seen` is only called if one of them is watching.
    fn observe(&self, seen: impl FnOnce() -> Seen) {
        if !self.watched() {
            return;
        }
        let observation = Observation {
            at: Instant::now(),
            port: self.name.clone(),
            seen: seen(),
        };
        for o in &self.observers {
            o.observe(&observation);
        }
    }

    fn io_error(&self, source: std::io::Error) -> ServeError {
        ServeError::Io {
            port: self.name.clone(),
            source,
        }
    }

    /// The next complete frame, logging (and observing) discarded input.
    fn next_frame(&mut self) -> Option<Bytes> {
        // A framer is asked only when there are bytes to look at (once per request less).
        while !self.rx.is_empty() {
            match self.framer.decode(&mut self.rx) {
                Ok(frame) => return frame,
                Err(e) => {
                    warn!(port = %self.name, error = %e, "input discarded");
                    self.observe(|| Seen::FrameError(e.to_string()));
                }
            }
        }
        None
    }

    fn silence_deadline(&self) -> Option<Instant> {
        if self.rx.is_empty() {
            return None;
        }
        let gap = self.framer.silence_gap(&self.ctx.settings())?;
        Some(self.last_rx + gap)
    }

    fn on_silence(&mut self) {
        match self.framer.on_silence(&mut self.rx) {
            Ok(Some(frame)) => {
                self.waiting = Some(frame);
            }
            Ok(None) => {}
            Err(e) => {
                warn!(port = %self.name, error = %e, "input discarded after silence");
                self.observe(|| Seen::FrameError(e.to_string()));
            }
        }
    }

    /// Every client left (some may have opened again since): what was still to go out was for
    /// them, the reply being paced stops at its next piece, and what they sent is theirs. A
    /// client that opens after this reads nothing from before; one that opened before may read
    /// at most the rest of the piece that was on the wire.
    fn departed(&mut self, event: &PortEvent, old: usize) {
        self.coalesced.clear();
        if self.outbox.clear() {
            debug!(port = %self.name, "clients left: their unsent replies dropped");
        }
        self.line.abort(Instant::now());
        self.waiting = None;
        self.partial = None;
        // Nobody there: all of it goes. Otherwise what was read before the read that brought
        // the news, and before the notes were last brought up to date, is the departed
        // clients' (complete requests not yet answered, an unfinished one); what came later
        // may be the new client's request (one it wrote in two pieces, too).
        let confirmed = self.rx.len() - self.unconfirmed.min(self.rx.len());
        let theirs = if event.reset_input {
            self.rx.len()
        } else {
            old.min(confirmed)
        };
        if theirs > 0 {
            self.rx.advance(theirs);
            self.framer.reset();
            debug!(port = %self.name, bytes = theirs, "departed clients' input dropped");
        }
        // What came with the news, and what the line held when it came, may be the next
        // client's first request (mppsolar's hidraw path writes one in two reports): kept.
        self.rx.extend_from_slice(&event.left_behind);
        self.unconfirmed = self.rx.len();
    }

    /// A line event. `old`: how many bytes at the start of `rx` were read before the read
    /// that brought it (all of them, when it came without a read).
    fn on_event(&mut self, event: PortEvent, old: usize) {
        if event.event == LineEvent::Closed {
            self.departed(&event, old);
        }
        match &event.event {
            LineEvent::Opened => {
                let s = self.ctx.session();
                self.ctx.set_session(Session {
                    open: Some(true),
                    count: s.count + 1,
                });
            }
            LineEvent::Closed => {
                let s = self.ctx.session();
                self.ctx.set_session(Session {
                    open: Some(false),
                    ..s
                });
            }
            LineEvent::Settings(settings) => {
                self.ctx.set_settings(*settings);
                self.refresh_direct();
            }
            LineEvent::Flush { .. } | LineEvent::Flow(_) => {}
        }
        debug!(port = %self.name, event = %event.event, "line event");
        self.device.body_on_event(&event.event, &mut self.ctx);
        self.observe(|| Seen::Event(event.event));
    }

    /// Answer every complete request in the receive buffer that the device answers at once,
    /// in order: the one answering core, for the port's task and its lane alike. It never
    /// writes: replies that go straight out wait in the pending write (`coalesced`), the rest in
    /// the outbox with their release times — and while anything waits there (pacing, latency,
    /// delays, faults), the next request is answered only once it has left, as a device's UART
    /// sends one answer at a time.
    ///
    /// Where the framer can say, a request is answered where it lies in the buffer: no `Bytes`
    /// cut out of it and dropped again per request.
    fn answer_ready(&mut self) -> Answering {
        while self.outbox.is_empty() {
            let answered = if let Some(frame) = self.waiting.take() {
                self.answer_frame(Request::Cut(frame))
            } else if self.rx.is_empty() {
                break;
            } else if let Some(at) = self.framer.peek(&self.rx) {
                let rx = std::mem::take(&mut self.rx);
                let answered = self.answer_frame(Request::InPlace(&rx[at.frame]));
                self.rx = rx;
                if at.used == self.rx.len() {
                    // The buffer's start stays where it is for the next read.
                    self.rx.clear();
                } else {
                    self.rx.advance(at.used);
                }
                answered
            } else if let Some(frame) = self.next_frame() {
                self.answer_frame(Request::Cut(frame))
            } else {
                break;
            };
            match answered {
                Ok(Answered::Done) => {}
                Ok(Answered::Deliver(latency)) => self.queue_replies(latency),
                Ok(Answered::Panicked(message)) => return Answering::Panicked(message),
                Err(frame) => return Answering::Later(frame),
            }
            if self.unplug.is_some() {
                return Answering::Unplugged;
            }
        }
        if self.outbox.is_empty() {
            self.note_partial();
        }
        Answering::Drained
    }

    /// Hand a request the device must wait to answer to it, and queue its replies; `None` if
    /// cancelled meanwhile.
    ///
    /// The device's future is awaited in place, not boxed: most finish in their first poll.
    async fn answer_later(
        &mut self,
        frame: Bytes,
        cancelled: &mut Cancelled<'_, '_>,
    ) -> Result<Option<()>, ServeError> {
        let handled = {
            let Self {
                device,
                ctx,
                replies,
                ..
            } = self;
            let handling =
                AssertUnwindSafe(device.answer_later(frame, ctx, replies)).catch_unwind();
            cancelled.or(std::pin::pin!(handling)).await
        };
        let Some(handled) = handled else {
            return Ok(None);
        };
        let answered = match handled {
            Ok(result) => {
                let direct = self.sends_directly();
                self.handled(result, direct)
            }
            Err(panic) => self.panicking(panic.as_ref()),
        };
        match answered {
            Answered::Done => Ok(Some(())),
            Answered::Deliver(latency) => {
                self.queue_replies(latency);
                Ok(Some(()))
            }
            Answered::Panicked(message) => Err(self.device_panicked(message)),
        }
    }

    /// Answer `frame` if the device answers at once; else give it back, as `Bytes`, for
    /// [`Server::answer_later`].
    ///
    /// While replies go straight out (see [`Server::direct`]) there is nothing to do before the
    /// device answers: nobody to show the frame to, no faults to match it against, the client
    /// at the line's rate.
    fn answer_frame(&mut self, frame: Request<'_>) -> Result<Answered, Bytes> {
        let direct = self.sends_directly();
        if !direct {
            self.observe(|| Seen::Frame(Direction::Rx, frame.to_bytes()));
            // Kept for per-command faults only (a reference count less per request otherwise).
            self.request = (!self.faults.is_empty()).then(|| frame.to_bytes());
            if !self.line.accepts_input(&self.ctx.settings()) {
                debug!(port = %self.name, "client at the wrong baud rate: request not understood");
                return Ok(Answered::Done);
            }
        } else if self.request.is_some() {
            self.request = None;
        }
        self.replies.clear();
        let Self {
            device,
            ctx,
            replies,
            ..
        } = self;
        let request = frame.as_slice();
        match std::panic::catch_unwind(AssertUnwindSafe(|| {
            device.answer_now(request, ctx, replies)
        })) {
            Ok(Some(result)) => Ok(self.handled(result, direct)),
            Ok(None) => Err(frame.into_bytes()),
            Err(panic) => Ok(self.panicking(panic.as_ref())),
        }
    }

    fn panicking(&self, panic: &(dyn std::any::Any + Send)) -> Answered {
        let message = panic_message(panic);
        error!(port = %self.name, %message, "device panicked; port stopped");
        Answered::Panicked(message)
    }

    /// The device answered: log its failure, and send its replies straight out if nothing
    /// stands between them and the line (`direct`, see [`Server::direct`]).
    fn handled(&mut self, result: Result<(), D::Error>, direct: bool) -> Answered {
        if let Err(e) = result {
            warn!(port = %self.name, error = %e, "device handler failed");
            self.observe(|| Seen::HandlerError(e.to_string()));
        }
        if self.replies.is_empty() {
            return Answered::Done;
        }
        if direct && self.replies.as_slice().iter().all(|r| r.delay.is_zero()) {
            // The common case: every reply goes out with the next write, encoded in place.
            let mut replies = std::mem::take(&mut self.replies);
            for reply in replies.as_slice() {
                self.send_directly(reply);
            }
            replies.clear();
            self.replies = replies;
            return Answered::Done;
        }
        let latency = self.line.config().latency.sample(self.ctx.rng());
        Answered::Deliver(latency)
    }

    /// Queue the device's replies for the line stage and the faults, each after its delay (the
    /// first also after the line's `latency`).
    fn queue_replies(&mut self, latency: Duration) {
        let mut replies = std::mem::take(&mut self.replies);
        let mut after = latency;
        for reply in replies.drain() {
            after += reply.delay;
            self.outbox
                .push(Queued::new(reply, after, self.request.clone()));
            after = Duration::ZERO;
        }
        self.replies = replies;
    }

    /// Encode a reply, show it to the observers, and draw its faults: what to send and how long
    /// a delay fault holds it. `None` when there is nothing to send (it cannot be encoded, or a
    /// fault pulled the plug).
    fn draw(&mut self, queued: &Queued) -> Option<(Drawn, Duration)> {
        self.tx.clear();
        if let Err(e) = encode(&mut self.framer, &queued.reply, &mut self.tx) {
            self.unencodable(&e);
            return None;
        }
        let bytes = self.tx.split().freeze();
        self.observe(|| Seen::Frame(Direction::Tx, bytes.clone()));
        if self.faults.is_empty() {
            return Some((
                Drawn {
                    bytes,
                    faults: Vec::new(),
                },
                Duration::ZERO,
            ));
        }
        let mut faults = self.faults.draw(queued.request.as_deref(), self.ctx.rng());
        // Spent rules are gone: perhaps every one.
        self.refresh_direct();
        let mut delay = Duration::ZERO;
        for kind in &faults {
            self.observe(|| Seen::Fault(*kind));
            match *kind {
                FaultKind::Delay(extra) => delay += extra,
                FaultKind::Unplug(after) => {
                    self.unplug = Some(after);
                    self.outbox.clear();
                    return None;
                }
                _ => {}
            }
        }
        faults.retain(|kind| !matches!(kind, FaultKind::Delay(_)));
        Some((Drawn { bytes, faults }, delay))
    }

    /// The first reply in line is due: encode it, draw its faults, and put its bytes on the
    /// wire as the line would send them.
    fn release(&mut self) {
        let Some(mut queued) = self.outbox.take_due() else {
            return;
        };
        let now = Instant::now();
        let drawn = if let Some(drawn) = queued.drawn.take() {
            drawn
        } else {
            let Some((drawn, delay)) = self.draw(&queued) else {
                return;
            };
            if !delay.is_zero() {
                // Held back; clearing the faults lets it go at once.
                queued.drawn = Some(drawn);
                self.outbox.postpone(queued, now + delay);
                return;
            }
            drawn
        };
        let chunks = if drawn.faults.is_empty() {
            vec![drawn.bytes]
        } else {
            let checksum = self.framer.checksum_range(&drawn.bytes);
            fault::apply(
                &drawn.faults,
                &drawn.bytes,
                checksum.as_ref(),
                self.ctx.rng(),
            )
        };
        if self.io.client_present() == Some(false) {
            // Real hardware's bytes are lost when nobody listens; a pty would keep them for
            // the next client instead.
            debug!(port = %self.name, "no client: frame dropped");
            return;
        }
        let settings = self.ctx.settings();
        let Self {
            line, outbox, ctx, ..
        } = self;
        for chunk in chunks {
            line.schedule(chunk, &settings, ctx.rng(), now, |at, piece| {
                outbox.push_wire(at, piece);
            });
        }
    }

    /// Whether replies can be gathered and written together: only when the line does nothing
    /// to them (no pacing, no latency, no faults, no baud mismatch).
    fn coalescing(&self, settings: &LineSettings) -> bool {
        let line = self.line.config();
        !line.pace
            && line.latency == crate::line::Latency::None
            && self.faults.is_empty()
            && !line.mismatched(settings)
    }

    /// Write the gathered replies in one write, as far as the line takes them: what it does not
    /// take goes out first from the outbox, while the loop waits for everything else too.
    fn write_coalesced(&mut self) -> impl Future<Output = Result<(), ServeError>> {
        // A plain `poll_fn`, not an `async fn` around one: one state less to step through on
        // every request. Ready at its first poll.
        poll_fn(|cx| {
            let result = loop {
                if self.coalesced.is_empty() {
                    break Ok(());
                }
                match Pin::new(&mut self.io).poll_write(cx, &self.coalesced) {
                    Poll::Ready(Ok(0)) => break Err(std::io::ErrorKind::WriteZero.into()),
                    Poll::Ready(Ok(n)) if n == self.coalesced.len() => self.coalesced.clear(),
                    // Rare (a full line): only then does the buffer's start move.
                    Poll::Ready(Ok(n)) => self.coalesced.advance(n),
                    Poll::Ready(Err(e)) => break Err(e),
                    Poll::Pending => {
                        let rest = self.coalesced.split().freeze();
                        self.outbox.push_front_wire(rest);
                        break Ok(());
                    }
                }
            };
            // On an error too: what could not be written is lost with the line.
            self.coalesced.clear();
            Spare::Write.give_back(&mut self.coalesced);
            Poll::Ready(result.map_err(|e| self.io_error(e)))
        })
    }

    /// Carry out a control command at once, whatever the port is doing (a reply being paced
    /// or held by a delay, a client that does not read), and say how it went.
    pub(crate) fn obey(&mut self, order: Order) {
        let Order { control, done } = order;
        let result = match control {
            Control::SendRaw(bytes) => self.send_for_control(Reply::raw(bytes)),
            Control::SendFrame(bytes) => self.send_for_control(Reply::frame(bytes)),
            Control::Fault(rule) => {
                debug!(port = %self.name, ?rule, "fault added");
                self.faults.add(rule);
                self.refresh_direct();
                Ok(())
            }
            Control::ClearFaults => {
                self.faults.clear();
                self.refresh_direct();
                self.outbox.clear_faults(Instant::now());
                Ok(())
            }
            Control::Unplug(after) => {
                self.unplug = Some(after);
                Ok(())
            }
            Control::Set { key, value, reply } => {
                let result = self.device.body_set(&key, &value, &mut self.ctx);
                match &result {
                    Ok(()) => debug!(port = %self.name, %key, %value, "device value set"),
                    Err(e) => {
                        warn!(port = %self.name, %key, %value, error = %e, "device value not set");
                    }
                }
                if let Some(reply) = reply {
                    let _ = reply.send(result.clone());
                }
                result
            }
        };
        if let Some(done) = done {
            let _ = done.send(result);
        }
    }

    /// A frame sent by control: refused while the client is not reading (it would only pile
    /// up behind what the line cannot take).
    fn send_for_control(&mut self, reply: Reply) -> Result<(), String> {
        if self.outbox.is_blocked() {
            return Err("port busy: its client is not reading".to_owned());
        }
        self.send(reply);
        Ok(())
    }

    /// New bytes came behind a partial request (`held` bytes long when the read began): drop
    /// the partial if it is older than the line's frame timeout. Returns how many of the
    /// `held` bytes are left. (The caller brings the session notes up to date, so that a
    /// session change since the partial came reaches [`Server::on_event`] before these bytes
    /// are looked at.)
    fn more_input(&mut self, held: usize) -> usize {
        let Some((since, len)) = self.partial else {
            return held;
        };
        debug_assert!(len <= held);
        if self
            .line
            .config()
            .frame_timeout
            .is_some_and(|timeout| since.elapsed() > timeout)
        {
            self.forget_partial(len);
            return held - len;
        }
        held
    }

    /// Take in what one read brought (`held` bytes were in `rx` before it): events the
    /// transport learned while reading come before the frames read, and may change what is
    /// answered (a departure's clean-up, the client's baud rate). `news`: whether to ask the
    /// transport for out-of-band events too (a pty's session watcher), not only those that
    /// came with the data. Whether any event came.
    fn take_in(&mut self, held: usize, news: bool) -> bool {
        let read = self.rx.len() - held;
        // Behind a partial request, and where replies wait (pacing, latency, faults) so that
        // they must not be taken for the next client's, the session notes are brought up to
        // date first: a departure that happened before this read is seen before what it
        // brought is answered. (One inotify read per request, where each takes milliseconds.)
        let synced = read > 0 && (self.partial.is_some() || !self.sends_directly());
        let old = self.more_input(held);
        if synced {
            self.io.sync_events();
        }
        self.unconfirmed += read;
        let mut events = false;
        while let Some(event) = if news {
            self.io.take_event()
        } else {
            self.io.take_inband_event()
        } {
            self.on_event(event, old);
            events = true;
        }
        if synced {
            // Every change before this read has been seen: what is left is the present
            // session's.
            self.unconfirmed = 0;
        }
        events
    }

    /// Remember when an incomplete request was last added to (the clock is read only while
    /// there is one, and only when it grew).
    fn note_partial(&mut self) {
        self.partial = match self.partial {
            _ if self.rx.is_empty() => None,
            Some((since, len)) if len == self.rx.len() => Some((since, len)),
            _ => Some((Instant::now(), self.rx.len())),
        };
    }

    /// Drop the first `len` bytes of the receive buffer: a stale partial request.
    fn forget_partial(&mut self, len: usize) {
        let len = len.min(self.rx.len());
        self.rx.advance(len);
        self.framer.reset();
        self.partial = None;
        debug!(port = %self.name, bytes = len, "stale partial request discarded");
        self.observe(|| Seen::FrameError(format!("stale partial request discarded ({len} bytes)")));
    }

    fn unencodable(&self, e: &FrameError) {
        warn!(port = %self.name, error = %e, "reply could not be encoded; not sent");
        self.observe(|| Seen::HandlerError(e.to_string()));
    }

    /// Whether a reply can go straight into the pending write: nothing to apply and nobody
    /// to show the frame to (see [`Server::direct`]).
    fn sends_directly(&self) -> bool {
        // (Brings `direct` up to date if an observer's interest changed.)
        self.watched();
        self.direct.get()
    }

    /// Encode `reply` straight into the pending write — no copy, no allocation (see
    /// [`Server::sends_directly`]).
    fn send_directly(&mut self, reply: &Reply) {
        if self.io.client_present() == Some(false) {
            debug!(port = %self.name, "no client: frame dropped");
            return;
        }
        // Room for the payload; the framer reserves what it adds around it.
        Spare::Write.reserve(&mut self.coalesced, reply.bytes.len());
        if let Err(e) = encode(&mut self.framer, reply, &mut self.coalesced) {
            self.unencodable(&e);
        }
    }

    /// Send a frame the device did not answer with (unprompted, or from control): straight
    /// into the pending write when nothing stands between it and the line, else behind
    /// whatever is waiting.
    fn send(&mut self, reply: Reply) {
        if self.outbox.is_empty() && self.sends_directly() {
            self.send_directly(&reply);
        } else {
            self.outbox.push(Queued::new(reply, Duration::ZERO, None));
        }
    }
}

/// Append `reply` to `dst` as it goes on the wire: framed, or as given when raw. On an error
/// `dst` is left as it was.
fn encode(framer: &mut BoxFramer, reply: &Reply, dst: &mut BytesMut) -> Result<(), FrameError> {
    let start = dst.len();
    let encoded = if reply.raw {
        dst.extend_from_slice(&reply.bytes);
        Ok(())
    } else {
        framer.encode(&reply.bytes, dst)
    };
    if encoded.is_err() {
        dst.truncate(start);
    }
    encoded
}

/// Read more bytes into `buf` (if `read`), or take a line event, whichever the transport has
/// first.
fn poll_recv<T: Transport>(
    io: &mut T,
    buf: &mut BytesMut,
    chunk: &mut usize,
    read: bool,
    cx: &mut std::task::Context<'_>,
) -> Poll<std::io::Result<Recv>> {
    if let Poll::Ready(event) = io.poll_event(cx) {
        return Poll::Ready(Ok(Recv::Event(event)));
    }
    if !read {
        return Poll::Pending;
    }
    if buf.capacity() - buf.len() < *chunk / 2 {
        Spare::Read.reserve(buf, *chunk);
    }
    let room = buf.capacity() - buf.len();
    match ready!(tokio_util::io::poll_read_buf(Pin::new(&mut *io), cx, buf)) {
        Ok(0) => Poll::Ready(Ok(Recv::Eof)),
        Ok(n) => {
            *chunk = next_chunk(*chunk, n, room);
            Poll::Ready(Ok(Recv::Data))
        }
        Err(e) => Poll::Ready(Err(e)),
    }
}

/// The room for the read after one that got `n` bytes into `room`: twice as much after a full
/// read (a client streaming), the small default otherwise.
fn next_chunk(chunk: usize, n: usize, room: usize) -> usize {
    if n >= room {
        (chunk * 2).min(MAX_READ_CHUNK)
    } else {
        READ_CHUNK
    }
}

impl<D: Body> Server<D, PtyPort> {
    /// Get ready to be lent (called by the owner, in its task, right after [`Outcome::Lend`]):
    /// wake-ups from the gates' sources and the session watcher reach this task from here on.
    /// `false` if something came meanwhile, for [`Server::run`] to handle.
    pub(crate) fn ready_to_lend(
        &mut self,
        cx: &mut std::task::Context<'_>,
        control: Option<&ControlRx>,
    ) -> bool {
        self.gates.register(cx.waker());
        if let Poll::Ready(event) = self.io.poll_event(cx) {
            self.on_event(event, self.rx.len());
            return false;
        }
        // An observer's interest too: the lane does not look at it (see `watched`).
        if !self.gates_quiet(control) || self.gates.is_open(Source::Watch) {
            return false;
        }
        self.io.leave_reactor();
        true
    }

    /// Trade the port's receive and reply buffers, where empty, for the lane's (see
    /// [`Scratch`]).
    fn swap_empty(&mut self, scratch: &mut Scratch) {
        if self.rx.is_empty() {
            std::mem::swap(&mut self.rx, &mut scratch.rx);
        }
        if self.replies.is_empty() {
            std::mem::swap(&mut self.replies, &mut scratch.replies);
        }
    }

    /// Never lend this port again (its lane would not take it).
    pub(crate) fn stop_lending(&mut self) {
        self.can_lend = None;
    }

    /// One read on a lane, and what it brought served.
    fn serve_read(&mut self, recalled: &AtomicBool) -> Turn {
        // Into the lane's buffer, most often (see `swap_empty`).
        if self.rx.capacity() - self.rx.len() < self.read_chunk / 2 {
            self.rx.reserve(self.read_chunk);
        }
        let (before, room) = (self.rx.len(), self.rx.capacity() - self.rx.len());
        let more = match self.io.read_now(&mut self.rx) {
            ReadNow::Data { full } => {
                // (The packet header took one byte of the room.)
                let n = if full { room } else { self.rx.len() - before };
                self.read_chunk = next_chunk(self.read_chunk, n, room);
                full
            }
            // Data may follow the status byte.
            ReadNow::Events => true,
            ReadNow::Nothing => return Turn::Done,
            ReadNow::Stop => return Turn::Leave,
        };
        // The session watcher's news is looked at only if it (or anything else) recalled the
        // port: it is on its way back to its task then, which answers what was read.
        let recall = recalled.load(Ordering::Acquire);
        let events = self.take_in(before, recall);
        if recall || (events && !self.quiet_now()) {
            return Turn::Leave;
        }
        match self.answer_ready() {
            // The replies wait in `coalesced` for `Lent::flush`, after the lane's batch.
            Answering::Drained if self.outbox.is_empty() => {}
            // Replies to deliver later: the task's timers.
            Answering::Drained | Answering::Unplugged => return Turn::Leave,
            Answering::Later(frame) => {
                self.waiting = Some(frame);
                return Turn::Leave;
            }
            Answering::Panicked(message) => {
                self.panicked = Some(message);
                return Turn::Leave;
            }
        }
        if more { Turn::Again } else { Turn::Done }
    }
}

/// A lane serves a quiet port with this: a read, every complete request answered without
/// waiting, a write (and again while reads fill their room). Whatever it cannot do without
/// waiting (an asynchronous handler, replies to deliver, a full line, end of input, a panic) it
/// leaves for the task, in order: the frame not answered waits in `waiting`, replies in the
/// outbox, the unwritten rest in `coalesced`.
impl<D: Body> Lent for Server<D, PtyPort> {
    fn master(&self) -> std::os::fd::BorrowedFd<'_> {
        self.io.master()
    }

    fn serve(&mut self, recalled: &AtomicBool, scratch: &mut Scratch) -> Step {
        self.swap_empty(scratch);
        if self.coalesced.is_empty() {
            // The port's own buffer (it has one only if its task wrote last) is not kept:
            // a lent port holds none, and the lane's pool lends it a warm one.
            self.coalesced = scratch.take_tx();
        }
        // Read until the master is drained (the lane's epoll is edge-triggered); a client that
        // keeps it full (streaming) is served a few reads per turn, then the lane moves on and
        // comes back (`Busy`).
        let mut step = Step::Busy;
        for _ in 0..READS_PER_TURN {
            match self.serve_read(recalled) {
                // A client streaming requests: what this read's answered goes out before the
                // next read (the rest of the batch need not wait for it, and the line keeps
                // room). The last read's replies wait for the batch's writes (`flush`).
                Turn::Again if self.has_output() && self.flush(scratch) == Step::Leave => {
                    step = Step::Leave;
                    break;
                }
                Turn::Again => {}
                Turn::Done => {
                    step = Step::Stay;
                    break;
                }
                Turn::Leave => {
                    step = Step::Leave;
                    break;
                }
            }
        }
        self.swap_empty(scratch);
        if self.coalesced.is_empty() {
            scratch.give_tx(std::mem::take(&mut self.coalesced));
        }
        step
    }

    fn has_output(&self) -> bool {
        !self.coalesced.is_empty()
    }

    fn flush(&mut self, scratch: &mut Scratch) -> Step {
        match self.io.write_now(&self.coalesced) {
            Ok(n) if n == self.coalesced.len() => {
                scratch.give_tx(std::mem::take(&mut self.coalesced));
                Step::Stay
            }
            Ok(n) => {
                // A full line: the task waits for room.
                self.coalesced.advance(n);
                Step::Leave
            }
            // The task's write meets the error again, and ends the port with it.
            Err(_) => Step::Leave,
        }
    }

    fn hot(&self) -> [usize; HOT] {
        // The first lines of the state (see the layout of `Server`) and the framer.
        let at = std::ptr::from_ref(self).addr();
        let framer = std::ptr::from_ref::<dyn crate::framer::Framer>(&*self.framer);
        [at, at + 64, at + 128, framer.cast::<u8>().addr()]
    }

    fn panicked(&mut self, message: String) {
        error!(port = %self.name, %message, "serving panicked; port stopped");
        self.panicked = Some(message);
    }
}

/// Reads a lane makes in a row on one port that keeps filling them.
const READS_PER_TURN: usize = 4;

/// What one read on a lane leaves to do.
enum Turn {
    /// More may be waiting (the read filled its room, or brought a status byte): read again.
    Again,
    /// Served, and the master drained: the port stays.
    Done,
    /// The port goes back to its task.
    Leave,
}

/// Where a serving loop's [`Control`] commands come from. Fleets send them boxed: a channel
/// allocates its slots up front, and one pointer a slot instead of a whole `Control` is ~2 KiB
/// less per port.
#[derive(Debug)]
pub(crate) enum ControlRx {
    /// From [`serve_with_control`]'s caller.
    Plain(mpsc::Receiver<Control>),
    /// From a [`PortHandle`](crate::fleet::PortHandle), each with where its outcome goes.
    Boxed(mpsc::Receiver<Box<Order>>),
}

impl ControlRx {
    pub(crate) fn poll_recv(&mut self, cx: &mut std::task::Context<'_>) -> Poll<Option<Order>> {
        match self {
            Self::Plain(rx) => rx.poll_recv(cx).map(|c| {
                c.map(|control| Order {
                    control,
                    done: None,
                })
            }),
            Self::Boxed(rx) => rx.poll_recv(cx).map(|c| c.map(|c| *c)),
        }
    }
}

/// The serving loop's cancellation: one future, polled through its gate only.
struct Cancelled<'p, 't> {
    future: std::pin::Pin<&'p mut WaitForCancellationFuture<'t>>,
    /// The serving loop's gates (a clone: the loop borrows itself mutably meanwhile).
    gates: Gates,
}

impl Cancelled<'_, '_> {
    fn poll(&mut self, cx: &mut std::task::Context<'_>) -> Poll<()> {
        let Self { future, gates } = self;
        gates.poll(Source::Cancel, cx, |cx| future.as_mut().poll(cx))
    }

    /// `fut`'s output, or `None` if cancellation comes first: looked at before every poll but
    /// the first. Every caller starts `fut` in the task poll in which [`Server::wait`] (or a
    /// previous `or`) just looked at cancellation, so looking again then would only cost time;
    /// a cancellation that lands in between is seen at the next look, at the latest when the
    /// loop waits again after this read's requests.
    ///
    /// `fut` comes pinned by the caller (or boxed): a plain `poll_fn` then, not an `async fn`
    /// around one — one state less to step through on every request.
    fn or<F: Future + Unpin>(&mut self, mut fut: F) -> impl Future<Output = Option<F::Output>> {
        let mut first = true;
        poll_fn(move |cx| {
            if !std::mem::take(&mut first) && self.poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            Pin::new(&mut fut).poll(cx).map(Some)
        })
    }
}

pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}
