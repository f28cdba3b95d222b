//! The built-in models, and the one device type a fleet of mixed models runs.

use std::convert::Infallible;

use serialtwin_core::{Context, Device, Framing, LineConfig, LineEvent, Replies};
use serialtwin_devices::pi30::Pi30;
use serialtwin_devices::scripted::Scripted;

/// A built-in model, as `serialtwin models` lists it.
#[derive(Debug)]
pub(crate) struct Model {
    /// The `model` key of a `[[device]]`.
    pub(crate) name: &'static str,
    /// Its own settings table, `[device.<table>]`.
    pub(crate) table: &'static str,
    /// One line on what it emulates.
    pub(crate) summary: &'static str,
}

/// Every built-in model.
pub(crate) const MODELS: &[Model] = &[
    Model {
        name: "pi30",
        table: "pi30",
        summary: "Voltronic PI30/PI30MAX solar inverter (Axpert, MPP-Solar, EASUN): 2400 baud, \
                  CR + CRC frames, a simulated plant, parallel groups",
    },
    Model {
        name: "scripted",
        table: "script",
        summary: "a dialogue written in the config: exact or regex requests, reply templates, \
                  state, sequences, delays, raw bytes (CRLF lines unless `framing` says otherwise)",
    },
];

/// The model called `name`.
pub(crate) fn find(name: &str) -> Option<&'static Model> {
    MODELS.iter().find(|m| m.name == name)
}

/// `serialtwin models`.
pub(crate) fn list() {
    for m in MODELS {
        println!("{:<10} {}", m.name, m.summary);
    }
}

/// Any built-in device, so that one fleet can run several models.
#[derive(Debug)]
pub(crate) enum AnyDevice {
    /// `pi30`.
    Pi30(Pi30),
    /// `scripted`.
    Scripted(Scripted),
}

impl Device for AnyDevice {
    type Error = Infallible;

    fn framing(&self) -> Framing {
        match self {
            Self::Pi30(d) => d.framing(),
            Self::Scripted(d) => d.framing(),
        }
    }

    fn line(&self) -> LineConfig {
        match self {
            Self::Pi30(d) => d.line(),
            Self::Scripted(d) => d.line(),
        }
    }

    fn handle(
        &mut self,
        request: &[u8],
        ctx: &mut Context,
        replies: &mut Replies,
    ) -> Result<(), Self::Error> {
        match self {
            Self::Pi30(d) => d.handle(request, ctx, replies),
            Self::Scripted(d) => d.handle(request, ctx, replies),
        }
    }

    fn on_event(&mut self, event: &LineEvent, ctx: &mut Context) {
        match self {
            Self::Pi30(d) => d.on_event(event, ctx),
            Self::Scripted(d) => d.on_event(event, ctx),
        }
    }

    fn set(&mut self, key: &str, value: &str, ctx: &mut Context) -> Result<(), String> {
        match self {
            Self::Pi30(d) => d.set(key, value, ctx),
            Self::Scripted(d) => d.set(key, value, ctx),
        }
    }
}
