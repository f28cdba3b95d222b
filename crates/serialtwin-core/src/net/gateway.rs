//! Gateway endpoints: a network protocol translated into the port's own framing, the way a
//! Modbus TCP to RTU gateway sits in front of an RS-485 line.
//!
//! The bridge stays a client of the port's pty, so the line (pacing, latency, mismatch),
//! faults and unplug apply as for any client. What changes is that the bridge understands
//! the requests: it cuts one from the client's bytes, writes it to the line in the line's
//! framing, and waits for the reply, or for the silence a real gateway reports after its
//! timeout. One request is on the line at a time, as on a real half-duplex bus, so requests
//! a client pipelines are answered in the order they came.
//!
//! The translation itself belongs to the protocol's model (which knows its framing and its
//! checksum): the core only asks a [`Gateway`] for a [`Translate`] per connection, and the
//! endpoint's bridge (`Bridge::gateway` in `endpoint.rs`) runs it.

use std::fmt;

use bytes::{Bytes, BytesMut};

/// A network protocol a port's device can be reached by, translated at the endpoint into
/// the framing its line speaks (Modbus TCP in front of Modbus RTU).
pub trait Gateway: fmt::Debug + Send + Sync {
    /// A translator for one connection.
    fn connect(&self) -> Box<dyn Translate>;
}

/// One connection's translation between the network protocol and the line's framing.
pub trait Translate: Send {
    /// Cut the next request from what the client sent (`Ok(None)`: not whole yet).
    ///
    /// # Errors
    /// The client's bytes break the protocol beyond repair (a Modbus TCP header with another
    /// protocol id): the connection is closed, as the protocol says.
    fn request(&mut self, from_client: &mut BytesMut) -> Result<Option<Exchange>, Refusal>;

    /// Cut the reply to the request on the line from what the line sent, translated for the
    /// client (`None`: not whole yet). Bytes that cannot start that reply are dropped from
    /// `from_line`, as a gateway's receiver drops noise.
    fn reply(&mut self, from_line: &mut BytesMut) -> Option<Bytes>;

    /// What the client gets when the line stays silent past the gateway's timeout (Modbus
    /// exception 0x0B), if anything.
    fn silence(&mut self) -> Option<Bytes>;
}

/// One request, as the line is to carry it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exchange {
    /// The request in the line's framing, checksum included.
    pub to_line: Bytes,
    /// Whether a reply is awaited (a broadcast has none: the next request goes at once).
    pub expects_reply: bool,
}

/// Why a client's bytes end its connection.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(pub String);
