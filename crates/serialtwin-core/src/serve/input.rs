//! The receive side: what reads bring (bytes, line events, a departed client's leftovers), cut into frames.

use super::Server;
use crate::device::Body;
#[cfg(doc)]
use crate::device::{AsyncDevice, Device};
use crate::port::settings::{LineEvent, Session};
use crate::port::transport::{PortEvent, Transport};
use crate::serve::observe::Seen;
use crate::wire::framer::Framer;
use bytes::{Buf, Bytes};
use tokio::time::Instant;
use tracing::{debug, warn};

impl<D: Body, T: Transport> Server<D, T> {
    /// The next complete frame, logging (and observing) discarded input.
    pub(super) fn next_frame(&mut self) -> Option<Bytes> {
        // A framer is asked only when there are bytes to look at (once per request less).
        while !self.rx.is_empty() {
            match self.framer.decode(&mut self.rx) {
                Ok(frame) => return frame,
                Err(e) => {
                    warn!(port = %self.name, error = %e, "input discarded");
                    self.observe(|| Seen::FrameError(e.to_string()));
                }
            }
        }
        None
    }

    pub(super) fn silence_deadline(&self) -> Option<Instant> {
        if self.rx.is_empty() {
            return None;
        }
        let gap = self.framer.silence_gap(&self.ctx.settings())?;
        Some(self.last_rx + gap)
    }

    pub(super) fn on_silence(&mut self) {
        match self.framer.on_silence(&mut self.rx) {
            Ok(Some(frame)) => {
                self.waiting = Some(frame);
            }
            Ok(None) => {}
            Err(e) => {
                warn!(port = %self.name, error = %e, "input discarded after silence");
                self.observe(|| Seen::FrameError(e.to_string()));
            }
        }
    }

    /// A purge asked for by the client's side (an RFC 2217 PURGE-DATA through a network
    /// endpoint; a pty client's own `tcflush` only empties its own queues, as on hardware):
    /// `to_client`, what the device has still to send goes, the reply being paced included;
    /// `from_client`, what the client sent and the device has not taken yet goes.
    pub(super) fn purge(&mut self, to_client: bool, from_client: bool) {
        if to_client {
            self.coalesced.clear();
            let dropped = self.outbox.clear();
            self.line.abort(Instant::now());
            debug!(port = %self.name, dropped, "purged: output to the client");
        }
        if from_client {
            let len = self.rx.len();
            self.rx.advance(len);
            self.framer.reset();
            self.partial = None;
            self.waiting = None;
            self.unconfirmed = 0;
            debug!(port = %self.name, bytes = len, "purged: input from the client");
        }
    }

    /// Every client left (some may have opened again since): what was still to go out was for
    /// them, the reply being paced stops at its next piece, and what they sent is theirs. A
    /// client that opens after this reads nothing from before; one that opened before may read
    /// at most the rest of the piece that was on the wire.
    pub(super) fn departed(&mut self, event: &PortEvent, old: usize) {
        self.coalesced.clear();
        if self.outbox.clear() {
            debug!(port = %self.name, "clients left: their unsent replies dropped");
        }
        self.line.abort(Instant::now());
        self.waiting = None;
        self.partial = None;
        // Nobody there: all of it goes. Otherwise what was read before the read that brought
        // the news, and before the notes were last brought up to date, is the departed
        // clients' (complete requests not yet answered, an unfinished one); what came later
        // may be the new client's request (one it wrote in two pieces, too).
        let confirmed = self.rx.len() - self.unconfirmed.min(self.rx.len());
        let theirs = if event.reset_input {
            self.rx.len()
        } else {
            old.min(confirmed)
        };
        if theirs > 0 {
            self.rx.advance(theirs);
            self.framer.reset();
            debug!(port = %self.name, bytes = theirs, "departed clients' input dropped");
        }
        // What came with the news, and what the line held when it came, may be the next
        // client's first request (mppsolar's hidraw path writes one in two reports): kept.
        self.rx.extend_from_slice(&event.left_behind);
        self.unconfirmed = self.rx.len();
    }

