//! Real Modbus devices (issue 18, item 6): an Eastron SDM630 and SDM120 (`model = "sdm"`) and
//! an EPEVER Tracer (`model = "epever"`), served by the real `serialtwin run` from a config
//! and read by the clients written for the real devices: sdm-modbus 0.7.0 on pymodbus 3.6.9
//! and epevermodbus 0.0.18 on minimalmodbus 2.1.1, each in a venv of its own (their pins clash
//! with the shared venv's pymodbus 3.16), each client's checks in one Python process.
//!
//! The values are checked by physics, not by plausible ranges alone: power is volts times
//! amps (times the power factor), energy rises as the power integrated over the simulated
//! time between two reads. Both clients retry behind the caller's back (sdm-modbus returns
//! what it could, epevermodbus retries any error five times), so a retried request would
//! pass unseen: every port is captured (`run --capture`), and its requests must be exactly
//! those the script's getters should send, once each.
//!
//! And the line (item 5): two SDM630s on one `modbus` bus (`device = "sdm630"`) answer each
//! at its address on their factory line; a bus of units whose factory lines differ needs a
//! `[device.line]`, or `serialtwin check` says where the conflict is.
#![allow(missing_docs)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{run_to_end, start, work_dir, write_config};
use nix::sys::signal::Signal;
use serde_json::Value;

const HARNESS: &str = include_str!("modbus/harness.py");

/// Safety net for one Python process (imports, and a broadcast's timeouts), never a timing
/// assertion.
const PYTHON_PATIENCE: Duration = Duration::from_mins(3);

/// 2026-06-21T12:00:00Z: noon, the sun high over the charge controller's array.
const NOON: u64 = 1_782_043_200;

/// Run `script` (after the harness) with `python` and `args`: its check results, and the
/// requests it says its calls should have sent. Killed, and the test failed, past
/// [`PYTHON_PATIENCE`].
fn run_checks(python: &Path, script: &str, args: &[&str]) -> (Vec<Value>, Vec<Value>) {
    let out = common::output_within_for(
        Command::new(python)
            .arg("-c")
            .arg(format!("{HARNESS}\n{script}"))
            .args(args)
            .stderr(Stdio::piped()),
        PYTHON_PATIENCE,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "python failed:\n{stdout}\n{stderr}");
    let mut results = None;
    let mut requests = None;
    for line in stdout.lines() {
        match serde_json::from_str::<Value>(line) {
            Ok(Value::Array(r)) => results = Some(r),
            Ok(Value::Object(o)) if o.contains_key("requests") => {
                requests = o["requests"].as_array().cloned();
            }
            _ => {}
        }
    }
    match (results, requests) {
        (Some(r), Some(q)) => (r, q),
        _ => panic!("no results from python:\n{stdout}\n{stderr}"),
    }
}

/// Every check passed and exactly those in `want` ran; else a panic naming each failure and
/// what serialtwin printed.
fn assert_passed(results: &[Value], want: &[&str], run: &common::Running) {
    let failures: Vec<String> = results
        .iter()
        .filter(|r| r["ok"] != Value::Bool(true))
        .map(|r| format!("- {}: {}\n    {}", r["name"], r["error"], r["where"]))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} checks failed:\n{}\nserialtwin stderr:\n{}",
        failures.len(),
        results.len(),
        failures.join("\n"),
        run.stderr()
    );
    let names: Vec<&str> = results.iter().filter_map(|r| r["name"].as_str()).collect();
    assert_eq!(names, want, "the checks that ran");
}

/// The requests in a capture, in order: `[unit, function, word at 2, word at 4]` of each
/// `rx` frame (address, function, then the start address and the quantity or value).
fn captured_requests(capture: &Path) -> Vec<[u32; 4]> {
    std::fs::read_to_string(capture)
        .unwrap_or_else(|e| panic!("{}: {e}", capture.display()))
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["type"] == "frame" && r["dir"] == "rx")
        .map(|r| {
            let hex = r["hex"].as_str().unwrap();
            let bytes: Vec<u32> = (0..hex.len() / 2)
                .map(|i| u32::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
                .collect();
            assert!(bytes.len() >= 6, "a short request: {hex}");
            [
                bytes[0],
                bytes[1],
                bytes[2] << 8 | bytes[3],
                bytes[4] << 8 | bytes[5],
            ]
        })
        .collect()
}

