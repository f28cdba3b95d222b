//! The send stage: replies encoded, shown, faulted and scheduled on the line, and written.

use super::outbox::{Drawn, Queued};
use super::{ServeError, Server};
#[cfg(doc)]
use crate::device::{AsyncDevice, Device};
use crate::device::{Body, Reply};
use crate::port::settings::LineSettings;
use crate::port::transport::Transport;
use crate::serve::observe::{Direction, Seen};
use crate::spare::Spare;
use crate::wire::fault::{self, FaultKind};
use crate::wire::framer::{BoxFramer, FrameError, Framer};
use bytes::{Buf, BytesMut};
use std::future::poll_fn;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;
use tokio::time::Instant;
use tracing::{debug, warn};

/// Append `reply` to `dst` as it goes on the wire: framed, or as given when raw. On an error
/// `dst` is left as it was.
pub(super) fn encode(
    framer: &mut BoxFramer,
    reply: &Reply,
    dst: &mut BytesMut,
) -> Result<(), FrameError> {
    let start = dst.len();
    let encoded = if reply.raw {
        dst.extend_from_slice(&reply.bytes);
        Ok(())
    } else {
        framer.encode(&reply.bytes, dst)
    };
    if encoded.is_err() {
        dst.truncate(start);
    }
    encoded
}

impl<D: Body, T: Transport> Server<D, T> {
    /// Queue the device's replies for the line stage and the faults, each after its delay (the
    /// first also after the line's `latency`).
    pub(super) fn queue_replies(&mut self, latency: Duration) {
        let mut replies = std::mem::take(&mut self.replies);
        let mut after = latency;
        for reply in replies.drain() {
            after += reply.delay;
            self.outbox
                .push(Queued::new(reply, after, self.request.clone()));
            after = Duration::ZERO;
        }
        self.replies = replies;
    }

    /// Encode a reply, show it to the observers, and draw its faults: what to send and how long
    /// a delay fault holds it. `None` when there is nothing to send (it cannot be encoded, or a
    /// fault pulled the plug).
    pub(super) fn draw(&mut self, queued: &Queued) -> Option<(Drawn, Duration)> {
        self.tx.clear();
        if let Err(e) = encode(&mut self.framer, &queued.reply, &mut self.tx) {
            self.unencodable(&e);
            return None;
        }
        let bytes = self.tx.split().freeze();
        self.observe(|| Seen::Frame(Direction::Tx, bytes.clone()));
        if self.faults.is_empty() {
            return Some((
                Drawn {
                    bytes,
                    faults: Vec::new(),
                },
                Duration::ZERO,
            ));
        }
        // Whose reply it is, asked of the bus only when a rule is for one of its devices.
        let unit = match &queued.request {
            Some(request) if self.faults.per_unit() => self.device.body_unit(request),
            _ => None,
        };
        let mut faults = self
            .faults
            .draw_for(queued.request.as_deref(), unit, self.ctx.rng());
        // Spent rules are gone: perhaps every one.
        self.refresh_direct();
        let mut delay = Duration::ZERO;
        for kind in &faults {
            self.observe(|| Seen::Fault(*kind));
            match *kind {
                FaultKind::Delay(extra) => delay += extra,
                FaultKind::Unplug(after) => {
                    self.unplug = Some(after);
                    self.outbox.clear();
                    return None;
                }
                _ => {}
            }
        }
        faults.retain(|kind| !matches!(kind, FaultKind::Delay(_)));
        Some((Drawn { bytes, faults }, delay))
    }

    /// The first reply in line is due at `now`: encode it, draw its faults, and put its bytes
    /// on the wire as the line would send them.
    pub(super) fn release(&mut self, now: Instant) {
        let Some(mut queued) = self.outbox.take_due() else {
            return;
        };
        let drawn = if let Some(drawn) = queued.drawn.take() {
            drawn
        } else {
            let Some((drawn, delay)) = self.draw(&queued) else {
                return;
            };
            if !delay.is_zero() {
                // Held back; clearing the faults lets it go at once.
                queued.drawn = Some(drawn);
                self.outbox.postpone(queued, now + delay);
                return;
            }
            drawn
        };
        let chunks = if drawn.faults.is_empty() {
            vec![drawn.bytes]
        } else {
            let checksum = self.framer.checksum_range(&drawn.bytes);
            fault::apply(
                &drawn.faults,
                &drawn.bytes,
                checksum.as_ref(),
                self.ctx.rng(),
            )
        };
        if self.io.client_present() == Some(false) {
            // Real hardware's bytes are lost when nobody listens; a pty would keep them for
            // the next client instead.
            debug!(port = %self.name, "no client: frame dropped");
            return;
        }
        let settings = self.ctx.settings();
        let Self {
            line, outbox, ctx, ..
        } = self;
        for chunk in chunks {
            line.schedule(chunk, &settings, ctx.rng(), now, |at, piece| {
                outbox.push_wire(at, piece);
            });
        }
    }

