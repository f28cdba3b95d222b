//! Files written on request: captures, learned configs.
//!
//! Such a path comes from a person, often in a shared directory such as `/tmp`, and the
//! program may run with more rights than whoever else can write there. So a new file is made
//! with `O_CREAT | O_EXCL`: whatever is already at the path (a file of value, a symlink planted
//! to redirect the write) is left alone and reported. Replacing is a separate, explicit choice
//! ([`Existing::Replace`]) and replaces only a regular file: it looks first (`lstat`), opens
//! with `O_NOFOLLOW | O_TRUNC` (a symlink is refused, never followed), and checks what it opened
//! (`fstat`). [`create`] is the one place that does this.

use std::fs::{File, FileType, OpenOptions};
use std::io;
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;

/// Permission bits of a new file (before the umask): owner only, because a capture holds every
/// byte a client and a device exchanged (serial numbers, and on some lines passwords), and a
/// learned config the same replies. Widening it is one `chmod`; narrowing it after others have
/// read it undoes nothing. A replaced file keeps its own bits.
pub const MODE: u32 = 0o600;

/// What to do about something already at the path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Existing {
    /// Refuse, leaving it untouched.
    #[default]
    Refuse,
    /// Replace it if it is a regular file (emptied, then written); refuse anything else.
    Replace,
}

/// Why a file cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// Something is already at the path and replacing was not asked for.
    #[error("{} already exists", .path.display())]
    Exists {
        /// The path.
        path: PathBuf,
    },
    /// What is at the path is not a regular file: never written through or over.
    #[error("{} is {what}, not a regular file: refusing to write to it", .path.display())]
    NotRegular {
        /// The path.
        path: PathBuf,
        /// What it is (`a symbolic link`, `a FIFO`...).
        what: &'static str,
    },
    /// The system refused otherwise.
    #[error("cannot create {}: {source}", .path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The system error.
        #[source]
        source: io::Error,
    },
}

/// Open `path` for writing as a new, empty regular file (mode [`MODE`]), or with
/// [`Existing::Replace`] also an existing regular file, emptied.
///
/// Never follows a symlink at `path`, never opens a FIFO or a device there (which could block,
/// or act on the device), never writes into anything but a regular file.
///
/// # Errors
/// [`OutputError`].
pub fn create(path: &Path, existing: Existing) -> Result<File, OutputError> {
    let io_error = |source| OutputError::Io {
        path: path.to_owned(),
        source,
    };
    let not_regular = |what| OutputError::NotRegular {
        path: path.to_owned(),
        what,
    };
    // Non-blocking: should a FIFO appear at the path between the look and the open, the open
    // returns at once (and the check after it refuses the FIFO). No controlling terminal from a
    // device either. Regular files ignore both.
    let flags = OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_NOCTTY;
    let mut options = OpenOptions::new();
    options.write(true).mode(MODE).custom_flags(flags.bits());
    match existing {
        Existing::Refuse => {
            options.create_new(true);
        }
        Existing::Replace => {
            // Look first: opening a FIFO or a device is already an act on it.
            if let Some(what) = odd_kind(path).map_err(io_error)? {
                return Err(not_regular(what));
            }
            options.create(true).truncate(true);
        }
    }
    let file = options.open(path).map_err(|e| {
        let errno = e.raw_os_error().map(Errno::from_raw);
        if matches!(errno, Some(Errno::EEXIST | Errno::ELOOP | Errno::EISDIR)) {
            match odd_kind(path) {
                Ok(Some(what)) => return not_regular(what),
                Ok(None) if errno == Some(Errno::EEXIST) => {
                    return OutputError::Exists {
                        path: path.to_owned(),
                    };
                }
                _ => {}
            }
        }
        io_error(e)
    })?;
    // The path may have changed since the look: what was opened is what counts.
    let kind = file.metadata().map_err(io_error)?.file_type();
    if !kind.is_file() {
        return Err(not_regular(describe(kind)));
    }
    Ok(file)
}

/// What is at `path` if it is there and not a regular file (a symlink is not followed).
fn odd_kind(path: &Path) -> io::Result<Option<&'static str>> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_file() => Ok(None),
        Ok(meta) => Ok(Some(describe(meta.file_type()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// A file type for a message (`a directory`, `a FIFO`...): what a file that is not a regular
/// one is, wherever it is refused.
#[must_use]
pub fn describe(kind: FileType) -> &'static str {
    if kind.is_symlink() {
        "a symbolic link"
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "something else"
    }
}
