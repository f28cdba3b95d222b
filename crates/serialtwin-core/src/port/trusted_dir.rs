//! Directories we may trust with our links and our control socket, held open by descriptor.
//!
//! A directory another local user controls is a trap: they can plant, swap or remove whatever we
//! put there (a link our client follows, a socket our `ctl` talks to, a lock file we write our pid
//! into), and a symlink in place of the directory sends our files somewhere else. So, as OpenSSH,
//! tmux and ssh-agent do:
//!
//! - the path is walked from `/` one component at a time with `openat(O_NOFOLLOW)`, and every
//!   directory on the way is checked with `fstat` on the descriptor we opened: owned by root or
//!   by us, and not writable by others unless sticky (where others cannot remove or rename what
//!   is ours). A symlink on the way is followed only if root or we own it; the directory itself
//!   must not be one;
//! - the directory itself is checked for its purpose ([`Purpose`]), and created with exactly the
//!   mode that purpose needs if it is missing;
//! - everything later happens relative to the descriptor ([`TrustedDir::fd`]: `openat`,
//!   `symlinkat`, `renameat`, `unlinkat`; a Unix socket is bound or connected at
//!   [`TrustedDir::proc_path`]), so the directory cannot be swapped for another between the check
//!   and the use.

use std::ffi::{OsStr, OsString};
use std::fs::{File, TryLockError};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;

/// How many symlinks a walk follows before it gives up, as the kernel's own limit (`ELOOP`).
const MAX_SYMLINKS: u32 = 40;

/// How often to retry when a lock file is replaced between opening and locking it.
const LOCK_ATTEMPTS: u32 = 8;

/// What a directory is for, which decides who may own it and how open it may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Purpose {
    /// Links that clients of any user open: owned by root or us, not writable by others unless
    /// sticky; created `0755`.
    Links,
    /// A control socket: ours alone, `0700` (nobody else may even look up the socket in it);
    /// created `0700`.
    Private,
}

impl Purpose {
    fn create_mode(self) -> u32 {
        match self {
            Self::Links => 0o755,
            Self::Private => 0o700,
        }
    }
}

