//! Debian packages a test needs (a real client such as `mbpoll`), installed by the tests
//! themselves when missing, so that the README's test command passes on a fresh machine.
//!
//! Every test goes through [`ensure`]: parallel `apt-get` runs collide on the dpkg lock, so one
//! file lock under `target/` serialises them, across test threads and test binaries.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Safety net for one `apt-get` run (never an assertion about speed): a slow mirror is fine.
const APT_PATIENCE: Duration = Duration::from_mins(10);

/// The path of `binary`, installing Debian's `package` first if `binary` is not on `PATH`.
///
/// Runs `apt-get install -y --no-install-recommends <package>` (after one `apt-get update`
/// per workspace if apt does not know the package) as root, or through `sudo -n` otherwise.
/// Safe to call from parallel tests and test binaries.
///
/// # Panics
/// If it cannot be installed, with a message saying what to install by hand.
pub fn ensure(package: &str, binary: &str) -> PathBuf {
    if let Some(path) = on_path(binary) {
        return path;
    }
    let target = super::workspace().join("target");
    std::fs::create_dir_all(&target).unwrap();
    let lock = File::create(target.join("apt.lock")).unwrap();
    lock.lock().unwrap();
    // Another test may have installed it while this one waited.
    if let Some(path) = on_path(binary) {
        return path;
    }
    let by_hand = format!(
        "`{binary}` is not on PATH and could not be installed: \
         run `sudo apt-get install {package}` (Debian/Ubuntu) and test again"
    );
    let Some(prefix) = privilege() else {
        panic!("{by_hand} (not root, and `sudo -n` asks for a password)");
    };
    let stamp = target.join("apt.updated");
    if !known(package) && !stamp.exists() {
        apt(&prefix, &["update"], &by_hand);
        std::fs::write(&stamp, "").unwrap();
    }
    apt(
        &prefix,
        &["install", "-y", "--no-install-recommends", package],
        &by_hand,
    );
    lock.unlock().unwrap();
    on_path(binary).unwrap_or_else(|| panic!("{by_hand} (installed, still not on PATH)"))
}

/// `binary` in a directory of `PATH`, if there.
fn on_path(binary: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(binary))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// What to put before `apt-get`: nothing as root, `sudo -n` if that works without a password.
fn privilege() -> Option<Vec<&'static str>> {
    if nix::unistd::geteuid().is_root() {
        return Some(Vec::new());
    }
    let sudo = Command::new("sudo")
        .args(["-n", "true"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    sudo.is_ok_and(|s| s.success()).then(|| vec!["sudo", "-n"])
}

/// Whether apt's package lists know `package` (so no `apt-get update` is needed).
fn known(package: &str) -> bool {
    Command::new("apt-cache")
        .args(["show", "--no-all-versions", package])
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|out| out.status.success() && !out.stdout.is_empty())
}

/// Run `apt-get <args>` non-interactively (behind `prefix`), within [`APT_PATIENCE`].
fn apt(prefix: &[&str], args: &[&str], by_hand: &str) {
    // `env` passes the setting through `sudo` too.
    let line = [
        prefix,
        &["env", "DEBIAN_FRONTEND=noninteractive", "apt-get"],
        args,
    ]
    .concat();
    let mut cmd = Command::new(line[0]);
    cmd.args(&line[1..]);
    let out =
        within(&mut cmd, APT_PATIENCE).unwrap_or_else(|why| panic!("{by_hand}: {cmd:?} {why}"));
    assert!(
        out.status.success(),
        "{by_hand}: {cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Run `cmd` to its end with no input, or kill it after `patience`.
fn within(cmd: &mut Command, patience: Duration) -> Result<Output, String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("could not start: {e}"))?;
    // Drain the pipes meanwhile, so a chatty apt never blocks on a full one.
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let read = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            buf
        })
    };
    let (out_thread, err_thread) = (read(Box::new(stdout)), read(Box::new(stderr)));
    let deadline = Instant::now() + patience;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("did not finish within {patience:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Ok(Output {
        status,
        stdout: out_thread.join().unwrap(),
        stderr: err_thread.join().unwrap(),
    })
}

/// Install Debian's `package` unless `probe` (a file it installs) exists: for a package with no
/// binary to look for on `PATH`, such as `python3-gensio`, a module for Debian's
/// `/usr/bin/python3`. The same lock and steps as [`ensure`].
///
/// # Panics
/// If it cannot be installed, with a message saying what to install by hand.
pub fn ensure_installed(package: &str, probe: &Path) {
    if probe.exists() {
        return;
    }
    let target = super::workspace().join("target");
    std::fs::create_dir_all(&target).unwrap();
    let lock = File::create(target.join("apt.lock")).unwrap();
    lock.lock().unwrap();
    // Another test may have installed it while this one waited.
    if probe.exists() {
        return;
    }
    let by_hand = format!(
        "{} is missing and could not be installed: run `sudo apt-get install {package}` \
         (Debian/Ubuntu) and test again",
        probe.display()
    );
    let Some(prefix) = privilege() else {
        panic!("{by_hand} (not root, and `sudo -n` asks for a password)");
    };
    let stamp = target.join("apt.updated");
    if !known(package) && !stamp.exists() {
        apt(&prefix, &["update"], &by_hand);
        std::fs::write(&stamp, "").unwrap();
    }
    apt(
        &prefix,
        &["install", "-y", "--no-install-recommends", package],
        &by_hand,
    );
    lock.unlock().unwrap();
    assert!(probe.exists(), "{by_hand} (installed, still missing)");
}
