//! A port's side of a fleet's lane ([`super::lane`]): what the lane calls to serve it.

use super::MAX_HELD_INPUT;
use super::Server;
use super::answer::Answering;
use super::control::ControlRx;
use super::lane::{HOT, LanePort, Scratch, Step, Timed};
use super::outbox::Next;
use super::run::next_chunk;
use crate::device::Body;
#[cfg(doc)]
use crate::device::{AsyncDevice, Device};
use crate::gate::Source;
use crate::port::pty::PtyPort;
use crate::port::pty::ReadNow;
use crate::port::transport::Transport;
use crate::spare::Spare;
use bytes::Buf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use tokio::time::Instant;
use tracing::error;

impl<D: Body> Server<D, PtyPort> {
    /// Get ready to be lent (called by the owner, in its task, right after [`super::Outcome::Lend`]):
    /// wake-ups from the gates' sources and the session watcher reach this task from here on.
    /// `false` if something came meanwhile, for [`Server::run`] to handle.
    pub(crate) fn ready_to_lend(
        &mut self,
        cx: &mut std::task::Context<'_>,
        control: Option<&ControlRx>,
    ) -> bool {
        self.gates.register(cx.waker());
        if let Poll::Ready(event) = self.io.poll_event(cx) {
            self.on_event(event, self.rx.len());
            return false;
        }
        // An observer's interest too: the lane does not look at it (see `watched`).
        if !self.gates_quiet(control) || self.gates.is_open(Source::Watch) {
            return false;
        }
        self.io.leave_reactor();
        true
    }

    /// Trade the port's receive and reply buffers, where empty, for the lane's (see
    /// [`Scratch`]).
    pub(super) fn swap_empty(&mut self, scratch: &mut Scratch) {
        if self.rx.is_empty() {
            std::mem::swap(&mut self.rx, &mut scratch.rx);
        }
        if self.replies.is_empty() {
            std::mem::swap(&mut self.replies, &mut scratch.replies);
        }
    }

    /// Never lend this port again (its lane would not take it).
    pub(crate) fn stop_lending(&mut self) {
        self.can_lend = None;
    }

    /// One read on a lane, and what it brought served.
    pub(super) fn serve_read(&mut self, recalled: &AtomicBool) -> Turn {
        // Into the lane's buffer, most often (see `swap_empty`).
        if self.rx.capacity() - self.rx.len() < self.read_chunk / 2 {
            self.rx.reserve(self.read_chunk);
        }
        let (before, room) = (self.rx.len(), self.rx.capacity() - self.rx.len());
        let more = match self.io.read_now(&mut self.rx) {
            ReadNow::Data { full } => {
                // (The packet header took one byte of the room.)
                let n = if full { room } else { self.rx.len() - before };
                self.read_chunk = next_chunk(self.read_chunk, n, room);
                full
            }
            // Data may follow the status byte.
            ReadNow::Events => true,
            ReadNow::Nothing => return Turn::Done,
            ReadNow::Stop => return Turn::Leave,
        };
        // The session watcher's news is looked at only if it (or anything else) recalled the
        // port: it is on its way back to its task then, which answers what was read.
        let recall = recalled.load(Ordering::Acquire);
        let events = self.take_in(before, recall);
        if recall || (events && !self.quiet_now()) {
            return Turn::Leave;
        }
        match self.answer_ready() {
            // Replies that go straight out wait in `coalesced` for `LanePort::flush`, after the
            // lane's batch; paced or delayed ones in the outbox, for the lane's timers
            // (`LanePort::on_time`).
            Answering::Drained => {}
            Answering::Unplugged => return Turn::Leave,
            Answering::Later(frame) => {
                self.waiting = Some(frame);
                return Turn::Leave;
            }
            Answering::Panicked(message) => {
                self.panicked = Some(message);
                return Turn::Leave;
            }
        }
        if !self.rx.is_empty() && self.framer.silence_gap(&self.ctx.settings()).is_some() {
            // A request the framer can cut only on silence (one whose length its header does
            // not give): the task's timer waits for it, from this read.
            self.last_rx = Instant::now();
            return Turn::Leave;
        }
        if !self.outbox.is_empty() && self.rx.len() >= MAX_HELD_INPUT {
            // A client writing far faster than its answers go out: its task reads no more
            // until they have (the lane's edge-triggered set would not say when to).
            return Turn::Leave;
        }
        if more { Turn::Again } else { Turn::Done }
    }

    /// A lane's turn at the port's output, at `now`: write what went straight out and what is
    /// due, release the replies whose time has come, and answer the requests held back while
    /// output waited (the answering core again). The outbox's own schedule, as on the task
    /// (`Outbox::poll_write`); only the waiting is the lane's.
    pub(super) fn drive_output(&mut self, now: Instant) -> Timed {
        // The device's beat too: what it says goes behind what waits.
        if let Some(message) = self.on_beat(now) {
            self.panicked = Some(message);
            return Timed::Leave;
        }
        let timed = self.write_output(now);
        match (timed, self.beat.map(|b| b.next)) {
            (Timed::Idle, Some(beat)) => Timed::At(beat),
            (Timed::At(at), Some(beat)) => Timed::At(at.min(beat)),
            (timed, _) => timed,
        }
    }

