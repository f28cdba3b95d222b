//! Modbus RTU and ASCII slaves (issue 18), landing in parts: the framers and the data model
//! first, the slave model, its registry entry, buses and real devices after.
//!
//! Protocol facts come from `../shared/reference/modbus.md` and the specifications it cites
//! (MODBUS Application Protocol V1.1b3, "APP"; MODBUS over Serial Line V1.02, "SL").

pub mod ascii;
pub mod data;
pub mod functions;
pub mod rtu;
pub mod unit;
