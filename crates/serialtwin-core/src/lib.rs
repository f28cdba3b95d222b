//! serialtwin-core: emulated serial devices as real serial ports on Linux.
//!
//! One byte's journey:
//! ```text
//! client ── /dev/pts/N (link) ── pty master ─► PtyPort ─► Framer::decode ─► Device::handle
//!                                   ▲                                          │ 0..n replies
//!                                PtyPort ◄── Line (baud, pacing, latency) ◄── Framer::encode
//! ```
//!
//! # Layout
//! - [`pty`]: the pty port ([`PtyPort`]): raw mode, held slave, packet mode, sessions. The only
//!   module with `unsafe` code.
//! - [`transport`]: what a device is served on ([`Transport`]); ptys, TCP, `duplex`, [`Plain`].
//! - [`framer`]: cutting bytes into frames ([`Framer`], [`LineFramer`], [`Framing`],
//!   [`CodecFramer`] for any tokio-util codec).
//! - [`device`]: the [`Device`] trait, [`Replies`] and the [`Context`] a device sees.
//! - [`line`](mod@line): what the wire does to bytes (baud, pacing, latency).
//! - [`fault`]: injected faults (dropped, corrupted, delayed replies; unplugging).
//! - [`serve`](mod@serve): the serving loop ([`serve()`]), generic over the transport.
//! - [`observe`]: the observer hook for traces, captures and test assertions.
//! - [`fleet`]: many ports on one runtime ([`Fleet`], [`PortHandle`]).
//! - [`control`]: run-time control over a Unix socket, and scenario timelines.
//! - [`link`]: symlinks that belong to a port's slot ([`LinkSlot`]).
//! - [`limits`]: open-file and pty limits, and errors that say how to raise them.
//! - [`settings`], [`clock`]: line settings and events; the simulated wall clock.
//! - [`port_name`]: what a port may be called (one word of the control protocol).
//! - [`output`]: files written on request (captures), never over what is there unless asked.

pub mod clock;
pub mod control;
pub mod device;
pub mod escape;
pub mod fault;
pub mod fleet;
pub mod framer;
mod gate;
pub mod limits;
pub mod line;
pub mod link;
pub mod observe;
pub mod output;
pub mod port_name;
pub mod pty;
#[cfg(test)]
mod scratch;
pub mod serve;
pub mod settings;
mod spare;
pub mod transport;
// Directories checked against other local users, used for links and the control socket.
pub mod trusted_dir;

pub use crate::clock::SimClock;
pub use crate::device::{
    AsyncDevice, Awaiting, Body, BoxDevice, Context, Device, DeviceError, Replies, Reply, Settable,
};
pub use crate::fault::{FaultKind, FaultRule, Faults, When};
pub use crate::fleet::{CommandError, Fleet, FleetError, PortHandle, PortSpec};
pub use crate::framer::{
    BoxFramer, Checksum, CodecFramer, FrameAt, FrameError, Framer, Framing, LineFramer, Terminator,
};
pub use crate::limits::{LimitError, NofileLimit, NofileRaise, PtyUsage};
pub use crate::line::{Latency, Line, LineConfig, Mismatch};
pub use crate::link::{LinkError, LinkSlot};
pub use crate::observe::{Broadcast, Direction, Observation, Observer, Seen};
pub use crate::output::{Existing, OutputError};
pub use crate::port_name::{PortNameError, check_port_name};
pub use crate::pty::{PtyOptions, PtyPort, SlaveProbe};
pub use crate::serve::{Control, ServeConfig, ServeError, serve, serve_with_control};
pub use crate::settings::{
    BadCharFormat, CharFormat, FlowControl, LineEvent, LineSettings, Parity, Session, StopBits,
};
pub use crate::transport::{Plain, PortEvent, Transport};

// Issue 6: captures and the tap.
pub mod capture;
pub mod tap;

pub use crate::capture::{Capture, CaptureError, CaptureWriter, Header as CaptureHeader, Record};
pub use crate::tap::{Cutter, Tap, TapEnd, TapError, Upstream};
