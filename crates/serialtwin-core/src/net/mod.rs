//! Network endpoints: a port's device served over TCP as well as on its pty.
//!
//! An [`Endpoint`] listens on a TCP address and bridges one client at a time to its port: the
//! bridge opens the port's pty as any local client would, so the port's framer, line (pacing,
//! latency, baud mismatch), faults and unplug apply to network clients unchanged, and the
//! device hears the client's open and close as line events. What a pty cannot carry (parity
//! and data bits, DTR, RTS, break, a purge) goes to the port beside the bytes, as
//! [`Control::Line`](crate::Control::Line) events; the modem lines the device drives come back
//! from [`PortHandle::modem_lines`](crate::PortHandle::modem_lines).
//!
//! Two kinds: raw TCP (bytes only: pyserial's `socket://`) and RFC 2217 (Telnet with the
//! COM-PORT-OPTION: pyserial's `rfc2217://`, ser2net's `telnet(rfc2217)`).

mod endpoint;
pub mod rfc2217;

pub use self::endpoint::{Endpoint, EndpointConfig, EndpointKind, KEEPALIVE, SecondClient};

/// A modem line the device drives towards the client. On the wire (RFC 2217's
/// NOTIFY-MODEMSTATE, an 8250 MSR) each is one bit of the high nibble.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ModemLine {
    /// Clear to send.
    Cts,
    /// Data set ready.
    Dsr,
    /// Ring indicator.
    Ri,
    /// Data carrier detect.
    Dcd,
}

impl ModemLine {
    /// The line's bit in an 8250 modem status register.
    #[must_use]
    pub const fn bit(self) -> u8 {
        match self {
            Self::Cts => 0x10,
            Self::Dsr => 0x20,
            Self::Ri => 0x40,
            Self::Dcd => 0x80,
        }
    }

    /// Its name in the control protocol: `cts`, `dsr`, `ri`, `dcd`.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Cts => "cts",
            Self::Dsr => "dsr",
            Self::Ri => "ri",
            Self::Dcd => "dcd",
        }
    }

    /// `cts`, `dsr`, `ri`, or `dcd` (also `cd`, pyserial's name).
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "cts" => Some(Self::Cts),
            "dsr" => Some(Self::Dsr),
            "ri" => Some(Self::Ri),
            "dcd" | "cd" => Some(Self::Dcd),
            _ => None,
        }
    }
}
