//! A port's router: several devices behind one port, each request handed to the one it is for.
//!
//! One device per port needs no router. An RS-485 line carries several (Modbus units, a chain
//! of meters), each answering only what is addressed to it: a [`Bus`] holds them, and its
//! [`Router`] reads the address out of each request frame.

use std::future::Future;

use bytes::Bytes;

use super::body::{Body, sealed};
use super::{Context, Replies, Reply, Settable};
use crate::port::settings::LineEvent;
use crate::wire::framer::Framing;
use crate::wire::line::LineConfig;

/// Where a request frame goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// To the device at this address.
    To(u32),
    /// To every device, none of which answers (a broadcast).
    All,
    /// To nobody: no device has this address, or the frame names none. Nobody answers, as on
    /// a real bus.
    Nobody,
}

/// Reads the address out of a request frame: the per-port router. Any
/// `FnMut(&[u8]) -> Route` is one.
pub trait Router: Send + 'static {
    /// Where `frame` goes.
    fn route(&mut self, frame: &[u8]) -> Route;
}

impl<F: FnMut(&[u8]) -> Route + Send + 'static> Router for F {
    fn route(&mut self, frame: &[u8]) -> Route {
        self(frame)
    }
}

/// Devices behind one port, each at an address, and the [`Router`] that picks one per
/// request. Serve it like any device.
///
/// The devices share the port's framing and line (one wire), given when the bus is made.
/// A bus sends nothing unprompted (devices on a shared line speak when asked), and its port is
/// served by a fleet's lane when every device answers at once. Values are set per device as
/// `<address>.<key>` (`set bus 3.soc 40`).
///
/// ```
/// use serialtwin_core::{Bus, Context, Device, Framing, LineConfig, Replies, Route};
///
/// struct Unit(u32);
/// impl Device for Unit {
///     type Error = std::convert::Infallible;
///     fn handle(&mut self, _: &[u8], _: &mut Context, out: &mut Replies) -> Result<(), Self::Error> {
///         out.push(format!("unit {}", self.0));
///         Ok(())
///     }
/// }
///
/// // "2:READ" is for unit 2; "*:..." for everyone.
/// let router = |frame: &[u8]| match frame.split(|&b| b == b':').next() {
///     Some(b"*") => Route::All,
///     Some(address) => std::str::from_utf8(address)
///         .ok()
///         .and_then(|a| a.parse().ok())
///         .map_or(Route::Nobody, Route::To),
///     None => Route::Nobody,
/// };
/// let bus = Bus::new(router, Framing::default(), LineConfig::default())
///     .with(1, Unit(1))
///     .with(2, Unit(2));
/// # let _ = bus;
/// ```
pub struct Bus<R, D> {
    router: R,
    /// By address, in the order added (few devices: a scan is as quick as a map).
    devices: Vec<(u32, D)>,
    framing: Framing,
    line: LineConfig,
    /// What broadcast handlers push, thrown away.
    discarded: Replies,
}

impl<R: Router, D: Body> Bus<R, D> {
    /// An empty bus: `router` reads addresses, `framing` and `line` are the wire's.
    pub fn new(router: R, framing: Framing, line: LineConfig) -> Self {
        Self {
            router,
            devices: Vec::new(),
            framing,
            line,
            discarded: Replies::new(),
        }
    }

    /// The bus with `device` at `address` (replacing one already there).
    #[must_use]
    pub fn with(mut self, address: u32, device: D) -> Self {
        self.add(address, device);
        self
    }

    /// Put `device` at `address` (replacing one already there).
    pub fn add(&mut self, address: u32, device: D) {
        match self.devices.iter_mut().find(|(a, _)| *a == address) {
            Some(slot) => slot.1 = device,
            None => self.devices.push((address, device)),
        }
    }

    /// The device at `address`.
    pub fn device_mut(&mut self, address: u32) -> Option<&mut D> {
        self.devices
            .iter_mut()
            .find(|(a, _)| *a == address)
            .map(|(_, d)| d)
    }
}

