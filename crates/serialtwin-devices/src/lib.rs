//! Device models for serialtwin, and the registry the `serialtwin` command reads them from.
//!
//! - [`pi30`]: a Voltronic PI30 / PI30MAX solar inverter (Axpert, MPP-Solar and relatives),
//!   with a simulated plant behind its numbers and parallel groups.
//! - [`scripted`]: a dialogue written in the config instead of Rust.
//! - [`replay`]: a device answering the way a recorded one did (a capture).
//! - [`scpi_psu`]: a SCPI bench power supply.
//! - [`scpi`]: a SCPI instrument whose properties the config declares, on shared SCPI
//!   parsing and status code.
//! - [`modbus`]: Modbus RTU units on one line.
//! - [`eastron_sdm`]: an Eastron SDM630 or SDM120 energy meter, a real device on the
//!   generic Modbus slave.
//! - [`epever`]: an EPEVER Tracer AN solar charge controller, another real Modbus device.
//! - [`nmea_gps`]: an NMEA 0183 GPS receiver, talking on a beat of its own along a simulated
//!   track.
//! - [`pyvisa_sim`]: the device behind a resource of a pyvisa-sim YAML file, compiled to a
//!   script.
//! - [`ve_direct`]: a Victron VE.Direct solar charger: text blocks on its beat, HEX
//!   answered in between.
//!
//! [`learn`] turns a capture into a scripted device. [`registry`] describes every model for
//! the command line ([`MODELS`]); [`framing_by_name`] finds the core's framings and the
//! models' own.

pub mod learn;
pub mod registry;

use serialtwin_core::Framing;

/// Declares each model's module and puts its `MODEL` in [`MODELS`]: adding a model is one
/// line here (and its folder).
///
/// `cargo fmt` does not look inside a macro, so it does not reach the models' files: CI
/// (`.ci/run`) runs rustfmt on every tracked file, and so can you
/// (`rustfmt --edition 2024 crates/serialtwin-devices/src/<model>/*.rs`).
macro_rules! models {
    ($($(#[$attr:meta])* $model:ident),+ $(,)?) => {
        $($(#[$attr])* pub mod $model;)+

        /// Every model, in the order `serialtwin models` lists them (see [`registry`]).
        pub static MODELS: &[&registry::Model] = &[$(&$model::MODEL),+];
    };
}

models! {
    pi30,
    scripted,
    replay,
    scpi_psu,
    scpi,
    modbus,
    eastron_sdm,
    epever,
    nmea_gps,
    pyvisa_sim,
    ve_direct,
}

/// docs/models.md, the walkthrough for adding a model: its code blocks are compiled and run
/// as doctests of this crate, so the walkthrough cannot drift from the registry's API.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/models.md")]
pub struct ModelsGuide;

/// The framing called `name`: the core's line framings (`crlf`, `cr`, `lf`), then the
/// models' own (`pi30`, `pi30-reference`...). [`registry::framing`] says why not.
#[must_use]
pub fn framing_by_name(name: &str) -> Option<Framing> {
    registry::framing(name).ok()
}
