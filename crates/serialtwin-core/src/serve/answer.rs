//! The answering core: complete requests to the device, replies to the send stage.

use super::cancel::Cancelled;
use super::{ServeError, Server, panic_message};
use crate::device::Body;
#[cfg(doc)]
use crate::device::{AsyncDevice, Device};
use crate::port::transport::Transport;
use crate::serve::observe::{Direction, Seen};
use crate::wire::framer::Framer;
use bytes::{Buf, Bytes};
use futures::FutureExt;
use std::panic::AssertUnwindSafe;
use std::time::Duration;
use tracing::{debug, error, warn};

/// Where [`Server::answer_ready`] stopped.
pub(super) enum Answering {
    /// Every complete request is answered, or replies wait in the outbox before the next is.
    Drained,
    /// The device must wait to answer this one ([`Server::answer_later`]).
    Later(Bytes),
    /// The device panicked (logged): the port stops with this message.
    Panicked(String),
    /// A fault pulled the plug.
    Unplugged,
}

/// What answering a request without waiting left to do.
pub(super) enum Answered {
    /// Nothing: the replies, if any, are in the pending write.
    Done,
    /// Replies that wait or pass through the line stage or faults: the outbox takes them,
    /// the first after this latency.
    Deliver(Duration),
    /// The device panicked (logged): the port stops with this message.
    Panicked(String),
}

/// A request frame: cut out of the receive buffer, or still in it (a lane, see
/// [`Framer::peek`]).
pub(super) enum Request<'a> {
    Cut(Bytes),
    InPlace(&'a [u8]),
}

impl Request<'_> {
    fn as_slice(&self) -> &[u8] {
        match self {
            Self::Cut(b) => b,
            Self::InPlace(s) => s,
        }
    }

    /// The frame as `Bytes` (a copy only if it is still in the buffer).
    fn to_bytes(&self) -> Bytes {
        match self {
            Self::Cut(b) => b.clone(),
            Self::InPlace(s) => Bytes::copy_from_slice(s),
        }
    }

    fn into_bytes(self) -> Bytes {
        match self {
            Self::Cut(b) => b,
            Self::InPlace(s) => Bytes::copy_from_slice(s),
        }
    }
}

impl<D: Body, T: Transport> Server<D, T> {
    /// Answer every complete request in the receive buffer that the device answers at once,
    /// in order: the one answering core, for the port's task and its lane alike. It never
    /// writes: replies that go straight out wait in the pending write (`coalesced`), the rest in
    /// the outbox with their release times — and while anything waits there (pacing, latency,
    /// delays, faults), the next request is answered only once it has left, as a device's UART
    /// sends one answer at a time.
    ///
    /// Where the framer can say, a request is answered where it lies in the buffer: no `Bytes`
    /// cut out of it and dropped again per request.
    #[inline]
    pub(super) fn answer_ready(&mut self) -> Answering {
        while self.outbox.is_empty() {
            let answered = if let Some(frame) = self.waiting.take() {
                self.answer_frame(Request::Cut(frame))
            } else if self.rx.is_empty() {
                break;
            } else if let Some(at) = self.framer.peek(&self.rx) {
                let rx = std::mem::take(&mut self.rx);
                let answered = self.answer_frame(Request::InPlace(&rx[at.frame]));
                self.rx = rx;
                if at.used == self.rx.len() {
                    // The buffer's start stays where it is for the next read.
                    self.rx.clear();
                } else {
                    self.rx.advance(at.used);
                }
                answered
            } else if let Some(frame) = self.next_frame() {
                self.answer_frame(Request::Cut(frame))
            } else {
                break;
            };
            match answered {
                Ok(Answered::Done) => {}
                Ok(Answered::Deliver(latency)) => self.queue_replies(latency),
                Ok(Answered::Panicked(message)) => return Answering::Panicked(message),
                Err(frame) => return Answering::Later(frame),
            }
            if self.unplug.is_some() {
                return Answering::Unplugged;
            }
        }
        if self.outbox.is_empty() {
            self.note_partial();
        }
        Answering::Drained
    }

