//! What a device is: protocol and state, nothing about ptys, timing or faults.
//!
//! A device has one body, the method that answers a request:
//! - most devices answer without waiting on anything (an inverter, a meter, a scripted
//!   dialogue): they implement [`Device`], whose [`Device::handle`] is a plain function;
//! - a device whose answer must `.await` something (a channel to the test that drives it, a
//!   real device behind it) implements [`AsyncDevice`] and is served as [`Awaiting`]`(device)`.
//!
//! The serving loop and fleets take either as a [`Body`]. A device that also sends frames
//! nobody asked for says so: on a beat of its own (a GPS's fix every second, a VE.Direct block)
//! with [`Device::talks_every`], which costs its port nothing between beats and lets a fleet's
//! lane serve it; on whatever it awaits with [`Device::sends_unprompted`].

mod body;
mod bus;
mod context;
mod reply;

use std::borrow::Cow;
use std::future::Future;

use bytes::Bytes;

pub use self::body::{Body, BoxDevice, DeviceError};
pub use self::bus::{Bus, Route, Router};
pub use self::context::Context;
pub use self::reply::{Replies, Reply};
use crate::port::settings::LineEvent;
use crate::wire::framer::Framing;
use crate::wire::line::LineConfig;

/// An emulated device whose answers never wait: protocol and state.
///
/// A device gets one decoded request frame at a time and pushes zero or more replies. It owns
/// its state (`&mut self`): a serial line carries one request at a time, so there is no need
/// for `Arc<Mutex<_>>` unless several ports share state on purpose (a parallel group of
/// inverters: keep the shared part behind an `Arc<Mutex<_>>` in each device).
///
/// Replies that come later than at once are data, not waiting: [`Replies::push_after`]. A
/// device whose answer has to wait on something else is an [`AsyncDevice`].
///
/// ```
/// use serialtwin_core::{Context, Device, Replies};
///
/// struct Hello;
///
/// impl Device for Hello {
///     type Error = std::convert::Infallible;
///     fn handle(&mut self, req: &[u8], _: &mut Context, out: &mut Replies)
///         -> Result<(), Self::Error>
///     {
///         if req == b"HELLO" { out.push("WORLD") }
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

    /// Answer one request frame, pushing replies into `replies` (which arrives empty).
    ///
    /// # Errors
    /// A model-specific failure: logged and observed; serving goes on, and the replies pushed
    /// before it still go out.
    fn handle(
        &mut self,
        request: &[u8],
        ctx: &mut Context,
        replies: &mut Replies,
    ) -> Result<(), Self::Error>;

    /// Whether this device sends frames nobody asked for ([`Device::unprompted`]). Read once,
    /// when serving starts: a device that says no is never asked for them, and its port may be
    /// served by its fleet's shared lane; one that says yes keeps a task of its own that waits
    /// for them. Default: no.
    fn sends_unprompted(&self) -> bool {
        false
    }

    /// The next frame the device sends on its own (a meter streaming readings); asked only if
    /// [`Device::sends_unprompted`] says so.
    ///
    /// The serving loop races this against incoming data and drops the future when a request
    /// arrives first, so it **must be cancel-safe**: wait on an `Interval::tick`, a channel's
    /// `recv`, a `Notify` — never half-update state across an `.await`. Default: never.
    fn unprompted(&mut self, _ctx: &mut Context) -> impl Future<Output = Option<Reply>> + Send {
        std::future::pending()
    }

    /// How often this device talks on its own, if it does so on a fixed beat (a GPS's fixes
    /// once a second, a charge controller's status block): [`Device::talk`] is then called once
    /// per period, the first one period after serving starts. Read when serving starts and
    /// again after each [`Device::set`] (a new rate starts its beat afresh). The beat waits on
    /// the same timers as paced output — on a fleet's lane, its timer heap — so a talking port
    /// costs nothing between beats. Default: none.
    fn talks_every(&self) -> Option<std::time::Duration> {
        None
    }

    /// What the device says on its beat ([`Device::talks_every`]), pushed into `replies`
    /// (which arrives empty) as an answer's are: framed, faulted and paced alike, and dropped
    /// while nobody has the port open, as a real device's output is. Default: nothing.
    fn talk(&mut self, _ctx: &mut Context, _replies: &mut Replies) {}

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

    /// The values [`Device::set`] takes, for help texts (`serialtwin ctl` lists them).
    /// Default: none.
    fn settable(&self) -> Vec<Settable> {
        Vec::new()
    }
}

