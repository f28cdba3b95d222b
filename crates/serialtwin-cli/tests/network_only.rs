//! Network-only devices: a `[[device]]` with no `link` holds no pty. With one raw endpoint
//! (`tcp`, or `rtu_tcp` for a Modbus line) it is served on that address itself: clients
//! connect, are answered, leave and come back; a second client is refused; an unplug refuses
//! connections until the port is back. pymodbus's RTU framer over TCP reads a Modbus bus
//! served so. With endpoints that speak a protocol (RFC 2217, Modbus TCP) or several, each
//! endpoint reaches the device inside the process: pyserial's `rfc2217://` with its modem
//! lines, pymodbus's Modbus TCP gateway and raw TCP all work with no pty, and an unplug
//! drops their clients until the port is back. The process holds a pty only for the port
//! that has a link.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{ctl, start, work_dir, write_config};

/// Safety net for anything waited for here, never a timing assertion.
const PATIENCE: Duration = Duration::from_secs(10);

const QPI: &[u8] = b"QPI\xbe\xac\r";
const QPI_REPLY: &[u8] = b"(PI30\x9a\x0b\r";

/// Connect to `addr`, ask `request`, and read until `reply` has arrived.
fn ask(stream: &mut TcpStream, request: &[u8], reply: &[u8]) {
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream.write_all(request).unwrap();
    let mut got = Vec::new();
    let mut buf = [0_u8; 256];
    while !got.ends_with(reply) {
        let n = stream
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("{e}; got {got:?}"));
        assert!(n > 0, "closed; got {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
}

/// Everything until the server closes the connection.
fn until_closed(stream: &mut TcpStream) -> Vec<u8> {
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut all = Vec::new();
    let _ = stream.read_to_end(&mut all);
    all
}

/// How many ptys the process holds (its open `/dev/ptmx` masters).
fn ptys_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.as_os_str() == "/dev/ptmx")
        .count()
}

