//! The control protocol on a Unix socket: the server side (`serialtwin run`) and the client
//! side (`serialtwin ctl`).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::{MAX_LINE, Ports};

/// Serve the control protocol on a Unix socket at `path` until `cancel` fires.
///
/// The parent directory is created `0700` if missing; an existing socket file at `path` is
/// replaced only if nothing listens on it. The socket file is removed when serving ends.
///
/// # Errors
/// If the socket cannot be bound (another instance is listening there, or no permission).
pub async fn serve_socket(
    path: &Path,
    ports: Ports,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let listener = bind_owner_only(path)?;
    accept_loop(listener, path, ports, cancel).await
}

/// [`serve_socket`], telling `ready` whether the socket could be bound before serving on it.
///
/// # Errors
/// Accept errors after the socket is up (a bind error goes to `ready` instead).
pub async fn serve_socket_ready(
    path: &Path,
    ports: Ports,
    cancel: CancellationToken,
    ready: tokio::sync::oneshot::Sender<std::io::Result<()>>,
) -> std::io::Result<()> {
    match bind_owner_only(path) {
        Ok(listener) => {
            let _ = ready.send(Ok(()));
            accept_loop(listener, path, ports, cancel).await
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            Ok(())
        }
    }
}

async fn accept_loop(
    listener: UnixListener,
    path: &Path,
    ports: Ports,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let _cleanup = RemoveOnDrop(path.to_owned());
    loop {
        let (stream, _) = tokio::select! {
            () = cancel.cancelled() => return Ok(()),
            accepted = listener.accept() => accepted?,
        };
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

async fn session(stream: UnixStream, ports: &Ports) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(tokio::io::AsyncReadExt::take(read, 1 << 20)).lines();
    while let Some(line) = lines.next_line().await? {
        let reply = if line.len() > MAX_LINE {
            "error: line too long".to_owned()
        } else if line.trim().is_empty() {
            continue;
        } else {
            ports.execute_line(&line).await
        };
        write.write_all(reply.as_bytes()).await?;
        write.write_all(b"\n").await?;
    }
    Ok(())
}

fn bind_owner_only(path: &Path) -> std::io::Result<UnixListener> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        std::fs::create_dir_all(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("{} is in use by a running instance", path.display()),
            ));
        }
        warn!(path = %path.display(), "removing a stale control socket");
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Send one command line to the control socket at `path` and return the reply.
///
/// # Errors
/// If the socket cannot be reached.
pub async fn request(path: &Path, line: &str) -> std::io::Result<String> {
    let stream = UnixStream::connect(path).await?;
    let (read, mut write) = stream.into_split();
    write.write_all(line.trim().as_bytes()).await?;
    write.write_all(b"\n").await?;
    write.shutdown().await?;
    let mut reply = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut BufReader::new(read), &mut reply).await?;
    Ok(reply.trim_end().to_owned())
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
