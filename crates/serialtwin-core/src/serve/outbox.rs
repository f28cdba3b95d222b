//! What a port has to send and has not sent yet: replies waiting for their time, and bytes
//! waiting for theirs on the wire.
//!
//! The serving loop does not wait for a reply to go out. It puts the reply here and goes on
//! waiting for everything else at once — line events, control commands, cancellation — while
//! [`Outbox::poll_write`] writes each piece when it is due. So a client leaving in the middle of
//! a paced reply is seen at the next piece, a control command is obeyed during a long delay,
//! and a client that stops reading blocks nothing but its own output.
//!
//! Replies go out in order, each starting its delay once the one before it has left the wire:
//! a paced line answers the next request only once the previous answer is sent, as a real
//! device's UART does.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::io::AsyncWrite;
use tokio::time::{Instant, Sleep};

use crate::device::Reply;
use crate::wire::fault::FaultKind;

/// A reply waiting for its time.
#[derive(Debug)]
pub(crate) struct Queued {
    /// The reply as the device gave it.
    pub(crate) reply: Reply,
    /// How long after the reply before it has left the wire (for the first of a request's
    /// replies: after the request) this one starts.
    pub(crate) after: Duration,
    /// When it starts: set once it is first in line and the wire is free.
    due: Option<Instant>,
    /// The request it answers, for per-command faults (`None`: unprompted or sent by control).
    pub(crate) request: Option<Bytes>,
    /// The reply encoded and its faults drawn, once it was first due: a delay fault postpones
    /// it, and what was drawn stays drawn.
    pub(crate) drawn: Option<Drawn>,
    /// Said on the device's beat, not in answer to anything.
    pub(crate) beat: bool,
}

/// A reply encoded, with the faults drawn for it.
#[derive(Debug)]
pub(crate) struct Drawn {
    /// The reply on the wire, before faults.
    pub(crate) bytes: Bytes,
    /// The faults still to apply to it.
    pub(crate) faults: Vec<FaultKind>,
}

impl Queued {
    pub(crate) fn new(reply: Reply, after: Duration, request: Option<Bytes>) -> Self {
        Self {
            reply,
            after,
            due: None,
            request,
            drawn: None,
            beat: false,
        }
    }
}

/// What [`Outbox::poll_write`] stopped for.
#[derive(Debug)]
pub(crate) enum Progress {
    /// The first reply in line is due: encode it and schedule its bytes
    /// ([`Outbox::take_due`], then [`Outbox::push_wire`]).
    Due,
    /// Everything was sent.
    Sent,
}

/// A port's pending output.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    /// Replies not yet on the wire, in order.
    queue: VecDeque<Queued>,
    /// Bytes on their way out, each written once its instant has come, in order.
    wire: VecDeque<(Instant, Bytes)>,
    /// The timer for whichever of the two waits; made on first need, kept for reuse.
    timer: Option<Pin<Box<Sleep>>>,
    /// The last write found the line full and waits for the client to read.
    blocked: bool,
}