#[test]
fn a_device_with_one_raw_endpoint_and_no_link_is_served_without_a_pty() {
    let dir = work_dir("netonly");
    let socket = dir.join("run/control.sock");
    let config = write_config(
        &dir,
        "fleet.toml",
        &format!(
            r#"
[[device]]
name = "inv"
model = "pi30"
[device.network]
tcp = "127.0.0.1:0"

[[device]]
name = "bus"
model = "modbus"
[device.network]
rtu_tcp = "0"
[[device.modbus.unit]]
id = 1
[[device.modbus.unit.holding]]
address = 0
value = 4711

[[device]]
name = "bridged"
model = "pi30"
[device.network]
tcp = "127.0.0.1:0"
rfc2217 = "127.0.0.1:0"

[[device]]
name = "local"
model = "pi30"
link = "{dir}/ttyUSB-local"
"#,
            dir = dir.display()
        ),
    );
    let run = start(
        &dir,
        &[
            config.to_str().unwrap(),
            "--control",
            socket.to_str().unwrap(),
        ],
    );
    for (i, network_only) in [(0, true), (1, true), (2, true), (3, false)] {
        assert_eq!(
            run.ports[i]["pty"].is_null(),
            network_only,
            "{}",
            run.ports[i]
        );
    }
    // One port of four holds a pty: the local one (the bridged one's endpoints reach it
    // inside the process).
    assert_eq!(ptys_of(run.pid()), 1);
    let inv: SocketAddr = run.ports[0]["tcp"].as_str().unwrap().parse().unwrap();
    let bus: SocketAddr = run.ports[1]["rtu_tcp"].as_str().unwrap().parse().unwrap();
    let (ok, list) = ctl(&socket, &["list"]);
    assert!(ok && list.contains(&format!("inv tcp:{inv} -")), "{list}");

    // A client, a second one refused, the first again; then leaving and coming back at once.
    let mut first = TcpStream::connect(inv).unwrap();
    ask(&mut first, QPI, QPI_REPLY);
    let mut second = TcpStream::connect(inv).unwrap();
    assert_eq!(until_closed(&mut second), b"Port already in use\r\n");
    ask(&mut first, QPI, QPI_REPLY);
    drop(first);
    let mut again = TcpStream::connect(inv).unwrap();
    ask(&mut again, QPI, QPI_REPLY);

    // Unplugged: the connection drops, and the address refuses until the port is back.
    let (ok, said) = ctl(&socket, &["unplug", "inv", "1s"]);
    assert!(ok, "{said}");
    assert_eq!(until_closed(&mut again), b"");
    let refused = TcpStream::connect(inv).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    let deadline = Instant::now() + PATIENCE;
    let mut back = loop {
        match TcpStream::connect(inv) {
            Ok(stream) => break stream,
            Err(e) => assert!(Instant::now() < deadline, "not back: {e}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    ask(&mut back, QPI, QPI_REPLY);

    // pymodbus's RTU framer over TCP against the Modbus bus.
    let out = common::output_within(
        Command::new(common::venv().join("bin/python"))
            .args([
                "-c",
                "import sys\n\
                 from pymodbus import FramerType\n\
                 from pymodbus.client import ModbusTcpClient\n\
                 c = ModbusTcpClient('127.0.0.1', port=int(sys.argv[1]), framer=FramerType.RTU, timeout=5, retries=0)\n\
                 assert c.connect()\n\
                 print(c.read_holding_registers(0, count=1, device_id=1).registers)\n",
                &bus.port().to_string(),
            ])
            .stderr(Stdio::piped()),
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "[4711]",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// pyserial over RFC 2217 and raw TCP, and pymodbus over Modbus TCP, against devices that
/// only their endpoints reach: each check is one line of JSON from the script.
const IN_PROCESS_CLIENTS: &str = r#"
import json, sys, time
import serial
from pymodbus.client import ModbusTcpClient

rfc, raw, gateway = sys.argv[1], sys.argv[2], int(sys.argv[3])
checks = []
def check(name, ok, detail=""):
    checks.append({"name": name, "ok": bool(ok), "detail": str(detail)})

s = serial.serial_for_url(f"rfc2217://{rfc}", baudrate=2400, timeout=5)
s.write(b"QPI\xbe\xac\r")
check("rfc2217 answered", s.read_until(b"\r") == b"(PI30\x9a\x0b\r")
check("modem lines at power-on", (s.cts, s.dsr, s.cd, s.ri) == (True, True, True, False),
      (s.cts, s.dsr, s.cd, s.ri))
print("ready", flush=True)
# The test drops CTS with `ctl line`, then answers on stdin.
sys.stdin.readline()
deadline = time.monotonic() + 5
while s.cts and time.monotonic() < deadline:
    time.sleep(0.02)
check("ctl line reaches the client", not s.cts)
s.close()

t = serial.serial_for_url(f"socket://{raw}", timeout=5)
t.write(b"QPI\xbe\xac\r")
check("raw tcp answered", t.read_until(b"\r") == b"(PI30\x9a\x0b\r")
t.close()

c = ModbusTcpClient("127.0.0.1", port=gateway, timeout=5, retries=0)
check("modbus tcp connects", c.connect())
r = c.read_holding_registers(0, count=1, device_id=1)
check("unit 1 answers through the gateway", not r.isError() and r.registers == [4711], r)
r = c.read_holding_registers(0, count=1, device_id=2)
check("an absent unit is 0x0B", r.isError() and r.exception_code == 0x0B, r)
c.close()
print(json.dumps(checks))
"#;

/// Run [`IN_PROCESS_CLIENTS`] against `inv` (`rfc`, `raw`) and `bus` (`gateway`), dropping
/// `inv`'s CTS with `ctl line` while pyserial holds the RFC 2217 connection.
fn in_process_clients(
    run: &common::Running,
    socket: &std::path::Path,
    rfc: &str,
    raw: &str,
    gateway: SocketAddr,
) {
    let mut python = Command::new(common::venv().join("bin/python"))
        .args([
            "-c",
            IN_PROCESS_CLIENTS,
            rfc,
            raw,
            &gateway.port().to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = python.stdin.take().unwrap();
    let stdout = python.stdout.take().unwrap();
    let (lines, got) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
            let _ = lines.send(line.unwrap_or_default());
        }
    });
    let first = got.recv_timeout(PATIENCE);
    let stop_python = |mut python: std::process::Child| {
        let _ = python.kill();
        python.wait_with_output().unwrap()
    };
    if first.as_deref() != Ok("ready") {
        let out = stop_python(python);
        panic!(
            "python not ready: {first:?}\n{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            run.stderr()
        );
    }
    let (ok, said) = ctl(socket, &["line", "inv", "cts", "off"]);
    assert!(ok, "{said}");
    stdin.write_all(b"go\n").unwrap();
    let verdict = got.recv_timeout(PATIENCE * 2).unwrap_or_default();
    let mut out = stop_python(python);
    out.stdout = verdict.into_bytes();
    common::python_checks(&out, "in-process endpoints", 7, &run.stderr());
}

#[test]
fn endpoints_reach_a_device_without_a_link_inside_the_process() {
    let dir = work_dir("netonly-inprocess");
    let socket = dir.join("run/control.sock");
    let config = write_config(
        &dir,
        "fleet.toml",
        r#"
[[device]]
name = "inv"
model = "pi30"
[device.network]
tcp = "127.0.0.1:0"
rfc2217 = "127.0.0.1:0"

[[device]]
name = "bus"
model = "modbus"
[device.network]
modbus_tcp = "127.0.0.1:0"
[[device.modbus.unit]]
id = 1
[[device.modbus.unit.holding]]
address = 0
value = 4711
"#,
    );
    let run = start(
        &dir,
        &[
            config.to_str().unwrap(),
            "--control",
            socket.to_str().unwrap(),
        ],
    );
    assert!(
        run.ports.iter().all(|p| p["pty"].is_null()),
        "{:?}",
        run.ports
    );
    assert_eq!(ptys_of(run.pid()), 0);
    let (ok, list) = ctl(&socket, &["list"]);
    assert!(
        ok && list.contains("inv in-process -") && list.contains("bus in-process -"),
        "{list}"
    );
    let rfc = run.ports[0]["rfc2217"].as_str().unwrap().to_owned();
    let raw = run.ports[0]["tcp"].as_str().unwrap().to_owned();
    let gateway: SocketAddr = run.ports[1]["modbus_tcp"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    in_process_clients(&run, &socket, &rfc, &raw, gateway);

    // One client at a time across the endpoints, as on a serial line: while a raw client has
    // the line, an RFC 2217 client is hung up on, and the first goes on being answered.
    let raw_addr: SocketAddr = raw.parse().unwrap();
    let mut holder = TcpStream::connect(raw_addr).unwrap();
    ask(&mut holder, QPI, QPI_REPLY);
    let mut other = TcpStream::connect(rfc.parse::<SocketAddr>().unwrap()).unwrap();
    other.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut said = Vec::new();
    let closed = other.read_to_end(&mut said);
    assert!(closed.is_ok(), "not hung up on: {closed:?}, {said:?}");
    ask(&mut holder, QPI, QPI_REPLY);
    drop(holder);

    // Unplugged: a client's connection drops, and the endpoint closes new ones at once
    // until the port is back.
    let mut client = TcpStream::connect(raw.parse::<SocketAddr>().unwrap()).unwrap();
    ask(&mut client, QPI, QPI_REPLY);
    let (ok, said) = ctl(&socket, &["unplug", "inv", "1s"]);
    assert!(ok, "{said}");
    assert_eq!(until_closed(&mut client), b"");
    let deadline = Instant::now() + PATIENCE;
    loop {
        let mut again = TcpStream::connect(raw.parse::<SocketAddr>().unwrap()).unwrap();
        again.write_all(QPI).unwrap();
        again.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut got = Vec::new();
        let mut buf = [0_u8; 64];
        while !got.ends_with(QPI_REPLY) {
            match again.read(&mut buf) {
                Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
                _ => break,
            }
        }
        if got.ends_with(QPI_REPLY) {
            break;
        }
        assert!(got.is_empty(), "{got:?}");
        assert!(Instant::now() < deadline, "not back");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(ptys_of(run.pid()), 0);
}
