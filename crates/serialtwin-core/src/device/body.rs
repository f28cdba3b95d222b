//! [`Body`]: what the serving loop serves — a [`Device`], an [`Awaiting`] async device, or
//! either behind a [`BoxDevice`].

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;

use super::{AsyncDevice, Awaiting, Context, Device, Replies, Reply, Settable};
use crate::port::settings::LineEvent;
use crate::wire::framer::Framing;
use crate::wire::line::LineConfig;

pub(super) mod sealed {
    /// Only this module's types are bodies.
    pub trait Sealed {}
}

/// What the serving loop and fleets take: every [`Device`], every [`AsyncDevice`] as
/// [`Awaiting`]`(device)`, and a [`BoxDevice`] holding either.
///
/// Sealed: implement [`Device`] or [`AsyncDevice`] instead. Its methods are the serving loop's
/// (named apart from the device traits', so that having both in scope is never ambiguous).
pub trait Body: sealed::Sealed + Send + 'static {
    /// The device's failure.
    #[doc(hidden)]
    type Error: std::error::Error + Send + Sync + 'static;
    #[doc(hidden)]
    fn body_framing(&self) -> Framing;
    #[doc(hidden)]
    fn body_line(&self) -> LineConfig;
    /// Whether every answer comes from [`Body::answer_now`].
    #[doc(hidden)]
    fn answers_at_once(&self) -> bool;
    #[doc(hidden)]
    fn body_sends_unprompted(&self) -> bool;
    /// The answer, if it needs no waiting; `None`: ask [`Body::answer_later`].
    #[doc(hidden)]
    fn answer_now(
        &mut self,
        request: &[u8],
        ctx: &mut Context,
        replies: &mut Replies,
    ) -> Option<Result<(), Self::Error>>;
    #[doc(hidden)]
    fn answer_later(
        &mut self,
        request: Bytes,
        ctx: &mut Context,
        replies: &mut Replies,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
    #[doc(hidden)]
    fn body_unprompted(&mut self, ctx: &mut Context) -> impl Future<Output = Option<Reply>> + Send;
    /// Which device of a bus `request` is for (`None`: not a bus, or nobody's).
    #[doc(hidden)]
    fn body_unit(&mut self, _request: &[u8]) -> Option<u32> {
        None
    }
    #[doc(hidden)]
    fn body_talks_every(&self) -> Option<Duration>;
    #[doc(hidden)]
    fn body_talk(&mut self, ctx: &mut Context, replies: &mut Replies);
    #[doc(hidden)]
    fn body_on_event(&mut self, event: &LineEvent, ctx: &mut Context);
    #[doc(hidden)]
    fn body_set(&mut self, key: &str, value: &str, ctx: &mut Context) -> Result<(), String>;
    #[doc(hidden)]
    fn body_settable(&self) -> Vec<Settable>;
}

impl<D: Device> sealed::Sealed for D {}

impl<D: Device> Body for D {
    type Error = D::Error;

    fn body_framing(&self) -> Framing {
        self.framing()
    }

    fn body_line(&self) -> LineConfig {
        self.line()
    }

    fn answers_at_once(&self) -> bool {
        true
    }

    fn body_sends_unprompted(&self) -> bool {
        self.sends_unprompted()
    }

    fn answer_now(
        &mut self,
        request: &[u8],
        ctx: &mut Context,
        replies: &mut Replies,
    ) -> Option<Result<(), Self::Error>> {
        Some(self.handle(request, ctx, replies))
    }

    fn answer_later(
        &mut self,
        request: Bytes,
        ctx: &mut Context,
        replies: &mut Replies,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        std::future::ready(self.handle(&request, ctx, replies))
    }

    fn body_unprompted(&mut self, ctx: &mut Context) -> impl Future<Output = Option<Reply>> + Send {
        self.unprompted(ctx)
    }

    fn body_talks_every(&self) -> Option<Duration> {
        self.talks_every()
    }