/// Why a directory (or a file in it) is not to be trusted, or could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DirError {
    /// The directory, or one on the way to it, belongs to someone else or is open to others.
    #[error("{} {why}; refusing to use it", .path.display())]
    Untrusted {
        /// The directory (or symlink) in question.
        path: PathBuf,
        /// What is wrong with it, e.g. `is owned by uid 4242 (mallory), not by you (uid 0)`.
        why: String,
        /// Its owner.
        owner: u32,
    },
    /// The directory itself is a symlink; following it would put our files wherever it points.
    #[error("{} is a symlink, not a directory; refusing to follow it", .path.display())]
    Symlink {
        /// The symlink.
        path: PathBuf,
    },
    /// Something in the path is not a directory.
    #[error("{} is not a directory", .path.display())]
    NotADirectory {
        /// The path in question.
        path: PathBuf,
    },
    /// A file we would use in the directory is not ours; it was left untouched.
    #[error("{} exists and is {what}; refusing to touch it", .path.display())]
    NotOurs {
        /// The file.
        path: PathBuf,
        /// What was found there.
        what: String,
    },
    /// A lock file kept being removed or replaced while we locked it.
    #[error("lock file {} kept being replaced while locking it; giving up", .path.display())]
    LockRace {
        /// The lock file.
        path: PathBuf,
    },
    /// A filesystem call failed.
    #[error("cannot {op} {}: {source}", .path.display())]
    Io {
        /// What we were doing.
        op: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl DirError {
    /// The owner named in an [`Untrusted`](Self::Untrusted) refusal.
    #[must_use]
    pub fn untrusted_owner(&self) -> Option<u32> {
        match self {
            Self::Untrusted { owner, .. } => Some(*owner),
            _ => None,
        }
    }

    /// Whether the directory (or something on the way) does not exist.
    #[must_use]
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(Errno) -> DirError {
    let path = path.to_owned();
    move |errno| DirError::Io {
        op,
        path,
        source: errno.into(),
    }
}

/// A directory checked for its [`Purpose`] and held open, so that later calls act on it and
/// not on whatever its path names by then.
#[derive(Debug)]
pub struct TrustedDir {
    /// The directory: an `O_PATH` descriptor (or a read-only one if we created it), enough for
    /// every `*at` call and for `/proc/self/fd/N`.
    fd: OwnedFd,
    /// Its path as given, for messages.
    path: PathBuf,
}

impl TrustedDir {
    /// Open `path` for `purpose`, creating it (and missing parents) with the purpose's mode.
    ///
    /// # Errors
    /// [`DirError`] if it, or a directory on the way, is not to be trusted, or cannot be made.
    pub fn open_or_create(path: &Path, purpose: Purpose) -> Result<Self, DirError> {
        walk(path, purpose, true)
    }

    /// Open the existing directory `path` for `purpose`, creating nothing.
    ///
    /// # Errors
    /// [`DirError`] if it, or a directory on the way, is not to be trusted, or does not exist.
    pub fn open(path: &Path, purpose: Purpose) -> Result<Self, DirError> {
        walk(path, purpose, false)
    }

    /// The directory's descriptor, for `*at` calls.
    #[must_use]
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The directory's path as given.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `path()/name`, for messages.
    #[must_use]
    pub fn display_path(&self, name: &OsStr) -> PathBuf {
        self.path.join(name)
    }

    /// `/proc/self/fd/<fd>/<name>`: a path to `name` in *this* directory, whatever its own path
    /// names now, for calls that take no directory descriptor (`bind`, `connect`). It is also
    /// short, so a deep directory does not hit the 108-byte limit of a socket address.
    #[must_use]
    pub fn proc_path(&self, name: &OsStr) -> PathBuf {
        Path::new("/proc/self/fd")
            .join(self.fd.as_raw_fd().to_string())
            .join(name)
    }

    /// `lstat` of `name` in this directory; `None` if there is nothing.
    ///
    /// # Errors
    /// [`DirError::Io`] for any other failure.
    pub fn stat(&self, name: &OsStr) -> Result<Option<Stat>, DirError> {
        match rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(st)),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(io_err("inspect", &self.display_path(name))(e)),
        }
    }

    /// Remove `name` from this directory; nothing there is fine.
    ///
    /// # Errors
    /// [`DirError::Io`] for any other failure.
    pub fn remove(&self, name: &OsStr) -> Result<(), DirError> {
        match rustix::fs::unlinkat(&self.fd, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(io_err("remove", &self.display_path(name))(e)),
        }
    }

    /// Open (creating it with `mode`) the lock file `name` and take an exclusive, non-blocking
    /// `flock` on it, making sure it is a regular file of ours (never following a symlink) and
    /// that the file locked is still the one `name` names: a releaser removes it while holding
    /// the lock, so a lock on an unlinked file means nothing.
    ///
    /// # Errors
    /// [`DirError::NotOurs`] for a symlink, a non-regular file or somebody else's file,
    /// [`DirError::LockRace`], or [`DirError::Io`].
    pub fn lock(&self, name: &OsStr, mode: u32) -> Result<Locked, DirError> {
        let path = self.display_path(name);
        for _ in 0..LOCK_ATTEMPTS {
            let fd = match rustix::fs::openat(
                &self.fd,
                name,
                OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(mode),
            ) {
                Ok(fd) => fd,
                Err(Errno::LOOP) => {
                    return Err(DirError::NotOurs {
                        path,
                        what: "a symlink".to_owned(),
                    });
                }
                Err(e) => return Err(io_err("open lock file", &path)(e)),
            };
            let held = rustix::fs::fstat(&fd).map_err(io_err("inspect lock file", &path))?;
            if FileType::from_raw_mode(held.st_mode) != FileType::RegularFile {
                return Err(DirError::NotOurs {
                    path,
                    what: describe(&held).to_owned(),
                });
            }
            if held.st_uid != euid() {
                return Err(DirError::NotOurs {
                    path,
                    what: format!("a lock file owned by {}", who(held.st_uid)),
                });
            }
            let file = File::from(fd);
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => return Ok(Locked::Busy(file)),
                Err(TryLockError::Error(e)) => {
                    return Err(DirError::Io {
                        op: "lock",
                        path,
                        source: e,
                    });
                }
            }
            if self
                .stat(name)?
                .is_some_and(|named| same_file(&held, &named))
            {
                return Ok(Locked::Held(file));
            }
            tracing::debug!(path = %path.display(), "lock file replaced while locking it; retrying");
        }
        Err(DirError::LockRace { path })
    }
}

