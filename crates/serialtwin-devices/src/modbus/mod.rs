//! Modbus RTU and ASCII units on one line (`model = "modbus"`, issue 18): the framers, the
//! data model, a unit's function codes, a bus of units with faults per unit, values bound to
//! a plant, real devices on the bus (`device = "sdm630"`, lent by their models through the
//! registry), a pymodbus simulator file served as pymodbus serves it, and a recorded line
//! cut, replayed and learned into a register map.
//!
//! - [`rtu`] and [`ascii`]: the framers, cutting requests by length ([`functions`]) and
//!   checking their CRC or LRC;
//! - [`data`]: engineering values in registers (types, word and byte orders, scale);
//! - [`unit`](mod@unit): one unit's tables answering request PDUs, checks in the standard's
//!   order;
//! - [`slave`]: a unit at its address on a line, as a device; several make a bus;
//! - [`bound`]: register values read from a device's simulated plant (the real devices'
//!   models bind their maps to one);
//! - [`describe`]: one line on each frame, for `--trace`;
//! - [`tcp`]: Modbus TCP in front of an RTU line, the gateway a `modbus_tcp` endpoint is;
//! - [`replies`]: a recorded line's replies, cut by the request they answer (`serialtwin tap`);
//! - [`learn`](mod@learn): a recorded line learned into a register map (`serialtwin learn`);
//! - [`pymodbus`]: a pymodbus 3.16.1 simulator device file, read into a unit's cells.
//!
//! Protocol facts come from `../shared/reference/modbus.md` and the specifications it cites
//! (MODBUS Application Protocol V1.1b3, "APP"; MODBUS over Serial Line V1.02, "SL").

pub mod ascii;
pub mod bound;
pub mod data;
pub mod describe;
pub mod functions;
pub mod learn;
mod model;
pub mod pymodbus;
pub mod replies;
pub mod rtu;
pub mod slave;
pub mod tcp;
pub mod unit;

pub use self::model::MODEL;
