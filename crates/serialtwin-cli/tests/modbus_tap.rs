//! Recording a Modbus RTU device with `serialtwin tap --framing modbus-rtu`, then replaying
//! and learning the capture, end to end with no hardware: a `modbus` bus served by
//! `serialtwin run` stands in for the real device, and pymodbus 3.16.1 (the pinned venv) is
//! the client. The story (`modbus/tap_story.py`) reads every table of two units, writes, gets
//! an exception, asks a silent unit, runs diagnostics and device identification, broadcasts,
//! and reads a counter that moves; every answer pymodbus decoded through the tap must come
//! back the same from `serialtwin replay` (same story) and from the learned register map
//! (each distinct read once, its last recorded answer).
#![allow(missing_docs)]

mod common;

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{PATIENCE, bin, run_to_end, start, work_dir, write_config};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use serialtwin_devices::modbus::rtu::crc16;

const STORY: &str = include_str!("modbus/tap_story.py");

/// Safety net for one Python process (its imports included), never a timing assertion.
const PYTHON_PATIENCE: Duration = Duration::from_mins(3);

/// A `serialtwin` subcommand with `--json` in the background until stopped (killed if
/// dropped, so a failing test leaves nothing running).
struct Background {
    child: Option<Child>,
    stderr: PathBuf,
}

