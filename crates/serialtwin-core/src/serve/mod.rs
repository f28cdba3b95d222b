//! The serving loop: one transport, one framer, one line, one device.
//!
//! Generic over the [`Transport`], so the same device is served on a pty, a TCP socket or an
//! in-memory `duplex` in a unit test. It stops when the [`CancellationToken`] fires, when the
//! transport ends, or when the device panics (that port only; the panic is logged with the
//! port's name and returned as [`ServeError::DevicePanicked`]).

use crate::clock::SimClock;
#[cfg(doc)]
use crate::device::{AsyncDevice, Device};
use crate::device::{Body, Context, Replies};
use crate::gate::{Gates, Source};
use crate::port::pty::PtyPort;
use crate::port::settings::{LineSettings, Session};
use crate::port::transport::Transport;
use crate::serve::observe::{Observation, Observer, Seen};
use crate::wire::fault::Faults;
use crate::wire::framer::{BoxFramer, Framer, Framing};
use crate::wire::line::{Line, LineConfig};
use bytes::{Bytes, BytesMut};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::warn;

mod answer;
mod cancel;
mod control;
mod input;
pub(crate) mod lane;
mod lane_port;
pub(crate) mod observe;
mod outbox;
mod run;
mod send;

pub use self::control::Control;
pub(crate) use self::control::{ControlRx, Order};
use self::outbox::Outbox;

/// Bytes reserved per read: small, because a serial request is small and every port pays it.
const READ_CHUNK: usize = 128;

/// The most a read grows to while a client streams (each full read doubles the room).
const MAX_READ_CHUNK: usize = 4096;

/// The most client input held unanswered while replies are still going out: past it the port
/// stops reading, and the client's writes wait in the pty (it still sees line events).
const MAX_HELD_INPUT: usize = 16 * 1024;

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
    /// its lane (see [`lane`]), and calls `run` again when it has it back.
    Lend,
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
    // lines per request rather than one per field (see `serve::lane`). The transport's own
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
    /// Whether the client hears its own bytes back ([`LineConfig::echo`]): read once, here
    /// with what every request touches.
    echo: bool,
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
    /// The device's own beat ([`Device::talks_every`]), if it talks on one.
    beat: Option<Beat>,
    /// How many bytes at the end of `rx` were read since the session notes were last brought up
    /// to date: they may be a client's that opened after a departure not yet reported, so a
    /// departure does not take them for the departed client's (see [`Server::departed`]).
    unconfirmed: usize,
}

/// A device's beat: how often it talks on its own, and when next.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Beat {
    every: Duration,
    next: Instant,
}

impl Beat {
    /// The beat of a device that talks `every` so often (never for a zero period), its first
    /// one period after `now`.
    fn of(every: Option<Duration>, now: Instant) -> Option<Self> {
        every.filter(|every| !every.is_zero()).map(|every| Self {
            every,
            next: now + every,
        })
    }

    /// Whether it is time at `now`; if so, the next beat is set (beats missed while the port
    /// could not talk — unplugged, its task busy — are not made up).
    fn due(&mut self, now: Instant) -> bool {
        if self.next > now {
            return false;
        }
        let missed = (now - self.next).as_nanos() / self.every.as_nanos();
        let steps = u32::try_from(missed + 1).unwrap_or(u32::MAX);
        self.next += self.every.saturating_mul(steps);
        true
    }
}

/// What a lane touches per request fits the first three cache lines of a `Server` on a pty
/// (checked when compiling: a field added in front has to earn its place).
const _: () =
    assert!(std::mem::offset_of!(Server<(), PtyPort>, io) + PtyPort::LANE_HOT <= LANE_HOT);

/// See the layout of [`Server`] and [`lane::LanePort::hot`].
const LANE_HOT: usize = 3 * 64;

pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

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
        let echo = line.config().echo;
        let device_beat = device.body_talks_every();
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
            echo,
            can_lend: None,
            panicked: None,
            direct: std::cell::Cell::new(false),
            outbox: Outbox::default(),
            partial: None,
            unconfirmed: 0,
            beat: Beat::of(device_beat, Instant::now()),
        }
    }

    /// Let [`Server::run`] return [`Outcome::Lend`] when the port is quiet and `can_lend` says
    /// the transport may go too.
    pub(crate) fn lend_when(&mut self, can_lend: fn(&T) -> bool) {
        self.can_lend = Some(can_lend);
    }

    /// Put a new transport in after an unplug; returns the old one.
    pub(crate) fn replug(&mut self, io: T) -> T {
        let old = std::mem::replace(&mut self.io, io);
        self.forget_line();
        old
    }

    /// The transport, for what only its owner does to it (a network-only port's unplug).
    pub(crate) fn io_mut(&mut self) -> &mut T {
        &mut self.io
    }

    /// Everything of the line's past is gone: what the client had sent, the request being
    /// answered, what was on its way out. The session is the transport's now.
    pub(crate) fn forget_line(&mut self) {
        self.rx.clear();
        self.framer.reset();
        self.waiting = None;
        self.partial = None;
        // What was on its way out is lost with the line.
        self.outbox.clear();
        self.coalesced.clear();
        self.line.abort(Instant::now());
        if let Some(settings) = self.io.settings() {
            self.ctx.set_settings(settings);
        }
        self.refresh_direct();
        let session = Session {
            open: self.io.client_present(),
            ..self.ctx.session()
        };
        self.ctx.set_session(session);
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_beat_keeps_its_time_and_does_not_make_up_missed_ones() {
        let t0 = Instant::now();
        let second = Duration::from_secs(1);
        assert!(
            Beat::of(Some(Duration::ZERO), t0).is_none(),
            "no beat at all"
        );
        let mut beat = Beat::of(Some(second), t0).unwrap();
        assert!(!beat.due(t0 + Duration::from_millis(999)));
        // Late by 300 ms: the next stays on the beat's own time.
        assert!(beat.due(t0 + Duration::from_millis(1_300)));
        assert_eq!(beat.next, t0 + 2 * second);
        // Ten seconds unheard (an unplugged port): one beat, not ten.
        assert!(beat.due(t0 + Duration::from_millis(12_500)));
        assert!(!beat.due(t0 + Duration::from_millis(12_600)));
        assert_eq!(beat.next, t0 + 13 * second);
    }
}