    /// Whether replies can be gathered and written together: only when the line does nothing
    /// to them (no pacing, no latency, no faults, no baud mismatch).
    pub(super) fn coalescing(&self, settings: &LineSettings) -> bool {
        let line = self.line.config();
        !line.pace
            && line.latency == crate::wire::line::Latency::None
            && self.faults.is_empty()
            && !line.mismatched(settings)
    }

    /// Write the gathered replies in one write, as far as the line takes them: what it does not
    /// take goes out first from the outbox, while the loop waits for everything else too.
    pub(super) fn write_coalesced(&mut self) -> impl Future<Output = Result<(), ServeError>> {
        // A plain `poll_fn`, not an `async fn` around one: one state less to step through on
        // every request. Ready at its first poll.
        poll_fn(|cx| {
            let result = loop {
                if self.coalesced.is_empty() {
                    break Ok(());
                }
                match Pin::new(&mut self.io).poll_write(cx, &self.coalesced) {
                    Poll::Ready(Ok(0)) => break Err(std::io::ErrorKind::WriteZero.into()),
                    Poll::Ready(Ok(n)) if n == self.coalesced.len() => self.coalesced.clear(),
                    // Rare (a full line): only then does the buffer's start move.
                    Poll::Ready(Ok(n)) => self.coalesced.advance(n),
                    Poll::Ready(Err(e)) => break Err(e),
                    Poll::Pending => {
                        let rest = self.coalesced.split().freeze();
                        self.outbox.push_front_wire(rest);
                        break Ok(());
                    }
                }
            };
            // On an error too: what could not be written is lost with the line.
            self.coalesced.clear();
            Spare::Write.give_back(&mut self.coalesced);
            Poll::Ready(result.map_err(|e| self.io_error(e)))
        })
    }

    pub(super) fn unencodable(&self, e: &FrameError) {
        warn!(port = %self.name, error = %e, "reply could not be encoded; not sent");
        self.observe(|| Seen::HandlerError(e.to_string()));
    }

    /// Whether a reply can go straight into the pending write: nothing to apply and nobody
    /// to show the frame to (see [`Server::direct`]). An observer's change of interest is
    /// taken in once per pass of the task's loop (on a lane, it recalls the port), not per
    /// request.
    #[inline]
    pub(super) fn sends_directly(&self) -> bool {
        self.direct.get()
    }

    /// Encode `reply` straight into the pending write — no copy, no allocation (see
    /// [`Server::sends_directly`]).
    pub(super) fn send_directly(&mut self, reply: &Reply) {
        if self.io.client_present() == Some(false) {
            debug!(port = %self.name, "no client: frame dropped");
            return;
        }
        // Room for the payload; the framer reserves what it adds around it.
        Spare::Write.reserve(&mut self.coalesced, reply.bytes.len());
        if let Err(e) = encode(&mut self.framer, reply, &mut self.coalesced) {
            self.unencodable(&e);
        }
    }

    /// The device's beat, if it is time at `now` ([`Device::talks_every`]): what it says goes
    /// out as an answer would, behind what is on its way. A beat that comes while the last
    /// one's words still wait to go on the wire is skipped, as a device whose UART is busy
    /// skips a cycle: a device that says more than its line carries never piles output up,
    /// and one whose line is busy answering still talks. The panic's message if it panicked.
    pub(super) fn on_beat(&mut self, now: Instant) -> Option<String> {
        if !self.beat.as_mut().is_some_and(|beat| beat.due(now)) {
            return None;
        }
        if self.outbox.holds_beat() {
            debug!(port = %self.name, "the last beat still waits for the line: beat skipped");
            return None;
        }
        self.replies.clear();
        let Self {
            device,
            ctx,
            replies,
            ..
        } = self;
        if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            device.body_talk(ctx, replies);
        })) {
            let message = super::panic_message(panic.as_ref());
            tracing::error!(port = %self.name, %message, "device panicked; port stopped");
            return Some(message);
        }
        // Not an answer: no per-command fault matches it.
        self.request = None;
        let at_once = self.replies.as_slice().iter().all(|r| r.delay.is_zero());
        if self.outbox.is_empty() && self.sends_directly() && at_once {
            let mut replies = std::mem::take(&mut self.replies);
            for reply in replies.as_slice() {
                self.send_directly(reply);
            }
            replies.clear();
            self.replies = replies;
        } else {
            let queued = self.outbox.len();
            self.queue_replies(Duration::ZERO);
            self.outbox.mark_beat(queued);
        }
        None
    }

    /// Work out the beat again after the device's values changed ([`Device::talks_every`] is
    /// read again): a new period starts afresh at `now`, the same one keeps its time.
    pub(super) fn rebeat(&mut self, now: Instant) {
        let every = self.device.body_talks_every();
        if self.beat.map(|b| b.every) != every {
            self.beat = super::Beat::of(every, now);
        }
    }

    /// Send a frame the device did not answer with (unprompted, or from control): straight
    /// into the pending write when nothing stands between it and the line, else behind
    /// whatever is waiting.
    pub(super) fn send(&mut self, reply: Reply) {
        if self.outbox.is_empty() && self.sends_directly() {
            self.send_directly(&reply);
        } else {
            self.outbox.push(Queued::new(reply, Duration::ZERO, None));
        }
    }
}
