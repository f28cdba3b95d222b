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
//! Raw TCP (bytes only: pyserial's `socket://`, and RTU-over-TCP for a Modbus line), RFC 2217
//! (Telnet with the COM-PORT-OPTION: pyserial's `rfc2217://`, ser2net's `telnet(rfc2217)`),
//! and gateways, which understand the requests ([`Gateway`]: Modbus TCP in front of an RTU
//! line).
//!
//! The other way round, [`rfc2217_client`] is RFC 2217's client side, without I/O: what
//! `serialtwin tap --upstream rfc2217://host:port` speaks to an access server.

mod endpoint;
mod gateway;
pub mod rfc2217;
pub mod rfc2217_client;

pub use self::endpoint::{
    Endpoint, EndpointConfig, EndpointKind, GATEWAY_TIMEOUT, KEEPALIVE, SecondClient,
};
pub use self::gateway::{Exchange, Gateway, Refusal, Translate};
pub use crate::port::settings::ModemLine;