impl Background {
    /// Start `serialtwin <args> --json` in `dir` and wait for `{"ready": N}`.
    fn start(dir: &Path, tag: &str, args: &[&str]) -> Self {
        let stderr = dir.join(format!("{tag}.log"));
        let mut child = Command::new(bin())
            .args(args)
            .arg("--json")
            .current_dir(dir)
            .env("TMPDIR", dir)
            .env("XDG_RUNTIME_DIR", "")
            .stdin(Stdio::null())
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
        let me = Self {
            child: Some(child),
            stderr,
        };
        loop {
            let Ok(line) = rx.recv_timeout(PATIENCE) else {
                panic!("{args:?} not ready:\n{}", me.log());
            };
            let v: Value = serde_json::from_str(&line).unwrap();
            if v.get("ready").is_some() {
                break;
            }
        }
        me
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// SIGTERM, and wait for a clean exit; what it wrote on stderr.
    fn stop(mut self) -> String {
        let mut child = self.child.take().unwrap();
        kill(
            Pid::from_raw(i32::try_from(child.id()).unwrap()),
            Signal::SIGTERM,
        )
        .unwrap();
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "no exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        };
        let log = self.log();
        assert!(status.success(), "{status:?}:\n{log}");
        log
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

/// The story in `mode` against `port`; its last stdout line, as JSON.
fn story(mode: &str, port: &Path, file: &Path, framing: &str) -> Value {
    let mut child = Command::new(common::venv().join("bin/python"))
        .arg("-c")
        .arg(STORY)
        .args([
            mode,
            port.to_str().unwrap(),
            file.to_str().unwrap(),
            framing,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + PYTHON_PATIENCE;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python {mode} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("python {mode}: {e}:\n{stdout}"))
}

fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// The capture's records after the header.
fn records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// What recording the story through the tap left.
struct Tapped {
    dir: common::scratch::Scratch,
    capture: PathBuf,
    /// The answers pymodbus decoded, as `tap_story.py record` wrote them.
    recorded: PathBuf,
    answers: Vec<Value>,
    /// How many requests the story sent.
    requests: u64,
    /// The tap's trace (stderr).
    trace: String,
    /// Whether the capture holds the line's settings (a tap's header does; a served port that
    /// already had the client's settings records no change).
    settings: bool,
}

/// Serve `modbus/tap_bus.toml` in `framing`, put `serialtwin tap --framing <framing>` in
/// front of it, and run the story through the tap. What pymodbus decoded through the tap must
/// be what the bus serves (checked by hand, from the config).
fn record(framing: &str) -> Tapped {
    let dir = work_dir(&format!("modbus-tap-{framing}"));
    let config = write_config(
        &dir,
        "upstream.toml",
        &include_str!("modbus/tap_bus.toml")
            .replace("@DIR@", dir.to_str().unwrap())
            .replace(
                "model = \"modbus\"\n",
                &format!("model = \"modbus\"\nframing = \"{framing}\"\n"),
            ),
    );
    let upstream = start(
        &dir,
        &[
            config.to_str().unwrap(),
            "--control",
            dir.join("run/control.sock").to_str().unwrap(),
        ],
    );
    let upstream_link = dir.join("ttyUSB-upstream");
    let tap_link = dir.join("ttyUSB-tap");
    let capture = dir.join("line.jsonl");
    let tap = Background::start(
        &dir,
        "tap",
        &[
            "tap",
            "--upstream",
            upstream_link.to_str().unwrap(),
            "--link",
            tap_link.to_str().unwrap(),
            "--capture",
            capture.to_str().unwrap(),
            "--framing",
            framing,
            "--baud",
            "19200",
            "--trace",
        ],
    );
    let recorded = dir.join("recorded.json");
    let summary = story("record", &tap_link, &recorded, framing);
    let trace = tap.stop();
    drop(upstream);
    let answers: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(&recorded).unwrap()).unwrap();
    let answer = |i: usize| answers[i][1].clone();
    assert_eq!(
        answer(0)["registers"],
        serde_json::json!([
            1234, 0xFFFB, 0x4366, 0x8000, 0xE240, 0x0001, 0x504D, 0x3300, 8, 9
        ]),
        "{answers:?}"
    );
    assert_eq!(answer(10), serde_json::json!({"exception": 2}));
    assert_eq!(answer(11), serde_json::json!({"silent": true}));
    assert_eq!(answer(12), serde_json::json!({"echo": "a537"}));
    assert_eq!(
        answer(13)["information"],
        serde_json::json!({"0": "ACME Meters", "1": "PM-3", "2": "2.7"})
    );
    assert_ne!(
        answer(5),
        answer(16),
        "the counter moved between the two reads"
    );
    Tapped {
        requests: summary["requests"].as_u64().unwrap(),
        dir,
        capture,
        recorded,
        answers,
        trace,
        settings: true,
    }
}

/// `serialtwin replay` of the capture gets the same answers for the same story, silences
/// included; `serialtwin learn` makes a register map that loads and answers every distinct
/// read with the words it got last, the exception and the silence included. The map.
fn replay_and_learn(r: &Tapped, framing: &str) -> String {
    let dir = &r.dir;
    let replay_link = dir.join("ttyUSB-replay");
    let replay = Background::start(
        dir,
        "replay",
        &[
            "replay",
            r.capture.to_str().unwrap(),
            "--link",
            replay_link.to_str().unwrap(),
        ],
    );
    let replayed = story("replay", &replay_link, &r.recorded, framing);
    let log = replay.stop();
    assert_eq!(
        replayed["failures"],
        serde_json::json!([]),
        "replay:\n{log}"
    );
    assert_eq!(replayed["checked"].as_u64(), Some(r.answers.len() as u64));

    let learned = dir.join("learned.toml");
    let learned_link = dir.join("ttyUSB-learned");
    let out = run_to_end(
        dir,
        &[
            "learn",
            r.capture.to_str().unwrap(),
            "-o",
            learned.to_str().unwrap(),
            "--link",
            learned_link.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let map = std::fs::read_to_string(&learned).unwrap();
    for line in [
        "model = \"modbus\"".to_owned(),
        format!("framing = \"{framing}\""),
        "gaps = \"exception\"".to_owned(),
        "vendor = \"ACME Meters\"".to_owned(),
        "# unit 1 read holding 0x0064 ×1: exception 02 (illegal data address) (seen 1 time(s))"
            .to_owned(),
        "# Never answered, and left off the map (silent): unit(s) 9.".to_owned(),
        "value = 777  # changed: 0x0001, 0x0309 (the last kept); written by the client".to_owned(),
        "# changed: ".to_owned(),
    ] {
        assert!(map.contains(&line), "{line} not in the learned map:\n{map}");
    }
    assert_eq!(
        map.contains("\n[device.line]\nbaud = 19200  # as recorded\n"),
        r.settings,
        "{map}"
    );
    let served = start(
        dir,
        &[
            learned.to_str().unwrap(),
            "--control",
            dir.join("run/learned.sock").to_str().unwrap(),
        ],
    );
    let checked = story("learned", &learned_link, &r.recorded, framing);
    assert_eq!(
        checked["failures"],
        serde_json::json!([]),
        "learned map:\n{map}\n{}",
        served.stderr()
    );
    // Every distinct read (8), diagnostics and identification.
    assert_eq!(checked["checked"].as_u64(), Some(10), "{checked}");
    let (status, _) = served.stop_with(Signal::SIGTERM);
    assert!(status.success());
    map
}

#[test]
fn a_modbus_rtu_line_is_tapped_replayed_and_learned_into_a_register_map() {
    let r = record("modbus-rtu");

    // The capture: every request one `rx` frame (as decoded: no CRC), every reply one `tx`
    // frame (its CRC verifies) right after the request it answers, and the only report the
    // request the silent unit never answered.
    let records = records(&r.capture);
    let frames: Vec<(String, Vec<u8>)> = records
        .iter()
        .filter(|r| r["type"] == "frame")
        .map(|r| {
            (
                r["dir"].as_str().unwrap().to_owned(),
                unhex(r["hex"].as_str().unwrap()),
            )
        })
        .collect();
    let rx: Vec<&Vec<u8>> = frames
        .iter()
        .filter(|f| f.0 == "rx")
        .map(|f| &f.1)
        .collect();
    let tx: Vec<&Vec<u8>> = frames
        .iter()
        .filter(|f| f.0 == "tx")
        .map(|f| &f.1)
        .collect();
    assert_eq!(rx.len() as u64, r.requests, "{frames:?}");
    // Neither the silent unit's request nor the broadcast has a reply.
    assert_eq!(tx.len() as u64, r.requests - 2, "{frames:?}");
    // Nothing lost, nothing added: the requests with their CRC put back are the bytes the
    // client wrote, and the replies are the bytes the device sent.
    let chunks = |dir: &str| -> Vec<u8> {
        records
            .iter()
            .filter(|r| r["type"] == "chunk" && r["dir"] == dir)
            .flat_map(|r| unhex(r["hex"].as_str().unwrap()))
            .collect()
    };
    let requests_on_the_wire: Vec<u8> = rx
        .iter()
        .flat_map(|f| [f.as_slice(), &crc16(f).to_le_bytes()].concat())
        .collect();
    assert_eq!(requests_on_the_wire, chunks("rx"));
    assert_eq!(
        tx.iter()
            .flat_map(|f| f.iter().copied())
            .collect::<Vec<u8>>(),
        chunks("tx")
    );
    let mut asked: Option<&Vec<u8>> = None;
    for (dir, bytes) in &frames {
        if dir == "rx" {
            asked = Some(bytes);
            continue;
        }
        assert_eq!(crc16(bytes), 0, "a reply frame keeps its CRC: {bytes:02x?}");
        let request = asked.take().expect("a reply right after its request");
        assert_eq!(bytes[0], request[0], "unit: {request:02x?} -> {bytes:02x?}");
        assert_eq!(
            bytes[1] & 0x7F,
            request[1],
            "function: {request:02x?} -> {bytes:02x?}"
        );
    }
    let errors: Vec<&str> = records
        .iter()
        .filter(|r| r["type"] == "error")
        .map(|r| r["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        errors,
        ["frame error: tx: malformed frame: no reply to unit 9 read holding 0x0000 ×1"],
        "{}",
        r.trace
    );
    // The trace says what each frame is, next to its bytes.
    for words in [
        "(unit 1 read holding 0x0000 ×10)",
        "(unit 1 exception 02 (illegal data address) to read holding)",
        "(broadcast write register 0x0008 = 0x0037)",
        "no reply to unit 9 read holding 0x0000 ×1",
    ] {
        assert!(
            r.trace.contains(words),
            "{words} not in the trace:\n{}",
            r.trace
        );
    }

    let map = replay_and_learn(&r, "modbus-rtu");

    // The raw chunks alone, cut again by `learn --framing modbus-rtu` (as for a tap run
    // without --framing): the same map.
    let again = learn_from_chunks_alone(&r);
    let body = |map: &str| map.split_once('\n').unwrap().1.to_owned();
    assert_eq!(body(&again), body(&map));
}

#[test]
fn a_modbus_ascii_line_is_tapped_replayed_and_learned_into_a_register_map() {
    let r = record("modbus-ascii");
    // Every request one `rx` frame, every reply one `tx` line; nothing else to report.
    let records = records(&r.capture);
    let count = |dir: &str| {
        records
            .iter()
            .filter(|x| x["type"] == "frame" && x["dir"] == dir)
            .count() as u64
    };
    assert_eq!(count("rx"), r.requests);
    assert_eq!(count("tx"), r.requests - 2);
    assert!(records.iter().all(|x| x["type"] != "error"), "{}", r.trace);
    assert!(
        r.trace.contains("(unit 1 read holding 0x0000 ×10)"),
        "{}",
        r.trace
    );
    replay_and_learn(&r, "modbus-ascii");
}

/// `serialtwin run --capture` records what a served bus answers the same way: its frames say
/// what they mean, and the capture replays and learns as a tap's does.
#[test]
fn a_bus_recorded_by_run_is_described_replayed_and_learned() {
    let dir = work_dir("modbus-run-capture");
    let config = write_config(
        &dir,
        "upstream.toml",
        &include_str!("modbus/tap_bus.toml").replace("@DIR@", dir.to_str().unwrap()),
    );
    let capture = dir.join("line.jsonl");
    let served = start(
        &dir,
        &[
            config.to_str().unwrap(),
            "--control",
            dir.join("run/control.sock").to_str().unwrap(),
            "--capture",
            capture.to_str().unwrap(),
        ],
    );
    let recorded = dir.join("recorded.json");
    let summary = story(
        "record",
        &dir.join("ttyUSB-upstream"),
        &recorded,
        "modbus-rtu",
    );
    let (status, _) = served.stop_with(Signal::SIGTERM);
    assert!(status.success());
    let records = records(&capture);
    let what: Vec<&str> = records
        .iter()
        .filter(|r| r["type"] == "frame")
        .map(|r| r["what"].as_str().unwrap_or("(nothing)"))
        .collect();
    assert_eq!(
        what[..2],
        [
            "unit 1 read holding 0x0000 ×10",
            "unit 1 holding ×10: 0x04D2 0xFFFB 0x4366 0x8000 …"
        ]
    );
    let answers: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(&recorded).unwrap()).unwrap();
    let tapped = Tapped {
        requests: summary["requests"].as_u64().unwrap(),
        dir,
        capture,
        recorded,
        answers,
        trace: String::new(),
        settings: false,
    };
    replay_and_learn(&tapped, "modbus-rtu");
}

/// `serialtwin learn --framing modbus-rtu` of the capture with its frames and framing
/// removed: the chunks cut again, as for a tap run without `--framing`. The map it prints.
fn learn_from_chunks_alone(r: &Tapped) -> String {
    let chunks_only = r.dir.join("chunks.jsonl");
    let text = std::fs::read_to_string(&r.capture).unwrap();
    let mut lines = text.lines();
    let mut header: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    header.as_object_mut().unwrap().remove("framing");
    let kept: Vec<String> = std::iter::once(header.to_string())
        .chain(
            lines
                .filter(|l| !l.contains("\"type\":\"frame\""))
                .map(str::to_owned),
        )
        .collect();
    std::fs::write(&chunks_only, kept.join("\n") + "\n").unwrap();
    let out = run_to_end(
        &r.dir,
        &[
            "learn",
            "--framing",
            "modbus-rtu",
            chunks_only.to_str().unwrap(),
            "--link",
            r.dir.join("ttyUSB-learned").to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
