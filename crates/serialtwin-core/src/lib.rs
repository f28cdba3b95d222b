//! serialtwin-core: emulated serial devices as real serial ports on Linux.
//!
//! One byte's journey:
//! ```text
//! client ── /dev/pts/N (link) ── pty master ─► PtyPort ─► Framer::decode ─► Device::handle
//!                                   ▲                                          │ 0..n replies
//!                                PtyPort ◄── Line (baud, pacing, latency) ◄── Framer::encode
//! ```
//!
//! # Layout, by stage
//! - **The port** (`port/`): the pty ([`PtyPort`]: raw mode, held slave, packet mode, sessions;
//!   the only module with `unsafe` code), the [`Transport`] a device is served on (ptys, TCP,
//!   `duplex`, [`Plain`]), line settings and events ([`LineSettings`], [`LineEvent`]), links
//!   ([`LinkSlot`]), port names, and the [`limits`] and [`trusted_dir`] modules.
//! - **The wire** (`wire/`): cutting bytes into frames ([`Framer`], [`LineFramer`],
//!   [`Framing`], [`CodecFramer`] for any tokio-util codec), what the line does to bytes
//!   ([`LineConfig`]: baud, pacing, latency) and injected faults ([`Faults`]).
//! - **The device** (`device/`): [`Device`], [`AsyncDevice`], [`Replies`], the [`Context`] a
//!   device sees and its [`SimClock`].
//! - **Serving** (`serve/`): the serving loop ([`serve()`]), generic over the transport, and its
//!   observers ([`Observer`]).
//! - **The fleet** (`fleet/`): many ports on one runtime ([`Fleet`], [`PortHandle`]), and the
//!   [`control`] socket and scenario timelines that drive them.
//! - [`net`]: network endpoints in front of a port (raw TCP, RFC 2217), bridged to its pty.
//! - [`escape`]: bytes as text and back (`\r`, `\xNN`), and as hex: one escaping for traces,
//!   captures, scripted devices and the control protocol. [`output`]: files written on request
//!   (captures, learned configs), never over what is there unless asked.
//!
//! Every type has one public path: the crate root, or one of the modules named above. Captures
//! (recorded conversations) and the tap that records a real device are the
//! `serialtwin-capture` crate, built on this one.

mod clock;
mod device;
pub mod escape;
mod fleet;
mod gate;
pub mod input_file;
pub mod net;
pub mod output;
mod port;
#[cfg(test)]
mod scratch;
mod serve;
mod spare;
mod wire;

pub use crate::clock::{LATEST_UNIX, SimClock};
pub use crate::device::{
    AsyncDevice, Awaiting, Body, BoxDevice, Bus, Context, Device, DeviceError, Replies, Reply,
    Route, Router, Settable,
};
pub use crate::fleet::{
    CommandError, Fleet, FleetError, LinkKeeper, Medium, PortHandle, PortSpec, Stopper, control,
};
pub use crate::port::link::{LinkError, LinkSlot};
pub use crate::port::port_name::{PortNameError, check_port_name};
pub use crate::port::pty::{PtyOptions, PtyPort, SlaveProbe};
pub use crate::port::settings::{
    BadCharFormat, CharFormat, DeviceLine, FlowControl, LineBreak, LineEvent, LineSettings, Parity,
    Session, StopBits,
};
pub use crate::port::transport::{Plain, PortEvent, Transport};
pub use crate::port::{limits, trusted_dir};
pub use crate::serve::observe::{Broadcast, Direction, Observation, Observer, Seen};
pub use crate::serve::{Control, ServeConfig, ServeError, serve, serve_with_control};
pub use crate::wire::fault::{FaultKind, FaultRule, Faults, When};
pub use crate::wire::framer::{
    BoxFramer, Checksum, CodecFramer, FrameAt, FrameError, Framer, Framing, LineFramer, Terminator,
};
pub use crate::wire::line::{Adapter, Latency, Line, LineConfig, Mismatch};
