//! A pinned Python venv under `target/` with the real clients (pyserial, mppsolar), created by
//! the tests themselves the first time one needs it. Shared by every package's tests (the CLI's
//! include this file): one requirements file, one lock, one stamp.

use std::ffi::OsStr;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root: the nearest ancestor of this package holding the requirements file.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .find(|d| d.join("tests/python/requirements.txt").exists())
        .expect("workspace root with tests/python/requirements.txt")
        .to_owned()
}

/// The venv's directory, created and filled from `tests/python/requirements.txt` if needed.
///
/// Safe to call from parallel tests and test binaries: a file lock serialises creation.
pub fn venv() -> PathBuf {
    let root = workspace();
    let requirements = root.join("tests/python/requirements.txt");
    let dir = root.join("target/pyenv");
    std::fs::create_dir_all(root.join("target")).unwrap();
    let lock = File::create(root.join("target/pyenv.lock")).unwrap();
    lock.lock().unwrap();
    let wanted = std::fs::read_to_string(&requirements).unwrap();
    let stamp = dir.join("requirements.installed");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
        let _ = std::fs::remove_dir_all(&dir);
        run(Command::new("python3").args(["-m", "venv"]).arg(&dir));
        run(Command::new(dir.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(&requirements));
        std::fs::write(&stamp, wanted).unwrap();
    }
    lock.unlock().unwrap();
    dir
}

/// The venv's python interpreter.
pub fn python() -> PathBuf {
    venv().join("bin/python")
}

/// The venv's `mppsolar` command.
pub fn mppsolar() -> PathBuf {
    venv().join("bin/mppsolar")
}

/// Run `script` with the venv's interpreter and `args` as `sys.argv[1:]`; its stdout.
///
/// # Panics
/// If the script fails (with its output in the message).
pub fn run_script<A: AsRef<OsStr>>(script: &str, args: &[A]) -> String {
    let mut cmd = Command::new(python());
    cmd.arg("-c").arg(script).args(args);
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "python failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Run `cmd` to the end; its output, or a panic with everything it printed.
pub fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
