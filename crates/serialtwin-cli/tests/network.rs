//! Network endpoints (`[device.network]`) served by the real `serialtwin run`, driven by the
//! clients people use: pyserial 3.5's `socket://` and `rfc2217://`, minimalmodbus 2.1.1 given
//! an RFC 2217 port, pymodbus 3.16.1 on `socket://`, all from the pinned venv in one Python
//! process (`network/pyserial_endpoints.py`). Every endpoint binds port 0 on loopback, IPv4
//! and IPv6. What the device heard (settings with parity, DTR, RTS, break) is read from the
//! trace.
#![allow(missing_docs)]

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{start, work_dir, write_config};
use nix::sys::signal::Signal;

const SCRIPT: &str = include_str!("network/pyserial_endpoints.py");

/// Safety net for the Python process, never a timing assertion.
const PYTHON_PATIENCE: Duration = Duration::from_mins(3);

fn config(dir: &std::path::Path) -> std::path::PathBuf {
    write_config(
        dir,
        "network.toml",
        &format!(
            r#"
[[device]]
name = "inv"
model = "pi30"
link = "{dir}/ttyUSB-inv"

[device.network]
tcp = "127.0.0.1:0"
rfc2217 = "[::1]:0"

[[device]]
name = "bus"
model = "modbus"
link = "{dir}/ttyUSB-bus"

[device.network]
tcp = "0"
rfc2217 = "127.0.0.1:0"

[[device.modbus.unit]]
id = 1

[[device.modbus.unit.coil]]
address = 0
value = false

{holding}
[[device]]
name = "local"
model = "pi30"
link = "{dir}/ttyUSB-local"
"#,
            dir = dir.display(),
            holding = [10, 11, 12, 13, 20, 21, 22, 23]
                .map(|a| format!("[[device.modbus.unit.holding]]\naddress = {a}\n"))
                .concat(),
        ),
    )
}

#[test]
fn pyserial_minimalmodbus_and_pymodbus_through_raw_tcp_and_rfc2217() {
    let dir = work_dir("network");
    let socket = dir.join("run/control.sock");
    let config = config(&dir);
    let run = start(
        &dir,
        &[
            config.to_str().unwrap(),
            "--trace",
            "--control",
            socket.to_str().unwrap(),
        ],
    );
    let endpoint = |port: usize, kind: &str| {
        run.ports[port][kind]
            .as_str()
            .unwrap_or_else(|| panic!("port {port} has no {kind} endpoint: {:?}", run.ports[port]))
            .to_owned()
    };
    assert!(endpoint(0, "tcp").starts_with("127.0.0.1:"));
    assert!(endpoint(0, "rfc2217").starts_with("[::1]:"));
    assert!(
        endpoint(1, "tcp").starts_with("127.0.0.1:"),
        "a bare port is on loopback"
    );
    assert!(
        run.ports[2].get("tcp").is_none(),
        "a port without [device.network] has none"
    );

    let out = common::output_within_for(
        Command::new(common::venv().join("bin/python"))
            .arg("-c")
            .arg(SCRIPT)
            .args([
                common::bin(),
                socket.to_str().unwrap(),
                &endpoint(0, "tcp"),
                &endpoint(0, "rfc2217"),
                &endpoint(1, "tcp"),
                &endpoint(1, "rfc2217"),
                "inv",
            ])
            .stderr(Stdio::piped()),
        PYTHON_PATIENCE,
    );
    common::python_checks(&out, "pyserial_endpoints.py", 9, &run.stderr());

    // `ctl line` on a port no network endpoint serves: refused, with the reason.
    let (ok, said) = common::ctl(&socket, &["line", "local", "cts", "on"]);
    assert!(!ok && said.contains("no network endpoint"), "{said}");

    // What the device heard, in order, from the trace: the RFC 2217 client's settings (with
    // the parity a pty cannot carry), its DTR and RTS, its break.
    let trace = run.stderr();
    let events: Vec<&str> = trace
        .lines()
        .filter(|l| l.contains(" inv -- "))
        .filter_map(|l| l.split(" inv -- ").nth(1))
        .collect();
    let wanted = [
        "settings 2400 8E1",
        "dtr off",
        "rts off",
        "break on",
        "break off",
        "rts on",
        "settings 2400 8N1",
        "dtr on",
    ];
    let mut from = 0;
    for want in wanted {
        match events[from..].iter().position(|e| *e == want) {
            Some(i) => from += i + 1,
            None => panic!("the device did not hear {want:?} in order; it heard {events:#?}"),
        }
    }
    assert!(
        events.contains(&"settings 9600 8N1"),
        "the baud change: {events:#?}"
    );
    let (status, _) = run.stop_with(Signal::SIGTERM);
    assert!(status.success());
}
