//! Device models for serialtwin.
//!
//! - [`pi30`]: a Voltronic PI30 / PI30MAX solar inverter (Axpert, MPP-Solar and relatives),
//!   with a simulated plant behind its numbers and parallel groups.
//!
//! [`framing_by_name`] extends the core's named framings with the ones these models bring.

pub mod pi30;
pub mod scripted;

use serialtwin_core::Framing;

/// The framing called `name`: the models' own (`pi30`, `pi30-mppsolar`, `pi30-reference`),
/// else the core's built-ins ([`Framing::by_name`]: `crlf`, `cr`, `lf`).
#[must_use]
pub fn framing_by_name(name: &str) -> Option<Framing> {
    pi30::framing(name).or_else(|| Framing::by_name(name))
}

/// The framing names [`framing_by_name`] knows besides the core's.
#[must_use]
pub fn framing_names() -> &'static [&'static str] {
    &["pi30", "pi30-mppsolar", "pi30-reference"]
}

// Devices from captures.
pub mod learn;
pub mod replay;
