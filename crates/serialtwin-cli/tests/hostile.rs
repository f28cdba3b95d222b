//! Other local users: directories, links, lock files and control sockets they planted or can
//! reach must never be trusted, deleted or written into.
//!
//! The attacker is a child process running as uid/gid 4242 (no account needed), so these tests
//! need root; they print why and pass without it. Every assertion is on serialtwin's own refusal
//! (or on what survived), never on an errno, so they hold whatever `fs.protected_symlinks` says.

mod common;

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{PATIENCE, bin, work_dir};

/// The attacker's uid and gid.
const MALLORY: u32 = 4242;

fn skip_unless_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return false;
    }
    println!("{test}: skipped, needs root to act as another uid (4242)");
    true
}

/// Run `sh -c script` as the attacker, in `dir`.
fn as_mallory(dir: &Path, script: &str) {
    let status = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .uid(MALLORY)
        .gid(MALLORY)
        .status()
        .unwrap();
    assert!(status.success(), "attacker script failed: {script}");
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

/// A directory anyone may create in, sticky like `/tmp`.
fn shared_dir(dir: &Path) -> PathBuf {
    let shared = dir.join("shared");
    std::fs::create_dir(&shared).unwrap();
    chmod(&shared, 0o1777);
    shared
}

/// A test's scratch directory, traversable by the attacker.
fn scratch(tag: &str) -> common::scratch::Scratch {
    let dir = work_dir(tag);
    chmod(&dir, 0o755);
    dir
}

/// A fleet of one PI30 port `x` linked at `link`.
fn config(dir: &Path, link: &Path) -> PathBuf {
    let path = dir.join("fleet.toml");
    std::fs::write(
        &path,
        format!(
            "[[device]]\nname = \"x\"\nmodel = \"pi30\"\nlink = \"{}\"\n",
            link.display()
        ),
    )
    .unwrap();
    chmod(&path, 0o644);
    path
}

/// How to start a `serialtwin` process: arguments, environment, user.
struct Invocation<'a> {
    args: Vec<&'a str>,
    env: Vec<(&'a str, Option<&'a Path>)>,
    uid: Option<u32>,
    cwd: &'a Path,
}

impl<'a> Invocation<'a> {
    fn new(cwd: &'a Path, args: &[&'a str]) -> Self {
        Self {
            args: args.to_vec(),
            env: Vec::new(),
            uid: None,
            cwd,
        }
    }

    fn env(mut self, key: &'a str, value: Option<&'a Path>) -> Self {
        self.env.push((key, value));
        self
    }

    fn by_mallory(mut self) -> Self {
        self.uid = Some(MALLORY);
        self
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(bin());
        cmd.args(&self.args).current_dir(self.cwd);
        for (key, value) in &self.env {
            match value {
                Some(v) => cmd.env(key, v),
                None => cmd.env_remove(key),
            };
        }
        if let Some(uid) = self.uid {
            cmd.uid(uid).gid(uid);
        }
        cmd
    }

    /// Run to the end (with a safety net).
    fn output(&self) -> (bool, String, String) {
        let Output {
            status,
            stdout,
            stderr,
        } = common::output_within(&mut self.command());
        (
            status.success(),
            String::from_utf8_lossy(&stdout).into_owned(),
            String::from_utf8_lossy(&stderr).into_owned(),
        )
    }

    /// Start `run --json ...` and wait for readiness; killed when dropped.
    fn start(&self, stderr_path: &Path) -> Server {
        let stderr = File::create(stderr_path).unwrap();
        let mut child = self
            .command()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
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
        let server = Server {
            child,
            stderr_path: stderr_path.to_owned(),
        };
        loop {
            match rx.recv_timeout(PATIENCE) {
                Ok(line) if line.contains("\"ready\"") => return server,
                Ok(_) => {}
                Err(e) => panic!("no readiness ({e}); stderr:\n{}", server.stderr()),
            }
        }
    }
}

struct Server {
    child: Child,
    stderr_path: PathBuf,
}

