//! The port's own task: wait for whatever comes first, and hand it to the stage it belongs to.

use super::answer::Answering;
use super::control::{ControlRx, Order};
use super::outbox::Progress;
use super::{MAX_HELD_INPUT, MAX_READ_CHUNK, Outcome, READ_CHUNK, ServeError, Server};
#[cfg(doc)]
use crate::device::{AsyncDevice, Device};
use crate::device::{Body, Reply};
use crate::gate::Source;

use super::cancel::Cancelled;
use crate::port::transport::{PortEvent, Transport};
use crate::spare::Spare;
use crate::wire::framer::Framer;
use bytes::BytesMut;
use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Poll, ready};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::debug;

/// What one read of the transport produced.
pub(super) enum Recv {
    Data,
    Event(PortEvent),
    Eof,
}

/// What ended a [`Server::wait`].
pub(super) enum Wake {
    Cancelled,
    /// A reply is due, or everything was sent, or writing failed.
    Output(std::io::Result<Progress>),
    Read(std::io::Result<Recv>),
    /// A command, or `None` once the channel closed.
    Control(Option<Order>),
    Silence,
    /// The device's beat ([`Device::talks_every`]).
    Beat,
    Unprompted(Option<Reply>),
}

/// Read more bytes into `buf` (if `read`), or take a line event, whichever the transport has
/// first.
pub(super) fn poll_recv<T: Transport>(
    io: &mut T,
    buf: &mut BytesMut,
    chunk: &mut usize,
    read: bool,
    cx: &mut std::task::Context<'_>,
) -> Poll<std::io::Result<Recv>> {
    if let Poll::Ready(event) = io.poll_event(cx) {
        return Poll::Ready(Ok(Recv::Event(event)));
    }
    if !read {
        return Poll::Pending;
    }
    if buf.capacity() - buf.len() < *chunk / 2 {
        Spare::Read.reserve(buf, *chunk);
    }
    let room = buf.capacity() - buf.len();
    match ready!(tokio_util::io::poll_read_buf(Pin::new(&mut *io), cx, buf)) {
        Ok(0) => Poll::Ready(Ok(Recv::Eof)),
        Ok(n) => {
            *chunk = next_chunk(*chunk, n, room);
            Poll::Ready(Ok(Recv::Data))
        }
        Err(e) => Poll::Ready(Err(e)),
    }
}

/// The room for the read after one that got `n` bytes into `room`: twice as much after a full
/// read (a client streaming), the small default otherwise.
pub(super) fn next_chunk(chunk: usize, n: usize, room: usize) -> usize {
    if n >= room {
        (chunk * 2).min(MAX_READ_CHUNK)
    } else {
        READ_CHUNK
    }
}

impl<D: Body, T: Transport> Server<D, T> {
    /// Serve until cancelled, the transport ends, or an unplug is asked for.
    pub(crate) async fn run(
        &mut self,
        cancel: &CancellationToken,
        control: &mut Option<ControlRx>,
    ) -> Result<Outcome, ServeError> {
        self.unplug = None;
        // One cancellation future for the whole loop, and it and the control channel behind
        // gates: they are polled only after they woke the task, not on every pass (see `gate`).
        let future = std::pin::pin!(cancel.cancelled());
        // A new cancellation future and perhaps a new control channel: look at all of them.
        self.gates.open_all();
        let mut cancelled = Cancelled::new(future, self.gates.clone());
        loop {
            // What a lane left for the task (see `LanePort for Server`).
            if let Some(message) = self.panicked.take() {
                return Err(self.device_panicked(message));
            }
            if self.unplug.is_some() {
                return Ok(self.outcome());
            }
            // An observer's change of interest, before answering (see `sends_directly`).
            self.watched();
            // Answer everything complete before waiting again; a request whose device must
            // wait is awaited here, and answering goes on after it.
            loop {
                match self.answer_ready() {
                    Answering::Drained => break,
                    Answering::Later(frame) => {
                        if self.answer_later(frame, &mut cancelled).await?.is_none() {
                            return Ok(self.outcome());
                        }
                    }
                    Answering::Panicked(message) => return Err(self.device_panicked(message)),
                    // Pulled out mid-batch: requests the client already sent are lost with
                    // the line (`replug` forgets them), as on real hardware.
                    Answering::Unplugged => return Ok(self.outcome()),
                }
            }
            // An idle port keeps no buffers (see `spare`).
            Spare::Read.give_back(&mut self.rx);
            // Replies to everything that one read brought go out in one write.
            if !self.coalesced.is_empty() {
                self.write_coalesced().await?;
            }
            if self.lendable(control.as_ref()) {
                return Ok(Outcome::Lend);
            }
            let held = self.rx.len();
            match self.wait(&mut cancelled, control).await {
                Wake::Cancelled => return Ok(self.outcome()),
                Wake::Read(r) => match r.map_err(|e| self.io_error(e))? {
                    Recv::Data => {
                        // When, for a framer that cuts on silence: it may ask for silence
                        // only once it has seen these bytes (a request whose length its
                        // header does not give), so every read is timed. Ports that need no
                        // timing are served from lanes, which read no clock.
                        self.last_rx = Instant::now();
                        self.take_in(held, true);
                    }
                    Recv::Event(event) => self.on_event(event, self.rx.len()),
                    Recv::Eof => {
                        debug!(port = %self.name, "transport closed");
                        return Ok(self.outcome());
                    }
                },
                Wake::Output(Ok(Progress::Due)) => self.release(Instant::now()),
                Wake::Output(Err(e)) => return Err(self.io_error(e)),
                Wake::Control(None) => *control = None,
                Wake::Control(Some(order)) => self.obey(order),
                Wake::Silence => self.on_silence(),
                Wake::Beat => {
                    if let Some(message) = self.on_beat(Instant::now()) {
                        return Err(self.device_panicked(message));
                    }
                }
                Wake::Output(Ok(Progress::Sent)) | Wake::Unprompted(None) => {}
                Wake::Unprompted(Some(reply)) => self.send(reply),
            }
        }
    }