    /// Hand a request the device must wait to answer to it, and queue its replies; `None` if
    /// cancelled meanwhile.
    ///
    /// The device's future is awaited in place, not boxed: most finish in their first poll.
    pub(super) async fn answer_later(
        &mut self,
        frame: Bytes,
        cancelled: &mut Cancelled<'_, '_>,
    ) -> Result<Option<()>, ServeError> {
        let handled = {
            let Self {
                device,
                ctx,
                replies,
                ..
            } = self;
            let handling =
                AssertUnwindSafe(device.answer_later(frame, ctx, replies)).catch_unwind();
            cancelled.or(std::pin::pin!(handling)).await
        };
        let Some(handled) = handled else {
            return Ok(None);
        };
        let answered = match handled {
            Ok(result) => {
                let direct = self.sends_directly();
                self.handled(result, direct)
            }
            Err(panic) => self.panicking(panic.as_ref()),
        };
        match answered {
            Answered::Done => Ok(Some(())),
            Answered::Deliver(latency) => {
                self.queue_replies(latency);
                Ok(Some(()))
            }
            Answered::Panicked(message) => Err(self.device_panicked(message)),
        }
    }

    /// Answer `frame` if the device answers at once; else give it back, as `Bytes`, for
    /// [`Server::answer_later`].
    ///
    /// While replies go straight out (see [`Server::direct`]) there is nothing to do before the
    /// device answers: nobody to show the frame to, no faults to match it against, the client
    /// at the line's rate.
    #[inline]
    pub(super) fn answer_frame(&mut self, frame: Request<'_>) -> Result<Answered, Bytes> {
        let direct = self.sends_directly();
        if !direct {
            self.observe(|| Seen::Frame(Direction::Rx, frame.to_bytes()));
            // Kept for per-command faults only (a reference count less per request otherwise).
            self.request = (!self.faults.is_empty()).then(|| frame.to_bytes());
            if !self.line.accepts_input(&self.ctx.settings()) {
                debug!(port = %self.name, "client at the wrong baud rate: request not understood");
                return Ok(Answered::Done);
            }
        } else if self.request.is_some() {
            self.request = None;
        }
        self.replies.clear();
        let Self {
            device,
            ctx,
            replies,
            ..
        } = self;
        let request = frame.as_slice();
        match std::panic::catch_unwind(AssertUnwindSafe(|| {
            device.answer_now(request, ctx, replies)
        })) {
            Ok(Some(result)) => Ok(self.handled(result, direct)),
            Ok(None) => Err(frame.into_bytes()),
            Err(panic) => Ok(self.panicking(panic.as_ref())),
        }
    }

    pub(super) fn panicking(&self, panic: &(dyn std::any::Any + Send)) -> Answered {
        let message = panic_message(panic);
        error!(port = %self.name, %message, "device panicked; port stopped");
        Answered::Panicked(message)
    }

    /// The device answered: log its failure, and send its replies straight out if nothing
    /// stands between them and the line (`direct`, see [`Server::direct`]).
    #[inline]
    pub(super) fn handled(&mut self, result: Result<(), D::Error>, direct: bool) -> Answered {
        if let Err(e) = result {
            warn!(port = %self.name, error = %e, "device handler failed");
            self.observe(|| Seen::HandlerError(e.to_string()));
        }
        if self.replies.is_empty() {
            return Answered::Done;
        }
        if direct && self.replies.as_slice().iter().all(|r| r.delay.is_zero()) {
            // The common case: every reply goes out with the next write, encoded in place.
            let mut replies = std::mem::take(&mut self.replies);
            for reply in replies.as_slice() {
                self.send_directly(reply);
            }
            replies.clear();
            self.replies = replies;
            return Answered::Done;
        }
        let latency = self.line.config().latency.sample(self.ctx.rng());
        Answered::Deliver(latency)
    }
}
