//! Network endpoints: serving a port's device over TCP.

pub mod rfc2217;
