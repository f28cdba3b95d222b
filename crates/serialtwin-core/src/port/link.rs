//! Links that behave: the stable name (`/tmp/serialtwin/ttyUSB0`) of a port whose pty may change.
//!
//! A client opens a port by a name that must outlive any one pty: unplugging and replugging a
//! device closes its pty and opens a new one (a new `/dev/pts/N`), but the client's configured
//! path stays the same. So the symlink belongs to the port's *slot*, a [`LinkSlot`], which:
//!
//! - holds an exclusive `flock` on a lock file beside the link (`<dir>/.<name>.serialtwin.lock`,
//!   containing the holder's pid for humans) for as long as the slot lives, so two instances can
//!   never fight over one name, and a killed instance's leftovers are recognisable as stale;
//! - works only in a directory no other user can change ([`TrustedDir`], created `0755` so
//!   that clients of other users can open the link), held open and used through `*at` calls;
//! - refuses to touch anything at the path that is not clearly a serialtwin link (a regular file,
//!   a directory, somebody else's symlink);
//! - re-points the link atomically (symlink to a temporary name in the same directory, then
//!   `rename` over the link), so a client never sees the name missing during a replug;
//! - on release removes the link only if it still points where we put it, then removes the lock
//!   file while still holding the lock.
//!
//! Locks are `flock(2)` locks (through [`File::try_lock`]), which belong to the open file
//! description: a second claim of the same path in the *same* process conflicts too, and the
//! kernel drops the lock when the holder dies, however it dies.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rustix::fs::FileType;
use rustix::io::Errno;
use tracing::{debug, info, warn};

use crate::port::trusted_dir::{self, DirError, Locked, Purpose, TrustedDir};

/// Where the kernel's pseudo-terminal slaves live: a link into here is one of ours or a pty tool's.
const PTS_DIR: &str = "/dev/pts";