/// The outcome of [`TrustedDir::lock`].
#[derive(Debug)]
pub enum Locked {
    /// The lock is ours for as long as the file stays open.
    Held(File),
    /// Someone else holds the lock (the file is open, for reading what the holder wrote).
    Busy(File),
}

/// Whether two `stat`s are of one file.
#[must_use]
pub fn same_file(a: &Stat, b: &Stat) -> bool {
    a.st_dev == b.st_dev && a.st_ino == b.st_ino
}

/// Our effective uid: the one the kernel checks, and the one that owns what we create.
#[must_use]
pub fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// `uid N (name)`, or `uid N` where there is no such user.
#[must_use]
pub fn who(uid: u32) -> String {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(user)) => format!("uid {uid} ({})", user.name),
        _ => format!("uid {uid}"),
    }
}

/// What kind of file a `stat` describes, for messages.
#[must_use]
pub fn describe(st: &Stat) -> &'static str {
    match FileType::from_raw_mode(st.st_mode) {
        FileType::Directory => "a directory",
        FileType::RegularFile => "a regular file",
        FileType::Symlink => "a symlink",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        FileType::Fifo => "a fifo",
        FileType::Socket => "a socket",
        FileType::Unknown => "an unknown kind of file",
    }
}

/// Why a directory on the way to ours (or, for [`Purpose::Links`], ours) is not to be trusted.
fn untrusted_on_the_way(st: &Stat) -> Option<String> {
    let me = euid();
    let mode = st.st_mode & 0o7777;
    if st.st_uid != 0 && st.st_uid != me {
        return Some(format!(
            "is owned by {}, not by you ({}) or root",
            who(st.st_uid),
            who(me)
        ));
    }
    let sticky = mode & 0o1000 != 0;
    if mode & 0o022 != 0 && !sticky {
        return Some(format!(
            "is writable by other users (mode {mode:04o}) and not sticky"
        ));
    }
    None
}

/// Why our private directory is not to be trusted.
fn untrusted_private(st: &Stat) -> Option<String> {
    let me = euid();
    let mode = st.st_mode & 0o7777;
    if st.st_uid != me {
        return Some(format!(
            "is owned by {}, not by you ({})",
            who(st.st_uid),
            who(me)
        ));
    }
    if mode & 0o077 != 0 {
        return Some(format!(
            "is open to other users (mode {mode:04o}, must be 0700)"
        ));
    }
    None
}

fn check(st: &Stat, path: &Path, last: bool, purpose: Purpose) -> Result<(), DirError> {
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return Err(DirError::NotADirectory {
            path: path.to_owned(),
        });
    }
    let why = if last && purpose == Purpose::Private {
        untrusted_private(st)
    } else {
        untrusted_on_the_way(st)
    };
    match why {
        Some(why) => Err(DirError::Untrusted {
            path: path.to_owned(),
            why,
            owner: st.st_uid,
        }),
        None => Ok(()),
    }
}

/// The components to walk from `/` to reach `path` (`..` kept: it is walked as the kernel does).
fn components(path: &Path) -> Vec<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_owned()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

fn open_root() -> Result<OwnedFd, DirError> {
    rustix::fs::openat(
        rustix::fs::CWD,
        "/",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io_err("open", Path::new("/")))
}

