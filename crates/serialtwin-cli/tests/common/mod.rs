//! Helpers for running the `serialtwin` binary the way a user does.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};

#[path = "../../../../tests/common/bare.rs"]
pub mod bare;
pub mod debian;
#[path = "../../../../tests/common/python.rs"]
pub mod python;
#[path = "../../../../tests/common/scratch.rs"]
pub mod scratch;
use nix::unistd::Pid;
use serde_json::Value;

/// Safety net for every wait (never an assertion about speed).
pub const PATIENCE: Duration = Duration::from_secs(30);

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_serialtwin")
}

/// A fresh directory for one test's config and links (removed when it is done). Its path
/// avoids every substring mppsolar reads as something other than a serial port (`test`,
/// `esp`, `:`...).
pub fn work_dir(tag: &str) -> scratch::Scratch {
    scratch::scratch("serialtwin-cli", tag)
}

/// Write `text` as `dir/name` and return its path.
pub fn write_config(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Every entry of `dir` (recursively) except the config files, for "nothing left behind".
pub fn leftovers(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            found.extend(leftovers(&path));
        } else if path
            .extension()
            .is_none_or(|e| e != "toml" && e != "log" && e != "py")
        {
            found.push(path);
        }
    }
    found
}

/// A `serialtwin run` in the background, killed if the test ends early.
pub struct Running {
    child: Child,
    /// The `--json` port lines.
    pub ports: Vec<Value>,
    /// Where its stderr goes.
    pub stderr_path: PathBuf,
    /// Its stdout lines after readiness.
    rest: mpsc::Receiver<String>,
}

/// Start `serialtwin run --json <args>` in `dir` and wait for its readiness lines.
///
/// # Panics
/// If it exits or takes too long before `{"ready": N}`.
pub fn start(dir: &Path, args: &[&str]) -> Running {
    start_with_env(dir, args, &[])
}

/// [`start`] on `config`, with the control socket at `<dir>/run/control.sock`; returns the
/// socket's path too, for [`ctl`].
///
/// # Panics
/// As [`start`].
pub fn start_config(dir: &Path, config: &Path) -> (Running, PathBuf) {
    let socket = dir.join("run/control.sock");
    let run = start(
        dir,
        &[
            config.to_str().unwrap(),
            "--control",
            socket.to_str().unwrap(),
        ],
    );
    (run, socket)
}

/// [`start`], with `env` set for the child.
pub fn start_with_env(dir: &Path, args: &[&str], env: &[(&str, &Path)]) -> Running {
    static N: AtomicU32 = AtomicU32::new(0);
    let stderr_path = dir.join(format!("stderr-{}.log", N.fetch_add(1, Ordering::Relaxed)));
    let mut child = Command::new(bin())
        .arg("run")
        .arg("--json")
        .args(args)
        // The default control socket (and default link) in the test's own directory, never a
        // user's: `env` may say otherwise.
        .env("TMPDIR", dir)
        .env("XDG_RUNTIME_DIR", "")
        .envs(env.iter().copied())
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    let mut running = Running {
        child,
        ports: Vec::new(),
        stderr_path,
        rest: rx,
    };
    loop {
        let line = match running.rest.recv_timeout(PATIENCE) {
            Ok(line) => line,
            Err(e) => panic!("no readiness ({e}); stderr:\n{}", running.stderr()),
        };
        let value: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line:?}"));
        if let Some(n) = value.get("ready") {
            assert_eq!(n.as_u64(), Some(running.ports.len() as u64), "ready count");
            break;
        }
        running.ports.push(value);
    }
    running
}

