//! The Python package (`python/`, docs/python.md): its wheel built once with a pinned maturin
//! from a pinned venv under `target/`, installed (never editable) into a fresh venv under
//! `target/`, and its suite run from a copy outside the repository with `PATH=/usr/bin:/bin`
//! and no cargo — plainly, then with pytest-xdist (`-n 2`) — while a `serialtwin run` holds
//! the default paths. Afterwards no process, link or socket of the suite is left.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::python;

/// Safety net for one pytest run (the real clients, mypy): never an assertion about speed.
const SUITE_PATIENCE: Duration = Duration::from_mins(15);

/// Where cargo builds: the directory above this binary's profile directory (`target/`, or
/// `$CARGO_TARGET_DIR`).
fn cargo_target_dir() -> PathBuf {
    Path::new(common::bin())
        .parent()
        .and_then(Path::parent)
        .expect("the binary lies in <target>/<profile>/")
        .to_owned()
}

/// Build the wheel into `target/wheel/dist`: maturin runs a cargo of its own, which cannot
/// share the target directory `cargo test` holds locked, so it builds in `target/wheel` (a
/// whole build the first time; the dev profile without debug info keeps it cheap).
fn build_wheel(root: &Path) -> PathBuf {
    let build = python::venv_of("python/build-requirements.txt", "pybuild");
    let wheel_target = cargo_target_dir().join("wheel");
    let dist = wheel_target.join("dist");
    let _ = std::fs::remove_dir_all(&dist);
    let mut maturin = Command::new(build.join("bin/maturin"));
    maturin
        .current_dir(root.join("python"))
        .args(["build", "--profile", "dev", "--locked", "--strip"])
        // The platform tag of this machine: the wheel is for here, not for PyPI.
        .args(["--compatibility", "linux", "--out"])
        .arg(&dist);
    // The outer cargo's variables describe the test, not this build.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_") && key != "CARGO_HOME" {
            maturin.env_remove(&*key);
        }
    }
    maturin
        .env("CARGO_TARGET_DIR", &wheel_target)
        .env("CARGO_PROFILE_DEV_DEBUG", "0")
        .env("CARGO_INCREMENTAL", "0");
    let started = Instant::now();
    python::run(&mut maturin);
    eprintln!("wheel built in {:.1?}", started.elapsed());
    let wheels: Vec<PathBuf> = std::fs::read_dir(&dist)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "whl"))
        .collect();
    assert_eq!(wheels.len(), 1, "one wheel: {wheels:?}");
    // Its RECORD lists the binary among its scripts.
    let record = python::run(
        Command::new(build.join("bin/python"))
            .args([
                "-c",
                "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); \
                 print(z.read(next(n for n in z.namelist() if n.endswith('.dist-info/RECORD'))).decode())",
            ])
            .arg(&wheels[0]),
    );
    let record = String::from_utf8(record.stdout).unwrap();
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        record
            .lines()
            .any(|l| l.starts_with(&format!("serialtwin-{version}.data/scripts/serialtwin,"))),
        "RECORD lists no scripts/serialtwin:\n{record}"
    );
    wheels[0].clone()
}

/// A directory removed when dropped.
struct Removed(PathBuf);

impl Drop for Removed {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Copy the files of `from` (one level, no caches) into a new `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
        }
    }
}

/// The processes whose command line mentions `needle`, but `except`.
fn processes_mentioning(needle: &str, except: u32) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == except || pid == std::process::id() {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) {
            found.push(format!("{pid}: {cmdline}"));
        }
    }
    found
}

/// Every symlink and socket under `dir` (recursively).
fn links_and_sockets(dir: &Path) -> Vec<PathBuf> {
    use std::os::unix::fs::FileTypeExt as _;
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            found.extend(links_and_sockets(&path));
        } else if kind.is_symlink() || kind.is_socket() {
            found.push(path);
        }
    }
    found
}

#[test]
fn the_python_package_passes_its_suite_plainly_and_under_xdist() {
    let root = common::workspace();
    let wheel = build_wheel(&root);

    // A fresh venv of its own, the wheel and the suite's pinned clients in it.
    let venv = Removed(
        root.join("target")
            .join(format!("pywheel-{}", std::process::id())),
    );
    let _ = std::fs::remove_dir_all(&venv.0);
    python::run(Command::new("python3").args(["-m", "venv"]).arg(&venv.0));
    let started = Instant::now();
    python::run(
        Command::new(venv.0.join("bin/python"))
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .arg(&wheel)
            .arg("-r")
            .arg(root.join("python/tests/requirements.txt")),
    );
    eprintln!("venv filled in {:.1?}", started.elapsed());

    // The suite, copied outside the repository: no source of the package is in reach. (Its
    // directory names hold no `test`: mppsolar reads meaning into paths.)
    let scratch = common::work_dir("pysuite");
    copy_dir(&root.join("python/tests"), &scratch.join("suite"));
    copy_dir(&root.join("python/examples"), &scratch.join("examples"));
    let tmp = scratch.join("tmp");
    std::fs::create_dir(&tmp).unwrap();

    // A user's `serialtwin run` holding the default link and control socket (of this TMPDIR),
    // as CI's main job holds /tmp's.
    let holder = common::start(&tmp, &[]);
    let holder_links = holder.links();
    assert!(holder_links[0].starts_with(&tmp), "{holder_links:?}");
    // Its link and control socket: all the suite may find there besides its own.
    let holders = links_and_sockets(&tmp);
    assert_eq!(holders.len(), 2, "{holders:?}");

    for extra in [&[][..], &["-n", "2"][..]] {
        let started = Instant::now();
        let mut pytest = Command::new(venv.0.join("bin/python"));
        pytest
            .args(["-m", "pytest", "-p", "no:cacheprovider", "-q", "-rfE"])
            .args(extra)
            // pytest's own temporary files (with their `current` symlinks) beside, not in,
            // the TMPDIR whose links and sockets are checked.
            .arg("--basetemp")
            .arg(scratch.join("pytest-files"))
            .args(["suite", "examples"])
            .current_dir(&*scratch)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", &*scratch)
            .env("TMPDIR", &tmp)
            .env("LANG", "C.UTF-8")
            .stderr(std::process::Stdio::piped());
        let out = common::output_within_for(&mut pytest, SUITE_PATIENCE);
        let stdout = String::from_utf8_lossy(&out.stdout);
        eprintln!(
            "pytest {extra:?}: {:.1?}\n{}",
            started.elapsed(),
            stdout.lines().last().unwrap_or_default()
        );
        assert!(
            out.status.success(),
            "pytest {extra:?} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains(" passed"), "{stdout}");
        assert!(
            !stdout.contains("skipped"),
            "nothing may be skipped:\n{stdout}"
        );
        // Nothing of the suite is left running, linked or listening.
        let tmp_text = tmp.to_str().unwrap();
        assert_eq!(
            processes_mentioning(tmp_text, holder.pid()),
            Vec::<String>::new()
        );
        let mut left = links_and_sockets(&tmp);
        left.retain(|p| !holders.contains(p));
        assert_eq!(left, Vec::<PathBuf>::new(), "links or sockets left");
    }

    // The user's run was never disturbed: still serving its link, and stops cleanly.
    for link in &holder_links {
        assert!(std::fs::symlink_metadata(link).is_ok());
    }
    let (status, _) = holder.stop_with(nix::sys::signal::Signal::SIGINT);
    assert!(status.success());
    let fleets: Vec<_> = std::fs::read_dir(&tmp)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("serialtwin"))
        .collect();
    assert_eq!(fleets, Vec::<String>::new(), "fleet directories left");
}
