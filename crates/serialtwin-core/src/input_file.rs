//! Files read on request: captures to replay, logs to play, device files to load.
//!
//! Such a path comes from a person or a config, and may name anything. A device such as
//! `/dev/zero` never ends (reading it whole would take all memory), a FIFO or a serial port
//! blocks its reader, and opening a terminal can change its line. So anything but a regular
//! file is refused before it is opened, and again by what was opened (it may have been
//! replaced in between), the open neither blocks nor takes a terminal, and no more than a
//! stated length is read, however much the file grows meanwhile. [`read_regular`] is the one
//! place that does this.

use std::io::{self, Read as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use crate::output::describe;

/// Why a file was not read.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// It could not be opened or read.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// It is no regular file: what it is (`a FIFO`...), and what was to be read from it.
    #[error("not a regular file ({kind}): {what} is read from a file")]
    NotRegular {
        /// What it is.
        kind: &'static str,
        /// What the file was to be (`a capture`).
        what: &'static str,
    },
    /// It is longer than the bound (or grew past it while it was read).
    #[error("longer than the {max} bytes {what} may be")]
    TooLong {
        /// The bound.
        max: u64,
        /// What the file was to be.
        what: &'static str,
    },
}

/// The bytes of the regular file at `path`, at most `max` of them; `what` names what it is to
/// be (`a capture`, `a log`) in the errors.
///
/// # Errors
/// [`InputError`]: it cannot be read, is not a regular file, or is longer than `max`.
pub fn read_regular(path: &Path, max: u64, what: &'static str) -> Result<Vec<u8>, InputError> {
    let check = |meta: &std::fs::Metadata| {
        if !meta.is_file() {
            return Err(InputError::NotRegular {
                kind: describe(meta.file_type()),
                what,
            });
        }
        if meta.len() > max {
            return Err(InputError::TooLong { max, what });
        }
        Ok(())
    };
    check(&std::fs::metadata(path)?)?;
    // Not blocking and not taking a terminal, should something else be there by now.
    let flags = nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_NOCTTY;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits())
        .open(path)?;
    let meta = file.metadata()?;
    check(&meta)?;
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(InputError::TooLong { max, what });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_regular_file_within_the_bound_is_read() {
        let dir = std::env::temp_dir().join(format!("serialtwin-input-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("f");
        std::fs::write(&file, b"12345").unwrap();
        assert_eq!(read_regular(&file, 5, "a log").unwrap(), b"12345");
        let e = read_regular(&file, 4, "a log").unwrap_err();
        assert_eq!(e.to_string(), "longer than the 4 bytes a log may be");
        let e = read_regular(Path::new("/dev/zero"), 1 << 20, "a log").unwrap_err();
        assert_eq!(
            e.to_string(),
            "not a regular file (a character device): a log is read from a file"
        );
        let e = read_regular(&dir, 1 << 20, "a log").unwrap_err();
        assert!(e.to_string().contains("(a directory)"), "{e}");
        let fifo = dir.join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let e = read_regular(&fifo, 1 << 20, "a log").unwrap_err();
        assert!(e.to_string().contains("(a FIFO)"), "{e}");
        assert!(matches!(
            read_regular(&dir.join("missing"), 1, "a log"),
            Err(InputError::Io(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