impl Server {
    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run_args<'a>(config: &'a Path, control: &'a Path) -> Vec<&'a str> {
    vec![
        "run",
        "--json",
        config.to_str().unwrap(),
        "--control",
        control.to_str().unwrap(),
    ]
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn a_control_path_naming_a_regular_file_is_refused_and_the_file_survives() {
    if skip_unless_root("regular file") {
        return;
    }
    let dir = scratch("notes");
    let fleet = config(&dir, &dir.join("links/ttyUSB0"));
    std::fs::write(dir.join("notes.txt"), "precious").unwrap();
    let private = dir.join("private");
    std::fs::create_dir(&private).unwrap();
    chmod(&private, 0o700);
    std::fs::write(private.join("notes.txt"), "precious").unwrap();

    // In a private directory of ours: refused for what the file is.
    let control = private.join("notes.txt");
    let (ok, _, stderr) = Invocation::new(&dir, &run_args(&fleet, &control)).output();
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains("a regular file, not a control socket of ours; refusing"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&control).unwrap(), "precious");

    // `--control notes.txt` in a directory open to others: refused for the directory.
    let (ok, _, stderr) = Invocation::new(
        &dir,
        &[
            "run",
            "--json",
            fleet.to_str().unwrap(),
            "--control",
            "notes.txt",
        ],
    )
    .output();
    assert!(!ok, "{stderr}");
    assert!(stderr.contains("must be 0700"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(dir.join("notes.txt")).unwrap(),
        "precious"
    );
}

#[test]
fn a_control_path_that_is_a_symlink_or_another_users_socket_is_left_alone() {
    if skip_unless_root("symlink or foreign socket") {
        return;
    }
    let dir = scratch("foreignsock");
    let fleet = config(&dir, &dir.join("links/ttyUSB0"));
    let private = dir.join("private");
    std::fs::create_dir(&private).unwrap();
    chmod(&private, 0o700);

    let control = private.join("control.sock");
    std::fs::write(dir.join("victim"), "keep").unwrap();
    std::os::unix::fs::symlink(dir.join("victim"), &control).unwrap();
    let (ok, _, stderr) = Invocation::new(&dir, &run_args(&fleet, &control)).output();
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains("is a symlink, not a control socket of ours"),
        "{stderr}"
    );
    assert!(std::fs::symlink_metadata(&control).unwrap().is_symlink());
    assert_eq!(std::fs::read_to_string(dir.join("victim")).unwrap(), "keep");

    std::fs::remove_file(&control).unwrap();
    drop(std::os::unix::net::UnixListener::bind(&control).unwrap());
    std::os::unix::fs::lchown(&control, Some(MALLORY), Some(MALLORY)).unwrap();
    let (ok, _, stderr) = Invocation::new(&dir, &run_args(&fleet, &control)).output();
    assert!(!ok, "{stderr}");
    assert!(stderr.contains("a socket owned by uid 4242"), "{stderr}");
    assert!(std::fs::symlink_metadata(&control).is_ok(), "not removed");
}

#[test]
fn a_default_control_directory_of_another_user_is_not_used() {
    if skip_unless_root("default control dir") {
        return;
    }
    let dir = scratch("defaultctl");
    let fleet = config(&dir, &dir.join("links/ttyUSB0"));
    let tmp = shared_dir(&dir);
    as_mallory(&tmp, "mkdir -m 0777 serialtwin-0");
    let server = Invocation::new(&dir, &["run", "--json", fleet.to_str().unwrap()])
        .env("TMPDIR", Some(&tmp))
        .env("XDG_RUNTIME_DIR", None)
        .start(&dir.join("stderr.log"));
    let stderr = server.stderr();
    assert!(stderr.contains("no control socket"), "{stderr}");
    assert!(stderr.contains("owned by uid 4242"), "{stderr}");
    assert!(
        entries(&tmp.join("serialtwin-0")).is_empty(),
        "nothing bound inside"
    );
    assert_eq!(
        mode(&tmp.join("serialtwin-0")),
        0o777,
        "and nothing changed"
    );
}

#[test]
fn an_xdg_runtime_dir_of_another_user_is_ignored_and_the_socket_is_private() {
    if skip_unless_root("xdg") {
        return;
    }
    let dir = scratch("xdg");
    let fleet = config(&dir, &dir.join("links/ttyUSB0"));
    let tmp = shared_dir(&dir);
    as_mallory(&tmp, "mkdir -m 0700 xdg");
    let xdg = tmp.join("xdg");
    let invocation = |args: &[&'static str]| {
        Invocation::new(&dir, args)
            .env("TMPDIR", Some(&tmp))
            .env("XDG_RUNTIME_DIR", Some(&xdg))
    };
    let mut run = invocation(&["run", "--json"]);
    run.args.push(fleet.to_str().unwrap());
    let server = run.start(&dir.join("stderr.log"));
    let stderr = server.stderr();
    assert!(stderr.contains("ignoring $XDG_RUNTIME_DIR"), "{stderr}");
    let socket = tmp.join("serialtwin-0/control.sock");
    assert_eq!(mode(&tmp.join("serialtwin-0")), 0o700, "{stderr}");
    assert_eq!(mode(&socket), 0o600, "{stderr}");
    assert!(
        entries(&xdg).is_empty(),
        "nothing made in mallory's directory"
    );
    let (ok, stdout, stderr) = invocation(&["ctl", "list"]).output();
    assert!(ok, "{stderr}");
    assert!(stdout.starts_with("x "), "{stdout}");
}

#[test]
fn a_link_directory_of_another_user_is_refused_and_left_untouched() {
    if skip_unless_root("link dir") {
        return;
    }
    let dir = scratch("linkdir");
    let shared = shared_dir(&dir);
    as_mallory(
        &shared,
        "mkdir -m 0777 links && ln -s /dev/null links/ttyUSB0 && : > links/.ttyUSB0.serialtwin.lock",
    );
    let links = shared.join("links");
    let fleet = config(&dir, &links.join("ttyUSB0"));
    let (ok, _, stderr) = Invocation::new(
        &dir,
        &["run", "--json", "--no-control", fleet.to_str().unwrap()],
    )
    .output();
    assert!(!ok, "{stderr}");
    assert!(stderr.contains("owned by uid 4242"), "{stderr}");
    assert!(
        stderr.contains("link = "),
        "says how to choose another: {stderr}"
    );
    assert_eq!(
        std::fs::read(links.join(".ttyUSB0.serialtwin.lock")).unwrap(),
        b"",
        "no pid written into mallory's lock file"
    );
    assert_eq!(
        std::fs::read_link(links.join("ttyUSB0")).unwrap(),
        Path::new("/dev/null")
    );
    assert_eq!(entries(&links), [".ttyUSB0.serialtwin.lock", "ttyUSB0"]);
}

#[test]
fn a_link_directory_that_is_a_symlink_is_refused() {
    if skip_unless_root("symlinked link dir") {
        return;
    }
    let dir = scratch("linksym");
    let shared = shared_dir(&dir);
    let target = dir.join("roots");
    std::fs::create_dir(&target).unwrap();
    as_mallory(&shared, &format!("ln -s {} links", target.display()));
    let fleet = config(&dir, &shared.join("links/ttyUSB0"));
    let (ok, _, stderr) = Invocation::new(
        &dir,
        &["run", "--json", "--no-control", fleet.to_str().unwrap()],
    )
    .output();
    assert!(!ok, "{stderr}");
    assert!(stderr.contains("is a symlink, not a directory"), "{stderr}");
    assert!(entries(&target).is_empty(), "nothing made in its target");
}

/// A private directory of the attacker's in `shared`, with their own `serialtwin run` serving
/// a control socket in it.
fn mallorys_server(dir: &Path, shared: &Path) -> (Server, PathBuf) {
    as_mallory(shared, "mkdir -m 0700 evil");
    let evil = shared.join("evil");
    let fleet = config(dir, &evil.join("ttyUSB0"));
    let control = evil.join("control.sock");
    let log = dir.join("mallory.log");
    let server = Invocation::new(shared, &run_args(&fleet, &control))
        .by_mallory()
        .start(&log);
    (server, control)
}

#[test]
fn ctl_refuses_a_directory_or_a_server_of_another_user() {
    if skip_unless_root("ctl peer") {
        return;
    }
    let dir = scratch("ctlpeer");
    let shared = shared_dir(&dir);
    let (_server, control) = mallorys_server(&dir, &shared);

    let ctl = |socket: &Path| {
        Invocation::new(&dir, &["ctl", "--socket", socket.to_str().unwrap(), "list"]).output()
    };
    let (ok, stdout, stderr) = ctl(&control);
    assert!(!ok, "{stdout}");
    assert!(stderr.contains("owned by uid 4242"), "{stderr}");

    // The same server's socket moved into a private directory of ours: the directory is
    // fine, the process answering is not.
    let mine = dir.join("mine");
    std::fs::create_dir(&mine).unwrap();
    chmod(&mine, 0o700);
    std::fs::rename(&control, mine.join("control.sock")).unwrap();
    let (ok, stdout, stderr) = ctl(&mine.join("control.sock"));
    assert!(!ok, "{stdout}");
    assert!(
        stderr.contains("is served by uid 4242, neither you nor root"),
        "{stderr}"
    );
}

#[test]
fn the_server_refuses_a_client_of_another_user() {
    if skip_unless_root("server peer") {
        return;
    }
    let dir = scratch("srvpeer");
    let shared = shared_dir(&dir);
    let fleet = config(&dir, &dir.join("links/ttyUSB0"));
    let control = dir.join("ctl/control.sock");
    let _server = Invocation::new(&dir, &run_args(&fleet, &control)).start(&dir.join("s.log"));
    // A 0700 directory keeps others out anyway; hand the socket to mallory to test the peer
    // check itself.
    as_mallory(&shared, "mkdir -m 0700 evil");
    let moved = shared.join("evil/control.sock");
    std::fs::rename(&control, &moved).unwrap();
    chmod(&moved, 0o666);
    let (ok, stdout, stderr) = Invocation::new(
        &shared,
        &["ctl", "--socket", moved.to_str().unwrap(), "list"],
    )
    .by_mallory()
    .output();
    assert!(!ok, "{stdout}");
    assert!(
        stderr.contains("uid 4242 may not control this instance"),
        "{stderr}"
    );
}

/// A private directory of ours with a fake server in it that answers each connection with
/// `reply` (or never, for `None`), on a thread that lives as long as the test.
fn fake_server(dir: &Path, reply: Option<&'static [u8]>) -> PathBuf {
    let mine = dir.join("mine");
    std::fs::create_dir(&mine).unwrap();
    chmod(&mine, 0o700);
    let socket = mine.join("control.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            if let Some(reply) = reply {
                let mut line = Vec::new();
                let _ = BufReader::new(&stream).read_until(b'\n', &mut line);
                let _ = stream.write_all(reply);
            } else {
                held.push(stream);
            }
        }
    });
    socket
}

