//! Pinned Python venvs under `target/` with the real clients (pyserial, mppsolar, pymodbus...),
//! created by the tests themselves the first time one needs them. Shared by every package's
//! tests (the CLI's include this file): one requirements file, one lock and one stamp per venv.

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
    venv_of("tests/python/requirements.txt", "pyenv")
}

/// A venv of its own under `target/<name>`, created and filled from `requirements` (a path
/// from the workspace root) if needed: for clients whose pins clash with the shared venv's
/// (sdm-modbus needs pymodbus 3.6, the shared venv has 3.16).
///
/// Safe to call from parallel tests and test binaries: a file lock per venv serialises
/// creation, and a stamp of the requirements it was made from says when to make it again.
pub fn venv_of(requirements: &str, name: &str) -> PathBuf {
    make_venv(None, requirements, name)
}

/// As [`venv_of`], for requirements that only build from source with older build tools than
/// pip would fetch (docker-compose 1.29.2 needs `PyYAML` 5, which has no wheel for Python 3.11
/// and whose build fails with Cython 3): `build` (a requirements file of pinned build tools)
/// goes in first, then `requirements` with `--no-build-isolation`, built with those tools.
/// Two steps because a requirements file cannot say `--no-build-isolation`.
pub fn venv_built(build: &str, requirements: &str, name: &str) -> PathBuf {
    make_venv(Some(build), requirements, name)
}

/// The venv `target/<name>`, made again when `build` or `requirements` changed.
fn make_venv(build: Option<&str>, requirements: &str, name: &str) -> PathBuf {
    let root = workspace();
    let read = |file: &Path| {
        std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
    };
    let requirements = root.join(requirements);
    let build = build.map(|b| root.join(b));
    let dir = root.join("target").join(name);
    std::fs::create_dir_all(root.join("target")).unwrap();
    let lock = File::create(root.join("target").join(format!("{name}.lock"))).unwrap();
    lock.lock().unwrap();
    let mut wanted = read(&requirements);
    if let Some(build) = &build {
        wanted = format!("{}{wanted}", read(build));
    }
    let stamp = dir.join("requirements.installed");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
        let _ = std::fs::remove_dir_all(&dir);
        run(Command::new("python3").args(["-m", "venv"]).arg(&dir));
        // `python -m pip`, not `bin/pip`: a venv copied from elsewhere keeps scripts whose
        // first line names the other place's interpreter.
        let pip = || {
            let mut cmd = Command::new(dir.join("bin/python"));
            cmd.args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ]);
            cmd
        };
        if let Some(build) = &build {
            run(pip().arg("-r").arg(build));
            run(pip()
                .arg("--no-build-isolation")
                .arg("-r")
                .arg(&requirements));
        } else {
            run(pip().arg("-r").arg(&requirements));
        }
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
