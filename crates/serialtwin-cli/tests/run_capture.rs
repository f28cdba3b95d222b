//! `serialtwin run --capture`: what a fleet serves is recorded per port, and a recorded
//! session replays byte for byte.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use nix::sys::signal::Signal;
use serde_json::Value;

use common::{leftovers, open_at, run_to_end, start, work_dir, write_config};

/// Open `path` with tokio-serial at 2400 8N1.
fn open(path: &Path) -> tokio_serial::SerialStream {
    open_at(path, 2400)
}

/// Write `request`, read through the next `\r`.
async fn ask(s: &mut tokio_serial::SerialStream, request: &[u8]) -> Vec<u8> {
    common::ask(s, request, b'\r').await
}

/// A PI30 inverter and a scripted meter, links in `dir`.
fn two_ports(dir: &Path) -> PathBuf {
    write_config(
        dir,
        "fleet.toml",
        &format!(
            r#"
[[device]]
name = "inverter"
model = "pi30"
link = "{dir}/ttyUSB0"
[device.line]
latency_ms = 0

[[device]]
name = "meter"
model = "scripted"
link = "{dir}/ttyUSB1"
framing = "cr"
[[device.script.rule]]
request = "VOLT?"
reply = "230.1"
"#,
            dir = dir.display()
        ),
    )
}

/// A capture file's records, as JSON.
fn records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The `frame` records' direction and text.
fn frames(records: &[Value]) -> Vec<(String, String)> {
    records
        .iter()
        .filter(|r| r["type"] == "frame")
        .map(|r| {
            (
                r["dir"].as_str().unwrap().to_owned(),
                r["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_records_each_port_and_the_session_replays_byte_for_byte() {
    let dir = work_dir("run-capture");
    let config = two_ports(&dir);
    let template = dir.join("{name}.jsonl");
    let run = start(
        &dir,
        &[
            config.to_str().unwrap(),
            "--capture",
            template.to_str().unwrap(),
        ],
    );
    let inverter_capture = dir.join("inverter.jsonl");
    let meter_capture = dir.join("meter.jsonl");
    assert_eq!(run.ports[0]["capture"], inverter_capture.to_str().unwrap());
    assert_eq!(run.ports[1]["capture"], meter_capture.to_str().unwrap());
    let links = run.links();

    let requests: [&[u8]; 3] = [b"QID\r", b"QMOD\r", b"QPIRI\r"];
    let mut inverter = open(&links[0]);
    let mut served = Vec::new();
    for r in requests {
        served.push(ask(&mut inverter, r).await);
    }
    let mut meter = open(&links[1]);
    assert_eq!(ask(&mut meter, b"VOLT?\r").await, b"230.1\r");
    drop((inverter, meter));
    let (status, _) = run.stop_with(Signal::SIGINT);
    assert!(status.success(), "exit status {status}");

    // Each port's file: owner-only, a header naming the port, its framing and link, then
    // its own frames both ways and the client's line events.
    for (path, name, framing, link) in [
        (&inverter_capture, "inverter", "pi30", &links[0]),
        (&meter_capture, "meter", "cr", &links[1]),
    ] {
        let mode = std::fs::metadata(path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", path.display());
        let records = records(path);
        let header = &records[0];
        assert_eq!(header["type"], "header");
        assert_eq!(header["port"], name);
        assert_eq!(header["framing"], framing);
        assert_eq!(header["link"], link.to_str().unwrap());
        assert!(header["tool"].as_str().unwrap().ends_with(" run"));
        assert!(records.iter().any(|r| r["type"] == "open"), "{name}");
    }
    let inverter_frames = frames(&records(&inverter_capture));
    assert_eq!(inverter_frames.len(), 6, "{inverter_frames:?}");
    assert_eq!(inverter_frames[0], ("rx".into(), "QID".into()));
    assert_eq!(
        frames(&records(&meter_capture)),
        [
            ("rx".into(), "VOLT?".into()),
            ("tx".into(), "230.1\\r".into())
        ]
    );

    // The recorded session, replayed strictly as a device: the same bytes for the same requests.
    let replay_link = dir.join("replay/ttyUSB0");
    let replay_config = write_config(
        &dir,
        "replay.toml",
        &format!(
            "[[device]]\nname = \"again\"\nmodel = \"replay\"\nlink = \"{}\"\n\
             [device.replay]\ncapture = \"inverter.jsonl\"\nstrict = true\n",
            replay_link.display()
        ),
    );
    let replay = start(&dir, &[replay_config.to_str().unwrap()]);
    let mut client = open(&replay_link);
    for (r, expected) in requests.iter().zip(&served) {
        assert_eq!(&ask(&mut client, r).await, expected);
    }
    drop(client);
    let log = replay.stderr();
    let (status, _) = replay.stop_with(Signal::SIGINT);
    assert!(status.success(), "exit status {status}");
    assert!(!log.contains("deviat"), "{log}");
}

#[test]
fn run_capture_files_are_new_unless_forced_and_never_through_a_symlink() {
    let dir = work_dir("run-capture-files");
    let config = two_ports(&dir);
    // Two ports and no `{name}`: one file each, the name before the extension.
    let plain = dir.join("session.jsonl");
    let run = start(
        &dir,
        &[
            config.to_str().unwrap(),
            "--capture",
            plain.to_str().unwrap(),
        ],
    );
    let made = [
        dir.join("session-inverter.jsonl"),
        dir.join("session-meter.jsonl"),
    ];
    assert_eq!(run.ports[0]["capture"], made[0].to_str().unwrap());
    assert_eq!(run.ports[1]["capture"], made[1].to_str().unwrap());
    let (status, _) = run.stop_with(Signal::SIGTERM);
    assert!(status.success());

    // Again: the files are there, so nothing starts and nothing is touched or left behind.
    let before: Vec<String> = made
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    let out = run_to_end(
        &dir,
        &[
            "run",
            config.to_str().unwrap(),
            "--capture",
            plain.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("already exists: pass --force"), "{stderr}");
    for (p, text) in made.iter().zip(&before) {
        assert_eq!(&std::fs::read_to_string(p).unwrap(), text);
    }
    assert!(!dir.join("ttyUSB0").exists() && !dir.join("ttyUSB1").exists());

    // A symlink planted at the second port's path: even --force never writes through it, and
    // the first port's file, made before the refusal, is removed again.
    let target = dir.join("precious");
    std::fs::write(&target, "keep me").unwrap();
    std::fs::remove_file(&made[1]).unwrap();
    std::os::unix::fs::symlink(&target, &made[1]).unwrap();
    std::fs::remove_file(&made[0]).unwrap();
    let out = run_to_end(
        &dir,
        &[
            "run",
            config.to_str().unwrap(),
            "--capture",
            plain.to_str().unwrap(),
            "--force",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("symbolic link"),
        "{out:?}"
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
    assert!(
        !made[0].exists(),
        "the file made before the refusal is gone"
    );
    let left = leftovers(&dir);
    assert!(
        !left.iter().any(|p| p.to_string_lossy().contains("ttyUSB")),
        "{left:?}"
    );
}