    /// Whether the port could be served by a lane now: a device that answers without waiting,
    /// nothing pending, nothing to apply to replies, nobody watching, no silence framing, no
    /// source waiting to be looked at, and a transport that says it can go.
    pub(super) fn lendable(&self, control: Option<&ControlRx>) -> bool {
        self.can_lend.is_some()
            && self.lane_device
            && self.unplug.is_none()
            && self.waiting.is_none()
            && self.coalesced.is_empty()
            && self.outbox.is_empty()
            && self.gates_quiet(control)
            && self.quiet_now()
    }

    /// Whether cancellation and the control channel have nothing the task has not seen.
    pub(crate) fn gates_quiet(&self, control: Option<&ControlRx>) -> bool {
        !self.gates.is_open(Source::Cancel)
            && (control.is_none() || !self.gates.is_open(Source::Control))
    }

    /// What a lane needs of the port, looked at again after each of its requests: nothing to
    /// apply to replies but what the line does (its pacing, latency and mismatch the lane's
    /// timers carry out), nobody watching, a framer that does not cut on silence, and a
    /// transport that can stay.
    pub(super) fn quiet_now(&self) -> bool {
        self.faults.is_empty()
            && !self.watching.get()
            && self.framer.silence_gap(&self.ctx.settings()).is_none()
            && self.can_lend.is_some_and(|can_lend| can_lend(&self.io))
    }

    /// Wait for the next thing to do: cancellation, output due or sent, input or a line event,
    /// a control command, the end of a silence gap, the device's beat, or an unprompted frame
    /// from the device —
    /// looked at in that order. One `poll_fn` rather than a `select!`: this runs twice per request, and every
    /// instruction here is paid by every port.
    pub(super) async fn wait(
        &mut self,
        cancelled: &mut Cancelled<'_, '_>,
        control: &mut Option<ControlRx>,
    ) -> Wake {
        let silence = self.silence_deadline();
        let beat = self.beat.map(|b| b.next);
        let Self {
            device,
            ctx,
            io,
            rx,
            read_chunk,
            gates,
            outbox,
            streams,
            ..
        } = self;
        // While replies wait to go out, input is read up to a limit (line events still come).
        let read = outbox.is_empty() || rx.len() < MAX_HELD_INPUT;
        // The device's future lives for the whole wait (it must be cancel-safe, not restarted
        // on every wake-up); a timer exists only while a silence gap is running.
        let mut unprompted = std::pin::pin!(streams.then(|| device.body_unprompted(ctx)));
        let mut silence = std::pin::pin!(silence.map(tokio::time::sleep_until));
        let mut beat = std::pin::pin!(beat.map(tokio::time::sleep_until));
        poll_fn(|cx| {
            if cancelled.poll(cx).is_ready() {
                return Poll::Ready(Wake::Cancelled);
            }
            if let Poll::Ready(progress) = outbox.poll_write(io, cx) {
                return Poll::Ready(Wake::Output(progress));
            }
            if let Poll::Ready(r) = poll_recv(io, rx, read_chunk, read, cx) {
                return Poll::Ready(Wake::Read(r));
            }
            if let Some(control) = control.as_mut()
                && let Poll::Ready(cmd) =
                    gates.poll(Source::Control, cx, |cx| control.poll_recv(cx))
            {
                return Poll::Ready(Wake::Control(cmd));
            }
            if let Some(sleep) = silence.as_mut().as_pin_mut()
                && sleep.poll(cx).is_ready()
            {
                return Poll::Ready(Wake::Silence);
            }
            if let Some(sleep) = beat.as_mut().as_pin_mut()
                && sleep.poll(cx).is_ready()
            {
                return Poll::Ready(Wake::Beat);
            }
            match unprompted.as_mut().as_pin_mut() {
                Some(unprompted) => unprompted.poll(cx).map(Wake::Unprompted),
                None => Poll::Pending,
            }
        })
        .await
    }
}
