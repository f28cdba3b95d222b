//! serialtwin: emulated serial devices that appear as real serial ports on Linux.
//!
//! This facade re-exports [`serialtwin_core`] (ports, framers, the `Device` trait, serving,
//! fleets) and [`serialtwin_devices`] (device models).

pub use serialtwin_core::*;
pub use serialtwin_devices as devices;
