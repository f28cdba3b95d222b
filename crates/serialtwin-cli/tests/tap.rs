//! `serialtwin tap`, `replay` and `learn` end to end, with no hardware: an emulated PI30
//! inverter (`serialtwin run`) stands in for the real device, and mppsolar is the client.
#![allow(missing_docs)]

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use serialtwin_devices::pi30::CrcVariant;

mod common;

use common::{PATIENCE, bin, python, run_to_end, scratch};

/// The pinned venv's mppsolar (the venv the workspace tests share).
fn mppsolar() -> PathBuf {
    python::mppsolar()
}

/// `serialtwin tap` in front of `upstream`, PI30 framing, link and capture as given.
fn start_tap(
    dir: &Path,
    upstream: &Path,
    link: &Path,
    capture: &Path,
    extra: &[&str],
) -> Background {
    let mut args = vec![
        "tap",
        "--upstream",
        upstream.to_str().unwrap(),
        "--link",
        link.to_str().unwrap(),
        "--capture",
        capture.to_str().unwrap(),
        "--framing",
        "pi30",
    ];
    args.extend_from_slice(extra);
    Background::start(dir, "tap", &args)
}

/// A fresh directory whose path mppsolar cannot misread (removed when the test is done).
fn work_dir(tag: &str) -> scratch::Scratch {
    scratch::scratch("serialtwin", tag)
}

/// A `serialtwin` subcommand running in the background until stopped (killed if dropped).
struct Background {
    child: Option<Child>,
    ready: Vec<Value>,
    stderr: PathBuf,
}

impl Background {
    /// Start `serialtwin <args> --json` and wait for `{"ready": N}`.
    fn start(dir: &Path, tag: &str, args: &[&str]) -> Self {
        let stderr = dir.join(format!("{tag}.log"));
        let mut child = Command::new(bin())
            .args(args)
            .arg("--json")
            .current_dir(dir)
            // A `run`'s default control socket in the test's own directory, never a user's.
            .env("TMPDIR", dir)
            .env("XDG_RUNTIME_DIR", "")
            .stdout(Stdio::piped())
            .stderr(File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut ready = Vec::new();
        loop {
            let Ok(line) = rx.recv_timeout(PATIENCE) else {
                let _ = child.kill();
                panic!(
                    "{args:?} not ready:\n{}",
                    std::fs::read_to_string(&stderr).unwrap_or_default()
                );
            };
            let v: Value = serde_json::from_str(&line).unwrap();
            if v.get("ready").is_some() {
                break;
            }
            ready.push(v);
        }
        Self {
            child: Some(child),
            ready,
            stderr,
        }
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.as_ref().unwrap().id()).unwrap())
    }

    /// Send `signal` and wait for the exit; returns (success, stderr).
    fn stop(mut self, signal: Signal) -> (bool, String) {
        kill(self.pid(), signal).unwrap();
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "no exit after {signal:?}");
            std::thread::sleep(Duration::from_millis(20));
        };
        (
            status.success(),
            std::fs::read_to_string(&self.stderr).unwrap(),
        )
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// mppsolar's output for `command` on `port` (always `--porttype serial`).
fn ask(mppsolar: &Path, port: &Path, command: &str) -> String {
    let out: Output = Command::new(mppsolar)
        .arg("-p")
        .arg(port)
        .args(["--porttype", "serial", "-P", "PI30", "-c", command])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        !text
            .lines()
            .any(|l| l.trim_start().starts_with("error") || l.contains("validity_check")),
        "{command}: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// The capture's records of `type` (and direction), as `(dir, bytes)`.
fn frames(path: &Path) -> Vec<(String, Vec<u8>)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["type"] == "frame")
        .map(|v| {
            let hex = v["hex"].as_str().unwrap();
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            (v["dir"].as_str().unwrap().to_owned(), bytes)
        })
        .collect()
}

/// Queries and setters; QPIRI before and after POP02, QPIGS three times while the plant drifts.
const COMMANDS: &[&str] = &[
    "QPIGS", "QPIRI", "QMOD", "QPIWS", "POP02", "QPIRI", "PBCV44.0", "QPIGS", "QFLAG", "QPIGS",
];

