//! pyvisa-sim `TCPIP::host::port::SOCKET` resources served on raw TCP by the real
//! `serialtwin`, compared with pyvisa-sim 0.7.1 itself: the same resource name opened on
//! `FILE@sim` and on `@py` (pyvisa-py connecting to the endpoint) gets byte-identical replies
//! (pyvisa 1.16, pyvisa-py 0.8, pinned in their venv). One resource is network-only (no
//! link), the other also has a pty and writes its address in `[device.network]`. The
//! README's command reaches the first.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{ctl, leftovers, start_config, work_dir, write_config};
use nix::sys::signal::Signal;

/// The whole pyvisa script's safety net (it takes seconds; the venv is made before).
const PYTHON_PATIENCE: Duration = Duration::from_mins(3);

/// Two ports free now: bound on port 0, read, closed.
fn free_ports() -> (u16, u16) {
    let a = TcpListener::bind("127.0.0.1:0").unwrap();
    let b = TcpListener::bind("127.0.0.1:0").unwrap();
    (
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
    )
}

/// Two devices, each with a dialogue the other lacks. `lsg` has a `TCPIP SOCKET` eom unlike
/// its `ASRL INSTR` one, a `,` delimiter, an error response, a status register and an error
/// queue; `other` has no eom (LF both ways) and no error (silence).
fn yaml(lsg: u16, other: u16) -> String {
    format!(
        r#"spec: "1.1"
devices:
  lsg:
    eom:
      ASRL INSTR: {{q: "\r\n", r: "\n"}}
      TCPIP SOCKET: {{q: "\n", r: "\r\n"}}
    delimiter: ","
    error:
      response: {{command_error: "ERROR"}}
      status_register:
        - {{q: "*ESR?", command_error: 32, query_error: 4}}
      error_queue:
        - {{q: ":SYST:ERR?", default: "0, No Error", command_error: "1, Command error"}}
    dialogues:
      - {{q: "?IDN", r: "LSG Serial #1234"}}
      - {{q: "!CAL", r: "OK"}}
      - {{q: "*RST"}}
  other:
    dialogues:
      - {{q: "*IDN?", r: "OTHER,SOCKET,2"}}
      - {{q: "*CLS"}}
resources:
  ASRL1::INSTR: {{device: lsg}}
  TCPIP::localhost::{lsg}::SOCKET: {{device: lsg}}
  TCPIP0::127.0.0.1::{other}::SOCKET: {{device: other}}
"#
    )
}

#[test]
fn pyvisa_sim_and_the_endpoint_answer_the_same_bytes() {
    let python = common::python::venv_of("tests/python/pyvisa-sim.txt", "pyenv-pyvisa-sim")
        .join("bin/python");
    let dir = work_dir("pyvisa-sim-socket");
    let (lsg, other) = free_ports();
    let yaml_path = dir.join("sim.yaml");
    std::fs::write(&yaml_path, yaml(lsg, other)).unwrap();
    let lsg_resource = format!("TCPIP::localhost::{lsg}::SOCKET");
    let other_resource = format!("TCPIP0::127.0.0.1::{other}::SOCKET");
    let config = write_config(
        &dir,
        "sim.toml",
        &format!(
            "[[device]]\nname = \"lsg-net\"\nmodel = \"pyvisa-sim\"\n\
             [device.pyvisa-sim]\nfile = \"sim.yaml\"\nresource = {lsg_resource:?}\n\n\
             [[device]]\nname = \"other\"\nmodel = \"pyvisa-sim\"\nlink = \"{}/ttyUSB-other\"\n\
             [device.pyvisa-sim]\nfile = \"sim.yaml\"\nresource = {other_resource:?}\n\
             [device.network]\ntcp = \"{other}\"\nrfc2217 = \"127.0.0.1:0\"\n",
            dir.display()
        ),
    );
    let (run, socket) = start_config(&dir, &config);
    // Readiness shows each at its resource's address: the first with no pty at all.
    let lsg_addr: SocketAddr = format!("127.0.0.1:{lsg}").parse().unwrap();
    let other_addr: SocketAddr = format!("127.0.0.1:{other}").parse().unwrap();
    assert_eq!(run.ports[0]["name"], "lsg-net");
    assert_eq!(run.ports[0]["tcp"], lsg_addr.to_string(), "{:?}", run.ports);
    assert!(run.ports[0]["pty"].is_null() && run.ports[0]["link"].is_null());
    assert_eq!(
        run.ports[1]["tcp"],
        other_addr.to_string(),
        "{:?}",
        run.ports
    );
    assert!(run.ports[1]["rfc2217"].is_string() && run.ports[1]["link"].is_string());
    let (ok, list) = ctl(&socket, &["list"]);
    assert!(
        ok && list.contains(&format!("lsg-net tcp:{lsg_addr} -")),
        "{list}"
    );
    // A port with a pty lists its pty and link, as every such port does (its endpoints are
    // in readiness, above).
    let other_link = run.ports[1]["link"].as_str().unwrap();
    let other_pty = run.ports[1]["pty"].as_str().unwrap();
    assert!(
        list.contains(&format!("other {other_pty} {other_link}")),
        "{list}"
    );

    // The ASRL comparison's script, each SOCKET resource opened by its own name on both
    // sides.
    let out = common::output_within_for(
        Command::new(&python)
            .arg("-c")
            .arg(include_str!("pyvisa_sim/compare.py"))
            .arg(format!("{}@sim", yaml_path.display()))
            .arg(&yaml_path)
            .arg(format!("{lsg_resource}={lsg_resource}"))
            .arg(format!("{other_resource}={other_resource}"))
            .stderr(Stdio::piped()),
        PYTHON_PATIENCE,
    );
    // The README's command, at this run's port.
    let readme = std::fs::read_to_string(common::workspace().join("README.md")).unwrap();
    let command = readme
        .lines()
        .find_map(|l| {
            l.strip_prefix("python3 -c '")
                .filter(|l| l.contains("10001::SOCKET"))
        })
        .and_then(|l| l.strip_suffix('\''))
        .expect("README gives a SOCKET command");
    let said = common::output_within_for(
        Command::new(&python)
            .arg("-c")
            .arg(command.replace("10001", &lsg.to_string()))
            .stderr(Stdio::piped()),
        PYTHON_PATIENCE,
    );
    assert_eq!(
        String::from_utf8_lossy(&said.stdout),
        "LSG Serial #1234\n",
        "{}",
        String::from_utf8_lossy(&said.stderr)
    );
    let stderr = run.stderr();
    let (status, extra) = run.stop_with(Signal::SIGTERM);
    // lsg: sentinel, 3 dialogues and their 3 lower-cased forms, 4 unknown forms, a delimited
    // pair, 4 requests each for its register and its queue: 20. other: sentinel, 2 + 2, 4, the
    // pair: 10.
    common::python_checks(&out, "pyvisa-sim against the endpoint", 30, &stderr);
    assert!(status.success() && extra.is_empty(), "{status:?} {extra:?}");
    let left: Vec<PathBuf> = leftovers(&dir)
        .into_iter()
        .filter(|p| *p != yaml_path)
        .collect();
    assert_eq!(left, Vec::<PathBuf>::new());
}