/// Create `name` in `parent` with exactly the purpose's mode, whatever the umask takes away;
/// `None` if something is there already (to be looked at like any existing directory).
fn make_dir(
    parent: &OwnedFd,
    name: &OsStr,
    path: &Path,
    purpose: Purpose,
) -> Result<Option<OwnedFd>, DirError> {
    let mode = Mode::from_raw_mode(purpose.create_mode());
    match rustix::fs::mkdirat(parent, name, mode) {
        Ok(()) => {}
        Err(Errno::EXIST) => return Ok(None),
        Err(e) => return Err(io_err("create directory", path)(e)),
    }
    let dir = rustix::fs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io_err("open", path))?;
    let st = rustix::fs::fstat(&dir).map_err(io_err("inspect", path))?;
    if st.st_uid != euid() {
        // Replaced between mkdir and open by somebody else's directory.
        check(&st, path, true, Purpose::Private)?;
    }
    rustix::fs::fchmod(&dir, mode).map_err(io_err("set the mode of", path))?;
    Ok(Some(dir))
}

fn walk(path: &Path, purpose: Purpose, create: bool) -> Result<TrustedDir, DirError> {
    let absolute = std::path::absolute(path).map_err(|source| DirError::Io {
        op: "resolve",
        path: path.to_owned(),
        source,
    })?;
    let root = Path::new("/");
    let mut fd = open_root()?;
    let st = rustix::fs::fstat(&fd).map_err(io_err("inspect", root))?;
    let mut pending = components(&absolute);
    check(&st, root, pending.is_empty(), purpose)?;
    pending.reverse(); // Popped from the end.
    // Where we are, for messages (the real path, symlinks resolved).
    let mut here = PathBuf::from("/");
    let mut symlinks = 0;
    let mut creations = 0;
    while let Some(name) = pending.pop() {
        let last = pending.is_empty();
        let next_path = if name == ".." {
            here.parent().unwrap_or(root).to_owned()
        } else {
            here.join(&name)
        };
        match rustix::fs::openat(
            &fd,
            &name,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(next) => {
                let st = rustix::fs::fstat(&next).map_err(io_err("inspect", &next_path))?;
                check(&st, &next_path, last, purpose)?;
                fd = next;
                here = next_path;
            }
            Err(Errno::NOENT) if create && creations < LOCK_ATTEMPTS => {
                creations += 1;
                let Some(next) = make_dir(&fd, &name, &next_path, purpose)? else {
                    // Someone made it meanwhile: look at it again like any existing directory.
                    pending.push(name);
                    continue;
                };
                fd = next;
                here = next_path;
            }
            Err(Errno::NOTDIR | Errno::LOOP) => {
                let st = rustix::fs::statat(&fd, &name, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(io_err("inspect", &next_path))?;
                if FileType::from_raw_mode(st.st_mode) != FileType::Symlink {
                    return Err(DirError::NotADirectory { path: next_path });
                }
                if last {
                    return Err(DirError::Symlink { path: next_path });
                }
                if st.st_uid != 0 && st.st_uid != euid() {
                    return Err(DirError::Untrusted {
                        path: next_path,
                        why: format!(
                            "is a symlink owned by {}, not by you ({}) or root",
                            who(st.st_uid),
                            who(euid())
                        ),
                        owner: st.st_uid,
                    });
                }
                symlinks += 1;
                if symlinks > MAX_SYMLINKS {
                    return Err(io_err("resolve", &absolute)(Errno::LOOP));
                }
                let target = rustix::fs::readlinkat(&fd, &name, Vec::new())
                    .map_err(io_err("read link", &next_path))?;
                let target = PathBuf::from(OsStr::from_bytes(target.as_bytes()));
                let mut more = components(&target);
                more.reverse();
                pending.extend(more);
                if target.is_absolute() {
                    fd = open_root()?;
                    here = PathBuf::from("/");
                }
            }
            Err(e) => return Err(io_err("open", &next_path)(e)),
        }
    }
    Ok(TrustedDir {
        fd,
        path: path.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{PermissionsExt, symlink};

    use super::*;

    use crate::scratch::Scratch;

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path)
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    }

    #[test]
    fn creates_missing_directories_with_the_purposes_mode() {
        let scratch = Scratch::new("trusted", "create");
        let links = scratch.0.join("a/b");
        TrustedDir::open_or_create(&links, Purpose::Links).unwrap();
        assert_eq!(mode(&scratch.0.join("a")), 0o755);
        assert_eq!(mode(&links), 0o755);
        let private = scratch.0.join("p/q");
        TrustedDir::open_or_create(&private, Purpose::Private).unwrap();
        assert_eq!(mode(&private), 0o700);
    }

    #[test]
    fn a_private_directory_open_to_others_is_refused() {
        let scratch = Scratch::new("trusted", "open");
        let dir = scratch.0.join("ctl");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = TrustedDir::open(&dir, Purpose::Private).unwrap_err();
        assert!(err.to_string().contains("must be 0700"), "{err}");
        // For links the same directory is fine: clients of other users must reach them.
        TrustedDir::open(&dir, Purpose::Links).unwrap();
    }

    #[test]
    fn a_world_writable_directory_is_refused_unless_sticky() {
        let scratch = Scratch::new("trusted", "writable");
        let dir = scratch.0.join("links");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = TrustedDir::open(&dir, Purpose::Links).unwrap_err();
        assert!(err.to_string().contains("writable by other users"), "{err}");
        let below = TrustedDir::open_or_create(&dir.join("sub"), Purpose::Links).unwrap_err();
        assert!(matches!(below, DirError::Untrusted { .. }), "{below}");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
        TrustedDir::open(&dir, Purpose::Links).unwrap();
    }

    #[test]
    fn the_directory_itself_must_not_be_a_symlink() {
        let scratch = Scratch::new("trusted", "symlink");
        let real = scratch.0.join("real");
        std::fs::create_dir(&real).unwrap();
        symlink(&real, scratch.0.join("alias")).unwrap();
        let err = TrustedDir::open_or_create(&scratch.0.join("alias"), Purpose::Links).unwrap_err();
        assert!(matches!(err, DirError::Symlink { .. }), "{err}");
        // On the way, a symlink of ours is followed.
        std::fs::create_dir(real.join("inner")).unwrap();
        let dir = TrustedDir::open(&scratch.0.join("alias/inner"), Purpose::Links).unwrap();
        assert!(dir.proc_path(OsStr::new("x")).starts_with("/proc/self/fd"));
        // And `..` is walked as the kernel does.
        TrustedDir::open(&scratch.0.join("alias/inner/../inner"), Purpose::Links).unwrap();
    }

    #[test]
    fn a_file_on_the_way_is_not_a_directory() {
        let scratch = Scratch::new("trusted", "file");
        std::fs::write(scratch.0.join("f"), "").unwrap();
        let err = TrustedDir::open_or_create(&scratch.0.join("f/g"), Purpose::Links).unwrap_err();
        assert!(matches!(err, DirError::NotADirectory { .. }), "{err}");
        let missing = TrustedDir::open(&scratch.0.join("none"), Purpose::Links).unwrap_err();
        assert!(missing.is_not_found(), "{missing}");
    }

    #[test]
    fn lock_files_are_regular_files_of_ours() {
        let scratch = Scratch::new("trusted", "lock");
        let dir = TrustedDir::open(&scratch.0, Purpose::Links).unwrap();
        let first = dir.lock(OsStr::new(".l"), 0o644).unwrap();
        assert!(matches!(first, Locked::Held(_)));
        assert!(matches!(
            dir.lock(OsStr::new(".l"), 0o644).unwrap(),
            Locked::Busy(_)
        ));
        symlink("/etc/hostname", scratch.0.join(".s")).unwrap();
        assert!(matches!(
            dir.lock(OsStr::new(".s"), 0o644),
            Err(DirError::NotOurs { .. })
        ));
    }
}