    fn body_talk(&mut self, ctx: &mut Context, replies: &mut Replies) {
        self.talk(ctx, replies);
    }

    fn body_on_event(&mut self, event: &LineEvent, ctx: &mut Context) {
        self.on_event(event, ctx);
    }

    fn body_set(&mut self, key: &str, value: &str, ctx: &mut Context) -> Result<(), String> {
        self.set(key, value, ctx)
    }

    fn body_settable(&self) -> Vec<Settable> {
        self.settable()
    }
}

impl<A: AsyncDevice> sealed::Sealed for Awaiting<A> {}

impl<A: AsyncDevice> Body for Awaiting<A> {
    type Error = A::Error;

    fn body_framing(&self) -> Framing {
        self.0.framing()
    }

    fn body_line(&self) -> LineConfig {
        self.0.line()
    }

    fn answers_at_once(&self) -> bool {
        false
    }

    fn body_sends_unprompted(&self) -> bool {
        self.0.sends_unprompted()
    }

    fn answer_now(
        &mut self,
        _request: &[u8],
        _ctx: &mut Context,
        _replies: &mut Replies,
    ) -> Option<Result<(), Self::Error>> {
        None
    }

    fn answer_later(
        &mut self,
        request: Bytes,
        ctx: &mut Context,
        replies: &mut Replies,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.0.handle(request, ctx, replies)
    }

    fn body_unprompted(&mut self, ctx: &mut Context) -> impl Future<Output = Option<Reply>> + Send {
        self.0.unprompted(ctx)
    }

    fn body_talks_every(&self) -> Option<Duration> {
        self.0.talks_every()
    }

    fn body_talk(&mut self, ctx: &mut Context, replies: &mut Replies) {
        self.0.talk(ctx, replies);
    }

    fn body_on_event(&mut self, event: &LineEvent, ctx: &mut Context) {
        self.0.on_event(event, ctx);
    }

    fn body_set(&mut self, key: &str, value: &str, ctx: &mut Context) -> Result<(), String> {
        self.0.set(key, value, ctx)
    }

    fn body_settable(&self) -> Vec<Settable> {
        self.0.settable()
    }
}

/// Any device, boxed: one type for a fleet whose ports run different models (what a model
/// registry builds from a config).
///
/// Costs one indirect call per request; a device that sends unprompted frames pays one
/// allocation per wait for them too.
pub struct BoxDevice(Box<dyn Erased>);

impl BoxDevice {
    /// Box `device` (a [`Device`], or an [`AsyncDevice`] as [`Awaiting`]).
    pub fn new(device: impl Body) -> Self {
        Self(Box::new(device))
    }
}

impl std::fmt::Debug for BoxDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoxDevice")
            .field("framing", &self.0.framing())
            .finish_non_exhaustive()
    }
}

/// A boxed device's failure.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct DeviceError(Box<dyn std::error::Error + Send + Sync>);

type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// [`Body`] as an object.
trait Erased: Send + 'static {
    fn framing(&self) -> Framing;
    fn line(&self) -> LineConfig;
    fn at_once(&self) -> bool;
    fn streams(&self) -> bool;
    fn now(
        &mut self,
        request: &[u8],
        ctx: &mut Context,
        replies: &mut Replies,
    ) -> Option<Result<(), DeviceError>>;
    fn later<'a>(
        &'a mut self,
        request: Bytes,
        ctx: &'a mut Context,
        replies: &'a mut Replies,
    ) -> Boxed<'a, Result<(), DeviceError>>;
    fn unprompted<'a>(&'a mut self, ctx: &'a mut Context) -> Boxed<'a, Option<Reply>>;
    fn talks_every(&self) -> Option<Duration>;
    fn unit(&mut self, request: &[u8]) -> Option<u32>;
    fn talk(&mut self, ctx: &mut Context, replies: &mut Replies);
    fn on_event(&mut self, event: &LineEvent, ctx: &mut Context);
    fn set(&mut self, key: &str, value: &str, ctx: &mut Context) -> Result<(), String>;
    fn settable(&self) -> Vec<Settable>;
}

