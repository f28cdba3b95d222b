//! Helpers shared by the integration tests: test devices, real clients, child processes.
#![allow(dead_code, unreachable_pub, missing_docs)]

pub mod bare;
pub mod python;
pub mod scratch;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serialtwin::{Context, Device, Observation, PortHandle, Replies, Seen};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::broadcast;
use tokio_serial::{DataBits, FlowControl, Parity, SerialPortBuilderExt, SerialStream, StopBits};

/// Safety net for every wait in these tests (never an assertion about speed).
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A fresh directory for this test's links, removed when it is done.
pub fn test_dir(tag: &str) -> scratch::Scratch {
    scratch::scratch("serialtwin-test", tag)
}

/// Open `path` the way a user's Rust program would: tokio-serial at 2400 8N1.
pub fn open_client(path: &Path) -> SerialStream {
    tokio_serial::new(path.to_str().unwrap(), 2400)
        .data_bits(DataBits::Eight)
        .parity(Parity::None)
        .stop_bits(StopBits::One)
        .flow_control(FlowControl::None)
        .open_native_async()
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

/// Write `request` and read one `\n`-terminated reply.
pub async fn ask<S: AsyncReadExt + AsyncWriteExt + Unpin>(
    stream: &mut S,
    request: &[u8],
) -> Vec<u8> {
    stream.write_all(request).await.unwrap();
    read_line(stream).await
}

/// Wait for `client` to see its port go away: end of stream or an error (EIO), not a hang.
pub async fn expect_hangup<S: AsyncReadExt + Unpin>(client: &mut S) {
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(PATIENCE, client.read(&mut buf))
        .await
        .expect("hangup seen");
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "no answer, a hangup: {read:?}"
    );
}

/// Open `link` again once it leads to `port`'s new pty after an unplug, retrying the way a
/// client's reconnect logic would.
pub async fn reopen_when_back(link: &Path, port: &PortHandle) -> SerialStream {
    tokio::time::timeout(PATIENCE, async {
        loop {
            if std::fs::read_link(link).is_ok_and(|p| Some(p) == port.current_pty())
                && let Ok(c) = tokio_serial::new(link.to_str().unwrap(), 2400).open_native_async()
            {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("port back")
}

/// Read up to and including `\n`.
pub async fn read_line<S: AsyncReadExt + Unpin>(stream: &mut S) -> Vec<u8> {
    let mut line = Vec::new();
    tokio::time::timeout(PATIENCE, async {
        let mut byte = [0u8; 1];
        loop {
            stream.read_exact(&mut byte).await.unwrap();
            line.push(byte[0]);
            if byte[0] == b'\n' {
                break;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no reply in time; got {:?}", String::from_utf8_lossy(&line)));
    line
}

/// Wait for an observation matching `pred`.
pub async fn wait_for(rx: &mut broadcast::Receiver<Observation>, pred: impl Fn(&Seen) -> bool) {
    tokio::time::timeout(PATIENCE, async {
        loop {
            match rx.recv().await {
                Ok(o) if pred(&o.seen) => return,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("observations ended: {e}"),
            }
        }
    })
    .await
    .expect("observation in time");
}

/// Counts `INC`s; `LATE` is answered after a delay; anything else is echoed with a `?`.
///
/// Answers at once, so a fleet serves its quiet ports from a lane: every test using it also
/// checks that hand-overs between a port's task and its lane change nothing.
#[derive(Debug, Default)]
pub struct Counter {
    pub n: u64,
}

impl Device for Counter {
    type Error = std::convert::Infallible;

    fn handle(
        &mut self,
        req: &[u8],
        _: &mut Context,
        out: &mut Replies,
    ) -> Result<(), Self::Error> {
        match req {
            b"INC" => {
                self.n += 1;
                out.push(self.n.to_string());
            }
            b"LATE" => out.push_after(Duration::from_millis(300), "late reply"),
            other => out.push([b"?".as_slice(), other].concat()),
        }
        Ok(())
    }
}

/// Run one `#[ignore]`d test of this same test binary in a child process, with `env` set.
pub fn child(test: &str, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        test,
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]);
    cmd.env("SERIALTWIN_CHILD", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Whether this process is a child started by [`child`].
pub fn is_child() -> bool {
    std::env::var_os("SERIALTWIN_CHILD").is_some()
}

/// The number of open descriptors of this process, not counting the process-wide inotify
/// instance serialtwin creates with its first port (it lives as long as the process).
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| {
            std::fs::read_link(e.path()).is_ok_and(|t| t.to_string_lossy() != "anon_inode:inotify")
        })
        .count()
}
