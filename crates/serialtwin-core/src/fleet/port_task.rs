//! One port's task: serving, lending the port to a lane while it is quiet, and bringing it
//! back after an unplug.

use futures::FutureExt;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info};

use super::{Plugged, SharedSlot};
use crate::device::Body;
#[cfg(doc)]
use crate::device::Device;
use crate::port::pty::{PtyOptions, PtyPort};
use crate::port::stream_line::{Accept, StreamLine};
use crate::serve::lane::{Lanes, SlotHandle};
use crate::serve::{Control, ControlRx, Order, Outcome, ServeError, Server};

/// One port's task: serve (lending the port to a lane while it is quiet), and after an unplug
/// bring the port back on a new pty under the same link, until stopped; `done` fires when it
/// has (however it ends).
#[expect(
    clippy::too_many_arguments,
    reason = "the port's parts, moved into its task in one go"
)]
pub(super) async fn run_port<D: Body>(
    server: Box<Server<D, PtyPort>>,
    options: PtyOptions,
    slot: SharedSlot,
    plugged: Arc<Mutex<Plugged>>,
    stop: CancellationToken,
    control: mpsc::Receiver<Box<Order>>,
    done: CancellationToken,
    lanes: Option<Lanes>,
) {
    // Fires last, even on a panic: everything else is moved into locals declared after it, so
    // the pty is closed and the link gone before anyone waiting on `done` hears.
    let _done = done.drop_guard();
    let (mut server, slot, plugged, stop) = (server, slot, plugged, stop);
    let name = server.name.clone();
    let mut control = Some(ControlRx::Boxed(control));
    // Taken when the port is first quiet enough to lend: a device a lane cannot serve (one
    // that waits, or sends unprompted frames) costs no lane.
    let mut lane_slot = None;
    if lanes.is_some() {
        server.lend_when(PtyPort::can_lend);
    }
    loop {
        let outcome = std::panic::AssertUnwindSafe(server.run(&stop, &mut control))
            .catch_unwind()
            .await;
        let after = match outcome {
            Ok(Ok(Outcome::Lend)) => {
                if lane_slot.is_none() {
                    lane_slot = lanes.as_ref().and_then(Lanes::slot);
                }
                match &lane_slot {
                    Some(lane_slot) => {
                        server = lend(server, lane_slot, &stop, control.as_ref()).await;
                    }
                    None => server.stop_lending(),
                }
                continue;
            }
            Ok(Ok(Outcome::Done)) => {
                debug!(port = %name, "port stopped");
                break;
            }
            Ok(Ok(Outcome::Unplug(after))) => after,
            Ok(Err(e @ ServeError::DevicePanicked { .. })) => {
                error!(error = %e, "port stopped");
                break;
            }
            Ok(Err(e)) => {
                error!(error = %e, "port failed");
                break;
            }
            Err(_) => {
                error!(port = %name, "port task panicked; port stopped");
                break;
            }
        };
        let unplugged = Unplugged {
            options: &options,
            slot: &slot,
            plugged: &plugged,
            stop: &stop,
        };
        if !unplugged.replug(&mut server, &mut control, after).await {
            break;
        }
    }
    drop(lane_slot);
    drop(server);
    plugged.lock().unwrap_or_else(PoisonError::into_inner).pty = None;
    // The pty is closed by now; remove the link if it is still ours (and nobody released it
    // already: a process exiting without us, see `LinkKeeper`).
    let held = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
    if let Some(slot) = held
        && let Err(e) = slot.release()
    {
        error!(port = %name, error = %e, "cannot remove link");
    }
}

/// Lend the port to its lane until the lane gives it back or anything else wakes this task (a
/// control command, an observer, cancellation, a client opening or closing the port); then it
/// is the task's again. See `serve::lane`.
async fn lend<D: Body>(
    server: Box<Server<D, PtyPort>>,
    lane_slot: &SlotHandle<Server<D, PtyPort>>,
    stop: &CancellationToken,
    control: Option<&ControlRx>,
) -> Box<Server<D, PtyPort>> {
    let mut cancelled = std::pin::pin!(stop.cancelled());
    let mut home = Some(server);
    std::future::poll_fn(|cx| {
        if let Some(mut server) = home.take() {
            // Every wake-up meant for the task reaches it from here on, so that it can take
            // the port back: cancellation, the gates' sources, the session watcher (through
            // the lane_slot's recall waker, which also tells the lane to stop serving it), the lane.
            lane_slot.register(cx.waker());
            let mut recall = std::task::Context::from_waker(lane_slot.recall());
            if cancelled.as_mut().poll(&mut recall).is_ready()
                || !server.ready_to_lend(&mut recall, control)
            {
                return Poll::Ready(server);
            }
            return match lane_slot.lend(server) {
                Ok(()) => Poll::Pending,
                Err(mut server) => {
                    server.stop_lending();
                    Poll::Ready(server)
                }
            };
        }
        // Woken: by the lane giving the port back, or by something only the task handles.
        lane_slot.register(cx.waker());
        // Lent on the first poll, and only this future takes it back: it is there (a panic
        // here would stop this port, where waiting would hang it).
        Poll::Ready(
            lane_slot
                .take_back()
                .unwrap_or_else(|| unreachable!("a lent port is taken back only by its lender")),
        )
    })
    .await
}

