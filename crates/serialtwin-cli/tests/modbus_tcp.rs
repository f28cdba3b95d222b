//! Modbus TCP and RTU-over-TCP endpoints (`modbus_tcp`, `rtu_tcp` in `[device.network]`)
//! served by the real `serialtwin run`: pymodbus 3.16.1's `ModbusTcpClient` (MBAP, and its
//! RTU framer) and its `ModbusSerialClient` on pyserial's `socket://`, from the pinned venv
//! (`network/modbus_tcp.py`), and mbpoll (libmodbus) with
//! `-m tcp`, installed from Debian if missing. A bus of two units stands behind a gateway; a
//! single device is addressed directly. Every endpoint binds port 0.
#![allow(missing_docs)]

mod common;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{output_within, start, work_dir, write_config};

const SCRIPT: &str = include_str!("network/modbus_tcp.py");

/// Safety net for the Python process, never a timing assertion.
const PYTHON_PATIENCE: Duration = Duration::from_mins(3);

/// Units 1 and 2 on one line behind a gateway (with a short gateway timeout), and one
/// device at address 5 addressed directly.
fn config(dir: &Path) -> PathBuf {
    let holding = |unit: u16| {
        (0..4_u16).fold(String::new(), |mut out, a| {
            let value = unit * 10 + a + 1;
            let _ = writeln!(
                out,
                "[[device.modbus.unit.holding]]\naddress = {a}\nvalue = {value}"
            );
            out
        })
    };
    write_config(
        dir,
        "modbus_tcp.toml",
        &format!(
            r#"
[[device]]
name = "bus"
model = "modbus"
link = "{dir}/ttyUSB-bus"

[device.network]
modbus_tcp = "127.0.0.1:0"
rtu_tcp = "[::1]:0"
gateway_timeout_ms = 300

[[device.modbus.unit]]
id = 1
{one}
[[device.modbus.unit]]
id = 2
{two}
[[device]]
name = "meter"
model = "modbus"
link = "{dir}/ttyUSB-meter"

[device.network]
modbus_tcp = "0"

[[device.modbus.unit]]
id = 5
{five}"#,
            dir = dir.display(),
            one = holding(1),
            two = holding(2),
            five = holding(5),
        ),
    )
}

#[test]
fn pymodbus_and_mbpoll_through_modbus_tcp_and_rtu_over_tcp() {
    let mbpoll = common::debian::ensure("mbpoll", "mbpoll");
    let dir = work_dir("modbustcp");
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
    let (bus_tcp, bus_rtu, meter_tcp) = (
        endpoint(0, "modbus_tcp"),
        endpoint(0, "rtu_tcp"),
        endpoint(1, "modbus_tcp"),
    );
    assert!(bus_rtu.starts_with("[::1]:"), "{bus_rtu}");
    assert!(
        meter_tcp.starts_with("127.0.0.1:"),
        "a bare port is on loopback"
    );

    let out = common::output_within_for(
        Command::new(common::venv().join("bin/python"))
            .arg("-c")
            .arg(SCRIPT)
            .args([&bus_tcp, &bus_rtu, &meter_tcp])
            .stderr(Stdio::piped()),
        PYTHON_PATIENCE,
    );
    common::python_checks(&out, "modbus_tcp.py", 9, &run.stderr());

    // mbpoll, libmodbus's master, as a user runs it against a Modbus TCP server: unit 2's
    // holding registers 1-2 (PDU 0-1, the second written 0xFFFF by pymodbus above), then an
    // absent unit.
    let (host, port) = bus_tcp.rsplit_once(':').unwrap();
    let poll = |unit: &str| {
        output_within(Command::new(&mbpoll).args([
            "-m", "tcp", "-p", port, "-a", unit, "-t", "4", "-r", "1", "-c", "2", "-o", "2", "-1",
            host,
        ]))
    };
    let read = poll("2");
    let stdout = String::from_utf8_lossy(&read.stdout);
    assert!(
        read.status.success()
            && stdout.contains("[1]: \t21")
            && stdout.contains("[2]: \t65535 (-1)"),
        "mbpoll -m tcp, unit 2:\n{stdout}\n{}\nserialtwin:\n{}",
        String::from_utf8_lossy(&read.stderr),
        run.stderr()
    );
    let absent = poll("9");
    let stderr = String::from_utf8_lossy(&absent.stderr);
    assert!(
        !absent.status.success() && stderr.contains("Target device failed to respond"),
        "mbpoll -m tcp, absent unit 9 (libmodbus words exception 0x0B so):\n{}\n{stderr}",
        String::from_utf8_lossy(&absent.stdout)
    );

    // The device heard the gateway's requests on its line, RTU-framed: unit 9's among them,
    // left unanswered.
    let trace = run.stderr();
    assert!(
        trace.contains("bus") && trace.lines().any(|l| l.contains("unit 9")),
        "the trace shows no request to unit 9:\n{trace}"
    );
}