/// The captured requests of port `port` are exactly the expected ones (`[port, unit,
/// function, address, quantity, repeats]`, repeats 1 or "1+": a request the client sends again
/// when no answer may come), in order.
fn assert_one_request_per_call(expected: &[Value], port: u64, capture: &Path) {
    let got = captured_requests(capture);
    let mut at = 0;
    for want in expected.iter().filter(|e| e[0] == port) {
        let w: Vec<u32> = (1..5)
            .map(|i| u32::try_from(want[i].as_u64().unwrap()).unwrap())
            .collect();
        let w = [w[0], w[1], w[2], w[3]];
        assert_eq!(
            got.get(at),
            Some(&w),
            "request {at} of port {port}: captured {:x?}",
            &got[at.saturating_sub(2)..got.len().min(at + 3)]
        );
        at += 1;
        if want[5] == "1+" {
            while got.get(at) == Some(&w) {
                at += 1;
            }
        }
    }
    assert_eq!(
        at,
        got.len(),
        "port {port}: more requests than calls: {:x?}",
        &got[at..]
    );
    eprintln!(
        "port {port}: {} requests captured for {} calls",
        got.len(),
        expected.iter().filter(|e| e[0] == port).count()
    );
}

/// Start `serialtwin run` on `config`, its control socket and captures in `dir`.
fn serve(dir: &Path, config: &Path) -> common::Running {
    // A directory of its own for the socket: serialtwin makes it private (0700).
    let socket = dir.join("run/control.sock");
    let captures = dir.join("{name}.jsonl");
    start(
        dir,
        &[
            config.to_str().unwrap(),
            "--control",
            socket.to_str().unwrap(),
            "--capture",
            captures.to_str().unwrap(),
        ],
    )
}

fn link_of(run: &common::Running, name: &str) -> PathBuf {
    let port = run
        .ports
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no port {name}: {:?}", run.ports));
    PathBuf::from(port["link"].as_str().unwrap())
}

/// Stop it with SIGTERM: a clean exit, its captures complete.
fn stop(run: common::Running) {
    let (status, extra) = run.stop_with(Signal::SIGTERM);
    assert!(status.success() && extra.is_empty(), "{status:?} {extra:?}");
}

#[test]
fn sdm_modbus_reads_an_sdm630_and_an_sdm120_as_real_meters() {
    let python =
        common::python::venv_of("tests/python/sdm-modbus.txt", "pyenv-sdm").join("bin/python");
    let dir = work_dir("modbus-sdm");
    // Ten simulated minutes per real second: two reads ten simulated minutes apart cost a
    // second of the test.
    let speed = "600";
    let config = write_config(
        &dir,
        "meters.toml",
        &format!(
            "[clock]\nspeed = {speed}.0\n\n\
             [[device]]\nname = 'sdm630'\nmodel = 'sdm'\nlink = '{d}/ttyUSB-sdm630'\nseed = 11\n\
             [device.sdm]\nmeter = 'sdm630'\n\n\
             [[device]]\nname = 'sdm120'\nmodel = 'sdm'\nlink = '{d}/ttyUSB-sdm120'\nseed = 12\n\
             [device.sdm]\nmeter = 'sdm120'\n\n\
             [[device]]\nname = 'bus'\nmodel = 'modbus'\nlink = '{d}/ttyUSB-bus'\nseed = 13\n\
             [[device.modbus.unit]]\nid = 1\ndevice = 'sdm630'\n\
             [[device.modbus.unit]]\nid = 2\ndevice = 'sdm630'\n",
            d = dir.display()
        ),
    );
    let run = serve(&dir, &config);
    let (results, requests) = run_checks(
        &python,
        include_str!("modbus/sdm_meter.py"),
        &[
            link_of(&run, "sdm630").to_str().unwrap(),
            link_of(&run, "sdm120").to_str().unwrap(),
            speed,
            common::bin(),
            dir.join("run/control.sock").to_str().unwrap(),
            link_of(&run, "bus").to_str().unwrap(),
        ],
    );
    assert_passed(
        &results,
        &[
            "read_all returns every key of its SDM630 table, physically consistent",
            "import energy rises over ten simulated minutes as power says",
            "read_all of the holding registers",
            "read one key: one request",
            "write goes to unit 0, times out, reads back on unit 1",
            "function codes Eastron does not list answer 01",
            "SDM120 read_all at 2400 baud",
            "ctl set load_w moves the meter",
            "two SDM630s on one modbus bus, each at its address",
        ],
        &run,
    );
    stop(run);
    assert_one_request_per_call(&requests, 0, &dir.join("sdm630.jsonl"));
    assert_one_request_per_call(&requests, 1, &dir.join("sdm120.jsonl"));
    assert_one_request_per_call(&requests, 2, &dir.join("bus.jsonl"));
}

