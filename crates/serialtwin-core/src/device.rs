//! The [`Device`] trait: protocol and state, nothing about ptys, timing or faults.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;

use crate::clock::SimClock;
use crate::framer::Framing;
use crate::line::LineConfig;
use crate::settings::{LineEvent, LineSettings, Session};

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

/// What a device may know about where and when it runs.
///
/// Built by the serving loop; tests build one with [`Context::for_test`].
#[derive(Debug)]
pub struct Context {
    /// The port's name (for logs, and for models whose answer depends on it).
    name: Arc<str>,
    /// The client's current line settings.
    settings: LineSettings,
    /// Whether a client has the port open.
    session: Session,
    /// Watches on the two above, made only when a device asks for one: most never do, and a
    /// channel per port per value is memory every port of a big fleet would pay.
    settings_tx: OnceLock<watch::Sender<LineSettings>>,
    session_tx: OnceLock<watch::Sender<Session>>,
    /// The simulated wall clock.
    clock: SimClock,
    /// Seeded randomness, so that runs repeat.
    rng: fastrand::Rng,
}

impl Context {
    /// A context for a port called `name`, starting with `settings` and `session`.
    #[must_use]
    pub fn new(
        name: impl Into<Arc<str>>,
        settings: LineSettings,
        session: Session,
        clock: SimClock,
        seed: u64,
    ) -> Self {
        Self {
            name: name.into(),
            settings,
            session,
            settings_tx: OnceLock::new(),
            session_tx: OnceLock::new(),
            clock,
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    /// A context for unit tests: 9600 8N1, no session information, the given clock, seed 0.
    #[must_use]
    pub fn for_test(clock: SimClock) -> Self {
        Self::new(
            "test",
            LineSettings::default(),
            Session::default(),
            clock,
            0,
        )
    }

    /// The client changed its settings (called by the serving loop; tests may call it too).
    pub fn set_settings(&mut self, settings: LineSettings) {
        if self.settings != settings {
            self.settings = settings;
            if let Some(tx) = self.settings_tx.get() {
                tx.send_replace(settings);
            }
        }
    }

    /// The session state changed (called by the serving loop; tests may call it too).
    pub fn set_session(&mut self, session: Session) {
        if self.session != session {
            self.session = session;
            if let Some(tx) = self.session_tx.get() {
                tx.send_replace(session);
            }
        }
    }

    /// The port's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The client's line settings right now.
    #[must_use]
    pub fn settings(&self) -> LineSettings {
        self.settings
    }

    /// A watch on the line settings (`changed().await` to wait for the client to change them).
    #[must_use]
    pub fn settings_watch(&self) -> watch::Receiver<LineSettings> {
        self.settings_tx
            .get_or_init(|| watch::Sender::new(self.settings))
            .subscribe()
    }

    /// The session state right now.
    #[must_use]
    pub fn session(&self) -> Session {
        self.session
    }

    /// A watch on the session state.
    #[must_use]
    pub fn session_watch(&self) -> watch::Receiver<Session> {
        self.session_tx
            .get_or_init(|| watch::Sender::new(self.session))
            .subscribe()
    }

    /// The simulated wall clock.
    #[must_use]
    pub fn clock(&self) -> &SimClock {
        &self.clock
    }

    /// The seeded random source.
    pub fn rng(&mut self) -> &mut fastrand::Rng {
        &mut self.rng
    }
}

/// An emulated device: protocol and state.
///
/// A device gets one decoded request frame at a time and pushes zero or more replies. It owns
/// its state (`&mut self`): a serial line carries one request at a time, so there is no need
/// for `Arc<Mutex<_>>` unless several ports share state on purpose (a parallel group of
/// inverters: keep the shared part behind an `Arc<Mutex<_>>` in each device).
///
/// Implementations write plain `async fn`s; the trait spells out `+ Send` so that generic
/// spawning works.
///
/// ```
/// use serialtwin_core::{Context, Device, Replies};
/// use bytes::Bytes;
///
/// struct Hello;
///
/// impl Device for Hello {
///     type Error = std::convert::Infallible;
///     async fn handle(&mut self, req: Bytes, _: &mut Context, out: &mut Replies)
///         -> Result<(), Self::Error>
///     {
///         if req.as_ref() == b"HELLO" { out.push("WORLD") }
///         Ok(())
///     }
/// }
/// ```
pub trait Device: Send + 'static {
    /// Model-specific failure. The serving loop logs it and keeps serving.
    type Error: std::error::Error + Send + Sync + 'static;

    /// How this device frames requests and replies. Default: CRLF lines.
    fn framing(&self) -> Framing {
        Framing::default()
    }

    /// The line this device really has (baud, pacing, latency). Default: a plain port with no
    /// line behaviour.
    fn line(&self) -> LineConfig {
        LineConfig::default()
    }

    /// Handle one request frame, pushing replies into `replies` (which arrives empty).
    fn handle(
        &mut self,
        request: Bytes,
        ctx: &mut Context,
        replies: &mut Replies,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Answer `request` at once, without waiting: the synchronous twin of [`Device::handle`],
    /// for the many devices whose answer never waits on anything (PI30 among them).
    ///
    /// `None` (the default) means "not here": the request goes to [`Device::handle`]. Return
    /// `None` before changing any state, since the same request then goes to `handle`.
    ///
    /// Why it exists: a port whose device answers here, with nothing else going on (no faults,
    /// no pacing or latency, nobody observing, no silence-framed protocol), is served by its
    /// fleet's shared lane — one epoll over many ports, each request read, answered and
    /// written in one function call, with no task woken per request. That is most of the cost
    /// of serving a request on a busy fleet. Anything else the port has to do (a control
    /// command, a client opening or closing, cancellation) takes it back to its own task.
    ///
    /// A device that answers here **must not also send unprompted frames**: its
    /// [`Device::unprompted`] future is not polled while the port is on the lane. Keep the
    /// default `None` for such devices.
    ///
    /// # Errors
    /// `Some(Err(_))`: as an error from [`Device::handle`] (logged; serving goes on).
    fn handle_now(
        &mut self,
        _request: &[u8],
        _ctx: &mut Context,
        _replies: &mut Replies,
    ) -> Option<Result<(), Self::Error>> {
        None
    }

    /// The next frame the device sends on its own (a meter streaming readings).
    ///
    /// The serving loop races this against incoming data and drops the future when a request
    /// arrives first, so it **must be cancel-safe**: wait on an `Interval::tick`, a channel's
    /// `recv`, a `Notify` — never half-update state across an `.await`. Default: never.
    fn unprompted(&mut self, _ctx: &mut Context) -> impl Future<Output = Option<Reply>> + Send {
        std::future::pending()
    }

    /// Something happened on the line (a client opened or closed the port, changed settings).
    /// Default: nothing.
    fn on_event(&mut self, _event: &LineEvent, _ctx: &mut Context) {}

    /// Change a named value from outside while the device runs (a test or a scenario sets
    /// `grid = off`, `soc = 20`).
    ///
    /// # Errors
    /// A one-line reason when the key is unknown or the value invalid. Default: every key is
    /// unknown.
    fn set(&mut self, key: &str, _value: &str, _ctx: &mut Context) -> Result<(), String> {
        Err(format!("this device has no settable value {key:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn watches_made_late_see_the_current_value_and_later_changes() {
        let mut ctx = Context::for_test(SimClock::real());
        ctx.set_settings(LineSettings::new(19_200));
        let mut settings = ctx.settings_watch();
        assert_eq!(settings.borrow_and_update().baud, 19_200);
        ctx.set_settings(LineSettings::new(2400));
        settings.changed().await.unwrap();
        assert_eq!(settings.borrow().baud, 2400);
        assert_eq!(ctx.settings().baud, 2400);

        let mut session = ctx.session_watch();
        ctx.set_session(Session {
            open: Some(true),
            count: 1,
        });
        session.changed().await.unwrap();
        assert_eq!(*session.borrow(), ctx.session());
    }
}