    /// [`Server::drive_output`] without the beat.
    fn write_output(&mut self, now: Instant) -> Timed {
        loop {
            if !self.coalesced.is_empty() {
                // Before anything in the outbox: it was answered first.
                match self.io.write_now(&self.coalesced) {
                    Ok(n) if n == self.coalesced.len() => {
                        // A lent port keeps no buffer of its own (see `serve_input`).
                        self.coalesced.clear();
                        Spare::Write.give_back(&mut self.coalesced);
                    }
                    Ok(n) => {
                        self.coalesced.advance(n);
                        return Timed::Leave;
                    }
                    Err(_) => return Timed::Leave,
                }
            }
            let Self { io, outbox, .. } = self;
            let next = outbox.write_due(now, |bytes| match io.write_now(bytes) {
                // A full line.
                Ok(0) => Poll::Pending,
                written => Poll::Ready(written),
            });
            match next {
                Ok(Next::At(at)) => return Timed::At(at),
                Ok(Next::Due) => {
                    self.release(now);
                    if self.unplug.is_some() {
                        return Timed::Leave;
                    }
                }
                Ok(Next::Sent) => match self.answer_ready() {
                    Answering::Drained if self.outbox.is_empty() && self.coalesced.is_empty() => {
                        return Timed::Idle;
                    }
                    Answering::Drained => {}
                    Answering::Later(frame) => {
                        self.waiting = Some(frame);
                        return Timed::Leave;
                    }
                    Answering::Panicked(message) => {
                        self.panicked = Some(message);
                        return Timed::Leave;
                    }
                    Answering::Unplugged => return Timed::Leave,
                },
                // A full line (the task waits for room), or an error its task meets again.
                Ok(Next::Blocked) | Err(_) => return Timed::Leave,
            }
        }
    }
}

/// A lane serves a quiet port with this: a read, every complete request answered without
/// waiting, a write (and again while reads fill their room). Whatever it cannot do without
/// waiting (an asynchronous handler, replies to deliver, a full line, end of input, a panic) it
/// leaves for the task, in order: the frame not answered waits in `waiting`, replies in the
/// outbox, the unwritten rest in `coalesced`.
impl<D: Body> LanePort for Server<D, PtyPort> {
    fn master(&self) -> std::os::fd::BorrowedFd<'_> {
        self.io.master()
    }

    fn serve_input(&mut self, recalled: &AtomicBool, scratch: &mut Scratch) -> Step {
        self.swap_empty(scratch);
        if self.coalesced.is_empty() {
            // The port's own buffer (it has one only if its task wrote last) is not kept:
            // a lent port holds none, and the lane's pool lends it a warm one.
            self.coalesced = scratch.take_tx();
        }
        // Read until the master is drained (the lane's epoll is edge-triggered); a client that
        // keeps it full (streaming) is served a few reads per turn, then the lane moves on and
        // comes back (`Busy`).
        let mut step = Step::Busy;
        for _ in 0..READS_PER_TURN {
            match self.serve_read(recalled) {
                // A client streaming requests: what this read's answered goes out before the
                // next read (the rest of the batch need not wait for it, and the line keeps
                // room). The last read's replies wait for the batch's writes (`flush`).
                Turn::Again if self.has_output() && self.flush(scratch) == Step::Leave => {
                    step = Step::Leave;
                    break;
                }
                Turn::Again => {}
                Turn::Done => {
                    step = Step::Stay;
                    break;
                }
                Turn::Leave => {
                    step = Step::Leave;
                    break;
                }
            }
        }
        self.swap_empty(scratch);
        if self.coalesced.is_empty() {
            scratch.give_tx(std::mem::take(&mut self.coalesced));
        }
        step
    }

    fn has_output(&self) -> bool {
        !self.coalesced.is_empty()
    }

    fn waits(&self) -> bool {
        !self.outbox.is_empty() || self.beat.is_some()
    }

    fn on_time(&mut self, now: Instant, recalled: &AtomicBool) -> Timed {
        if recalled.load(Ordering::Acquire) {
            // Its task wants it (perhaps the client left: nothing more is written to it).
            return Timed::Leave;
        }
        self.drive_output(now)
    }

    fn flush(&mut self, scratch: &mut Scratch) -> Step {
        match self.io.write_now(&self.coalesced) {
            Ok(n) if n == self.coalesced.len() => {
                scratch.give_tx(std::mem::take(&mut self.coalesced));
                Step::Stay
            }
            Ok(n) => {
                // A full line: the task waits for room.
                self.coalesced.advance(n);
                Step::Leave
            }
            // The task's write meets the error again, and ends the port with it.
            Err(_) => Step::Leave,
        }
    }

    fn hot(&self) -> [usize; HOT] {
        // The first lines of the state (see the layout of `Server`) and the framer.
        let at = std::ptr::from_ref(self).addr();
        let framer = std::ptr::from_ref::<dyn crate::wire::framer::Framer>(&*self.framer);
        [at, at + 64, at + 128, framer.cast::<u8>().addr()]
    }

    fn panicked(&mut self, message: String) {
        error!(port = %self.name, %message, "serving panicked; port stopped");
        self.panicked = Some(message);
    }
}

/// Reads a lane makes in a row on one port that keeps filling them.
pub(super) const READS_PER_TURN: usize = 4;

/// What one read on a lane leaves to do.
pub(super) enum Turn {
    /// More may be waiting (the read filled its room, or brought a status byte): read again.
    Again,
    /// Served, and the master drained: the port stays.
    Done,
    /// The port goes back to its task.
    Leave,
}
