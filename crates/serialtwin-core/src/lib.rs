//! serialtwin-core: emulated serial devices as real serial ports.
//!
//! # Layout
//! - [`settings`]: line settings and line events (what the client did to the port).
//! - [`framer`]: cutting bytes into frames ([`Framer`], [`LineFramer`], [`Framing`]).
//! - [`device`]: the [`Device`] trait, [`Replies`] and the [`Context`] a device sees.
//! - [`line`]: what the wire does to bytes (baud, pacing, latency).
//! - [`clock`]: the simulated wall clock.

pub mod clock;
pub mod device;
pub mod framer;
pub mod line;
pub mod settings;

pub use crate::clock::SimClock;
pub use crate::device::{Context, Device, Replies, Reply};
pub use crate::framer::{BoxFramer, CodecFramer, FrameError, Framer, Framing, LineFramer, Terminator};
pub use crate::line::{Latency, Line, LineConfig, Mismatch};
pub use crate::settings::{FlowControl, LineEvent, LineSettings, Parity, Session, StopBits};
pub mod observe;
pub mod serve;
pub mod transport;
pub use crate::observe::{Broadcast, Direction, Observation, Observer, Seen};
pub use crate::serve::{Control, ServeConfig, ServeError, serve, serve_with_control};
pub use crate::transport::{Plain, PortEvent, Transport};
pub mod pty;
pub use crate::pty::{PtyOptions, PtyPort, SlaveProbe};
pub mod fleet;
pub use crate::fleet::{Fleet, FleetError, PortHandle, PortSpec};
pub mod limits;
pub mod link;
pub use crate::limits::{LimitError, NofileLimit, NofileRaise, PtyUsage};
pub use crate::link::{LinkError, LinkSlot};