#[test]
fn ctl_escapes_control_characters_in_replies() {
    let dir = scratch("escape");
    let socket = fake_server(
        &dir,
        Some(b"ok\nx\x1b[2J\x1b]0;owned\x07 /dev/pts/1 -\nz\x9b -\n"),
    );
    let (ok, stdout, stderr) =
        Invocation::new(&dir, &["ctl", "--socket", socket.to_str().unwrap(), "list"]).output();
    assert!(ok, "{stderr}");
    assert!(
        !stdout.contains('\x1b') && !stdout.contains('\x07'),
        "{stdout:?}"
    );
    assert!(
        stdout.contains("x\\x1b[2J\\x1b]0;owned\\x07 /dev/pts/1 -"),
        "{stdout:?}"
    );
}

#[test]
fn ctl_gives_up_after_its_timeout() {
    let dir = scratch("timeout");
    let socket = fake_server(&dir, None);
    let (ok, _, stderr) = Invocation::new(
        &dir,
        &[
            "ctl",
            "--timeout",
            "1s",
            "--socket",
            socket.to_str().unwrap(),
            "list",
        ],
    )
    .output();
    assert!(!ok);
    assert!(stderr.contains("timed out"), "{stderr}");
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

#[test]
fn abandoned_control_connections_leave_no_descriptors_behind() {
    let dir = scratch("abandon");
    let fleet = config(&dir, &dir.join("links/ttyUSB0"));
    let control = dir.join("ctl/control.sock");
    let server = Invocation::new(&dir, &run_args(&fleet, &control)).start(&dir.join("s.log"));
    let ctl = |args: &[&str]| {
        let mut all = vec!["ctl", "--socket", control.to_str().unwrap()];
        all.extend(args);
        Invocation::new(&dir, &all).output()
    };
    // Unplugged, the port cannot take a `set`: each one below waits for as long as it is out.
    let (ok, _, stderr) = ctl(&["unplug", "x", "1h"]);
    assert!(ok, "{stderr}");
    let before = open_fds(server.pid());
    for _ in 0..200 {
        let mut stream = std::os::unix::net::UnixStream::connect(&control).unwrap();
        stream.write_all(b"set x grid off\n").unwrap();
    }
    // Connections are accepted in order: once this one is answered, all 200 were accepted.
    let (ok, stdout, stderr) = ctl(&["list"]);
    assert!(ok && stdout.contains("unplugged"), "{stdout}{stderr}");
    let deadline = Instant::now() + PATIENCE;
    let mut now = open_fds(server.pid());
    while now > before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        now = open_fds(server.pid());
    }
    assert!(
        now <= before,
        "{now} descriptors open, {before} before 200 abandoned requests"
    );
}
