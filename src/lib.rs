//! serialtwin: emulated serial devices that appear as real serial ports on Linux.
//!
//! This facade re-exports [`serialtwin_core`] (ports, framers, the `Device` trait, serving,
//! fleets), [`serialtwin_capture`] as [`capture`] (captures of serial conversations, and the
//! tap that records a real device) and [`serialtwin_devices`] as [`devices`] (device models).

pub use serialtwin_capture as capture;
pub use serialtwin_core::*;
pub use serialtwin_devices as devices;
