//! The control protocol on a Unix socket: the server side (`serialtwin run`) and the client
//! side (`serialtwin ctl`).
//!
//! Whoever can replace the socket, or talk to it, controls the fleet (or, from the client's
//! side, decides what `ctl` prints). So both sides work only in a private directory of ours
//! ([`TrustedDir`], [`Purpose::Private`]: ours, `0700`, nothing on the way writable by others),
//! reach the socket through that directory's descriptor, and check who is at the other end
//! (`SO_PEERCRED`): only our own uid or root.

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rustix::fs::{FileType, Mode};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Interest};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::{MAX_LINE, Ports};
use crate::port::trusted_dir::{self, DirError, Locked, Purpose, TrustedDir};

/// Why the control socket could not be served or reached. Returned inside an [`io::Error`]
/// (whose kind says `AddrInUse` or `PermissionDenied` where that fits), so callers that only
/// print it need nothing more.
#[derive(Debug, thiserror::Error)]
enum SocketError {
    /// The directory, or one on the way, is not ours alone.
    #[error(transparent)]
    Dir(#[from] DirError),
    /// The socket path has no file name.
    #[error("{} cannot name a control socket: it has no file name", .0.display())]
    NoFileName(PathBuf),
    /// A live instance serves this socket.
    #[error("{} is in use by a running instance", .0.display())]
    InUse(PathBuf),
    /// Something that is not a socket of ours is at the path; it was left untouched.
    #[error("{} exists and is {what}, not a control socket of ours; refusing to touch it", .path.display())]
    NotOurs {
        /// The socket path.
        path: PathBuf,
        /// What was found there.
        what: String,
    },
    /// The process answering on the socket is neither us nor root.
    #[error("{} is served by {}, neither you nor root; refusing to talk to it", .path.display(), trusted_dir::who(*.uid))]
    Peer {
        /// The socket path.
        path: PathBuf,
        /// The server's uid.
        uid: u32,
    },
    /// A socket call failed.
    #[error("cannot {op} {}: {source}", .path.display())]
    Io {
        /// What we were doing.
        op: &'static str,
        /// The socket path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl From<SocketError> for io::Error {
    fn from(err: SocketError) -> Self {
        let kind = match &err {
            SocketError::InUse(_) => io::ErrorKind::AddrInUse,
            SocketError::Io { source, .. } => source.kind(),
            SocketError::Dir(dir) if dir.is_not_found() => io::ErrorKind::NotFound,
            SocketError::NoFileName(_) => io::ErrorKind::InvalidInput,
            _ => io::ErrorKind::PermissionDenied,
        };
        io::Error::new(kind, err)
    }
}

fn io_error(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> SocketError {
    let path = path.to_owned();
    move |source| SocketError::Io { op, path, source }
}

/// Serve the control protocol on a Unix socket at `path` until `cancel` fires.
///
/// The parent directory is created `0700` if missing, and refused unless it is ours and
/// `0700`; the socket is created `0600`. An existing file at `path` is replaced only if it is a
/// socket of ours that nobody listens on (checked while holding a lock on `<path>.lock`, which
/// is kept while serving). The socket file is removed when serving ends, if it is still the one
/// we bound. Connections from users other than ours and root are refused.
///
/// # Errors
/// If the socket cannot be bound (another instance is listening there, the directory or the
/// file at `path` is not ours, or no permission).
pub async fn serve_socket(path: &Path, ports: Ports, cancel: CancellationToken) -> io::Result<()> {
    let bound = Bound::new(path)?;
    accept_loop(bound, ports, cancel).await
}

/// [`serve_socket`], telling `ready` whether the socket could be bound before serving on it.
///
/// # Errors
/// Accept errors after the socket is up (a bind error goes to `ready` instead).
pub async fn serve_socket_ready(
    path: &Path,
    ports: Ports,
    cancel: CancellationToken,
    ready: tokio::sync::oneshot::Sender<io::Result<()>>,
) -> io::Result<()> {
    match Bound::new(path) {
        Ok(bound) => {
            let _ = ready.send(Ok(()));
            accept_loop(bound, ports, cancel).await
        }
        Err(e) => {
            let _ = ready.send(Err(e.into()));
            Ok(())
        }
    }
}

/// The file name of a socket path and its directory (`.` for a bare name).
fn split(path: &Path) -> Result<(PathBuf, OsString), SocketError> {
    let Some(name) = path.file_name() else {
        return Err(SocketError::NoFileName(path.to_owned()));
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    };
    Ok((dir, name.to_owned()))
}

/// A bound control socket, with what it takes to remove exactly it, and only it, at the end.
struct Bound {
    listener: UnixListener,
    /// The socket's private directory, held open.
    dir: TrustedDir,
    /// The socket's name in `dir`.
    name: OsString,
    /// Device and inode of the socket file we bound: at the end, a file at `name` that is not
    /// this one is somebody else's.
    inode: (u64, u64),
    /// `<name>.lock`, locked while we serve: deciding that a socket is stale and replacing it
    /// happens only under this lock, so two instances starting at once cannot both do it.
    lock: File,
    /// The lock file's name in `dir`.
    lock_name: OsString,
    /// The socket path, for messages.
    path: PathBuf,
}

impl Bound {
    fn new(path: &Path) -> Result<Self, SocketError> {
        let (dir_path, name) = split(path)?;
        let dir = TrustedDir::open_or_create(&dir_path, Purpose::Private)?;
        let mut lock_name = name.clone();
        lock_name.push(".lock");
        let lock = match dir.lock(&lock_name, 0o600)? {
            Locked::Held(file) => file,
            Locked::Busy(_) => return Err(SocketError::InUse(path.to_owned())),
        };
        match dir.stat(&name)? {
            None => {}
            Some(st)
                if FileType::from_raw_mode(st.st_mode) == FileType::Socket
                    && st.st_uid == trusted_dir::euid() =>
            {
                match std::os::unix::net::UnixStream::connect(dir.proc_path(&name)) {
                    Ok(_) => return Err(SocketError::InUse(path.to_owned())),
                    Err(e)
                        if e.raw_os_error()
                            == Some(rustix::io::Errno::CONNREFUSED.raw_os_error()) =>
                    {
                        warn!(path = %path.display(), "removing a stale control socket");
                        dir.remove(&name)?;
                    }
                    Err(e) => return Err(io_error("connect to", path)(e)),
                }
            }
            Some(st) => {
                let what = if FileType::from_raw_mode(st.st_mode) == FileType::Socket {
                    format!("a socket owned by {}", trusted_dir::who(st.st_uid))
                } else {
                    trusted_dir::describe(&st).to_owned()
                };
                return Err(SocketError::NotOurs {
                    path: path.to_owned(),
                    what,
                });
            }
        }
        let listener = {
            let _umask = OwnerOnlyUmask::set();
            std::os::unix::net::UnixListener::bind(dir.proc_path(&name))
        }
        .map_err(io_error("bind", path))?;
        let st = dir
            .stat(&name)?
            .ok_or_else(|| io_error("find", path)(io::ErrorKind::NotFound.into()))?;
        listener
            .set_nonblocking(true)
            .map_err(io_error("set up", path))?;
        let listener = UnixListener::from_std(listener).map_err(io_error("set up", path))?;
        Ok(Self {
            listener,
            dir,
            name,
            inode: (st.st_dev, st.st_ino),
            lock,
            lock_name,
            path: path.to_owned(),
        })
    }
}

impl Drop for Bound {
    fn drop(&mut self) {
        match self.dir.stat(&self.name) {
            Ok(Some(st)) if (st.st_dev, st.st_ino) == self.inode => {
                if let Err(e) = self.dir.remove(&self.name) {
                    warn!(error = %e, "cannot remove the control socket");
                }
            }
            Ok(Some(_)) => warn!(
                path = %self.path.display(),
                "the control socket was replaced by something else; leaving it"
            ),
            Ok(None) => {}
            Err(e) => warn!(error = %e, "cannot inspect the control socket"),
        }
        // The lock file goes while we still hold it, and only if it is the one we locked.
        if let (Ok(held), Ok(Some(named))) = (
            rustix::fs::fstat(&self.lock),
            self.dir.stat(&self.lock_name),
        ) && trusted_dir::same_file(&held, &named)
            && let Err(e) = self.dir.remove(&self.lock_name)
        {
            warn!(error = %e, "cannot remove the control socket's lock file");
        }
    }
}

/// Serialises [`OwnerOnlyUmask`] among our own threads, so one restore cannot undo another's mask.
static UMASK: Mutex<()> = Mutex::new(());

/// A umask of `0177` for as long as it lives: the socket file `bind` creates is `0600` from the
/// start, with no moment at which another user could connect and no `chmod` by path afterwards.
///
/// The umask is process-wide, so a file another thread creates during the `bind` gets at most
/// `0600` too. That is acceptable: the window is one system call, and a file made then ends up
/// more private than asked, never less.
struct OwnerOnlyUmask {
    old: Mode,
    _serial: std::sync::MutexGuard<'static, ()>,
}

impl OwnerOnlyUmask {
    fn set() -> Self {
        let serial = UMASK
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let old = rustix::process::umask(Mode::from_raw_mode(0o177));
        Self {
            old,
            _serial: serial,
        }
    }
}

impl Drop for OwnerOnlyUmask {
    fn drop(&mut self) {
        rustix::process::umask(self.old);
    }
}

/// Whether a peer's uid may control us (or, for a client, answer it): our own, or root's.
fn trusted_peer(uid: u32) -> bool {
    uid == 0 || uid == trusted_dir::euid()
}

async fn accept_loop(bound: Bound, ports: Ports, cancel: CancellationToken) -> io::Result<()> {
    loop {
        let (stream, _) = tokio::select! {
            () = cancel.cancelled() => return Ok(()),
            accepted = bound.listener.accept() => accepted?,
        };
        match stream.peer_cred() {
            Ok(cred) if trusted_peer(cred.uid()) => {}
            Ok(cred) => {
                let uid = cred.uid();
                warn!(uid, "refused a control connection from another user");
                // Best effort, never waiting: the connection is closed right after.
                let _ = stream.try_write(
                    format!(
                        "error: {} may not control this instance\n",
                        trusted_dir::who(uid)
                    )
                    .as_bytes(),
                );
                continue;
            }
            Err(e) => {
                debug!(error = %e, "cannot tell who connected; closing");
                continue;
            }
        }
        let ports = ports.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = cancel.cancelled() => {}
                r = session(stream, &ports) => if let Err(e) = r {
                    debug!(error = %e, "control session ended");
                },
            }
        });
    }
}