fn boxed<E: std::error::Error + Send + Sync + 'static>(e: E) -> DeviceError {
    DeviceError(Box::new(e))
}

impl<B: Body> Erased for B {
    fn framing(&self) -> Framing {
        self.body_framing()
    }
    fn line(&self) -> LineConfig {
        self.body_line()
    }
    fn at_once(&self) -> bool {
        self.answers_at_once()
    }
    fn streams(&self) -> bool {
        self.body_sends_unprompted()
    }
    fn now(
        &mut self,
        request: &[u8],
        ctx: &mut Context,
        replies: &mut Replies,
    ) -> Option<Result<(), DeviceError>> {
        self.answer_now(request, ctx, replies)
            .map(|r| r.map_err(boxed))
    }
    fn later<'a>(
        &'a mut self,
        request: Bytes,
        ctx: &'a mut Context,
        replies: &'a mut Replies,
    ) -> Boxed<'a, Result<(), DeviceError>> {
        let answer = self.answer_later(request, ctx, replies);
        Box::pin(async move { answer.await.map_err(boxed) })
    }
    fn unprompted<'a>(&'a mut self, ctx: &'a mut Context) -> Boxed<'a, Option<Reply>> {
        Box::pin(self.body_unprompted(ctx))
    }
    fn talks_every(&self) -> Option<Duration> {
        self.body_talks_every()
    }
    fn unit(&mut self, request: &[u8]) -> Option<u32> {
        self.body_unit(request)
    }
    fn talk(&mut self, ctx: &mut Context, replies: &mut Replies) {
        self.body_talk(ctx, replies);
    }
    fn on_event(&mut self, event: &LineEvent, ctx: &mut Context) {
        self.body_on_event(event, ctx);
    }
    fn set(&mut self, key: &str, value: &str, ctx: &mut Context) -> Result<(), String> {
        self.body_set(key, value, ctx)
    }
    fn settable(&self) -> Vec<Settable> {
        self.body_settable()
    }
}

impl sealed::Sealed for BoxDevice {}

impl Body for BoxDevice {
    type Error = DeviceError;

    fn body_framing(&self) -> Framing {
        self.0.framing()
    }

    fn body_line(&self) -> LineConfig {
        self.0.line()
    }

    fn answers_at_once(&self) -> bool {
        self.0.at_once()
    }

    fn body_sends_unprompted(&self) -> bool {
        self.0.streams()
    }

    fn answer_now(
        &mut self,
        request: &[u8],
        ctx: &mut Context,
        replies: &mut Replies,
    ) -> Option<Result<(), Self::Error>> {
        self.0.now(request, ctx, replies)
    }

    async fn answer_later(
        &mut self,
        request: Bytes,
        ctx: &mut Context,
        replies: &mut Replies,
    ) -> Result<(), Self::Error> {
        self.0.later(request, ctx, replies).await
    }

    async fn body_unprompted(&mut self, ctx: &mut Context) -> Option<Reply> {
        // Asked only of devices that send unprompted frames: the box is made per wait.
        self.0.unprompted(ctx).await
    }

    fn body_talks_every(&self) -> Option<Duration> {
        self.0.talks_every()
    }

    fn body_unit(&mut self, request: &[u8]) -> Option<u32> {
        self.0.unit(request)
    }

    fn body_talk(&mut self, ctx: &mut Context, replies: &mut Replies) {
        self.0.talk(ctx, replies);
    }

    fn body_on_event(&mut self, event: &LineEvent, ctx: &mut Context) {
        self.0.on_event(event, ctx);
    }

    fn body_set(&mut self, key: &str, value: &str, ctx: &mut Context) -> Result<(), String> {
        self.0.set(key, value, ctx)
    }

    fn body_settable(&self) -> Vec<Settable> {
        self.0.settable()
    }
}
