//! The port: what a client opens (a pty, a TCP listener, or any transport), its line settings and sessions,
//! the link that names it, and the limits and directories it depends on.

pub mod limits;
pub(crate) mod link;
pub(crate) mod port_name;
pub(crate) mod pty;
pub(crate) mod settings;
pub(crate) mod stream_line;
pub(crate) mod transport;
// Directories checked against other local users, used for links and the control socket.
pub mod trusted_dir;
