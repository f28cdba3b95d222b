//! The simplest client there is: `open(2)` on the port, no termios calls, no flushes — what
//! `cat`, a shell redirect or a quick script does. Shared by every package's tests.

use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Open `path` read-write, non-blocking, without making it the controlling terminal.
pub fn bare_open(path: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_NOCTTY | nix::libc::O_NONBLOCK)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}