/// One connection: a reply line for each command line, until the client is done or gone.
///
/// A client that gives up (closes the socket) ends the session at once, even while its
/// command is still being carried out: otherwise every abandoned connection would keep its
/// descriptor and task until the command finished, if ever. A client that only shuts down its
/// writing side (as `serialtwin ctl` does after sending) still gets its reply.
async fn session(stream: UnixStream, ports: &Ports) -> io::Result<()> {
    let watch = hangup_watch(&stream)?;
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read.take(1 << 20));
    let mut line = Vec::new();
    loop {
        line.clear();
        if lines.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let reply = match std::str::from_utf8(&line) {
            Err(_) => "error: the command is not UTF-8 text".to_owned(),
            Ok(text) => {
                let text = text.strip_suffix('\n').unwrap_or(text);
                let text = text.strip_suffix('\r').unwrap_or(text);
                if text.len() > MAX_LINE {
                    "error: line too long".to_owned()
                } else if text.trim().is_empty() {
                    continue;
                } else {
                    tokio::select! {
                        reply = ports.execute_line(text) => reply,
                        () = hung_up(&watch) => {
                            debug!("control client hung up before its reply");
                            return Ok(());
                        }
                    }
                }
            }
        };
        write.write_all(reply.as_bytes()).await?;
        write.write_all(b"\n").await?;
    }
}