impl Outbox {
    /// Nothing waits to be sent.
    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty() && self.wire.is_empty()
    }

    /// How many replies wait (not counting bytes on the wire).
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    /// The replies queued after the first `from` were said on the device's beat.
    pub(crate) fn mark_beat(&mut self, from: usize) {
        for q in self.queue.iter_mut().skip(from) {
            q.beat = true;
        }
    }

    /// Whether something said on the device's beat waits to go on the wire.
    pub(crate) fn holds_beat(&self) -> bool {
        self.queue.iter().any(|q| q.beat)
    }

    /// The line is full and the client is not reading: more output would only pile up.
    pub(crate) fn is_blocked(&self) -> bool {
        self.blocked
    }

    /// Queue a reply behind everything already waiting.
    pub(crate) fn push(&mut self, queued: Queued) {
        self.queue.push_back(queued);
    }

    /// Put bytes on the wire behind what is there, to be written at `at`.
    pub(crate) fn push_wire(&mut self, at: Instant, bytes: Bytes) {
        if !bytes.is_empty() {
            self.wire.push_back((at, bytes));
        }
    }

    /// Put bytes on the wire in front of everything else, to be written now (what a write
    /// could not finish, which went out before anything queued here).
    pub(crate) fn push_front_wire(&mut self, bytes: Bytes) {
        if !bytes.is_empty() {
            self.wire.push_front((Instant::now(), bytes));
        }
    }

    /// The first reply in line, taken out (after [`Progress::Due`]).
    pub(crate) fn take_due(&mut self) -> Option<Queued> {
        self.queue.pop_front()
    }

    /// Put a reply back first in line, to start at `due` (a delay fault postponed it).
    pub(crate) fn postpone(&mut self, mut queued: Queued, due: Instant) {
        queued.due = Some(due);
        self.queue.push_front(queued);
    }

    /// Faults were cleared: a reply a delay fault holds goes when it would have without it,
    /// and faults drawn but not yet applied are not applied.
    pub(crate) fn clear_faults(&mut self, now: Instant) {
        if let Some(first) = self.queue.front_mut()
            && let Some(drawn) = first.drawn.as_mut()
        {
            drawn.faults.clear();
            first.due = Some(now);
        }
    }

    /// Forget everything: the line is gone (a departed client, an unplug). Returns whether
    /// there was anything.
    pub(crate) fn clear(&mut self) -> bool {
        let had = !self.is_empty();
        self.queue.clear();
        self.wire.clear();
        self.blocked = false;
        had
    }

    /// Write what is due at `now` with `write` (one write: how much the line took, `Pending`
    /// when it is full), and say what comes next. The one sending schedule, whoever waits for
    /// it: [`Outbox::poll_write`] on the port's task, a lane's timers for a lent port.
    pub(crate) fn write_due(
        &mut self,
        now: Instant,
        mut write: impl FnMut(&[u8]) -> Poll<std::io::Result<usize>>,
    ) -> std::io::Result<Next> {
        while let Some((at, bytes)) = self.wire.front_mut() {
            if *at > now {
                return Ok(Next::At(*at));
            }
            match write(bytes) {
                Poll::Ready(Ok(0)) => return Err(std::io::ErrorKind::WriteZero.into()),
                Poll::Ready(Ok(n)) => {
                    self.blocked = false;
                    if n == bytes.len() {
                        self.wire.pop_front();
                    } else {
                        bytes.advance(n);
                    }
                }
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => {
                    self.blocked = true;
                    return Ok(Next::Blocked);
                }
            }
        }
        let Some(first) = self.queue.front_mut() else {
            return Ok(Next::Sent);
        };
        // The wire is free: the first reply's own wait starts now, if it has not yet.
        let due = *first.due.get_or_insert(now + first.after);
        Ok(if due > now { Next::At(due) } else { Next::Due })
    }

    /// Write what is due, wait for what is not. `Pending` while something waits (a timer or
    /// room on the line, with the task's waker registered); `Ready` when the loop has work:
    /// a reply is due, or everything has been sent. Never `Ready(Sent)` when it was empty
    /// before the call, so that it can be polled alongside other sources.
    pub(crate) fn poll_write<W: AsyncWrite + Unpin>(
        &mut self,
        io: &mut W,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<Progress>> {
        if self.is_empty() {
            return Poll::Pending;
        }
        loop {
            let next = self.write_due(Instant::now(), |bytes| {
                Pin::new(&mut *io).poll_write(cx, bytes)
            });
            return Poll::Ready(match next {
                Ok(Next::At(at)) if timer_pending(&mut self.timer, at, cx) => return Poll::Pending,
                // Its time came meanwhile.
                Ok(Next::At(_)) => continue,
                Ok(Next::Blocked) => return Poll::Pending,
                Ok(Next::Due) => Ok(Progress::Due),
                Ok(Next::Sent) => Ok(Progress::Sent),
                Err(e) => Err(e),
            });
        }
    }
}