#[test]
fn epevermodbus_reads_a_tracer_as_a_real_charge_controller() {
    let python =
        common::python::venv_of("tests/python/epevermodbus.txt", "pyenv-epever").join("bin/python");
    let dir = work_dir("modbus-epever");
    let config = write_config(
        &dir,
        "charger.toml",
        &format!(
            "[clock]\nstart = {NOON}\nspeed = 1.0\n\n\
             [[device]]\nname = 'charger'\nmodel = 'epever'\nlink = '{}/ttyUSB-epever'\nseed = 5\n\
             [device.epever]\nsoc = 60.0\n",
            dir.display()
        ),
    );
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let run = serve(&dir, &config);
    let (results, requests) = run_checks(
        &python,
        include_str!("modbus/epever_tracer.py"),
        &[
            link_of(&run, "charger").to_str().unwrap(),
            &NOON.to_string(),
            &before.to_string(),
            common::bin(),
            dir.join("run/control.sock").to_str().unwrap(),
        ],
    );
    assert_passed(
        &results,
        &[
            "PV W = V x A",
            "battery and load consistent, SOC 0-100",
            "RTC is the simulated clock",
            "FC 16 of twelve set-points at 0x9003 reads back",
            "other getters",
            "function codes EPEVER does not list answer 01",
            "set_rtc moves the RTC",
            "ctl set irradiance 0 makes it night",
        ],
        &run,
    );
    stop(run);
    assert_one_request_per_call(&requests, 0, &dir.join("charger.jsonl"));
}

#[test]
fn a_bus_of_units_with_different_factory_lines_needs_a_line() {
    let dir = work_dir("modbus-lines");
    let bus = "[[device]]\nname = 'bus'\nmodel = 'modbus'\nlink = '@DIR@/ttyUSB-bus'\n\
               [[device.modbus.unit]]\nid = 1\ndevice = 'sdm630'\n\
               [[device.modbus.unit]]\nid = 2\ndevice = 'sdm630'\n\
               [[device.modbus.unit]]\nid = 7\ndevice = 'tracer'\n";
    let bus = bus.replace("@DIR@", dir.to_str().unwrap());
    let config = write_config(&dir, "bus.toml", &bus);
    let out = run_to_end(&dir, &["check", config.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{out:?}");
    // `device = 'tracer'` is on line 13, its value from column 10.
    let at = format!("{}:13:10: ", config.display());
    assert!(
        stderr.contains(&format!(
            "{at}unit 7 is a `tracer` (115200 8N1) but unit 1 is a `sdm630` (9600 8N1)"
        )),
        "{stderr}"
    );
    // `run` refuses it the same way, before any port appears.
    let out = run_to_end(&dir, &["run", config.to_str().unwrap()]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains(&at));

    // Saying which line the wire has settles it; two meters alone agree on theirs.
    let settled = write_config(
        &dir,
        "settled.toml",
        &format!("{bus}[device.line]\nbaud = 9600\n"),
    );
    let out = run_to_end(&dir, &["check", settled.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let meters = bus.split("[[device.modbus.unit]]\nid = 7").next().unwrap();
    let meters = write_config(&dir, "meters.toml", meters);
    let out = run_to_end(&dir, &["check", meters.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn the_meters_example_checks() {
    let dir = work_dir("modbus-meters-example");
    let example = common::workspace().join("examples/meters.toml");
    let out = run_to_end(&dir, &["check", example.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    // Without its `[device.line]`, the shared line's conflict is found.
    let text = std::fs::read_to_string(&example)
        .unwrap()
        .replace("[device.line]\nbaud = 2400\nformat = \"8N1\"\n", "");
    let config = write_config(&dir, "meters.toml", &text);
    let out = run_to_end(&dir, &["check", config.to_str().unwrap()]);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unit 10 is a `tracer`"),
        "{out:?}"
    );
}