impl Running {
    /// The links of all ports.
    pub fn links(&self) -> Vec<PathBuf> {
        self.ports
            .iter()
            .map(|p| PathBuf::from(p["link"].as_str().expect("port has a link")))
            .collect()
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Send `signal`.
    pub fn signal(&self, signal: Signal) {
        let pid = Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        kill(pid, signal).unwrap();
    }

    /// Send `signal`, wait for the exit status, and return it with whatever was printed on
    /// stdout after readiness (which should be nothing).
    pub fn stop_with(mut self, signal: Signal) -> (ExitStatus, Vec<String>) {
        self.signal(signal);
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, self.rest.iter().collect());
            }
            assert!(
                Instant::now() < deadline,
                "did not stop; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Run `serialtwin <args>` to its end (in `dir`), with a time limit.
pub fn run_to_end(dir: &Path, args: &[&str]) -> Output {
    output_within(
        Command::new(bin())
            .args(args)
            .current_dir(dir)
            // Defaults (control socket, default link) in the test's own directory.
            .env("TMPDIR", dir)
            .env("XDG_RUNTIME_DIR", ""),
    )
}

/// Run `cmd` to its end with no input, collecting its output; killed (and the test failed)
/// past the safety net, so a command that hangs fails the test instead of hanging it.
pub fn output_within(cmd: &mut Command) -> Output {
    output_within_for(cmd.stderr(Stdio::piped()), PATIENCE)
}

/// [`output_within`] with a safety net of `patience` (a Python client's whole story), and
/// stderr wherever `cmd` sends it. Output is read while the command runs, so one that prints a
/// lot never blocks on a full pipe.
pub fn output_within_for(cmd: &mut Command, patience: Duration) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = Pid::from_raw(i32::try_from(child.id()).unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    if let Ok(out) = rx.recv_timeout(patience) {
        return out.unwrap();
    }
    let _ = kill(pid, Signal::SIGKILL);
    let out = rx.recv().unwrap().unwrap();
    panic!(
        "{cmd:?} did not finish within {patience:?}:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The pinned Python venv under `target/` with the real clients (pyserial, mppsolar), shared
/// with the root package's tests.
pub fn venv() -> PathBuf {
    python::venv()
}

/// Run a Python script with the venv's interpreter; its stdout.
pub fn python(script: &str, args: &[&str]) -> String {
    let out = python::run(
        Command::new(venv().join("bin/python"))
            .arg("-c")
            .arg(script)
            .args(args),
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Open `path` with tokio-serial at `baud`. tokio-serial takes an exclusive `flock` on the
/// port, and the one a stream dropped a moment ago may not be released yet: such an open is
/// tried again (within `PATIENCE`).
pub fn open_at(path: &Path, baud: u32) -> tokio_serial::SerialStream {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        match tokio_serial::SerialPortBuilderExt::open_native_async(tokio_serial::new(
            path.to_str().unwrap(),
            baud,
        )) {
            Ok(stream) => return stream,
            Err(e)
                if e.to_string().contains("exclusive lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => panic!("open {}: {e}", path.display()),
        }
    }
}

/// Write `request`, read up to and including `end`.
pub async fn ask<S: tokio::io::AsyncReadExt + tokio::io::AsyncWriteExt + Unpin>(
    s: &mut S,
    request: &[u8],
    end: u8,
) -> Vec<u8> {
    s.write_all(request).await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(PATIENCE, async {
        let mut b = [0u8; 1];
        while reply.last() != Some(&end) {
            s.read_exact(&mut b).await.unwrap();
            reply.push(b[0]);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no reply; got {:?}", String::from_utf8_lossy(&reply)));
    reply
}

/// `serialtwin ctl --socket <socket> <args>`: whether it succeeded, and what it printed
/// (stdout, then stderr).
pub fn ctl(socket: &Path, args: &[&str]) -> (bool, String) {
    let out = output_within(
        Command::new(bin())
            .arg("ctl")
            .arg("--socket")
            .arg(socket)
            .args(args),
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A Python check script's verdict: its last stdout line is a JSON list of
/// `{"name", "ok", "detail"}`, one per check. Asserts that there are `checks` of them and
/// that every one passed, listing each failure with the script's and serialtwin's stderr.
pub fn python_checks(out: &Output, what: &str, checks: usize, serialtwin_stderr: &str) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let results: Vec<Value> = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| {
            panic!(
                "no results from python on {what} ({e}):\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let failed: Vec<String> = results
        .iter()
        .filter(|r| r["ok"] != Value::Bool(true))
        .map(|r| format!("- {}: {}", r["name"], r["detail"]))
        .collect();
    assert!(
        failed.is_empty() && results.len() == checks,
        "{what}: {} checks of {checks}, failed:\n{}\npython stderr:\n{}\nserialtwin stderr:\n{}",
        results.len(),
        failed.join("\n"),
        String::from_utf8_lossy(&out.stderr),
        serialtwin_stderr
    );
}