impl<R, D> std::fmt::Debug for Bus<R, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let addresses: Vec<u32> = self.devices.iter().map(|(a, _)| *a).collect();
        f.debug_struct("Bus")
            .field("addresses", &addresses)
            .field("framing", &self.framing)
            .finish_non_exhaustive()
    }
}

impl<R, D> sealed::Sealed for Bus<R, D> {}

impl<R: Router, D: Body> Body for Bus<R, D> {
    type Error = D::Error;

    fn body_framing(&self) -> Framing {
        self.framing.clone()
    }

    fn body_line(&self) -> LineConfig {
        self.line
    }

    fn answers_at_once(&self) -> bool {
        self.devices.iter().all(|(_, d)| d.answers_at_once())
    }

    fn body_sends_unprompted(&self) -> bool {
        false
    }

    fn answer_now(
        &mut self,
        request: &[u8],
        ctx: &mut Context,
        replies: &mut Replies,
    ) -> Option<Result<(), Self::Error>> {
        match self.router.route(request) {
            Route::To(address) => match self.devices.iter_mut().find(|(a, _)| *a == address) {
                Some((_, device)) => device.answer_now(request, ctx, replies),
                None => Some(Ok(())),
            },
            Route::All if self.answers_at_once() => {
                for (_, device) in &mut self.devices {
                    self.discarded.clear();
                    if let Some(Err(e)) = device.answer_now(request, ctx, &mut self.discarded) {
                        return Some(Err(e));
                    }
                }
                self.discarded.clear();
                Some(Ok(()))
            }
            // A broadcast some device must wait for: the async path.
            Route::All => None,
            Route::Nobody => Some(Ok(())),
        }
    }

    async fn answer_later(
        &mut self,
        request: Bytes,
        ctx: &mut Context,
        replies: &mut Replies,
    ) -> Result<(), Self::Error> {
        match self.router.route(&request) {
            Route::To(address) => match self.devices.iter_mut().find(|(a, _)| *a == address) {
                Some((_, device)) => device.answer_later(request, ctx, replies).await,
                None => Ok(()),
            },
            Route::All => {
                for (_, device) in &mut self.devices {
                    self.discarded.clear();
                    device
                        .answer_later(request.clone(), ctx, &mut self.discarded)
                        .await?;
                }
                self.discarded.clear();
                Ok(())
            }
            Route::Nobody => Ok(()),
        }
    }

    fn body_unprompted(
        &mut self,
        _ctx: &mut Context,
    ) -> impl Future<Output = Option<Reply>> + Send {
        std::future::pending()
    }

    fn body_unit(&mut self, request: &[u8]) -> Option<u32> {
        match self.router.route(request) {
            Route::To(address) => Some(address),
            Route::All | Route::Nobody => None,
        }
    }

    /// A bus's devices speak when spoken to (an RS-485 line has one master).
    fn body_talks_every(&self) -> Option<std::time::Duration> {
        None
    }

    fn body_talk(&mut self, _ctx: &mut Context, _replies: &mut Replies) {}

    fn body_on_event(&mut self, event: &LineEvent, ctx: &mut Context) {
        for (_, device) in &mut self.devices {
            device.body_on_event(event, ctx);
        }
    }

    fn body_set(&mut self, key: &str, value: &str, ctx: &mut Context) -> Result<(), String> {
        let (address, key) = key
            .split_once('.')
            .and_then(|(a, k)| Some((a.parse::<u32>().ok()?, k)))
            .ok_or_else(|| format!("on a bus, name the device: <address>.<key>, not {key:?}"))?;
        let device = self
            .devices
            .iter_mut()
            .find(|(a, _)| *a == address)
            .map(|(_, d)| d)
            .ok_or_else(|| format!("no device at address {address} on this bus"))?;
        device.body_set(key, value, ctx)
    }

    fn body_settable(&self) -> Vec<Settable> {
        self.devices
            .iter()
            .flat_map(|(address, device)| {
                device
                    .body_settable()
                    .into_iter()
                    .map(move |s| Settable::new(format!("{address}.{}", s.key), s.help))
            })
            .collect()
    }
}
