//! `serialtwin ctl` always gets an answer: on an unplugged port, during a long delay, during a
//! paced reply, on a port whose client does not read, and for every port at once. What takes
//! effect is proven by order (a value set while unplugged shows in the first answer after),
//! never by timing.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::bare::bare_open;
use common::{PATIENCE, Running, bin, start, work_dir, write_config};

/// `QPI` and `QPIWS` with their CRCs, and the answer to `QPI`.
const QPI: &[u8] = b"QPI\xbe\xac\r";
const QPI_REPLY: &[u8] = b"(PI30\x9a\x0b\r";
const QPIWS: &[u8] = b"QPIWS\xb4\xda\r";
const QPIGS: &[u8] = b"QPIGS\xb7\xa9\r";
const QMOD: &[u8] = b"QMOD\x49\xc1\r";

/// `serialtwin ctl --socket <socket> <args>`: whether it succeeded, and what it printed. A ctl
/// that does not finish in time fails the test (instead of hanging it).
fn ctl(socket: &Path, args: &[&str]) -> (bool, String) {
    let out = common::output_within(
        Command::new(bin())
            .arg("ctl")
            .arg("--socket")
            .arg(socket)
            .args(args),
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn ok(socket: &Path, args: &[&str]) {
    let (ok, text) = ctl(socket, args);
    assert!(ok, "`ctl {}`: {text}", args.join(" "));
}

fn refused(socket: &Path, args: &[&str], reason: &str) {
    let (ok, text) = ctl(socket, args);
    assert!(
        !ok && text.contains(reason),
        "`ctl {}` should fail with {reason:?}: {text}",
        args.join(" ")
    );
}

/// A PI30 `inv`, a scripted `big` that answers `BIG` with 2,000 bytes at full speed, and a
/// scripted `small`.
fn fleet(tag: &str) -> (common::scratch::Scratch, PathBuf, Running) {
    let dir = work_dir(tag);
    let socket = dir.join("run/control.sock");
    let big = "B".repeat(2000);
    let config = write_config(
        &dir,
        "fleet.toml",
        &format!(
            r#"
[[device]]
name = "inv"
model = "pi30"
link = "{dir}/ttyUSB0"

[[device]]
name = "big"
model = "scripted"
link = "{dir}/ttyUSB1"
framing = "cr"
[device.script]
rule = [{{ request = "BIG", reply = "{big}" }}]

[[device]]
name = "small"
model = "scripted"
link = "{dir}/ttyUSB2"
framing = "cr"
[device.script]
rule = [{{ request = "PING", reply = "PONG" }}]
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
    (dir, socket, run)
}

/// Read until `\r`.
fn read_reply(file: &mut std::fs::File) -> Vec<u8> {
    let deadline = Instant::now() + PATIENCE;
    let mut got = Vec::new();
    while got.last() != Some(&b'\r') {
        let mut b = [0u8; 1];
        match file.read(&mut b) {
            Ok(1) => got.push(b[0]),
            Ok(_) => panic!("end of input; got {got:?}"),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "no reply in time; got {got:?}");
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => panic!("read: {e}"),
        }
    }
    got
}

fn ask(path: &Path, request: &[u8]) -> Vec<u8> {
    let mut client = bare_open(path);
    client.write_all(request).unwrap();
    read_reply(&mut client)
}

/// Wait until `ctl list` shows `port` on a pty again and its link leads there.
fn wait_until_plugged(socket: &Path, port: &str, link: &Path) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (_, list) = ctl(socket, &["list"]);
        let entry = list
            .lines()
            .find(|l| l.starts_with(&format!("{port} ")))
            .unwrap_or_default()
            .to_owned();
        if entry.contains("/dev/pts/")
            && std::fs::read_link(link).is_ok_and(|p| entry.contains(&*p.to_string_lossy()))
        {
            return;
        }
        assert!(Instant::now() < deadline, "{port} not back: {list}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn every_command_answers_on_an_unplugged_port_and_takes_effect() {
    let (_dir, socket, run) = fleet("ctlunplugged");
    let links = run.links();
    ok(&socket, &["unplug", "inv", "1h"]);
    let (_, list) = ctl(&socket, &["list"]);
    assert!(list.contains("inv unplugged"), "{list}");
    // Everything answers while the port is out; values and faults take effect on the device.
    ok(&socket, &["set", "inv", "grid", "off"]);
    ok(&socket, &["fault", "inv", "drop", "next=5"]);
    ok(&socket, &["clear", "inv"]);
    refused(&socket, &["send", "inv", "HELLO"], "unplugged");
    refused(&socket, &["set", "inv", "soc", "lots"], "percentage");
    // Plugged back at once: the value set while unplugged shows in the first answer.
    ok(&socket, &["unplug", "inv", "0s"]);
    wait_until_plugged(&socket, "inv", &links[0]);
    let qpiws = ask(&links[0], QPIWS);
    assert_eq!(qpiws[1 + 5], b'1', "line fail after grid off: {qpiws:?}");
    // (The cleared drop fault dropped nothing.)
    assert_eq!(ask(&links[0], QPI), QPI_REPLY);
}

#[test]
fn a_delayed_reply_does_not_hold_control_and_clear_releases_it() {
    let (_dir, socket, run) = fleet("ctldelay");
    let links = run.links();
    ok(&socket, &["fault", "inv", "delay:3600000", "next=1"]);
    let mut client = bare_open(&links[0]);
    client.write_all(QPI).unwrap();
    // The answer is held for an hour; control is not.
    ok(&socket, &["set", "inv", "grid", "off"]);
    ok(&socket, &["fault", "inv", "corrupt", "next=1", "cmd=QMOD"]);
    // Clearing the faults lets the held answer go now.
    ok(&socket, &["clear", "inv"]);
    assert_eq!(read_reply(&mut client), QPI_REPLY);
}

#[test]
fn control_is_obeyed_in_the_middle_of_a_paced_reply() {
    let (_dir, socket, run) = fleet("ctlpaced");
    let links = run.links();
    let mut client = bare_open(&links[0]);
    // Twenty answers of 110 bytes at 2400 baud: nine seconds of output.
    client.write_all(&QPIGS.repeat(20)).unwrap();
    assert_eq!(read_reply(&mut client).len(), 110);
    ok(&socket, &["set", "inv", "grid", "off"]);
    ok(&socket, &["fault", "inv", "drop", "next=1", "cmd=QMOD"]);
    // Order: the commands were answered while most of the output was still to come.
    let mut rest = 0;
    while rest < 19 {
        assert_eq!(read_reply(&mut client).len(), 110);
        rest += 1;
    }
    drop(client);
    // The drop fault set mid-reply took effect: the next QMOD answer is lost, so the first
    // answer this client gets is the one to its QPI.
    let mut client = bare_open(&links[0]);
    client.write_all(QMOD).unwrap();
    client.write_all(QPI).unwrap();
    assert_eq!(read_reply(&mut client), QPI_REPLY);
}

#[test]
fn a_client_that_does_not_read_blocks_only_send() {
    let (_dir, socket, run) = fleet("ctlblocked");
    let links = run.links();
    let mut client = bare_open(&links[1]);
    // Requests whose answers nobody reads, until the line is full.
    client.write_all(&b"BIG\r".repeat(40)).unwrap();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (sent, text) = ctl(&socket, &["send", "big", "HELLO"]);
        if !sent {
            assert!(text.contains("port busy"), "{text}");
            break;
        }
        assert!(Instant::now() < deadline, "the line never filled");
    }
    // Every other command is obeyed, many at once too.
    ok(&socket, &["fault", "big", "drop", "next=1"]);
    ok(&socket, &["clear", "big"]);
    refused(&socket, &["set", "big", "x", "1"], "no state value");
    let socket_path = socket.clone();
    let many: Vec<_> = (0..40)
        .map(|i| {
            let socket = socket_path.clone();
            std::thread::spawn(move || {
                let args: &[&str] = if i % 2 == 0 {
                    &["clear", "big"]
                } else {
                    &["list"]
                };
                ctl(&socket, args)
            })
        })
        .collect();
    for t in many {
        let (done, text) = t.join().unwrap();
        assert!(done, "{text}");
    }
    // Once the client is gone, sending works again.
    drop(client);
    let deadline = Instant::now() + PATIENCE;
    while !ctl(&socket, &["send", "big", "HELLO"]).0 {
        assert!(
            Instant::now() < deadline,
            "still busy after the client left"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_command_for_every_port_reports_each_ports_failure() {
    let (_dir, socket, run) = fleet("ctlall");
    let links = run.links();
    ok(&socket, &["unplug", "inv", "1h"]);
    // The scripted devices have no `grid`; the unplugged inverter takes it.
    let (done, text) = ctl(&socket, &["set", "*", "grid", "off"]);
    assert!(!done, "{text}");
    assert!(text.contains("2 of 3 ports failed"), "{text}");
    assert!(
        text.contains("\"big\"") && text.contains("\"small\"") && !text.contains("\"inv\""),
        "{text}"
    );
    ok(&socket, &["unplug", "inv", "0s"]);
    wait_until_plugged(&socket, "inv", &links[0]);
    let qpiws = ask(&links[0], QPIWS);
    assert_eq!(qpiws[1 + 5], b'1', "line fail after grid off: {qpiws:?}");
}

#[test]
fn durations_are_bounded() {
    let (_dir, socket, _run) = fleet("ctlbounds");
    refused(&socket, &["unplug", "inv", "99999999999s"], "longer than");
    refused(
        &socket,
        &["unplug", "inv", "18446744073709551616ms"],
        "longer than",
    );
    refused(
        &socket,
        &["fault", "inv", "delay:99999999999999"],
        "longer than",
    );
    refused(
        &socket,
        &["fault", "inv", "unplug:18446744073709551616"],
        "bad duration",
    );
    ok(&socket, &["unplug", "inv", "1h"]);
}
