//! The wire: how bytes become frames and back (framers), and what the line does to them on the
//! way (baud, pacing, latency, injected faults).

pub(crate) mod fault;
pub(crate) mod framer;
pub(crate) mod line;