/// A device whose answer must wait on something: [`Device`] with an `async` body.
///
/// Served as [`Awaiting`]`(device)`. Everything but [`AsyncDevice::handle`] means what it
/// means on [`Device`]. While a request waits here its port answers nothing else (a serial
/// device answers one request at a time), and its port is never served by a fleet's lane.
///
/// ```
/// use serialtwin_core::{AsyncDevice, Context, Replies};
/// use bytes::Bytes;
///
/// /// Answers with whatever the test sends it next.
/// struct Puppet(tokio::sync::mpsc::Receiver<Bytes>);
///
/// impl AsyncDevice for Puppet {
///     type Error = std::convert::Infallible;
///     async fn handle(&mut self, _: Bytes, _: &mut Context, out: &mut Replies)
///         -> Result<(), Self::Error>
///     {
///         if let Some(answer) = self.0.recv().await { out.push(answer) }
///         Ok(())
///     }
/// }
/// ```
pub trait AsyncDevice: Send + 'static {
    /// As [`Device::Error`].
    type Error: std::error::Error + Send + Sync + 'static;

    /// As [`Device::framing`].
    fn framing(&self) -> Framing {
        Framing::default()
    }

    /// As [`Device::line`].
    fn line(&self) -> LineConfig {
        LineConfig::default()
    }

    /// Answer one request frame, pushing replies into `replies` (which arrives empty). The
    /// future is dropped if the port stops meanwhile.
    fn handle(
        &mut self,
        request: Bytes,
        ctx: &mut Context,
        replies: &mut Replies,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// As [`Device::sends_unprompted`].
    fn sends_unprompted(&self) -> bool {
        false
    }

    /// As [`Device::unprompted`].
    fn unprompted(&mut self, _ctx: &mut Context) -> impl Future<Output = Option<Reply>> + Send {
        std::future::pending()
    }

    /// As [`Device::talks_every`].
    fn talks_every(&self) -> Option<std::time::Duration> {
        None
    }

    /// As [`Device::talk`].
    fn talk(&mut self, _ctx: &mut Context, _replies: &mut Replies) {}

    /// As [`Device::on_event`].
    fn on_event(&mut self, _event: &LineEvent, _ctx: &mut Context) {}

    /// As [`Device::set`].
    ///
    /// # Errors
    /// As [`Device::set`].
    fn set(&mut self, key: &str, _value: &str, _ctx: &mut Context) -> Result<(), String> {
        Err(format!("this device has no settable value {key:?}"))
    }

    /// As [`Device::settable`].
    fn settable(&self) -> Vec<Settable> {
        Vec::new()
    }
}

/// An [`AsyncDevice`], ready to be served.
#[derive(Debug, Clone, Default)]
pub struct Awaiting<D>(pub D);

/// A value [`Device::set`] takes, as help texts show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settable {
    /// The key, e.g. `grid`.
    pub key: Cow<'static, str>,
    /// What it takes and does, e.g. `on|off: the grid is there or lost`.
    pub help: Cow<'static, str>,
}

impl Settable {
    /// A key and its help.
    pub fn new(key: impl Into<Cow<'static, str>>, help: impl Into<Cow<'static, str>>) -> Self {
        Self {
            key: key.into(),
            help: help.into(),
        }
    }
}