/// What [`Outbox::write_due`] left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// The first reply in line is due: encode it and schedule its bytes
    /// ([`Outbox::take_due`], then [`Outbox::push_wire`]).
    Due,
    /// Everything was sent.
    Sent,
    /// Nothing more is due before this instant.
    At(Instant),
    /// The line is full: the client is not reading.
    Blocked,
}

/// Whether `at` is still to come (`timer` then set for it, and registered with `cx`).
fn timer_pending(timer: &mut Option<Pin<Box<Sleep>>>, at: Instant, cx: &mut Context<'_>) -> bool {
    if at <= Instant::now() {
        return false;
    }
    let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
    if timer.deadline() != at {
        timer.as_mut().reset(at);
    }
    timer.as_mut().poll(cx).is_pending()
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;

    use super::*;

    async fn next(outbox: &mut Outbox, io: &mut Vec<u8>) -> Progress {
        poll_fn(|cx| outbox.poll_write(io, cx)).await.unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn replies_start_after_the_one_before_has_left_the_wire() {
        let mut outbox = Outbox::default();
        let mut io = Vec::new();
        let t0 = Instant::now();
        outbox.push(Queued::new(
            Reply::frame("a"),
            Duration::from_millis(10),
            None,
        ));
        outbox.push(Queued::new(
            Reply::frame("b"),
            Duration::from_millis(5),
            None,
        ));

        assert!(matches!(next(&mut outbox, &mut io).await, Progress::Due));
        assert_eq!(t0.elapsed(), Duration::from_millis(10));
        let first = outbox.take_due().unwrap();
        // Its bytes take 100 ms on the wire, in two pieces.
        outbox.push_wire(t0 + Duration::from_millis(60), first.reply.bytes.clone());
        outbox.push_wire(t0 + Duration::from_millis(110), Bytes::from_static(b"\r"));

        assert!(matches!(next(&mut outbox, &mut io).await, Progress::Due));
        assert_eq!(io, b"a\r");
        // The second's 5 ms count from when the first was sent.
        assert_eq!(t0.elapsed(), Duration::from_millis(115));
        outbox.take_due().unwrap();
        assert!(outbox.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn sent_is_reported_once_and_never_when_empty() {
        let mut outbox = Outbox::default();
        let mut io = Vec::new();
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(outbox.poll_write(&mut io, &mut cx).is_pending());
        outbox.push_wire(Instant::now(), Bytes::from_static(b"x"));
        assert!(matches!(next(&mut outbox, &mut io).await, Progress::Sent));
        assert!(outbox.poll_write(&mut io, &mut cx).is_pending());
        assert_eq!(io, b"x");
    }

    #[tokio::test(start_paused = true)]
    async fn clearing_faults_releases_a_postponed_reply_at_once() {
        let mut outbox = Outbox::default();
        let mut io = Vec::new();
        let t0 = Instant::now();
        let mut queued = Queued::new(Reply::frame("a"), Duration::ZERO, None);
        queued.drawn = Some(Drawn {
            bytes: Bytes::from_static(b"a"),
            faults: vec![FaultKind::Corrupt],
        });
        outbox.postpone(queued, t0 + Duration::from_hours(1));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(outbox.poll_write(&mut io, &mut cx).is_pending());
        outbox.clear_faults(Instant::now());
        assert!(matches!(next(&mut outbox, &mut io).await, Progress::Due));
        assert_eq!(t0.elapsed(), Duration::ZERO);
        assert!(outbox.take_due().unwrap().drawn.unwrap().faults.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn clear_forgets_everything() {
        let mut outbox = Outbox::default();
        outbox.push(Queued::new(Reply::frame("a"), Duration::from_secs(1), None));
        outbox.push_wire(Instant::now(), Bytes::from_static(b"x"));
        assert!(outbox.clear());
        assert!(outbox.is_empty());
        assert!(!outbox.clear());
    }
}
