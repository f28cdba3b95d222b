//! [`Context`]: what a device may know about where and when it runs.

use std::sync::{Arc, OnceLock};

use tokio::sync::watch;

use crate::clock::SimClock;
use crate::port::settings::{LineSettings, Session};

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