/// What a port needs to be unplugged and plugged back in.
struct Unplugged<'a> {
    options: &'a PtyOptions,
    slot: &'a SharedSlot,
    plugged: &'a Mutex<Plugged>,
    stop: &'a CancellationToken,
}

impl Unplugged<'_> {
    /// Close the pty (clients see a hangup), remove the link, wait, and come back on a new pty.
    /// Control commands are obeyed meanwhile: values, faults and clearing them take effect on
    /// the device at once, a frame to send is refused (nobody is connected), and another
    /// unplug sets when the port comes back. Returns false if the port should stop instead.
    async fn replug<D: Body>(
        self,
        server: &mut Server<D, PtyPort>,
        control: &mut Option<ControlRx>,
        after: Duration,
    ) -> bool {
        let name = server.name.clone();
        info!(port = %name, after_ms = after.as_millis(), "unplugged");
        // A placeholder pty takes the old one's place inside the server while unplugged.
        let placeholder = match PtyPort::open(self.options) {
            Ok(p) => p,
            Err(e) => {
                error!(port = %name, error = %e, "cannot unplug: no pty for the placeholder");
                return false;
            }
        };
        // The port is gone before anyone can see the hangup: whoever reacts to it finds no
        // link and an unplugged port, never the dying pty.
        self.plugged
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pty = None;
        if let Some(slot) = self
            .slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
            && let Err(e) = slot.unlink()
        {
            error!(port = %name, error = %e, "cannot remove link while unplugged");
        }
        // Dropping the old pty closes its master and our slave: the client sees a hangup.
        drop(server.replug(placeholder));
        if !wait_unplugged(server, control, self.stop, after).await {
            return false;
        }
        let port = match PtyPort::open(self.options) {
            Ok(p) => p,
            Err(e) => {
                error!(port = %name, error = %e, "cannot plug back in");
                return false;
            }
        };
        if let Some(slot) = self
            .slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
            && let Err(e) = slot.point_to(port.path())
        {
            error!(port = %name, error = %e, "cannot re-point link");
            return false;
        }
        info!(port = %name, pty = %port.path().display(), "plugged back in");
        self.plugged
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pty = Some((port.path().to_owned(), port.probe()));
        drop(server.replug(port));
        true
    }
}

/// While a port is unplugged, for `after` (or longer, if asked): control commands are
/// answered as an unplugged port does. `false` if the port was stopped meanwhile.
async fn wait_unplugged<D: Body, T: crate::port::transport::Transport>(
    server: &mut Server<D, T>,
    control: &mut Option<ControlRx>,
    stop: &CancellationToken,
    after: Duration,
) -> bool {
    let name = server.name.clone();
    let back = tokio::time::sleep(after);
    let mut back = std::pin::pin!(back);
    loop {
        let order = tokio::select! {
            () = stop.cancelled() => return false,
            () = back.as_mut() => break,
            order = next_order(control) => order,
        };
        match order {
            None => *control = None,
            Some(Order {
                control: Control::SendFrame(_) | Control::SendRaw(_),
                done,
            }) => {
                if let Some(done) = done {
                    let _ = done.send(Err("port is unplugged".to_owned()));
                }
            }
            Some(Order {
                control: Control::Unplug(later),
                done,
            }) => {
                info!(port = %name, after_ms = later.as_millis(), "unplugged for longer");
                back.as_mut().reset(tokio::time::Instant::now() + later);
                if let Some(done) = done {
                    let _ = done.send(Ok(()));
                }
            }
            Some(order) => server.obey(order),
        }
    }
    true
}

/// A network-only port's task: serve its line until stopped; after an unplug, nobody can
/// connect to it until it is plugged back in. `done` fires when it has stopped.
pub(super) async fn run_stream_port<D: Body, A: Accept>(
    server: Box<Server<D, StreamLine<A>>>,
    stop: CancellationToken,
    control: mpsc::Receiver<Box<Order>>,
    done: CancellationToken,
) {
    let _done = done.drop_guard();
    let mut server = server;
    let name = server.name.clone();
    let mut control = Some(ControlRx::Boxed(control));
    loop {
        let outcome = std::panic::AssertUnwindSafe(server.run(&stop, &mut control))
            .catch_unwind()
            .await;
        let after = match outcome {
            Ok(Ok(Outcome::Unplug(after))) => after,
            Ok(Ok(Outcome::Done | Outcome::Lend)) => break,
            Ok(Err(e)) => {
                error!(error = %e, "port stopped");
                break;
            }
            Err(_) => {
                error!(port = %name, "port task panicked; port stopped");
                break;
            }
        };
        info!(port = %name, after_ms = after.as_millis(), "unplugged");
        server.io_mut().unplug();
        server.forget_line();
        if !wait_unplugged(&mut server, &mut control, &stop, after).await {
            break;
        }
        if let Err(e) = server.io_mut().plug_in().await {
            error!(port = %name, error = %e, "cannot plug back in: the address is taken");
            break;
        }
        info!(port = %name, "plugged back in");
    }
    debug!(port = %name, "port stopped");
}

/// The next control command, or `None` once the channel closed; never, without a channel.
async fn next_order(control: &mut Option<ControlRx>) -> Option<Order> {
    match control {
        Some(rx) => std::future::poll_fn(|cx| rx.poll_recv(cx)).await,
        None => std::future::pending().await,
    }
}
