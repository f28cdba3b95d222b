//! Open-file and pty limits: raising the one a process may raise, and errors that name the limit.
//!
//! A fleet of emulated ports runs into two kernel limits long before anything else:
//!
//! - `RLIMIT_NOFILE`, the per-process descriptor limit. Each open pty port holds
//!   [`FDS_PER_PORT`] descriptors (pty master, held slave, link lock file), and the usual soft
//!   limit of 1024 stops a fleet at about 300 ports. The soft limit can be raised up to the hard
//!   limit without privileges, but only on request: [`raise_nofile_limit`] is called explicitly
//!   by the CLI at start, never hidden in the library, because a raised limit is inherited by
//!   child processes and breaks any of them that still use `select(2)` (descriptors >= 1024).
//! - `kernel.pty.max`, the system-wide pty count (`/proc/sys/kernel/pty/max`), which no process
//!   can raise without root.
//!
//! The bare errors (`EMFILE`, `ENOSPC`) say neither which limit was hit nor what to do about it;
//! [`classify`] and [`classify_pty`] turn them into a [`LimitError`] that does.

use std::fmt::Write as _;
use std::io;
use std::path::Path;

use nix::errno::Errno;
use nix::sys::resource::{RLIM_INFINITY, Resource, getrlimit, setrlimit};
use tracing::{debug, info};

/// Descriptors one open pty port holds: the pty master, the held-open slave (which keeps the pty
/// alive while no client has it open) and the link's lock file.
pub const FDS_PER_PORT: u64 = 3;

/// The process's `RLIMIT_NOFILE`: how many descriptors it may have open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NofileLimit {
    /// The enforced limit, raisable up to `hard` by the process itself.
    pub soft: u64,
    /// The ceiling; raising it needs privilege.
    pub hard: u64,
}

/// What [`raise_nofile_limit`] did, for the CLI to log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NofileRaise {
    /// The soft limit before.
    pub old_soft: u64,
    /// The soft limit now.
    pub new_soft: u64,
    /// The hard limit (unchanged).
    pub hard: u64,
}

impl NofileRaise {
    /// Whether the soft limit actually changed.
    #[must_use]
    pub fn raised(&self) -> bool {
        self.new_soft != self.old_soft
    }
}

/// The system-wide pty count, from `/proc/sys/kernel/pty/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PtyUsage {
    /// `kernel.pty.max`: ptys the whole system may have.
    pub max: u64,
    /// `kernel.pty.nr`: ptys open now, across all devpts instances.
    pub in_use: u64,
    /// `kernel.pty.reserve`: ptys kept for the initial devpts instance (the host); a container's
    /// own devpts instance may only use `max - reserve`. `None` if unreadable.
    pub reserve: Option<u64>,
}

/// A resource limit was hit, or could not be read or changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LimitError {
    /// `EMFILE`: this process has as many descriptors open as `RLIMIT_NOFILE` allows.
    #[error("{}", fds_message(.limit.as_ref()))]
    FileDescriptors {
        /// The limit at the time, if it could be read.
        limit: Option<NofileLimit>,
    },
    /// `ENFILE`: the whole system's file table (`fs.file-max`) is full.
    #[error(
        "the system-wide open file table is full (ENFILE): close files elsewhere or raise \
         fs.file-max (`sysctl -w fs.file-max=...`, as root); RLIMIT_NOFILE does not help here"
    )]
    SystemFiles,
    /// `ENOSPC` from opening `/dev/ptmx`: the system has as many ptys as `kernel.pty.max` allows.
    #[error("{}", pty_message(.usage.as_ref()))]
    Ptys {
        /// The pty count at the time, if `/proc` was readable.
        usage: Option<PtyUsage>,
    },
    /// `getrlimit`/`setrlimit` failed.
    #[error("cannot {op} RLIMIT_NOFILE: {source}")]
    Rlimit {
        /// What we were doing.
        op: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

fn show(limit: u64) -> String {
    if limit == RLIM_INFINITY {
        "unlimited".to_owned()
    } else {
        limit.to_string()
    }
}

fn fds_message(limit: Option<&NofileLimit>) -> String {
    let mut text =
        String::from("too many open files (EMFILE): this process reached its RLIMIT_NOFILE");
    if let Some(NofileLimit { soft, hard }) = limit {
        let _ = write!(
            text,
            " soft limit of {} (hard limit {})",
            show(*soft),
            show(*hard)
        );
    }
    let _ = write!(
        text,
        "; each open port holds {FDS_PER_PORT} descriptors (pty master, held slave, lock file). \
         Raise the soft limit with `ulimit -n <n>` in the shell that starts serialtwin, or call \
         serialtwin_core::limits::raise_nofile_limit() at start (the serialtwin CLI does)"
    );
    text += match limit {
        Some(NofileLimit { soft, hard }) if soft >= hard => {
            "; the soft limit already equals the hard limit, which only root can raise \
             (/etc/security/limits.conf, or LimitNOFILE= for a systemd unit)"
        }
        _ => {
            "; beyond the hard limit needs root (/etc/security/limits.conf, or LimitNOFILE= for a systemd unit)"
        }
    };
    text
}

fn pty_message(usage: Option<&PtyUsage>) -> String {
    let mut text = String::from(
        "no pseudo-terminal left (ENOSPC from /dev/ptmx): the system reached kernel.pty.max",
    );
    let usable = match usage {
        Some(PtyUsage {
            max,
            in_use,
            reserve,
        }) => {
            let _ = write!(text, " ({in_use} of {max} in use)");
            reserve.map(|reserve| format!(" = {}", max.saturating_sub(reserve)))
        }
        None => None,
    };
    let _ = write!(
        text,
        "; inside a container (its own devpts instance) only kernel.pty.max - kernel.pty.reserve{} \
         are usable. Raise it on the host with `sysctl -w kernel.pty.max=<n>` (as root), or close \
         other ptys; a devpts mounted with `max=` has its own cap",
        usable.unwrap_or_default()
    );
    text
}

/// The process's current open-file limit, to size a fleet or report it.
///
/// # Errors
/// [`LimitError::Rlimit`] if `getrlimit` fails (it does not on Linux).
pub fn nofile_limit() -> Result<NofileLimit, LimitError> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(|errno| LimitError::Rlimit {
        op: "read",
        source: errno.into(),
    })?;
    Ok(NofileLimit { soft, hard })
}

