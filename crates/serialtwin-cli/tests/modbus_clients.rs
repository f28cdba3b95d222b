//! The `modbus` model served by the real `serialtwin run` from a config, driven by the clients
//! people really use: pymodbus 3.16.1 (sync and async) and minimalmodbus 2.1.1, from the
//! pinned venv, each client's checks in one Python process (its start-up is slow). Expected
//! values come from the config and from the clients' own converters, never from serialtwin's
//! code; the random maps are drawn by Python, so no map is fitted to the tests.
//!
//! Each script (under `modbus/`, after `modbus/harness.py`) runs every check whatever the one
//! before did and prints the results as JSON; a failed check's message carries the bytes on the
//! wire (pymodbus' `trace_packet`).
#![allow(missing_docs)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{start, work_dir, write_config};
use nix::sys::signal::Signal;
use serde_json::Value;

const HARNESS: &str = include_str!("modbus/harness.py");

/// Safety net for one Python process (its imports included), never a timing assertion.
const PYTHON_PATIENCE: Duration = Duration::from_secs(180);

/// Run `script` (after the harness) with the venv's Python and `args`; its results, one JSON
/// object per check. Killed, and the test failed, past [`PYTHON_PATIENCE`].
fn run_checks(script: &str, args: &[&str]) -> Vec<Value> {
    let mut child = Command::new(common::venv().join("bin/python"))
        .arg("-c")
        .arg(format!("{HARNESS}\n{script}"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + PYTHON_PATIENCE;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "python did not finish:\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    match serde_json::from_str::<Value>(last) {
        Ok(Value::Array(results)) => results,
        _ => panic!(
            "no results from python:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// Every check passed, and exactly those named in `want` ran (so none was skipped); else a
/// panic listing each failure with its bytes, and what serialtwin printed.
fn assert_passed(results: &[Value], want: &[&str], run: &common::Running, context: &str) {
    let names: Vec<&str> = results.iter().map(|r| r["name"].as_str().unwrap()).collect();
    let failures: Vec<String> = results
        .iter()
        .filter(|r| r["ok"] != Value::Bool(true))
        .map(|r| {
            let wire: Vec<&str> = r["wire"]
                .as_array()
                .map(|w| w.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            format!(
                "- {}: {}\n    wire:\n      {}\n    {}",
                r["name"].as_str().unwrap_or("?"),
                r["error"].as_str().unwrap_or("?"),
                wire.join("\n      "),
                r["where"].as_str().unwrap_or("").replace('\n', "\n    ")
            )
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{context}: {} of {} checks failed:\n{}\nserialtwin stderr:\n{}",
        failures.len(),
        results.len(),
        failures.join("\n"),
        run.stderr()
    );
    if !want.is_empty() {
        assert_eq!(names, want, "{context}: the checks that ran");
    }
}

/// Start `serialtwin run` on `config` with a control socket in `dir` (never the default).
fn serve(dir: &Path, config: &Path) -> common::Running {
    let socket = dir.join("run/control.sock");
    start(
        dir,
        &[
            config.to_str().unwrap(),
            "--control",
            socket.to_str().unwrap(),
        ],
    )
}

/// Stop it with SIGTERM; it must exit cleanly and leave its links gone.
fn stop(run: common::Running) {
    let links = run.links();
    let (status, extra) = run.stop_with(Signal::SIGTERM);
    assert!(status.success() && extra.is_empty(), "{status:?} {extra:?}");
    for link in links {
        assert!(std::fs::symlink_metadata(&link).is_err(), "{link:?} left");
    }
}

/// The link the port for device `name` got.
fn link_of(run: &common::Running, name: &str) -> PathBuf {
    let port = run
        .ports
        .iter()
        .find(|p| p["device"] == name || p["name"] == name)
        .unwrap_or_else(|| panic!("no port for {name}: {:?}", run.ports));
    PathBuf::from(port["link"].as_str().unwrap())
}

/// Three units (1, 2, 247) on the standard 19,200 line, and one unit alone at 115,200.
fn bus_config(dir: &Path) -> String {
    let d = dir.display();
    format!(
        r#"
[[device]]
name = "bus"
model = "modbus"
link = "{d}/ttyUSB-modbus"

[device.modbus]
gaps = "exception"

[[device.modbus.unit]]
id = 1
vendor = "ACME Meters"
product = "PM-3"
revision = "2.7"

[[device.modbus.unit.holding]]
address = 0
value = 1234
[[device.modbus.unit.holding]]
address = 1
type = "i16"
value = -5
[[device.modbus.unit.holding]]
address = 2
type = "u32"
value = 123456
[[device.modbus.unit.holding]]
address = 4
type = "u32"
order = "CDAB"
value = 123456
[[device.modbus.unit.holding]]
address = 6
type = "f32"
value = 230.5
[[device.modbus.unit.holding]]
address = 8
type = "string"
value = "SDM630"
registers = 4
[[device.modbus.unit.holding]]
address = 12
value = 7
writable = false
[[device.modbus.unit.holding]]
address = 13
value = 23.5
scale = 0.1
[[device.modbus.unit.holding]]
address = 14
type = "i16"
value = -2.0
scale = 0.01
[[device.modbus.unit.holding]]
address = 16
type = "f32"
order = "BADC"
value = 230.5
[[device.modbus.unit.holding]]
address = 18
type = "f32"
order = "DCBA"
value = 230.5
[[device.modbus.unit.holding]]
address = 20
value = 0
[[device.modbus.unit.holding]]
address = 21
value = 0
[[device.modbus.unit.holding]]
address = 22
value = 0
[[device.modbus.unit.holding]]
address = 23
value = 0
[[device.modbus.unit.holding]]
address = 24
value = 0x12
[[device.modbus.unit.holding]]
address = 30
value = 30
[[device.modbus.unit.holding]]
address = 31
value = 31
[[device.modbus.unit.holding]]
address = 32
value = 32
[[device.modbus.unit.holding]]
address = 33
value = 33
[[device.modbus.unit.holding]]
address = 100
value = 0

[[device.modbus.unit.input]]
address = 0
type = "f32"
value = 230.5
[[device.modbus.unit.input]]
address = 2
type = "u32"
order = "CDAB"
value = 123456
[[device.modbus.unit.input]]
address = 4
value = 42
[[device.modbus.unit.input]]
address = 10
type = "u32"
counter = {{ start = 0, step = 1, every_ms = 100 }}
[[device.modbus.unit.input]]
address = 12
type = "f32"
ramp = {{ start = 0.0, per_second = 1.5 }}

[[device.modbus.unit.coil]]
address = 0
value = true
[[device.modbus.unit.coil]]
address = 1
value = false
[[device.modbus.unit.coil]]
address = 2
value = true
{coils}
[[device.modbus.unit.coil]]
address = 10
value = true
writable = false
[[device.modbus.unit.coil]]
address = 100
value = false

[[device.modbus.unit.discrete]]
address = 0
value = true
[[device.modbus.unit.discrete]]
address = 1
value = false
[[device.modbus.unit.discrete]]
address = 2
value = true
[[device.modbus.unit.discrete]]
address = 3
value = true
{others}

[[device]]
name = "fast"
model = "modbus"
link = "{d}/ttyUSB-modbus-fast"

[device.line]
baud = 115200

[[device.modbus.unit]]
id = 1

[[device.modbus.unit.holding]]
address = 0
value = 4321
[[device.modbus.unit.holding]]
address = 1
value = 0
[[device.modbus.unit.holding]]
address = 10
type = "string"
value = "{alphabet}"
registers = 100
"#,
        coils = (3..=9)
            .map(|a| format!("[[device.modbus.unit.coil]]\naddress = {a}\nvalue = false\n"))
            .collect::<String>(),
        others = [2, 247]
            .iter()
            .map(|id| format!(
                "\n[[device.modbus.unit]]\nid = {id}\n\
                 [[device.modbus.unit.holding]]\naddress = 0\nvalue = {id}\n\
                 [[device.modbus.unit.holding]]\naddress = 100\nvalue = 0\n\
                 [[device.modbus.unit.coil]]\naddress = 100\nvalue = false\n"
            ))
            .collect::<String>(),
        alphabet = (0..200u8)
            .map(|i| char::from(b'A' + i % 26))
            .collect::<String>(),
    )
}

#[test]
fn pymodbus_reads_writes_and_sees_exceptions_on_a_three_unit_bus() {
    let dir = work_dir("modbus-pymodbus");
    let config = write_config(&dir, "bus.toml", &bus_config(&dir));
    let run = serve(&dir, &config);
    let bus = link_of(&run, "bus");
    let fast = link_of(&run, "fast");
    let results = run_checks(
        include_str!("modbus/pymodbus_bus.py"),
        &[bus.to_str().unwrap(), fast.to_str().unwrap()],
    );
    assert_passed(
        &results,
        &[
            "read coils",
            "read discrete inputs",
            "read holding registers",
            "read input registers",
            "each unit answers with its own values",
            "write single coil",
            "write single register",
            "write multiple coils",
            "write multiple registers",
            "mask write",
            "read/write multiple, write first",
            "diagnostics echo",
            "device identification",
            "exception 02 past the table",
            "exception 02 in a gap",
            "exception 03 bad quantity, before the address",
            "exception 02 writing a read-only register",
            "exception 02 writing a read-only coil",
            "exception 01 unsupported function",
            "absent unit is silent",
            "broadcast write carried out by every unit",
            "values move with the clock",
            "async client",
            "bus at 115200 8N1",
        ],
        &run,
        "pymodbus",
    );
    stop(run);
}
