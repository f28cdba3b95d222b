//! A port's pty from the client's side, for a network endpoint's bridge
//! ([`crate::net`]): the slave opened as a client opens it, raw, read and written without
//! blocking the runtime.

use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{Mode, OFlags};
use rustix::termios::OptionalActions;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// A port's pty slave, opened by a network endpoint's bridge for one client.
#[derive(Debug)]
pub(crate) struct PtyClient {
    fd: AsyncFd<OwnedFd>,
}

impl PtyClient {
    /// Open `path` (the port's current pty) as a client would: no controlling terminal,
    /// raw, at the speed the line has. Returns the pty and that speed.
    pub(crate) fn open(path: &Path) -> io::Result<(Self, u32)> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDWR | OFlags::NOCTTY | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let mut termios = rustix::termios::tcgetattr(&fd)?;
        termios.make_raw();
        rustix::termios::tcsetattr(&fd, OptionalActions::Now, &termios)?;
        let baud = termios.output_speed();
        #[allow(unsafe_code)]
        // SAFETY: `fd` is an `OwnedFd` for a valid, open, nonblocking descriptor (the slave
        // just opened). It moves into the `AsyncFd`, which owns it from here on and
        // deregisters it before closing it when dropped.
        let fd =
            unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE | Interest::WRITABLE) }
                .map_err(io::Error::from)?;
        Ok((Self { fd }, baud))
    }

    /// Read what the device sent (at least one byte). A hung-up pty (the port unplugged or
    /// stopped: its master closed) reads as end of file or EIO, both given as an error that
    /// ends the bridge: a zero-byte read taken as data would spin.
    pub(crate) async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard
                .try_io(|fd| rustix::io::read(fd.get_ref(), &mut *buf).map_err(io::Error::from))
            {
                Ok(Ok(0)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the port hung up",
                    ));
                }
                Ok(result) => return result,
                Err(_would_block) => {}
            }
        }
    }

    /// Write all of `data` towards the device, waiting while the line is full.
    pub(crate) async fn write_all(&self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let mut guard = self.fd.writable().await?;
            match guard.try_io(|fd| rustix::io::write(fd.get_ref(), data).map_err(io::Error::from))
            {
                Ok(Ok(n)) => data = &data[n..],
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => {}
            }
        }
        Ok(())
    }

    /// Drop what the device sent that the bridge has not read yet: after a purge the port
    /// has carried out, all of the purged reply that had reached the pty. Read and dropped
    /// rather than flushed, so that the port does not hear the client flush as well.
    pub(crate) fn drain(&self) -> io::Result<()> {
        let mut buf = [0_u8; 4096];
        loop {
            match rustix::io::read(self.fd.get_ref(), &mut buf) {
                Ok(0) | Err(rustix::io::Errno::AGAIN) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}
