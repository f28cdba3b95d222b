//! "Bring your map" (issue 18, item 7): a pymodbus 3.16.1 simulator device file served by
//! `serialtwin run`, proven by difference against pymodbus's own simulator.
//!
//! `modbus/simjson_compare.py` serves each file with pymodbus's `ModbusSimulatorContext` and
//! `ModbusSerialServer` on a pty pair of its own, then ONE pymodbus client sends the same
//! requests to both servers: every address of every table (functions 1-4, past the end
//! included), writes (5, 6, 15, 16, 22, 23) that succeed, fail or half succeed, then every address
//! again. Expected answers are pymodbus's, never serialtwin's code: the same exceptions
//! everywhere, the same values wherever the file makes them deterministic, and values of the
//! `random`, `uptime` and `timestamp` actions within their range on both.
//!
//! The two files cover every feature: shared blocks with `type exception` at one unit id
//! (RTU), separate blocks answering any unit id (ASCII); `invalid`, `write`, `repeat`; bits,
//! int16, uint16, uint32, float32, float64 and string; and every action.
#![allow(missing_docs)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{run_to_end, start_config, work_dir, write_config};
use nix::sys::signal::Signal;
use serde_json::Value;

/// Safety net for the Python process (two servers' worth of requests), never a timing
/// assertion.
const PYTHON_PATIENCE: Duration = Duration::from_mins(5);

const METER: &str = include_str!("modbus/simjson_meter.json");
const PLANT: &str = include_str!("modbus/simjson_plant.json");

/// The config and both files in `dir`; the config's path.
fn files_in(dir: &Path) -> PathBuf {
    std::fs::write(dir.join("simjson_meter.json"), METER).unwrap();
    std::fs::write(dir.join("simjson_plant.json"), PLANT).unwrap();
    write_config(
        dir,
        "simjson.toml",
        &include_str!("modbus/simjson.toml").replace("@DIR@", dir.to_str().unwrap()),
    )
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

/// Run the comparison with the venv's Python; its results, one JSON object per check. Its
/// stderr (pymodbus logs every frame of the thousands) goes to a file in `dir`, never to a
/// pipe nobody reads while it runs.
fn compare(dir: &Path, args: &[&str]) -> Vec<Value> {
    let log = dir.join("python.log");
    let out = common::output_within_for(
        Command::new(common::venv().join("bin/python"))
            .arg("-c")
            .arg(include_str!("modbus/simjson_compare.py"))
            .args(args)
            .stderr(std::fs::File::create(&log).unwrap()),
        PYTHON_PATIENCE,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    let tail: String = stderr.lines().rev().take(30).collect::<Vec<_>>().join("\n");
    assert!(out.status.success(), "python failed:\n{stdout}\n{tail}");
    match serde_json::from_str::<Value>(stdout.lines().last().unwrap_or_default()) {
        Ok(Value::Array(results)) => results,
        _ => panic!("no results from python:\n{stdout}\n{tail}"),
    }
}

#[test]
fn pymodbus_and_serialtwin_answer_one_client_identically_from_the_same_files() {
    let dir = work_dir("modbus-simjson");
    let config = files_in(&dir);
    let (run, _) = start_config(&dir, &config);
    let (meter, plant) = (link_of(&run, "meter"), link_of(&run, "plant"));
    let meter_json = dir.join("simjson_meter.json");
    let plant_json = dir.join("simjson_plant.json");
    let results = compare(
        &dir,
        &[
            meter_json.to_str().unwrap(),
            "line",
            "meter",
            meter.to_str().unwrap(),
            plant_json.to_str().unwrap(),
            "server",
            "device",
            plant.to_str().unwrap(),
        ],
    );
    let names: Vec<&str> = results
        .iter()
        .map(|r| r["name"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(
        names,
        [
            "meter: another unit id, pymodbus 0B, serialtwin silent",
            "meter: identical answers",
            "meter: random values in range",
            "device: identical answers",
            "device: random values in range",
        ]
    );
    let failures: Vec<String> = results
        .iter()
        .filter(|r| r["ok"] != Value::Bool(true))
        .map(|r| format!("- {}: {}", r["name"], r["error"].as_str().unwrap_or("?")))
        .collect();
    assert!(
        failures.is_empty(),
        "{}\nserialtwin stderr:\n{}",
        failures.join("\n"),
        run.stderr()
    );
    // The comparison saw exceptions of both kinds a client meets here (02 and 04), so the
    // files' refusals were exercised, not skipped.
    for r in results.iter().filter(|r| r["requests"].is_u64()) {
        let exceptions = &r["exceptions"];
        assert!(
            exceptions["2"].as_u64() > Some(0) && exceptions["4"].as_u64() > Some(0),
            "{}: {exceptions}",
            r["name"]
        );
        eprintln!(
            "{}: {} requests, exceptions {exceptions}",
            r["name"], r["requests"]
        );
    }
    let (status, extra) = run.stop_with(Signal::SIGTERM);
    assert!(status.success() && extra.is_empty(), "{status:?} {extra:?}");
}

#[test]
fn a_bad_file_is_refused_at_its_line_and_column() {
    let dir = work_dir("modbus-simjson-bad");
    let config = files_in(&dir);
    // A negative uint16: pymodbus fails on it with an OverflowError.
    let bad = METER.replace(
        r#"{"addr": 3, "value": 17001}"#,
        r#"{"addr": 3, "value": -1}"#,
    );
    assert_ne!(bad, METER);
    std::fs::write(dir.join("simjson_meter.json"), &bad).unwrap();
    let (line, column) = bad
        .lines()
        .enumerate()
        .find_map(|(n, l)| l.find(r#""value": -1"#).map(|c| (n + 1, c + 10)))
        .unwrap();
    let out = run_to_end(&dir, &["check", config.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    let want = format!("simjson_meter.json:{line}:{column}: -1 does not fit a uint16");
    assert!(stderr.contains(&want), "want {want:?} in:\n{stderr}");

    // A TCP server entry is named as such.
    let tcp = METER.replace(r#""comm": "serial""#, r#""comm": "tcp""#);
    std::fs::write(dir.join("simjson_meter.json"), &tcp).unwrap();
    let out = run_to_end(&dir, &["check", config.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(r#"simjson_meter.json:3:22: serialtwin serves a serial line: "comm" must be "serial", not "tcp""#),
        "{stderr}"
    );
}
