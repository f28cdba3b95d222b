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
use std::time::Duration;

use common::{start, work_dir, write_config};
use nix::sys::signal::Signal;
use serde_json::Value;

const HARNESS: &str = include_str!("modbus/harness.py");

/// Safety net for one Python process (its imports included), never a timing assertion.
const PYTHON_PATIENCE: Duration = Duration::from_mins(3);

/// Run `script` (after the harness) with the venv's Python and `args`; its results, one JSON
/// object per check. Killed, and the test failed, past [`PYTHON_PATIENCE`].
fn run_checks(script: &str, args: &[&str]) -> Vec<Value> {
    let out = common::output_within_for(
        Command::new(common::venv().join("bin/python"))
            .arg("-c")
            .arg(format!("{HARNESS}\n{script}"))
            .args(args)
            .stderr(Stdio::piped()),
        PYTHON_PATIENCE,
    );
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
    let names: Vec<&str> = results
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
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
        assert!(
            std::fs::symlink_metadata(&link).is_err(),
            "{} left",
            link.display()
        );
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

/// A config from `modbus/`, its links in `dir`.
fn config_in(dir: &Path, name: &str, text: &str) -> PathBuf {
    write_config(dir, name, &text.replace("@DIR@", dir.to_str().unwrap()))
}

#[test]
fn pymodbus_reads_writes_and_sees_exceptions_on_a_three_unit_bus() {
    let dir = work_dir("modbus-pymodbus");
    let config = config_in(&dir, "bus.toml", include_str!("modbus/bus.toml"));
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

/// The seed for the random maps: `SERIALTWIN_MODBUS_SEED` to replay one, else a fresh one,
/// printed (and named in a failure) so that a failing map can be drawn again.
fn seed() -> u64 {
    std::env::var("SERIALTWIN_MODBUS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            u64::try_from(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos()
                    % 1_000_000_007,
            )
            .unwrap()
        })
}

#[test]
fn pymodbus_reads_random_maps_as_its_own_converters_encode_them() {
    let dir = work_dir("modbus-random");
    let seed = seed();
    eprintln!("random map seed {seed} (SERIALTWIN_MODBUS_SEED={seed} draws it again)");
    let script = include_str!("modbus/random_map.py");
    let dir_arg = dir.to_str().unwrap();
    run_checks(script, &["draw", &seed.to_string(), dir_arg]);
    let run = serve(&dir, &dir.join("map.toml"));
    let exception = link_of(&run, "exception");
    let zero = link_of(&run, "zero");
    let results = run_checks(
        script,
        &[
            "check",
            dir_arg,
            exception.to_str().unwrap(),
            zero.to_str().unwrap(),
        ],
    );
    // Three units, each: two register tables (values, gaps) and holding writes, two bit tables.
    let context = format!("random map, seed {seed}");
    assert!(
        results.len() >= 3 * 3,
        "{context}: too few checks: {results:?}"
    );
    eprintln!("{context}: {} checks", results.len());
    assert_passed(&results, &[], &run, &context);
    stop(run);
}

#[test]
fn minimalmodbus_reads_and_writes_with_its_strict_checks() {
    let dir = work_dir("modbus-minimal");
    let config = config_in(&dir, "minimal.toml", include_str!("modbus/minimal.toml"));
    let run = serve(&dir, &config);
    let link = link_of(&run, "bus");
    let results = run_checks(
        include_str!("modbus/minimalmodbus_rtu.py"),
        &[link.to_str().unwrap()],
    );
    assert_passed(
        &results,
        &[
            "read_register",
            "read_float",
            "read_long",
            "read_string",
            "write_register and friends",
            "bits",
            "more than 40 registers with the timeout raised",
            "exceptions",
            "absent unit",
            "broadcast",
        ],
        &run,
        "minimalmodbus",
    );
    stop(run);
}