fn inverter(dir: &Path) -> (Background, PathBuf) {
    let link = dir.join("dev/ttyUSB9");
    let config = dir.join("inverter.toml");
    std::fs::write(
        &config,
        format!(
            "[clock]\nspeed = 600.0\n\n[[device]]\nname = \"inverter\"\nmodel = \"pi30\"\nlink = \"{}\"\n",
            link.display()
        ),
    )
    .unwrap();
    let run = Background::start(
        dir,
        "inverter",
        &["run", config.to_str().unwrap(), "--trace"],
    );
    (run, link)
}

#[test]
#[expect(
    clippy::too_many_lines,
    reason = "one story: record, replay, learn, deviate, each step checking the last"
)]
fn tap_records_mppsolar_and_replay_and_learn_answer_byte_for_byte() {
    let mppsolar = mppsolar();
    let dir = work_dir("tap");
    let (inverter, upstream) = inverter(&dir);

    // 1. Tap in front of the inverter; mppsolar talks through the tap's link.
    let tap_link = dir.join("tap/ttyUSB0");
    let capture = dir.join("inverter.jsonl");
    let tap = start_tap(&dir, &upstream, &tap_link, &capture, &["--trace"]);
    assert_eq!(tap.ready[0]["link"], tap_link.to_str().unwrap());
    let through_tap: Vec<String> = COMMANDS
        .iter()
        .map(|c| ask(&mppsolar, &tap_link, c))
        .collect();
    let (ok, log) = tap.stop(Signal::SIGTERM);
    assert!(ok, "{log}");
    assert!(!tap_link.exists(), "the tap removes its link");
    assert!(log.contains("tap rx \"QPIGS"), "the live trace: {log}");
    drop(inverter);

    // The capture holds every request and a reply to each, and drifting QPIGS replies.
    let recorded = frames(&capture);
    let requests: Vec<String> = recorded
        .iter()
        .filter(|(d, _)| d == "rx")
        .map(|(_, b)| String::from_utf8_lossy(&b[..b.len() - 2]).into_owned())
        .collect();
    assert_eq!(requests, COMMANDS);
    let replies: Vec<&Vec<u8>> = recorded
        .iter()
        .filter(|(d, _)| d == "tx")
        .map(|(_, b)| b)
        .collect();
    assert_eq!(replies.len(), COMMANDS.len());
    assert_ne!(
        replies[1], replies[5],
        "QPIRI before and after POP02 differ"
    );
    assert_ne!(through_tap[1], through_tap[5]);
    assert_eq!(replies[4].as_slice(), b"(ACK9 \r");

    // 2. Replay, strictly in order, recording its own side: byte-identical replies.
    let replay_link = dir.join("replay/ttyUSB0");
    let replayed = dir.join("replayed.jsonl");
    let replay = Background::start(
        &dir,
        "replay",
        &[
            "replay",
            capture.to_str().unwrap(),
            "--link",
            replay_link.to_str().unwrap(),
            "--strict",
            "--capture-to",
            replayed.to_str().unwrap(),
        ],
    );
    let from_replay: Vec<String> = COMMANDS
        .iter()
        .map(|c| ask(&mppsolar, &replay_link, c))
        .collect();
    let (ok, log) = replay.stop(Signal::SIGTERM);
    assert!(ok, "strict replay without deviation exits 0: {log}");
    assert_eq!(from_replay, through_tap, "mppsolar sees the same answers");
    assert_eq!(frames(&replayed), recorded, "the same bytes both ways");

    // 2b. The same capture as a model in a fleet config, read from beside the config.
    let config = dir.join("replayed.toml");
    std::fs::write(
        &config,
        format!(
            "[[device]]\nname = \"recorded\"\nmodel = \"replay\"\nlink = \"{}\"\n\n\
             [device.replay]\ncapture = \"inverter.jsonl\"\nfallback = \"nak\"\n",
            replay_link.display()
        ),
    )
    .unwrap();
    let out = run_to_end(&dir, &["check", config.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let run = Background::start(&dir, "model", &["run", config.to_str().unwrap()]);
    assert_eq!(run.ready[0]["model"], "replay");
    let from_model: Vec<String> = COMMANDS[..2]
        .iter()
        .map(|c| ask(&mppsolar, &replay_link, c))
        .collect();
    let (ok, log) = run.stop(Signal::SIGTERM);
    assert!(ok, "{log}");
    assert_eq!(from_model, through_tap[..2]);

    // 3. Learn a scripted device and run it: mppsolar sees the same answers again.
    let learned = dir.join("learned.toml");
    let learned_link = dir.join("learned/ttyUSB0");
    let out = Command::new(bin())
        .args(["learn", capture.to_str().unwrap(), "-o"])
        .arg(&learned)
        .args(["--link", learned_link.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = std::fs::read_to_string(&learned).unwrap();
    assert!(text.contains("sequence = ["), "{text}");
    let run = Background::start(
        &dir,
        "learned",
        &["run", learned.to_str().unwrap(), "--trace=hex"],
    );
    let from_learned: Vec<String> = COMMANDS
        .iter()
        .map(|c| ask(&mppsolar, &learned_link, c))
        .collect();
    let (ok, log) = run.stop(Signal::SIGTERM);
    assert!(ok, "{log}");
    assert_eq!(from_learned, through_tap, "{text}");
    // Byte for byte: the hex trace of the learned device's replies is the recorded bytes.
    let hex_replies: Vec<Vec<u8>> = log
        .lines()
        .filter_map(|l| l.split_once(" learned tx ").map(|(_, h)| h))
        .map(|h| {
            h.split(' ')
                .map(|b| u8::from_str_radix(b, 16).unwrap())
                .collect()
        })
        .collect();
    assert_eq!(hex_replies.iter().collect::<Vec<_>>(), replies);

    // 4. A client that deviates from the recorded conversation fails a strict replay.
    let replay = Background::start(
        &dir,
        "strict",
        &[
            "replay",
            capture.to_str().unwrap(),
            "--link",
            replay_link.to_str().unwrap(),
            "--strict",
            "--fallback",
            "nak",
            "--trace",
        ],
    );
    ask(&mppsolar, &replay_link, "QPIGS");
    // The recording has QPIRI here: the deviation gets the fallback, (NAK.
    let out = Command::new(&mppsolar)
        .arg("-p")
        .arg(&replay_link)
        .args(["--porttype", "serial", "-P", "PI30", "-c", "QMOD"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("NAK"));
    let (ok, log) = replay.stop(Signal::SIGTERM);
    assert!(!ok, "strict replay with a deviation exits non-zero");
    assert!(
        log.contains("deviates at exchange 2") && log.contains("expected \"QPIRI"),
        "{log}"
    );
    assert!(log.contains("!! device error: strict replay"), "{log}");
    // Logged once when it happens (the summary at exit aside).
    let warned = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("deviates at exchange 2"))
        .count();
    assert_eq!(warned, 1, "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_killed_tap_leaves_a_capture_replay_accepts() {
    let mppsolar = mppsolar();
    let dir = work_dir("kill");
    let (inverter, upstream) = inverter(&dir);
    let tap_link = dir.join("tap/ttyUSB0");
    let capture = dir.join("killed.jsonl");
    let tap = start_tap(&dir, &upstream, &tap_link, &capture, &[]);
    let qpigs = ask(&mppsolar, &tap_link, "QPIGS");
    let qmod = ask(&mppsolar, &tap_link, "QMOD");
    // A client at 9600 baud, two stop bits: the upstream follows.
    let python = mppsolar.with_file_name("python");
    let status = Command::new(python)
        .args([
            "-c",
            "import serial, sys; s = serial.Serial(sys.argv[1], 9600, stopbits=2); s.close()",
        ])
        .arg(&tap_link)
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + PATIENCE;
    while !std::fs::read_to_string(&capture)
        .unwrap()
        .contains(r#""type":"settings","t""#)
    {
        assert!(Instant::now() < deadline, "no settings record");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (ok, _) = tap.stop(Signal::SIGKILL);
    assert!(!ok);
    let (_, inverter_log) = inverter.stop(Signal::SIGTERM);
    assert!(
        inverter_log.contains("inverter -- settings 9600 8N2"),
        "{inverter_log}"
    );
    let text = std::fs::read(&capture).unwrap();
    assert!(
        text.ends_with(b"\n"),
        "every record handed over was written whole"
    );
    assert!(
        String::from_utf8_lossy(&text)
            .contains(r#""baud":9600,"data_bits":8,"parity":"none","stop_bits":2"#)
    );
    assert_eq!(frames(&capture).len(), 4);

    // Also cut it in the middle of its last record, as a kill during a write would.
    let cut = dir.join("cut.jsonl");
    std::fs::write(&cut, &text[..text.len() - 10]).unwrap();
    let replay_link = dir.join("replay/ttyUSB0");
    for (file, warns) in [(&capture, false), (&cut, true)] {
        let replay = Background::start(
            &dir,
            "replay",
            &[
                "replay",
                file.to_str().unwrap(),
                "--link",
                replay_link.to_str().unwrap(),
            ],
        );
        assert_eq!(ask(&mppsolar, &replay_link, "QPIGS"), qpigs);
        if !warns {
            assert_eq!(ask(&mppsolar, &replay_link, "QMOD"), qmod);
        }
        let (ok, log) = replay.stop(Signal::SIGTERM);
        assert!(ok, "{log}");
        assert_eq!(
            log.contains("the last record is incomplete"),
            warns,
            "{log}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_tcp_upstream_is_tapped_byte_for_byte() {
    use std::io::{Read, Write};
    // The "device" is a serial server on TCP: it answers each CR-terminated line with
    // `OK:<line>` and a binary byte, as a Moxa-style serial-to-Ethernet box would pass it on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while stream.read(&mut byte).unwrap_or(0) == 1 {
            if byte[0] == b'\r' {
                let mut reply = b"OK:".to_vec();
                reply.extend_from_slice(&line);
                reply.extend_from_slice(b"\xff\r");
                stream.write_all(&reply).unwrap();
                line.clear();
            } else {
                line.push(byte[0]);
            }
        }
    });
    let dir = work_dir("tcp");
    let link = dir.join("tap/ttyUSB0");
    let capture = dir.join("tcp.jsonl");
    let tap = Background::start(
        &dir,
        "tap",
        &[
            "tap",
            "--upstream",
            &address,
            "--link",
            link.to_str().unwrap(),
            "--capture",
            capture.to_str().unwrap(),
            "--framing",
            "cr",
        ],
    );
    let mut client = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&link)
        .unwrap();
    let mut got = Vec::new();
    for request in [&b"PING\r"[..], b"\x00\x01\r"] {
        client.write_all(request).unwrap();
        let mut byte = [0u8; 1];
        loop {
            // Never block past the safety net.
            let mut fds = [nix::poll::PollFd::new(
                std::os::fd::AsFd::as_fd(&client),
                nix::poll::PollFlags::POLLIN,
            )];
            let ready = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(30_000u16)).unwrap();
            assert!(ready > 0, "no reply in time; got {got:?}");
            client.read_exact(&mut byte).unwrap();
            got.push(byte[0]);
            if byte[0] == b'\r' {
                break;
            }
        }
    }
    assert_eq!(got, b"OK:PING\xff\rOK:\x00\x01\xff\r");
    drop(client);
    let deadline = Instant::now() + PATIENCE;
    while frames(&capture).len() < 4 {
        assert!(Instant::now() < deadline, "frames not recorded");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (ok, log) = tap.stop(Signal::SIGTERM);
    assert!(ok, "{log}");
    assert_eq!(
        frames(&capture),
        [
            ("rx".to_owned(), b"PING".to_vec()),
            ("tx".to_owned(), b"OK:PING\xff\r".to_vec()),
            ("rx".to_owned(), b"\x00\x01".to_vec()),
            ("tx".to_owned(), b"OK:\x00\x01\xff\r".to_vec()),
        ]
    );
    server.join().unwrap();
}

/// A command that writes a file on request.
#[derive(Clone, Copy, Debug)]
enum Writes {
    /// `tap --capture FILE`.
    Tap,
    /// `replay CAPTURE --capture-to FILE`.
    Replay,
    /// `learn CAPTURE -o FILE`.
    Learn,
}

/// What the commands need besides the file: a capture to read, an upstream to tap.
struct Inputs {
    dir: PathBuf,
    capture: PathBuf,
    upstream: String,
}

impl Writes {
    /// The link a serving command makes.
    fn link(self, inputs: &Inputs) -> PathBuf {
        inputs.dir.join(format!("{self:?}/ttyUSB0"))
    }

    fn args(self, inputs: &Inputs, file: &Path, force: bool) -> Vec<String> {
        let link = self.link(inputs).to_str().unwrap().to_owned();
        let capture = inputs.capture.to_str().unwrap().to_owned();
        let file = file.to_str().unwrap().to_owned();
        let mut args: Vec<String> = match self {
            Self::Tap => vec![
                "tap".into(),
                "--upstream".into(),
                inputs.upstream.clone(),
                "--link".into(),
                link,
                "--capture".into(),
                file,
            ],
            Self::Replay => vec![
                "replay".into(),
                capture,
                "--link".into(),
                link,
                "--capture-to".into(),
                file,
            ],
            Self::Learn => vec!["learn".into(), capture, "-o".into(), file],
        };
        if force {
            args.push("--force".into());
        }
        args
    }

    /// How the written file starts.
    fn starts(self) -> &'static str {
        match self {
            Self::Tap | Self::Replay => r#"{"type":"header","format":"serialtwin-capture""#,
            Self::Learn => "# Learned by `serialtwin learn`",
        }
    }

    /// Run it to the point where the file is written, and stop it: its success and stderr.
    fn write(self, inputs: &Inputs, file: &Path, force: bool) -> (bool, String) {
        let args = self.args(inputs, file, force);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        if matches!(self, Self::Learn) {
            let out = run_to_end(&inputs.dir, &args);
            return (
                out.status.success(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            );
        }
        let serving = Background::start(&inputs.dir, &format!("{self:?}"), &args);
        serving.stop(Signal::SIGTERM)
    }

    /// Run it expecting a refusal: its stderr.
    fn refused(self, inputs: &Inputs, file: &Path, force: bool) -> String {
        let args = self.args(inputs, file, force);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run_to_end(&inputs.dir, &args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "{self:?} {args:?}: {stderr}");
        assert!(
            std::fs::symlink_metadata(self.link(inputs)).is_err(),
            "{self:?}: its link is gone"
        );
        stderr
    }
}

/// `tap --capture FILE`: nothing at FILE is written over unless forced (see `never_replaced`).
#[test]
fn tap_capture_replaces_nothing_unless_forced() {
    never_replaced(Writes::Tap);
}

/// `replay --capture-to FILE`: as `tap --capture`.
#[test]
fn replay_capture_to_replaces_nothing_unless_forced() {
    never_replaced(Writes::Replay);
}

/// `learn -o FILE`: as `tap --capture`; and `--name` must be a port name.
#[test]
fn learn_output_replaces_nothing_unless_forced() {
    let dir = never_replaced(Writes::Learn);
    // A port name `ctl` could not address is refused before the capture is read.
    let out = run_to_end(&dir, &["learn", "nowhere.jsonl", "--name", "inv 0"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(r#"port name "inv 0" contains whitespace"#),
        "{stderr}"
    );
}

/// A file written on request never replaces what is at its path: an existing file is kept (the
/// error says `--force`), a symlink is never followed (not even with `--force`), a FIFO never
/// opened; `--force` replaces a regular file; a new file is the owner's only. Returns the
/// scratch directory (removed when dropped).
fn never_replaced(writes: Writes) -> scratch::Scratch {
    let dir = work_dir("files");
    // A device nobody talks to: the tap connects and records nothing.
    let upstream = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let capture = dir.join("recorded.jsonl");
    std::fs::write(
        &capture,
        "{\"type\":\"header\",\"format\":\"serialtwin-capture\",\"version\":1,\
         \"started\":\"2026-06-21T12:00:00.000000Z\",\"framing\":\"cr\"}\n\
         {\"type\":\"frame\",\"t\":0.1,\"dir\":\"rx\",\"hex\":\"41\",\"text\":\"A\"}\n\
         {\"type\":\"frame\",\"t\":0.2,\"dir\":\"tx\",\"hex\":\"420d\",\"text\":\"B\\r\"}\n",
    )
    .unwrap();
    let inputs = Inputs {
        dir: dir.to_path_buf(),
        capture,
        upstream: upstream.local_addr().unwrap().to_string(),
    };
    let context = format!("{writes:?}");

    // An existing file: kept, and the error says how to replace it.
    let existing = dir.join("existing");
    std::fs::write(&existing, "precious").unwrap();
    let stderr = writes.refused(&inputs, &existing, false);
    assert!(
        stderr.contains(&format!(
            "error: {} already exists: pass --force to replace it",
            existing.display()
        )),
        "{context}: {stderr}"
    );
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "precious");

    // A symlink to a victim: refused, with or without --force; the victim is untouched.
    let victim = dir.join("victim");
    std::fs::write(&victim, "precious").unwrap();
    let link = dir.join("link");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    for force in [false, true] {
        let stderr = writes.refused(&inputs, &link, force);
        assert!(
            stderr.contains(&format!(
                "{} is a symbolic link, not a regular file",
                link.display()
            )),
            "{context} force={force}: {stderr}"
        );
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
    }

    // A FIFO (a reader could be waiting on it): refused at once, not even opened.
    let fifo = dir.join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let stderr = writes.refused(&inputs, &fifo, true);
    assert!(
        stderr.contains("is a FIFO, not a regular file"),
        "{context}: {stderr}"
    );

    // --force replaces a regular file.
    let (ok, stderr) = writes.write(&inputs, &existing, true);
    assert!(ok, "{context}: {stderr}");
    let text = std::fs::read_to_string(&existing).unwrap();
    assert!(text.starts_with(writes.starts()), "{context}: {text}");

    // A new file is the owner's only.
    let new = dir.join("new");
    let (ok, stderr) = writes.write(&inputs, &new, false);
    assert!(ok, "{context}: {stderr}");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&new).unwrap().permissions());
    assert_eq!(mode & 0o077, 0, "{context}: {mode:o}");
    dir
}

/// `payload` with its PI30 CRC under `variant`, and `\r` if `cr`: a frame as it goes on the
/// wire, or (without `\r`) as the framer hands a request over.
fn pi30_frame(payload: &[u8], variant: CrcVariant, cr: bool) -> Vec<u8> {
    let mut frame = payload.to_vec();
    frame.extend_from_slice(&variant.checksum(payload));
    if cr {
        frame.push(b'\r');
    }
    frame
}

/// A PI30 capture of `exchanges` (request frame, reply on the wire), 0.1 s apart.
fn write_pi30_capture(path: &Path, exchanges: &[(&[u8], &[u8])]) {
    use std::fmt::Write as _;
    let mut text = String::from(
        "{\"type\":\"header\",\"format\":\"serialtwin-capture\",\"version\":1,\
         \"started\":\"2026-06-21T12:00:00.000000Z\",\"framing\":\"pi30\"}\n",
    );
    for (i, (request, reply)) in exchanges.iter().enumerate() {
        // `t` in tenths of a second.
        for (t, dir, bytes) in [(2 * i + 1, "rx", request), (2 * i + 2, "tx", reply)] {
            let _ = write!(
                text,
                "{{\"type\":\"frame\",\"t\":{}.{},\"dir\":\"{dir}\",\"hex\":\"",
                t / 10,
                t % 10
            );
            for b in *bytes {
                let _ = write!(text, "{b:02x}");
            }
            text.push_str("\"}\n");
        }
    }
    std::fs::write(path, text).unwrap();
}

/// Open `path` with tokio-serial at 2400 8N1, as a Rust client would. tokio-serial takes an
/// exclusive `flock`, which a stream dropped a moment ago may still hold: tried again (within
/// `PATIENCE`).
fn open_serial(path: &Path) -> tokio_serial::SerialStream {
    use tokio_serial::SerialPortBuilderExt as _;
    let deadline = Instant::now() + PATIENCE;
    loop {
        match tokio_serial::new(path.to_str().unwrap(), 2400).open_native_async() {
            Ok(stream) => return stream,
            Err(e) if e.to_string().contains("exclusive lock") && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("open {}: {e}", path.display()),
        }
    }
}

/// Write `request`, read the reply up to its `\r` (within `PATIENCE`, a safety net).
async fn ask_serial(port: &mut tokio_serial::SerialStream, request: &[u8]) -> Vec<u8> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    port.write_all(request).await.unwrap();
    let mut reply = Vec::new();
    let read = tokio::time::timeout(PATIENCE, async {
        let mut b = [0u8; 1];
        while reply.last() != Some(&b'\r') {
            port.read_exact(&mut b).await.unwrap();
            reply.push(b[0]);
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "no reply to {:?}; got {:?}",
        String::from_utf8_lossy(request),
        String::from_utf8_lossy(&reply)
    );
    reply
}

/// `learn` from a PI30 capture, `run` the learned file, and a Rust client finds the recorded
/// replies as replay would: a request under the other CRC escape rule, one typed without a
/// CRC, one whose CRC fails; a command never recorded gets `(NAK` with its CRC, as a PI30
/// answers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learned_pi30_answers_like_replay_and_naks_what_it_never_saw() {
    use CrcVariant::{Mppsolar, Reference};
    let dir = work_dir("learned");
    let capture = dir.join("inverter.jsonl");
    // mppsolar's CRC on QED20250305 is 0x7201; the reference code's 0x7200.
    let qed = b"QED20250305";
    assert_ne!(Mppsolar.checksum(qed), Reference.checksum(qed));
    let (qpigs_1, qpigs_2, qed_reply) = (
        pi30_frame(b"(230.0 50.0 0100", Mppsolar, true),
        pi30_frame(b"(231.5 50.0 0200", Mppsolar, true),
        pi30_frame(b"(00238", Mppsolar, true),
    );
    write_pi30_capture(
        &capture,
        &[
            (&pi30_frame(b"QPIGS", Mppsolar, false), &qpigs_1),
            (&pi30_frame(qed, Mppsolar, false), &qed_reply),
            (&pi30_frame(b"QPIGS", Mppsolar, false), &qpigs_2),
        ],
    );
    let learned = dir.join("learned.toml");
    let learned_link = dir.join("learned/ttyUSB0");
    let out = run_to_end(
        &dir,
        &[
            "learn",
            capture.to_str().unwrap(),
            "-o",
            learned.to_str().unwrap(),
            "--link",
            learned_link.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let text = std::fs::read_to_string(&learned).unwrap();

    let run = Background::start(&dir, "learned", &["run", learned.to_str().unwrap()]);
    let mut port = open_serial(&learned_link);
    // Typed in a terminal, without a CRC: the first recorded QPIGS.
    assert_eq!(ask_serial(&mut port, b"QPIGS\r").await, qpigs_1, "{text}");
    // A CRC that fails: as replay, its text finds the recording (the second QPIGS).
    assert_eq!(ask_serial(&mut port, b"QPIGS\xff\xff\r").await, qpigs_2);
    // The other CRC escape rule than the one recorded.
    assert_eq!(
        ask_serial(&mut port, &pi30_frame(qed, Reference, true)).await,
        qed_reply
    );
    // Never recorded: (NAK, with its CRC and \r, as a PI30 answers an unknown command.
    assert_eq!(
        ask_serial(&mut port, &pi30_frame(b"QXYZ", Mppsolar, true)).await,
        pi30_frame(b"(NAK", Mppsolar, true)
    );
    // As recorded, byte for byte: the last QPIGS again (sticks at the last).
    assert_eq!(
        ask_serial(&mut port, &pi30_frame(b"QPIGS", Mppsolar, true)).await,
        qpigs_2
    );
    drop(port);
    let (ok, log) = run.stop(Signal::SIGTERM);
    assert!(ok, "{log}");

    // `check` says where a `match` nobody knows is, as for any script error.
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        text.replace("match = \"normalised\"", "match = \"fuzzy\""),
    )
    .unwrap();
    let match_line = 1 + text
        .lines()
        .position(|l| l.starts_with("match = "))
        .unwrap();
    let out = run_to_end(&dir, &["check", bad.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("{}:{}:9: ", bad.display(), match_line))
            && stderr.contains("unknown variant `fuzzy`, expected `exact` or `normalised`"),
        "{stderr}"
    );

    // --default chooses another answer; `silence` leaves it out.
    for (asked, want) in [
        ("silence", None),
        (r"ERR\x01", Some(r"default = 'ERR\x01'")),
    ] {
        let out = run_to_end(
            &dir,
            &["learn", capture.to_str().unwrap(), "--default", asked],
        );
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        match want {
            Some(want) => assert!(text.contains(want), "{text}"),
            None => assert!(!text.contains("\ndefault = "), "{text}"),
        }
    }
}