    /// A line event. `old`: how many bytes at the start of `rx` were read before the read
    /// that brought it (all of them, when it came without a read).
    pub(super) fn on_event(&mut self, event: PortEvent, old: usize) {
        if event.event == LineEvent::Closed {
            self.departed(&event, old);
        }
        match &event.event {
            LineEvent::Opened => {
                let s = self.ctx.session();
                self.ctx.set_session(Session {
                    open: Some(true),
                    count: s.count + 1,
                });
            }
            LineEvent::Closed => {
                let s = self.ctx.session();
                self.ctx.set_session(Session {
                    open: Some(false),
                    ..s
                });
            }
            LineEvent::Settings(settings) => {
                self.ctx.set_settings(*settings);
                self.refresh_direct();
            }
            LineEvent::Flush { .. }
            | LineEvent::Flow(_)
            | LineEvent::Dtr(_)
            | LineEvent::Rts(_)
            | LineEvent::Break(_) => {}
        }
        debug!(port = %self.name, event = %event.event, "line event");
        self.device.body_on_event(&event.event, &mut self.ctx);
        self.observe(|| Seen::Event(event.event));
    }

    /// New bytes came behind a partial request (`held` bytes long when the read began): drop
    /// the partial if it is older than the line's frame timeout. Returns how many of the
    /// `held` bytes are left. (The caller brings the session notes up to date, so that a
    /// session change since the partial came reaches [`Server::on_event`] before these bytes
    /// are looked at.)
    #[inline]
    pub(super) fn more_input(&mut self, held: usize) -> usize {
        let Some((since, len)) = self.partial else {
            return held;
        };
        debug_assert!(len <= held);
        if self
            .line
            .config()
            .frame_timeout
            .is_some_and(|timeout| since.elapsed() > timeout)
        {
            self.forget_partial(len);
            return held - len;
        }
        held
    }

    /// Take in what one read brought (`held` bytes were in `rx` before it): events the
    /// transport learned while reading come before the frames read, and may change what is
    /// answered (a departure's clean-up, the client's baud rate). `news`: whether to ask the
    /// transport for out-of-band events too (a pty's session watcher), not only those that
    /// came with the data. Whether any event came.
    #[inline]
    pub(super) fn take_in(&mut self, held: usize, news: bool) -> bool {
        let read = self.rx.len() - held;
        if read > 0 && self.echo {
            // The client's adapter hears its own bytes at once, before any answer.
            crate::spare::Spare::Write.reserve(&mut self.coalesced, read);
            self.coalesced.extend_from_slice(&self.rx[held..]);
        }
        // Behind a partial request, and where replies wait (pacing, latency, faults) so that
        // they must not be taken for the next client's, the session notes are brought up to
        // date first: a departure that happened before this read is seen before what it
        // brought is answered. (One inotify read per request, where each takes milliseconds.)
        let synced = read > 0 && (self.partial.is_some() || !self.sends_directly());
        let old = self.more_input(held);
        if synced {
            self.io.sync_events();
        }
        self.unconfirmed += read;
        let mut events = false;
        // Notes brought up to date are taken too (on a lane as well): what was read is only
        // the present session's once every change before it has been seen.
        while let Some(event) = if news || synced {
            self.io.take_event()
        } else {
            self.io.take_inband_event()
        } {
            self.on_event(event, old);
            events = true;
        }
        if synced {
            // Every change before this read has been seen: what is left is the present
            // session's.
            self.unconfirmed = 0;
        }
        events
    }

    /// Remember when an incomplete request was last added to (the clock is read only while
    /// there is one, and only when it grew).
    #[inline]
    pub(super) fn note_partial(&mut self) {
        self.partial = match self.partial {
            _ if self.rx.is_empty() => None,
            Some((since, len)) if len == self.rx.len() => Some((since, len)),
            _ => Some((Instant::now(), self.rx.len())),
        };
    }

    /// Drop the first `len` bytes of the receive buffer: a stale partial request.
    pub(super) fn forget_partial(&mut self, len: usize) {
        let len = len.min(self.rx.len());
        self.rx.advance(len);
        self.framer.reset();
        self.partial = None;
        debug!(port = %self.name, bytes = len, "stale partial request discarded");
        self.observe(|| Seen::FrameError(format!("stale partial request discarded ({len} bytes)")));
    }
}
