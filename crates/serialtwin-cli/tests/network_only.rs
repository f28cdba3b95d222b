//! Network-only devices: a `[[device]]` with no `link` and one raw endpoint (`tcp`, or
//! `rtu_tcp` for a Modbus line) is served on that address with no pty at all. The process
//! holds a pty only for the port that still has one; clients connect, are answered, leave
//! and come back; a second client is refused; an unplug refuses connections until the port
//! is back. pymodbus's RTU framer over TCP reads a Modbus bus served so.

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
    for (i, network_only) in [(0, true), (1, true), (2, false), (3, false)] {
        assert_eq!(
            run.ports[i]["pty"].is_null(),
            network_only,
            "{}",
            run.ports[i]
        );
    }
    // Two ports of four hold a pty: the bridged one (its endpoints need one) and the local.
    assert_eq!(ptys_of(run.pid()), 2);
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
