//! Commands from outside a running port ([`Control`]), carried out at once.

use super::Server;
#[cfg(doc)]
use crate::device::{AsyncDevice, Device};
use crate::device::{Body, Reply};
use crate::port::settings::LineEvent;
use crate::port::transport::Transport;
use crate::wire::fault::FaultRule;
use bytes::Bytes;
use std::task::Poll;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// Commands the outside world sends to a running port.
#[derive(Debug)]
#[non_exhaustive]
pub enum Control {
    /// Send these bytes to the client exactly as given (after the line stage).
    SendRaw(Bytes),
    /// Encode this frame with the port's framer and send it, as if the device had.
    SendFrame(Bytes),
    /// Add a fault rule.
    Fault(FaultRule),
    /// Remove every fault rule.
    ClearFaults,
    /// Pull the plug now; the port comes back after this long (ports served by a [`Fleet`]
    /// only; elsewhere the serving loop ends).
    ///
    /// [`Fleet`]: crate::fleet::Fleet
    Unplug(Duration),
    /// A line event the port's transport cannot carry, from a network endpoint in front of
    /// it: the client's whole settings (parity and data bits, which a pty cannot show), DTR,
    /// RTS, a break. A [`LineEvent::Flush`] is a purge: what it names is dropped here (the
    /// reply being paced included) before the device hears of it.
    Line(LineEvent),
    /// Change a device value by name (see [`Device::set`]); the reply says whether it took.
    Set {
        /// The value's name, e.g. `grid`.
        key: String,
        /// The new value, e.g. `off`.
        value: String,
        /// Where the outcome goes.
        reply: Option<tokio::sync::oneshot::Sender<Result<(), String>>>,
    },
}

/// A [`Control`] command, and where to say how it went.
#[derive(Debug)]
pub(crate) struct Order {
    pub(crate) control: Control,
    /// Told once the command took effect (`Ok`) or was refused (why).
    pub(crate) done: Option<tokio::sync::oneshot::Sender<Result<(), String>>>,
}

impl PartialEq for Control {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::SendRaw(a), Self::SendRaw(b)) | (Self::SendFrame(a), Self::SendFrame(b)) => {
                a == b
            }
            (Self::Fault(a), Self::Fault(b)) => a == b,
            (Self::ClearFaults, Self::ClearFaults) => true,
            (Self::Unplug(a), Self::Unplug(b)) => a == b,
            (Self::Line(a), Self::Line(b)) => a == b,
            (
                Self::Set {
                    key: k1, value: v1, ..
                },
                Self::Set {
                    key: k2, value: v2, ..
                },
            ) => k1 == k2 && v1 == v2,
            _ => false,
        }
    }
}

/// Where a serving loop's [`Control`] commands come from. Fleets send them boxed: a channel
/// allocates its slots up front, and one pointer a slot instead of a whole `Control` is ~2 KiB
/// less per port.
#[derive(Debug)]
pub(crate) enum ControlRx {
    /// From [`super::serve_with_control`]'s caller.
    Plain(mpsc::Receiver<Control>),
    /// From a [`PortHandle`](crate::fleet::PortHandle), each with where its outcome goes.
    Boxed(mpsc::Receiver<Box<Order>>),
}

impl ControlRx {
    pub(crate) fn poll_recv(&mut self, cx: &mut std::task::Context<'_>) -> Poll<Option<Order>> {
        match self {
            Self::Plain(rx) => rx.poll_recv(cx).map(|c| {
                c.map(|control| Order {
                    control,
                    done: None,
                })
            }),
            Self::Boxed(rx) => rx.poll_recv(cx).map(|c| c.map(|c| *c)),
        }
    }
}

impl<D: Body, T: Transport> Server<D, T> {
    /// Carry out a control command at once, whatever the port is doing (a reply being paced
    /// or held by a delay, a client that does not read), and say how it went.
    pub(crate) fn obey(&mut self, order: Order) {
        let Order { control, done } = order;
        let result = match control {
            Control::SendRaw(bytes) => self.send_for_control(Reply::raw(bytes)),
            Control::SendFrame(bytes) => self.send_for_control(Reply::frame(bytes)),
            Control::Fault(rule) => {
                debug!(port = %self.name, ?rule, "fault added");
                self.faults.add(rule);
                self.refresh_direct();
                Ok(())
            }
            Control::ClearFaults => {
                self.faults.clear();
                self.refresh_direct();
                self.outbox.clear_faults(Instant::now());
                Ok(())
            }
            Control::Unplug(after) => {
                self.unplug = Some(after);
                Ok(())
            }
            Control::Line(event) => {
                if let LineEvent::Flush { input, output } = event {
                    // The client's input is the device's output.
                    self.purge(input, output);
                }
                let held = self.rx.len();
                self.on_event(event.into(), held);
                Ok(())
            }
            Control::Set { key, value, reply } => {
                let result = self.device.body_set(&key, &value, &mut self.ctx);
                match &result {
                    Ok(()) => {
                        info!(port = %self.name, %key, %value, "device value set");
                        self.rebeat(Instant::now());
                    }
                    Err(e) => {
                        warn!(port = %self.name, %key, %value, error = %e, "device value not set");
                    }
                }
                if let Some(reply) = reply {
                    let _ = reply.send(result.clone());
                }
                result
            }
        };
        if let Some(done) = done {
            let _ = done.send(result);
        }
    }

    /// A frame sent by control: refused while the client is not reading (it would only pile
    /// up behind what the line cannot take).
    pub(super) fn send_for_control(&mut self, reply: Reply) -> Result<(), String> {
        if self.outbox.is_blocked() {
            return Err("port busy: its client is not reading".to_owned());
        }
        self.send(reply);
        Ok(())
    }
}