/// Raise the soft `RLIMIT_NOFILE` to the hard limit, so a large fleet does not run out of
/// descriptors at the default soft limit of 1024.
///
/// Called explicitly by the CLI at start, never by the library itself: the raised limit is
/// process-wide and inherited by children (see the [module docs](self)). Leaves the limit
/// unchanged if the soft limit already reaches the hard one. The hard limit is never touched.
///
/// # Errors
/// [`LimitError::Rlimit`] if the limit cannot be read or set.
pub fn raise_nofile_limit() -> Result<NofileRaise, LimitError> {
    let NofileLimit { soft, hard } = nofile_limit()?;
    if soft >= hard {
        debug!(soft = %show(soft), hard = %show(hard), "RLIMIT_NOFILE soft limit already at the hard limit");
        return Ok(NofileRaise {
            old_soft: soft,
            new_soft: soft,
            hard,
        });
    }
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).map_err(|errno| LimitError::Rlimit {
        op: "raise",
        source: errno.into(),
    })?;
    let now = nofile_limit()?;
    info!(old = %show(soft), new = %show(now.soft), hard = %show(now.hard), "raised RLIMIT_NOFILE soft limit");
    Ok(NofileRaise {
        old_soft: soft,
        new_soft: now.soft,
        hard: now.hard,
    })
}

/// The system's pty count (`kernel.pty.max`, `kernel.pty.nr`, `kernel.pty.reserve`), to check
/// before opening many ports or to explain a failure. `None` if `/proc` is unreadable.
#[must_use]
pub fn pty_usage() -> Option<PtyUsage> {
    let read = |name: &str| -> Option<u64> {
        let path = Path::new("/proc/sys/kernel/pty").join(name);
        std::fs::read_to_string(path).ok()?.trim().parse().ok()
    };
    Some(PtyUsage {
        max: read("max")?,
        in_use: read("nr")?,
        reserve: read("reserve"),
    })
}

/// Turn an error from opening a file or a pty into one that names the descriptor limit hit and
/// how to raise it: `EMFILE` becomes [`LimitError::FileDescriptors`], `ENFILE`
/// [`LimitError::SystemFiles`]. Any other error gives `None`: report it as it is.
///
/// `ENOSPC` is left alone here, since from an ordinary file it means a full disk; use
/// [`classify_pty`] for errors from opening `/dev/ptmx`.
#[must_use]
pub fn classify(err: &io::Error) -> Option<LimitError> {
    match Errno::from_raw(err.raw_os_error()?) {
        Errno::EMFILE => Some(LimitError::FileDescriptors {
            limit: nofile_limit().ok(),
        }),
        Errno::ENFILE => Some(LimitError::SystemFiles),
        _ => None,
    }
}

/// Like [`classify`], for an error from opening a pty (`posix_openpt`, `/dev/ptmx`): there
/// `ENOSPC` means the system ran out of ptys and becomes [`LimitError::Ptys`], naming
/// `kernel.pty.max`. (A `rustix::io::Errno` or `nix::Errno` converts with `io::Error::from`.)
///
/// At the limit Linux 6.18 also answers `EAGAIN` (seen when ptys closed a moment earlier are
/// still being released): that counts as the limit too when `kernel.pty.nr` is at
/// `kernel.pty.max`.
#[must_use]
pub fn classify_pty(err: &io::Error) -> Option<LimitError> {
    let errno = err.raw_os_error();
    if errno == Some(Errno::ENOSPC as i32) {
        return Some(LimitError::Ptys { usage: pty_usage() });
    }
    if errno == Some(Errno::EAGAIN as i32)
        && let Some(usage) = pty_usage()
        && usage.in_use + 1 >= usage.max
    {
        return Some(LimitError::Ptys { usage: Some(usage) });
    }
    classify(err)
}