/// Why a link slot could not be claimed, pointed or released.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// Another live serialtwin instance (or another slot in this process) holds the link.
    #[error("{} is in use by another serialtwin instance{}", .path.display(), holder(*.pid))]
    Busy {
        /// The link path that was asked for.
        path: PathBuf,
        /// The holder's pid as written in its lock file, if readable.
        pid: Option<u32>,
    },
    /// Something that is not a serialtwin link is in the way; it was left untouched.
    #[error("{} exists and is not a serialtwin link ({what}); refusing to touch it", .path.display())]
    NotOurs {
        /// The path in the way (the link, or its lock file).
        path: PathBuf,
        /// What was found there.
        what: String,
    },
    /// The path has no file name (`/`, `..`), so there is nothing to name a link.
    #[error("{} cannot name a link: it has no file name", .path.display())]
    NoFileName {
        /// The path that was asked for.
        path: PathBuf,
    },
    /// The path has control characters, which would garble every message and listing naming it.
    #[error("link path {path:?} has control characters; refusing it")]
    ControlCharacters {
        /// The path that was asked for.
        path: PathBuf,
    },
    /// The link's directory (or one on the way) is not safe from other users: whoever controls
    /// it could swap the link our clients open, or the lock file we write into.
    #[error(
        "{0}; choose a link in a directory of yours (e.g. a config file with `link = \"...\"`)"
    )]
    UnsafeDirectory(#[source] DirError),
    /// The lock file kept being removed or replaced while we locked it.
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

impl From<DirError> for LinkError {
    fn from(err: DirError) -> Self {
        match err {
            DirError::NotOurs { path, what } => Self::NotOurs { path, what },
            DirError::LockRace { path } => Self::LockRace { path },
            DirError::Io { op, path, source } => Self::Io { op, path, source },
            other => Self::UnsafeDirectory(other),
        }
    }
}

fn holder(pid: Option<u32>) -> String {
    pid.map_or_else(String::new, |pid| format!(" (pid {pid})"))
}

fn io_error(op: &'static str, path: &Path) -> impl FnOnce(Errno) -> LinkError {
    let path = path.to_owned();
    move |errno| LinkError::Io {
        op,
        path,
        source: errno.into(),
    }
}

/// The claim on one port name: the lock that makes the name ours, and the link it names.
///
/// Dropping the slot releases it like [`LinkSlot::release`], logging instead of returning errors.
#[derive(Debug)]
pub struct LinkSlot {
    /// The link clients open.
    path: PathBuf,
    /// The link's directory, checked and held open: every later call is relative to it, so
    /// swapping the directory (or a symlink on the way) after the claim changes nothing.
    dir: TrustedDir,
    /// The link's file name in `dir`.
    name: OsString,
    /// `.<name>.serialtwin.lock`.
    lock_name: OsString,
    /// `.<name>.serialtwin.new`: where a new link is made before it is renamed over `name`.
    temp_name: OsString,
    /// The locked lock file; `None` once released.
    lock: Option<File>,
    /// What we last pointed the link at.
    target: Option<PathBuf>,
}

impl LinkSlot {
    /// Claim `path` for this process, so that only this slot may create, re-point or remove it.
    ///
    /// Opens the link's directory (creating it `0755` if missing) only if neither it nor any
    /// directory on the way can be changed by another user, and it is not itself a symlink
    /// ([`TrustedDir`], [`Purpose::Links`]). Then takes an exclusive, non-blocking lock on the
    /// lock file beside the link (which must be a regular file of ours) and writes our pid into
    /// it. Refuses with [`LinkError::Busy`] if a live holder has the lock, and with
    /// [`LinkError::NotOurs`] (creating nothing) if `path` is not a symlink of ours, or is a
    /// symlink that no serialtwin instance left: one with no lock file beside it that points
    /// outside `/dev/pts`, or at a pty that still exists (socat and friends make such links too).
    /// A leftover link of a killed instance (lock file present but unlocked), or a dangling link
    /// into `/dev/pts`, is stale: it is removed at once, since its pty number may already belong
    /// to somebody else's terminal.
    ///
    /// # Errors
    /// [`LinkError::Busy`], [`LinkError::NotOurs`], [`LinkError::NoFileName`],
    /// [`LinkError::ControlCharacters`], [`LinkError::UnsafeDirectory`],
    /// [`LinkError::LockRace`], or [`LinkError::Io`] when a filesystem call fails.
    pub fn claim(path: impl Into<PathBuf>) -> Result<Self, LinkError> {
        let path = path.into();
        let (name, dir_path) = split(&path)?;
        let sibling = |suffix: &str| {
            let mut file = OsString::from(".");
            file.push(&name);
            file.push(suffix);
            file
        };
        let lock_name = sibling(".serialtwin.lock");
        let temp_name = sibling(".serialtwin.new");

        let dir = TrustedDir::open_or_create(&dir_path, Purpose::Links)?;
        // Decide before creating anything, so a refusal leaves no lock file beside a stranger.
        let lock_existed = dir.stat(&lock_name)?.is_some();
        inspect(&dir, &path, &name, lock_existed)?;

        let lock = match dir.lock(&lock_name, 0o644)? {
            Locked::Held(file) => file,
            Locked::Busy(file) => {
                return Err(LinkError::Busy {
                    pid: read_pid(&file),
                    path,
                });
            }
        };
        let slot = Self {
            path,
            dir,
            name,
            lock_name,
            temp_name,
            lock: Some(lock),
            target: None,
        };
        // The name is ours now, but the path may have changed while we locked: look again.
        // On refusal, dropping the slot removes the lock file we made and leaves the path alone.
        if let Existing::Stale(old) = inspect(&slot.dir, &slot.path, &slot.name, lock_existed)? {
            info!(link = %slot.path.display(), old = %old.display(), "taking over a stale link");
            slot.dir.remove(&slot.name)?;
        }
        slot.dir.remove(&slot.temp_name)?;
        slot.write_pid()?;
        debug!(link = %slot.path.display(), "claimed link slot");
        Ok(slot)
    }

    /// What [`claim`](Self::claim) would say about `path` now, without creating, locking or
    /// removing anything (for `serialtwin check`): the same refusals, and
    /// [`LinkError::Busy`] when the lock file beside it names a process that is alive (read
    /// from the file: the lock itself is not tried, so an instance starting at that moment is
    /// never disturbed). A directory that does not exist yet is fine: `claim` creates it.
    ///
    /// # Errors
    /// As [`claim`](Self::claim), except [`LinkError::LockRace`].
    pub fn probe(path: &Path) -> Result<(), LinkError> {
        let (name, dir_path) = split(path)?;
        let dir = match TrustedDir::open(&dir_path, Purpose::Links) {
            Ok(dir) => dir,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let mut lock_name = OsString::from(".");
        lock_name.push(&name);
        lock_name.push(".serialtwin.lock");
        let lock_existed = dir.stat(&lock_name)?.is_some();
        inspect(&dir, path, &name, lock_existed)?;
        if lock_existed && let Some(pid) = lock_holder(&dir, &lock_name).filter(|&p| alive(p)) {
            return Err(LinkError::Busy {
                pid: Some(pid),
                path: path.to_owned(),
            });
        }
        Ok(())
    }

    /// Atomically point the link at `target`, replacing what it pointed at before.
    ///
    /// The new link is made under a temporary name in the same directory and renamed over the
    /// old one, so a client opening the path sees either the old pty or the new, never nothing.
    ///
    /// # Errors
    /// [`LinkError::NotOurs`] if something other than a symlink appeared at the path since the
    /// claim (it is left alone), [`LinkError::Io`] if a filesystem call fails (the old link stays).
    pub fn point_to(&mut self, target: &Path) -> Result<(), LinkError> {
        if let Some(st) = self.dir.stat(&self.name)?
            && FileType::from_raw_mode(st.st_mode) != FileType::Symlink
        {
            return Err(LinkError::NotOurs {
                path: self.path.clone(),
                what: trusted_dir::describe(&st).to_owned(),
            });
        }
        let temp_path = self.dir.display_path(&self.temp_name);
        self.dir.remove(&self.temp_name)?;
        rustix::fs::symlinkat(target, self.dir.fd(), &self.temp_name)
            .map_err(io_error("create symlink", &temp_path))?;
        if let Err(err) =
            rustix::fs::renameat(self.dir.fd(), &self.temp_name, self.dir.fd(), &self.name)
        {
            if let Err(cleanup) = self.dir.remove(&self.temp_name) {
                warn!(error = %cleanup, "cannot remove temporary link");
            }
            return Err(io_error("rename link over", &self.path)(err));
        }
        debug!(link = %self.path.display(), target = %target.display(), "link re-pointed");
        self.target = Some(target.to_owned());
        Ok(())
    }

    /// Remove the link (the device was unplugged) but keep the slot, for a later
    /// [`point_to`](Self::point_to). Only a link that still points at our target is removed.
    ///
    /// Returns whether a link was removed.
    ///
    /// # Errors
    /// [`LinkError::Io`] if the link cannot be read or removed.
    pub fn unlink(&mut self) -> Result<bool, LinkError> {
        let Some(target) = self.target.take() else {
            return Ok(false);
        };
        match read_link(&self.dir, &self.name) {
            Ok(current) if current == target => {
                self.dir.remove(&self.name)?;
                debug!(link = %self.path.display(), "link removed");
                Ok(true)
            }
            Ok(current) => {
                warn!(
                    link = %self.path.display(),
                    ours = %target.display(),
                    now = %current.display(),
                    "link was re-pointed by someone else; leaving it",
                );
                Ok(false)
            }
            // Gone, or replaced by something that is not a link: not ours to remove.
            Err(Errno::NOENT | Errno::INVAL) => Ok(false),
            Err(err) => Err(io_error("read link", &self.path)(err)),
        }
    }

    /// The link's path, as claimed.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the link was last pointed at by this slot, if anything (and not since unlinked).
    #[must_use]
    pub fn target(&self) -> Option<&Path> {
        self.target.as_deref()
    }

    /// Give the name back: remove the link if it still points at our target, then remove the lock
    /// file while still holding the lock, then unlock. Dropping the slot does the same.
    ///
    /// # Errors
    /// [`LinkError::Io`] if the link or the lock file cannot be removed; the lock is released anyway.
    pub fn release(mut self) -> Result<(), LinkError> {
        self.teardown()
    }

    fn teardown(&mut self) -> Result<(), LinkError> {
        let Some(lock) = self.lock.take() else {
            return Ok(());
        };
        let link = self.unlink().map(drop);
        if let Err(err) = self.dir.remove(&self.temp_name) {
            warn!(error = %err, "cannot remove temporary link");
        }
        // Remove the lock file only while we hold it, and only if it is still the one we locked:
        // a claimant that opened it meanwhile then sees the name gone once it gets the lock, and retries.
        let lock_path = self.dir.display_path(&self.lock_name);
        let held = rustix::fs::fstat(&lock);
        let lock_file = match (held, self.dir.stat(&self.lock_name)) {
            (Ok(held), Ok(Some(named))) if trusted_dir::same_file(&held, &named) => {
                self.dir.remove(&self.lock_name).map_err(LinkError::from)
            }
            (_, Ok(None)) => Ok(()),
            (Err(err), _) => Err(io_error("inspect lock file", &lock_path)(err)),
            (_, Err(err)) => Err(err.into()),
            (Ok(_), Ok(Some(_))) => {
                warn!(path = %lock_path.display(), "lock file was replaced by someone else; leaving it");
                Ok(())
            }
        };
        drop(lock); // Closing the only descriptor of this open file description unlocks it.
        debug!(link = %self.path.display(), "released link slot");
        link.and(lock_file)
    }

    fn write_pid(&self) -> Result<(), LinkError> {
        let Some(lock) = &self.lock else {
            return Ok(());
        };
        lock.set_len(0)
            .and_then(|()| lock.write_all_at(format!("{}\n", std::process::id()).as_bytes(), 0))
            .map_err(|source| LinkError::Io {
                op: "write pid to",
                path: self.dir.display_path(&self.lock_name),
                source,
            })
    }
}

impl Drop for LinkSlot {
    fn drop(&mut self) {
        if let Err(err) = self.teardown() {
            warn!(link = %self.path.display(), error = %err, "releasing link slot");
        }
    }
}

/// What [`inspect`] found at a link path that we may take.
enum Existing {
    /// Nothing there.
    Nothing,
    /// A symlink left by a dead instance, pointing here.
    Stale(PathBuf),
}

fn read_link(dir: &TrustedDir, name: &OsStr) -> Result<PathBuf, Errno> {
    let target = rustix::fs::readlinkat(dir.fd(), name, Vec::new())?;
    Ok(PathBuf::from(OsStr::from_bytes(target.as_bytes())))
}

/// Decide whether whatever is at `name` in `dir` (`path`, for messages) may become ours.
/// `lock_existed`: whether a lock file was beside it before we made one, i.e. whether some
/// serialtwin instance once held this name.
fn inspect(
    dir: &TrustedDir,
    path: &Path,
    name: &OsStr,
    lock_existed: bool,
) -> Result<Existing, LinkError> {
    let Some(st) = dir.stat(name)? else {
        return Ok(Existing::Nothing);
    };
    let not_ours = |what: String| LinkError::NotOurs {
        path: path.to_owned(),
        what,
    };
    if FileType::from_raw_mode(st.st_mode) != FileType::Symlink {
        return Err(not_ours(trusted_dir::describe(&st).to_owned()));
    }
    if st.st_uid != trusted_dir::euid() {
        return Err(not_ours(format!(
            "a symlink owned by {}",
            trusted_dir::who(st.st_uid)
        )));
    }
    let target = read_link(dir, name).map_err(io_error("read link", path))?;
    if lock_existed {
        return Ok(Existing::Stale(target));
    }
    let into_pts = target.starts_with(PTS_DIR) && target != Path::new(PTS_DIR);
    if !into_pts {
        return Err(not_ours(format!(
            "a symlink to {} with no serialtwin lock file",
            target.display()
        )));
    }
    if std::fs::symlink_metadata(&target).is_ok() {
        return Err(not_ours(format!(
            "a symlink to the live pty {} with no serialtwin lock file",
            target.display()
        )));
    }
    Ok(Existing::Stale(target))
}

/// `path`'s file name and directory, if it can name a link at all.
fn split(path: &Path) -> Result<(OsString, PathBuf), LinkError> {
    if path
        .as_os_str()
        .as_bytes()
        .iter()
        .any(|&b| b < 0x20 || b == 0x7f)
    {
        return Err(LinkError::ControlCharacters {
            path: path.to_owned(),
        });
    }
    let Some(name) = path.file_name().map(OsStr::to_owned) else {
        return Err(LinkError::NoFileName {
            path: path.to_owned(),
        });
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    };
    Ok((name, dir))
}

/// The pid written in the lock file `name` of `dir`, read without following a symlink or
/// waiting on a FIFO.
fn lock_holder(dir: &TrustedDir, name: &OsStr) -> Option<u32> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::openat(
        dir.fd(),
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    read_pid(&File::from(fd))
}

/// Whether process `pid` exists (whoever owns it: `EPERM` means it does).
fn alive(pid: u32) -> bool {
    i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .is_some_and(|pid| !matches!(rustix::process::test_kill_process(pid), Err(Errno::SRCH)))
}

fn read_pid(file: &File) -> Option<u32> {
    let mut text = String::new();
    file.take(32).read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::symlink;

    use super::*;

    use crate::scratch::{Scratch, entries};

    const PTS_A: &str = "/dev/pts/424242";
    const PTS_B: &str = "/dev/pts/424243";

    #[test]
    fn claim_and_point_create_parents_and_link() {
        let scratch = Scratch::new("link", "create");
        let link = scratch.0.join("a/b/ttyUSB0");
        let mut slot = LinkSlot::claim(&link).unwrap();
        assert_eq!(slot.path(), link);
        let lock = scratch.0.join("a/b/.ttyUSB0.serialtwin.lock");
        assert_eq!(
            fs::read_to_string(&lock).unwrap(),
            format!("{}\n", std::process::id())
        );
        assert!(
            fs::symlink_metadata(&link).is_err(),
            "no link before point_to"
        );

        slot.point_to(Path::new(PTS_A)).unwrap();
        assert_eq!(fs::read_link(&link).unwrap(), Path::new(PTS_A));
        assert_eq!(slot.target(), Some(Path::new(PTS_A)));
        assert_eq!(
            entries(&scratch.0.join("a/b")),
            [".ttyUSB0.serialtwin.lock", "ttyUSB0"]
        );
    }

    /// `probe` says what `claim` would, and changes nothing on the way.
    #[test]
    fn probe_foresees_the_claim_and_touches_nothing() {
        let scratch = Scratch::new("link", "probe");
        let link = scratch.0.join("ttyUSB0");
        LinkSlot::probe(&link).unwrap();
        LinkSlot::probe(&scratch.0.join("not/yet/there")).unwrap();
        assert!(entries(&scratch.0).is_empty(), "probing created nothing");

        let held = LinkSlot::claim(&link).unwrap();
        match LinkSlot::probe(&link) {
            Err(LinkError::Busy { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("expected Busy, got {other:?}"),
        }
        held.release().unwrap();
        LinkSlot::probe(&link).unwrap();

        // A lock file left by a process that is gone: free (claim takes it over).
        fs::write(scratch.0.join(".ttyUSB1.serialtwin.lock"), "999999999\n").unwrap();
        LinkSlot::probe(&scratch.0.join("ttyUSB1")).unwrap();

        fs::write(scratch.0.join("file"), "keep").unwrap();
        assert!(matches!(
            LinkSlot::probe(&scratch.0.join("file")),
            Err(LinkError::NotOurs { .. })
        ));
        assert!(matches!(
            LinkSlot::probe(Path::new("/")),
            Err(LinkError::NoFileName { .. })
        ));
        assert_eq!(fs::read_to_string(scratch.0.join("file")).unwrap(), "keep");
    }

    #[test]
    fn second_claim_in_process_is_busy() {
        let scratch = Scratch::new("link", "busy");
        let link = scratch.0.join("ttyUSB0");
        let _first = LinkSlot::claim(&link).unwrap();
        match LinkSlot::claim(&link) {
            Err(LinkError::Busy { path, pid }) => {
                assert_eq!(path, link);
                assert_eq!(pid, Some(std::process::id()));
            }
            other => panic!("expected Busy, got {other:?}"),
        }
        // The refused claim must not have disturbed the holder's lock file.
        assert!(scratch.0.join(".ttyUSB0.serialtwin.lock").exists());
    }

    #[test]
    fn regular_file_is_refused_and_untouched() {
        let scratch = Scratch::new("link", "file");
        let link = scratch.0.join("ttyUSB0");
        fs::write(&link, "precious").unwrap();
        let err = LinkSlot::claim(&link).unwrap_err();
        assert!(matches!(err, LinkError::NotOurs { .. }), "{err:?}");
        assert!(err.to_string().contains("a regular file"), "{err}");
        assert_eq!(fs::read_to_string(&link).unwrap(), "precious");
        assert_eq!(scratch.entries(), ["ttyUSB0"], "no lock file left behind");
    }

    #[test]
    fn directory_is_refused() {
        let scratch = Scratch::new("link", "dir");
        let link = scratch.0.join("ttyUSB0");
        fs::create_dir(&link).unwrap();
        assert!(matches!(
            LinkSlot::claim(&link),
            Err(LinkError::NotOurs { .. })
        ));
        assert!(link.is_dir());
    }

    #[test]
    fn foreign_symlink_is_refused() {
        let scratch = Scratch::new("link", "foreign");
        let link = scratch.0.join("ttyUSB0");
        symlink("/etc/hostname", &link).unwrap();
        assert!(matches!(
            LinkSlot::claim(&link),
            Err(LinkError::NotOurs { .. })
        ));
        assert_eq!(fs::read_link(&link).unwrap(), Path::new("/etc/hostname"));
        assert_eq!(scratch.entries(), ["ttyUSB0"]);
    }

    #[test]
    fn live_pty_link_without_lock_is_refused() {
        // /dev/pts/ptmx always exists where devpts is mounted: stands in for a socat-made link.
        if fs::symlink_metadata("/dev/pts/ptmx").is_err() {
            return;
        }
        let scratch = Scratch::new("link", "live");
        let link = scratch.0.join("ttyUSB0");
        symlink("/dev/pts/ptmx", &link).unwrap();
        assert!(matches!(
            LinkSlot::claim(&link),
            Err(LinkError::NotOurs { .. })
        ));
        assert_eq!(fs::read_link(&link).unwrap(), Path::new("/dev/pts/ptmx"));
    }

    #[test]
    fn stale_link_of_killed_instance_is_taken_over() {
        let scratch = Scratch::new("link", "stale");
        let link = scratch.0.join("ttyUSB0");
        // A killed instance leaves its link and its lock file; the kernel dropped its flock.
        // Even a live target is taken over: its pty number now belongs to someone else.
        symlink("/dev/pts/ptmx", &link).unwrap();
        fs::write(scratch.0.join(".ttyUSB0.serialtwin.lock"), "999999999\n").unwrap();
        let mut slot = LinkSlot::claim(&link).unwrap();
        assert!(
            fs::symlink_metadata(&link).is_err(),
            "stale link removed at once"
        );
        let pid = fs::read_to_string(scratch.0.join(".ttyUSB0.serialtwin.lock")).unwrap();
        assert_eq!(pid, format!("{}\n", std::process::id()));
        slot.point_to(Path::new(PTS_A)).unwrap();
        assert_eq!(fs::read_link(&link).unwrap(), Path::new(PTS_A));
    }

    #[test]
    fn dangling_pty_link_without_lock_is_taken_over() {
        let scratch = Scratch::new("link", "dangling");
        let link = scratch.0.join("ttyUSB0");
        symlink(PTS_B, &link).unwrap();
        let _slot = LinkSlot::claim(&link).unwrap();
        assert!(fs::symlink_metadata(&link).is_err());
    }

    #[test]
    fn foreign_link_with_leftover_lock_is_ours() {
        // The lock file says a serialtwin instance held this name, wherever it pointed.
        let scratch = Scratch::new("link", "leftover");
        let link = scratch.0.join("ttyUSB0");
        symlink("/somewhere/else", &link).unwrap();
        fs::write(scratch.0.join(".ttyUSB0.serialtwin.lock"), "").unwrap();
        let _slot = LinkSlot::claim(&link).unwrap();
    }

    #[test]
    fn symlinked_lock_file_is_refused() {
        let scratch = Scratch::new("link", "locklink");
        let victim = scratch.0.join("victim");
        fs::write(&victim, "keep").unwrap();
        symlink(&victim, scratch.0.join(".ttyUSB0.serialtwin.lock")).unwrap();
        let err = LinkSlot::claim(scratch.0.join("ttyUSB0")).unwrap_err();
        assert!(matches!(err, LinkError::NotOurs { .. }), "{err:?}");
        assert_eq!(fs::read_to_string(&victim).unwrap(), "keep");
    }

    #[test]
    fn release_removes_link_and_lock_and_frees_the_name() {
        let scratch = Scratch::new("link", "release");
        let link = scratch.0.join("ttyUSB0");
        let mut slot = LinkSlot::claim(&link).unwrap();
        slot.point_to(Path::new(PTS_A)).unwrap();
        slot.release().unwrap();
        assert!(scratch.entries().is_empty(), "{:?}", scratch.entries());
        let _again = LinkSlot::claim(&link).unwrap();
    }

    #[test]
    fn drop_releases_too() {
        let scratch = Scratch::new("link", "drop");
        let link = scratch.0.join("ttyUSB0");
        {
            let mut slot = LinkSlot::claim(&link).unwrap();
            slot.point_to(Path::new(PTS_A)).unwrap();
        }
        assert!(scratch.entries().is_empty(), "{:?}", scratch.entries());
    }

    #[test]
    fn release_leaves_a_link_re_pointed_by_someone_else() {
        let scratch = Scratch::new("link", "repointed");
        let link = scratch.0.join("ttyUSB0");
        let mut slot = LinkSlot::claim(&link).unwrap();
        slot.point_to(Path::new(PTS_A)).unwrap();
        let other = scratch.0.join("other");
        symlink("/etc/hostname", &other).unwrap();
        fs::rename(&other, &link).unwrap();
        slot.release().unwrap();
        assert_eq!(fs::read_link(&link).unwrap(), Path::new("/etc/hostname"));
        assert_eq!(scratch.entries(), ["ttyUSB0"], "lock file removed");
    }

    #[test]
    fn replug_keeps_one_link() {
        let scratch = Scratch::new("link", "replug");
        let link = scratch.0.join("ttyUSB0");
        let mut slot = LinkSlot::claim(&link).unwrap();
        slot.point_to(Path::new(PTS_A)).unwrap();
        slot.point_to(Path::new(PTS_B)).unwrap();
        assert_eq!(fs::read_link(&link).unwrap(), Path::new(PTS_B));
        assert_eq!(scratch.entries(), [".ttyUSB0.serialtwin.lock", "ttyUSB0"]);
    }

    #[test]
    fn unlink_keeps_the_slot() {
        let scratch = Scratch::new("link", "unplug");
        let link = scratch.0.join("ttyUSB0");
        let mut slot = LinkSlot::claim(&link).unwrap();
        slot.point_to(Path::new(PTS_A)).unwrap();
        assert!(slot.unlink().unwrap());
        assert!(!slot.unlink().unwrap());
        assert_eq!(scratch.entries(), [".ttyUSB0.serialtwin.lock"]);
        assert!(matches!(
            LinkSlot::claim(&link),
            Err(LinkError::Busy { .. })
        ));
        slot.point_to(Path::new(PTS_B)).unwrap();
        assert_eq!(fs::read_link(&link).unwrap(), Path::new(PTS_B));
    }

    #[test]
    fn control_characters_are_refused() {
        let scratch = Scratch::new("link", "ctrl");
        for name in ["tty\u{1b}[31m", "tty\nUSB0", "tty\u{7f}"] {
            let err = LinkSlot::claim(scratch.0.join(name)).unwrap_err();
            assert!(
                matches!(err, LinkError::ControlCharacters { .. }),
                "{name:?}: {err:?}"
            );
        }
        assert!(scratch.entries().is_empty());
    }

    #[test]
    fn a_directory_others_may_write_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let scratch = Scratch::new("link", "open");
        let dir = scratch.0.join("links");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        let err = LinkSlot::claim(dir.join("ttyUSB0")).unwrap_err();
        assert!(matches!(err, LinkError::UnsafeDirectory(_)), "{err:?}");
        assert!(err.to_string().contains("link = "), "{err}");
        assert!(entries(&dir).is_empty(), "nothing created");
    }

    #[test]
    fn a_symlinked_directory_is_refused() {
        let scratch = Scratch::new("link", "dirlink");
        let real = scratch.0.join("real");
        fs::create_dir(&real).unwrap();
        symlink(&real, scratch.0.join("links")).unwrap();
        let err = LinkSlot::claim(scratch.0.join("links/ttyUSB0")).unwrap_err();
        assert!(err.to_string().contains("is a symlink"), "{err}");
        assert!(entries(&real).is_empty(), "nothing created in its target");
    }

    #[test]
    fn a_stale_looking_link_of_another_user_is_refused() {
        if !rustix::process::geteuid().is_root() {
            println!("skipped: needs root to give a link to another uid");
            return;
        }
        let scratch = Scratch::new("link", "otheruid");
        let link = scratch.0.join("ttyUSB0");
        symlink(PTS_B, &link).unwrap();
        std::os::unix::fs::lchown(&link, Some(4242), Some(4242)).unwrap();
        let err = LinkSlot::claim(&link).unwrap_err();
        assert!(err.to_string().contains("owned by uid 4242"), "{err}");
        assert_eq!(fs::read_link(&link).unwrap(), Path::new(PTS_B));
        assert_eq!(scratch.entries(), ["ttyUSB0"]);
    }
}