/// A second registration of the session's socket, used only to learn that the peer is gone.
///
/// It has readiness of its own, so [`hung_up`] can forget a "writable" it does not care about
/// without taking it from the reads and writes on the socket itself.
fn hangup_watch(stream: &UnixStream) -> io::Result<UnixStream> {
    let fd = stream.as_fd().try_clone_to_owned()?;
    UnixStream::from_std(std::os::unix::net::UnixStream::from(fd))
}

/// Resolves when the peer has closed its socket entirely (`EPOLLHUP`), which a peer that only
/// shut down its writing side has not.
async fn hung_up(watch: &UnixStream) {
    loop {
        match watch.ready(Interest::WRITABLE).await {
            Ok(ready) if !ready.is_write_closed() => {
                // Still there: forget this readiness and wait for the socket's next change.
                let _ = watch.try_io(Interest::WRITABLE, || {
                    Err::<(), _>(io::ErrorKind::WouldBlock.into())
                });
            }
            _ => return,
        }
    }
}

/// Send one command line to the control socket at `path` and return the reply.
///
/// The socket's directory must be ours and `0700` (as [`serve_socket`] makes it), and the
/// process answering must run as us or as root: anyone else could make us print anything.
/// The reply is returned as sent (invalid UTF-8 replaced); escaping it for a terminal is the
/// caller's business.
///
/// # Errors
/// If the socket cannot be reached, or its directory or server is not to be trusted.
pub async fn request(path: &Path, line: &str) -> io::Result<String> {
    Ok(ask(path, line).await?)
}

