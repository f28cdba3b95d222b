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
//! checksum): the core only asks a [`Gateway`] for a [`Translate`] per connection.

use std::fmt;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::endpoint::{Bridge, CHUNK, End};
use crate::port::pty::PtyClient;

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

/// What the client may send ahead while a request is on the line: enough for many pipelined
/// requests, and a bound on what a client that never reads can make the bridge hold.
const MAX_AHEAD: usize = 64 * 1024;

impl Bridge {
    /// A gateway: requests translated onto the line one at a time, replies translated back.
    pub(super) async fn gateway(
        &self,
        stream: &mut TcpStream,
        pty: &PtyClient,
        mut translate: Box<dyn Translate>,
        timeout: Duration,
    ) -> End {
        let (mut from_net, mut to_net) = stream.split();
        let mut from_client = BytesMut::new();
        let mut from_line = BytesMut::new();
        let mut net_buf = vec![0_u8; CHUNK];
        let mut pty_buf = vec![0_u8; CHUNK];
        loop {
            let exchange = match translate.request(&mut from_client) {
                Ok(exchange) => exchange,
                Err(refusal) => return End::Protocol(refusal.0),
            };
            let Some(exchange) = exchange else {
                // Nothing to send: wait for the client. What the line says meanwhile answers
                // nobody and is dropped.
                tokio::select! {
                    () = self.kick.cancelled() => return End::Kicked,
                    () = self.idle() => return End::Idle,
                    read = from_net.read(&mut net_buf) => match read {
                        Ok(0) => return End::ClientLeft,
                        Ok(n) => from_client.extend_from_slice(&net_buf[..n]),
                        Err(e) => return End::Network(e),
                    },
                    read = pty.read(&mut pty_buf) => if let Err(e) = read {
                        return End::PortGone(e);
                    },
                }
                continue;
            };
            // A reply that came after its timeout must not pass for this request's.
            if let Err(e) = pty.drain() {
                return End::PortGone(e);
            }
            if let Err(e) = pty.write_all(&exchange.to_line).await {
                return End::PortGone(e);
            }
            if !exchange.expects_reply {
                continue;
            }
            from_line.clear();
            let deadline = tokio::time::sleep(timeout);
            tokio::pin!(deadline);
            let answer = loop {
                tokio::select! {
                    () = self.kick.cancelled() => return End::Kicked,
                    () = &mut deadline => break translate.silence(),
                    read = pty.read(&mut pty_buf) => match read {
                        Ok(n) => {
                            from_line.extend_from_slice(&pty_buf[..n]);
                            if let Some(reply) = translate.reply(&mut from_line) {
                                break Some(reply);
                            }
                        }
                        Err(e) => return End::PortGone(e),
                    },
                    read = from_net.read(&mut net_buf), if from_client.len() < MAX_AHEAD => match read {
                        Ok(0) => return End::ClientLeft,
                        Ok(n) => from_client.extend_from_slice(&net_buf[..n]),
                        Err(e) => return End::Network(e),
                    },
                }
            };
            if let Some(answer) = answer
                && let Err(e) = to_net.write_all(&answer).await
            {
                return End::Network(e);
            }
        }
    }
}