async fn ask(path: &Path, line: &str) -> Result<String, SocketError> {
    let (dir_path, name) = split(path)?;
    let dir = TrustedDir::open(&dir_path, Purpose::Private)?;
    let stream = UnixStream::connect(dir.proc_path(&name))
        .await
        .map_err(io_error("connect to", path))?;
    let uid = stream
        .peer_cred()
        .map_err(io_error("identify the server of", path))?
        .uid();
    if !trusted_peer(uid) {
        return Err(SocketError::Peer {
            path: path.to_owned(),
            uid,
        });
    }
    let (mut read, mut write) = stream.into_split();
    // One write: a server that answers (or refuses) on the first bytes and closes must not
    // turn the rest of our request into a broken pipe.
    let mut request = line.trim().as_bytes().to_vec();
    request.push(b'\n');
    // A server that closed before reading (one refusing us) may have said why: read it first.
    let sent = write.write_all(&request).await;
    // Only a courtesy to say we are done; a server that already closed does not need it.
    let _ = write.shutdown().await;
    let mut reply = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match read.read(&mut chunk).await {
            Ok(0) => break,
            Ok(n) => reply.extend_from_slice(&chunk[..n]),
            // A server that closes without reading all we sent resets the connection after
            // its reply: what it said still counts.
            Err(e) if !reply.is_empty() && e.kind() == io::ErrorKind::ConnectionReset => break,
            Err(e) => return Err(io_error("read from", path)(e)),
        }
    }
    if let Err(e) = sent
        && reply.is_empty()
    {
        return Err(io_error("write to", path)(e));
    }
    Ok(String::from_utf8_lossy(&reply).trim_end().to_owned())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

    use super::*;

    /// Safety net for every wait (never an assertion about speed).
    const PATIENCE: Duration = Duration::from_secs(30);

    use crate::scratch::Scratch;

    /// Serve with no ports at `path`; the server task and its cancel token.
    async fn serve(path: &Path) -> (tokio::task::JoinHandle<io::Result<()>>, CancellationToken) {
        let cancel = CancellationToken::new();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn({
            let (path, cancel) = (path.to_owned(), cancel.clone());
            async move { serve_socket_ready(&path, Ports::default(), cancel, tx).await }
        });
        rx.await.unwrap().unwrap();
        (task, cancel)
    }

    #[tokio::test]
    async fn invalid_utf8_gets_an_error_line_and_the_session_goes_on() {
        let scratch = Scratch::new("socket", "utf8");
        let path = scratch.0.join("ctl/control.sock");
        let (task, cancel) = serve(&path).await;
        let mut stream = UnixStream::connect(&path).await.unwrap();
        stream
            .write_all(b"set x \xff\xfe on\nlist\n")
            .await
            .unwrap();
        stream.shutdown().await.unwrap();
        let mut reply = String::new();
        tokio::time::timeout(PATIENCE, stream.read_to_string(&mut reply))
            .await
            .unwrap()
            .unwrap();
        let lines: Vec<&str> = reply.lines().collect();
        assert_eq!(lines.len(), 2, "{reply:?}");
        assert!(lines[0].starts_with("error: "), "{reply:?}");
        assert_eq!(lines[1], "ok");
        cancel.cancel();
        task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn socket_is_private_and_a_stale_one_of_ours_is_replaced() {
        let scratch = Scratch::new("socket", "stale");
        let dir = scratch.0.join("ctl");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let path = dir.join("control.sock");
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let (task, cancel) = serve(&path).await;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(request(&path, "list").await.unwrap(), "ok");
        // A second server is refused while the first serves.
        let second = Bound::new(&path).err().unwrap();
        assert!(matches!(second, SocketError::InUse(_)), "{second}");
        cancel.cancel();
        task.await.unwrap().unwrap();
        assert!(!path.exists(), "removed at the end");
    }

    #[tokio::test]
    async fn at_the_end_a_file_that_replaced_the_socket_is_left_alone() {
        let scratch = Scratch::new("socket", "replaced");
        let path = scratch.0.join("ctl/control.sock");
        let (task, cancel) = serve(&path).await;
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, "not the socket").unwrap();
        cancel.cancel();
        task.await.unwrap().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "not the socket");
    }

    #[tokio::test]
    async fn a_directory_open_to_others_is_refused_by_server_and_client() {
        let scratch = Scratch::new("socket", "open");
        let path = scratch.0.join("control.sock");
        let err = Bound::new(&path).err().unwrap();
        assert!(err.to_string().contains("must be 0700"), "{err}");
        let err = request(&path, "list").await.unwrap_err();
        assert!(err.to_string().contains("must be 0700"), "{err}");
        assert!(!path.exists());
    }
}
