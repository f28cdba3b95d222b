//! The `serialtwin` command, run as a subprocess the way a user runs it, talked to by real
//! clients (pyserial, tokio-serial, mppsolar) through the links it makes.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use nix::sys::signal::Signal;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use common::{
    PATIENCE, ask, bin, leftovers, open_at, output_within, run_to_end, start, start_with_env,
    work_dir, write_config,
};

/// Open `path` as a Rust program would: tokio-serial at 2400 8N1.
fn open(path: &Path) -> tokio_serial::SerialStream {
    open_at(path, 2400)
}

/// Assert a clean stop: exit status 0, nothing more on stdout, every link gone.
fn assert_clean_stop(status: std::process::ExitStatus, extra: &[String], links: &[PathBuf]) {
    assert!(status.success(), "exit status {status}");
    assert!(extra.is_empty(), "stdout after readiness: {extra:?}");
    for link in links {
        assert!(
            std::fs::symlink_metadata(link).is_err(),
            "{} is still there",
            link.display()
        );
    }
}

/// The shipped example, with its link moved into `dir`.
fn qpgs_example(dir: &Path) -> (PathBuf, PathBuf) {
    let example = common::workspace().join("examples/qpgs.toml");
    let text = std::fs::read_to_string(example).unwrap();
    let link = dir.join("ttyUSB0");
    let text = text.replace("/tmp/serialtwin/ttyUSB0", link.to_str().unwrap());
    (write_config(dir, "qpgs.toml", &text), link)
}

#[test]
fn the_original_use_case_with_pyserial() {
    let dir = work_dir("qpgs");
    let (config, link) = qpgs_example(&dir);
    let run = start(&dir, &[config.to_str().unwrap(), "--trace"]);
    assert_eq!(run.ports.len(), 1);
    assert_eq!(run.ports[0]["name"], "qpgs");
    assert_eq!(run.ports[0]["model"], "scripted");
    assert_eq!(run.ports[0]["link"], link.to_str().unwrap());
    assert!(
        run.ports[0]["pty"]
            .as_str()
            .unwrap()
            .starts_with("/dev/pts/")
    );

    let script = r"
import sys
from serial import Serial
s = Serial(sys.argv[1], 2400, timeout=1)
s.write(b'test2\r\n')
print(repr(s.readline()))
s.write(b'QPGS\r\n')
print(repr(s.readline()))
s.close()
";
    let out = common::python(script, &[link.to_str().unwrap()]);
    assert_eq!(out, "b'I dont understand\\r\\n'\nb'correct result\\r\\n'\n");

    let stderr_path = run.stderr_path.clone();
    let (status, extra) = run.stop_with(Signal::SIGINT);
    assert_clean_stop(status, &extra, &[link]);
    // The trace saw the line: opened, settings, both requests and replies.
    let trace = std::fs::read_to_string(stderr_path).unwrap();
    for needle in [
        " qpgs -- open",
        " qpgs -- settings 2400 8N1",
        r#" qpgs rx "test2""#,
        r#" qpgs tx "I dont understand\r\n""#,
        r#" qpgs rx "QPGS""#,
        r#" qpgs tx "correct result\r\n""#,
    ] {
        assert!(trace.contains(needle), "trace lacks {needle:?}:\n{trace}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_copies_all_answer() {
    let dir = work_dir("fifty");
    let config = write_config(
        &dir,
        "fifty.toml",
        &format!(
            r#"
[[device]]
name = "echo{{n}}"
model = "scripted"
link = "{}/ttyUSB{{n}}"
count = 50

[device.script]
default = "?"
rule = [{{ regex = 'PING (\d+)', reply = "PONG {{1}}" }}]
"#,
            dir.display()
        ),
    );
    // -v: debug logs, all on stderr; stdout stays JSON only.
    let run = start(&dir, &[config.to_str().unwrap(), "-v"]);
    assert_eq!(run.ports.len(), 50);
    let links = run.links();
    for (i, (port, link)) in run.ports.iter().zip(&links).enumerate() {
        assert_eq!(port["name"], format!("echo{i}"));
        assert_eq!(link, &dir.join(format!("ttyUSB{i}")));
    }
    let mut clients: Vec<_> = links.iter().map(|l| open(l)).collect();
    for (i, client) in clients.iter_mut().enumerate() {
        let reply = ask(client, format!("PING {i}\r\n").as_bytes(), b'\n').await;
        assert_eq!(reply, format!("PONG {i}\r\n").as_bytes());
    }
    drop(clients);
    let (status, extra) = run.stop_with(Signal::SIGINT);
    assert_clean_stop(status, &extra, &links);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pi30_and_scripted_side_by_side_stop_on_sigterm() {
    let dir = work_dir("mixed");
    let config = write_config(
        &dir,
        "mixed.toml",
        &format!(
            r#"
[[device]]
model = "pi30"
link = "{dir}/ttyUSB0"
[device.pi30]
serial = "12345678901234"

[[device]]
model = "scripted"
link = "{dir}/ttyUSB-meter"
framing = "cr"
mode = "0640"
[device.script]
state = {{ volts = "0.000" }}
[[device.script.rule]]
regex = 'VOLT (?<v>\d+\.\d{{3}})'
set = {{ volts = "{{v}}" }}
reply = "OK"
[[device.script.rule]]
request = "VOLT?"
reply = "{{volts}}"
"#,
            dir = dir.display()
        ),
    );
    let run = start(&dir, &[config.to_str().unwrap()]);
    assert_eq!(
        run.ports[0]["name"], "ttyUSB0",
        "name defaults to the link's file name"
    );
    assert_eq!(run.ports[0]["model"], "pi30");
    assert_eq!(run.ports[1]["model"], "scripted");
    let links = run.links();
    let meter_pty = run.ports[1]["pty"].as_str().unwrap();
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(meter_pty).unwrap().permissions(),
    );
    assert_eq!(mode & 0o7777, 0o640, "the pty has the configured mode");

    // The inverter, in its own framing (CR, CRC; a command typed without CRC is accepted).
    let mut inverter = open(&links[0]);
    let reply = ask(&mut inverter, b"QID\r", b'\r').await;
    assert!(
        reply.starts_with(b"(12345678901234"),
        "{:?}",
        String::from_utf8_lossy(&reply)
    );

    // The meter: a setter and a getter, CR framing.
    let mut meter = open(&links[1]);
    assert_eq!(ask(&mut meter, b"VOLT?\r", b'\r').await, b"0.000\r");
    assert_eq!(ask(&mut meter, b"VOLT 1.250\r", b'\r').await, b"OK\r");
    assert_eq!(ask(&mut meter, b"VOLT?\r", b'\r').await, b"1.250\r");
    drop((inverter, meter));

    let (status, extra) = run.stop_with(Signal::SIGTERM);
    assert_clean_stop(status, &extra, &links);
}

#[test]
fn the_default_inverter_answers_mppsolar() {
    // The default config, its link (and control socket) in a temp directory of this test's own:
    // a user's `serialtwin run` may hold `/tmp/serialtwin/ttyUSB0` meanwhile.
    let dir = work_dir("default");
    let link = dir.join("serialtwin/ttyUSB0");
    let link = link.as_path();
    let run = start_with_env(&dir, &[], &[("TMPDIR", &dir)]);
    assert!(
        run.ports.len() == 1 && run.ports[0]["link"] == link.to_str().unwrap(),
        "{:?}\n{}",
        run.ports,
        run.stderr()
    );
    assert_eq!(run.ports[0]["model"], "pi30");
    // mppsolar as a user runs it: no --porttype, the link's path alone makes it serial.
    let out = std::process::Command::new(common::venv().join("bin/mppsolar"))
        .args([
            "-p",
            link.to_str().unwrap(),
            "-P",
            "PI30",
            "-o",
            "json",
            "-c",
            "QID",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(r#""serial_number": "92932004102453""#),
        "mppsolar said:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (status, extra) = run.stop_with(Signal::SIGINT);
    assert_clean_stop(status, &extra, &[link.to_owned()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_hex_shows_every_byte() {
    let dir = work_dir("hex");
    let config = write_config(
        &dir,
        "hex.toml",
        &format!(
            "[[device]]\nname = 'bin'\nmodel = 'scripted'\nlink = '{}/ttyUSB0'\n\n\
             [device.script]\nrule = [{{ request = 'GO', reply = {{ hex = '00 ff 0d 0a', raw = true }} }}]\n",
            dir.display()
        ),
    );
    let run = start(&dir, &[config.to_str().unwrap(), "--trace=hex"]);
    let links = run.links();
    let mut client = open(&links[0]);
    assert_eq!(ask(&mut client, b"GO\r\n", b'\n').await, b"\x00\xff\r\n");
    drop(client);
    let stderr_path = run.stderr_path.clone();
    let (status, extra) = run.stop_with(Signal::SIGINT);
    assert_clean_stop(status, &extra, &links);
    // Every trace line is written by the time it exits.
    let stderr = std::fs::read_to_string(stderr_path).unwrap();
    assert!(stderr.contains(" bin rx 47 4f\n"), "{stderr}");
    assert!(stderr.contains(" bin tx 00 ff 0d 0a\n"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_describes_modbus_frames() {
    let dir = work_dir("modbus-trace");
    // Holding registers 0x006B-0x006D (APP §6.3's example: 0x022B 0x0000 0x0064).
    let config = write_config(
        &dir,
        "modbus.toml",
        &format!(
            "[[device]]\nname = 'bus'\nmodel = 'modbus'\nlink = '{}/ttyUSB0'\n\n\
             [[device.modbus.unit]]\nid = 1\n\n\
             [[device.modbus.unit.holding]]\naddress = 0x6B\nvalue = 0x022B\n\n\
             [[device.modbus.unit.holding]]\naddress = 0x6C\nvalue = 0\n\n\
             [[device.modbus.unit.holding]]\naddress = 0x6D\nvalue = 0x64\n",
            dir.display()
        ),
    );
    let run = start(&dir, &[config.to_str().unwrap(), "--trace=hex"]);
    let links = run.links();
    let mut client = open_at(&links[0], 19_200);
    // Read holding 0x006B x3 (modbus.md §1), then one register nobody declared.
    for (request, reply) in [
        (
            &b"\x01\x03\x00\x6B\x00\x03\x74\x17"[..],
            &b"\x01\x03\x06\x02\x2B\x00\x00\x00\x64\x05\x7A"[..],
        ),
        (
            &b"\x01\x03\x01\x00\x00\x01\x85\xF6"[..],
            &b"\x01\x83\x02\xC0\xF1"[..],
        ),
    ] {
        client.write_all(request).await.unwrap();
        let mut got = vec![0; reply.len()];
        tokio::time::timeout(PATIENCE, client.read_exact(&mut got))
            .await
            .expect("a reply in time")
            .unwrap();
        assert_eq!(got, reply);
    }
    drop(client);
    let stderr_path = run.stderr_path.clone();
    let (status, extra) = run.stop_with(Signal::SIGINT);
    assert_clean_stop(status, &extra, &links);
    let stderr = std::fs::read_to_string(stderr_path).unwrap();
    for needle in [
        " bus rx 01 03 00 6b 00 03 (unit 1 read holding 0x006B ×3)\n",
        " bus tx 01 03 06 02 2b 00 00 00 64 05 7a (unit 1 holding ×3: 0x022B 0x0000 0x0064)\n",
        " bus rx 01 03 01 00 00 01 (unit 1 read holding 0x0100 ×1)\n",
        " bus tx 01 83 02 c0 f1 (unit 1 exception 02 (illegal data address) to read holding)\n",
    ] {
        assert!(stderr.contains(needle), "trace lacks {needle:?}:\n{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configured_line_decides_who_is_understood() {
    let dir = work_dir("line");
    let config = write_config(
        &dir,
        "line.toml",
        &format!(
            "[[device]]\nname = 'meter'\nmodel = 'scripted'\nlink = '{}/ttyUSB0'\n\n\
             [device.script]\nrule = [{{ request = 'PING', reply = 'PONG' }}]\n\n\
             [device.line]\nbaud = 9600\nformat = '8E1'\npace = false\nmismatch = 'garbage'\n",
            dir.display()
        ),
    );
    let run = start(&dir, &[config.to_str().unwrap()]);
    let links = run.links();
    // At the configured 9600: understood.
    let mut right = open_at(&links[0], 9600);
    assert_eq!(ask(&mut right, b"PING\r\n", b'\n').await, b"PONG\r\n");
    drop(right);
    // At 2400: the same number of bytes, none of them right (a UART at the wrong speed).
    let mut wrong = open(&links[0]);
    wrong.write_all(b"PING\r\n").await.unwrap();
    let mut got = [0u8; 6];
    tokio::time::timeout(PATIENCE, wrong.read_exact(&mut got))
        .await
        .expect("garbage in time")
        .unwrap();
    assert!(got.iter().zip(b"PONG\r\n").all(|(a, b)| a != b), "{got:?}");
    drop(wrong);
    let (status, extra) = run.stop_with(Signal::SIGINT);
    assert_clean_stop(status, &extra, &links);
}

#[test]
fn sighup_stops_too_and_the_table_is_for_people() {
    let dir = work_dir("hup");
    let (config, link) = qpgs_example(&dir);
    // Without --json: the table.
    let mut child = std::process::Command::new(common::bin())
        .args(["run", config.to_str().unwrap(), "-q"])
        .env("TMPDIR", &*dir)
        .env("XDG_RUNTIME_DIR", "")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + PATIENCE;
    while std::fs::symlink_metadata(&link).is_err() {
        assert!(std::time::Instant::now() < deadline, "link never appeared");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    // The link exists once its port is spawned; readiness output follows at once, and a signal
    // arriving in between is not lost (handlers are installed before the first port).
    nix::sys::signal::kill(pid, Signal::SIGHUP).unwrap();
    let status = child.wait().unwrap();
    let mut stdout = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    assert!(status.success(), "exit status {status}");
    assert!(
        std::fs::symlink_metadata(&link).is_err(),
        "link left behind"
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("MODEL") && lines[0].ends_with("LINK")
    );
    assert!(
        lines[1].starts_with("qpgs ") && lines[1].contains("/dev/pts/"),
        "{stdout}"
    );
    assert!(lines[1].ends_with(link.to_str().unwrap()));
}

#[test]
fn a_busy_link_fails_with_status_1_and_leaves_nothing() {
    let dir = work_dir("busy");
    let (config, link) = qpgs_example(&dir);
    let first = start(&dir, &[config.to_str().unwrap()]);

    // A second instance: its first port would be fine, its second collides with the first's.
    let other = dir.join("other");
    let second = write_config(
        &dir,
        "second.toml",
        &format!(
            "[[device]]\nmodel = 'scripted'\nlink = '{}/ttyUSB7'\nscript = {{}}\n\n\
             [[device]]\nmodel = 'scripted'\nlink = '{}'\nscript = {{}}\n",
            other.display(),
            link.display()
        ),
    );
    let out = run_to_end(&dir, &["run", "--json", second.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr
            .matches("in use by another serialtwin instance")
            .count(),
        1,
        "one clear line: {stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "no readiness: {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(leftovers(&other), Vec::<PathBuf>::new());
    // `check` says so beforehand, as a warning: the link is free once the first one stops.
    let out = run_to_end(&dir, &["check", second.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.starts_with(&format!("warning: {}:8:8: ", second.display()))
            && stderr.contains("is in use by another serialtwin instance (pid "),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("2 port(s), 1 warning(s)"));
    // The first instance is untouched.
    assert!(std::fs::symlink_metadata(&link).is_ok());
    let (status, extra) = first.stop_with(Signal::SIGINT);
    assert_clean_stop(status, &extra, &[link]);
}

/// One bad config: its text (`{dir}` for the work directory), the line and column of the
/// offending value, and words of the reason.
struct Bad {
    text: &'static str,
    line: usize,
    col: usize,
    reason: &'static str,
}

const BAD: &[Bad] = &[
    Bad {
        text: "[[device]]\nmodel = 'scripted'\nlnk = '{dir}/a'\nscript = {}\n",
        line: 3,
        col: 1,
        reason: "unknown field `lnk`",
    },
    Bad {
        text: "[[device]]\nmodel = 'pi30'\nlink = '{dir}/ttyUSB0'\ncount = 'three'\n",
        line: 4,
        col: 9,
        reason: "invalid type",
    },
    Bad {
        text: "[[device]]\nmodel = 'pi31'\nlink = '{dir}/ttyUSB0'\n",
        line: 2,
        col: 9,
        reason: "unknown model `pi31`",
    },
    Bad {
        text: "[[device]]\nmodel = 'scripted'\nlink = '{dir}/ttyUSB0'\nscript = {}\n\n\
               [[device]]\nmodel = 'scripted'\nlink = '{dir}/ttyUSB0'\nscript = {}\n",
        line: 8,
        col: 8,
        reason: "duplicate link",
    },
    Bad {
        text: "[[device]]\nmodel = 'scripted'\nlink = '{dir}/ttyUSB{n}'\ncount = 3\n\n\
               [[device]]\nmodel = 'scripted'\nlink = '{dir}/ttyUSB2'\nscript = {}\n\
               [device.line]\nbaud = 9600\n",
        line: 1,
        col: 1,
        reason: "needs its dialogue",
    },
    Bad {
        text: "[[device]]\nmodel = 'scripted'\nlink = '{dir}/ttyUSB{n}'\ncount = 3\nscript = {}\n\n\
               [[device]]\nmodel = 'scripted'\nlink = '{dir}/ttyUSB2'\nscript = {}\n",
        line: 9,
        col: 8,
        reason: "duplicate link",
    },
    Bad {
        text: "[[device]]\nmodel = 'scripted'\nlink = '{dir}/ttyUSB0'\n\n\
               [device.script]\ndefault = 'x'\n\n\
               [[device.script.rule]]\nregex = 'QPGS(\\d+'\nreply = 'ok'\n",
        line: 9,
        col: 9,
        reason: "bad regex: unclosed group",
    },
    Bad {
        text: "[[device]]\nmodel = 'scripted'\nlink = '{dir}/ttyUSB0'\n\n\
               [device.script]\nrule = [{ request = 'A', reply = 'hi {name}' }]\n",
        line: 6,
        col: 34,
        reason: "`{name}` is neither a capture",
    },
    Bad {
        text: "[[device]]\nmodel = 'pi30'\nlink = '{dir}/ttyUSB0'\n\n\
               [device.pi30]\nserial = 12345\n",
        line: 6,
        col: 10,
        reason: "invalid type: integer",
    },
    Bad {
        text: "[[device]]\nmodel = 'pi30'\nlink = '{dir}/ttyUSB0'\n\n\
               [device.pi30.battery]\nnominal_voltag = 48\n",
        line: 6,
        col: 1,
        reason: "unknown field `nominal_voltag`",
    },
    Bad {
        text: "[[device]]\nmodel = 'pi30'\nlink = '{dir}/ttyUSB0'\nframing = 'crlf2'\n",
        line: 4,
        col: 11,
        reason: "unknown framing `crlf2`",
    },
    Bad {
        text: "[[device]]\nmodel = 'pi30'\nlink = '{dir}/ttyUSB0'\ncount = 2\n",
        line: 3,
        col: 8,
        reason: "needs {n} when count = 2",
    },
    Bad {
        text: "[[device]]\nmodel = 'scripted'\nlink = '{dir}/ttyUSB0'\nscript = {}\n\
               [device.pi30]\nserial = '1'\n",
        line: 5,
        col: 1,
        reason: "[device.pi30] does not apply to model `scripted`",
    },
    Bad {
        text: "[[device]]\nmodel = 'scripted'\nlink = '{dir}/ttyUSB0'\nmode = 'rw-rw----'\nscript = {}\n",
        line: 4,
        col: 8,
        reason: "`mode` must be permission bits",
    },
    Bad {
        text: "[[device]]\nmodel = 'scripted'\nlink = '{dir}/ttyUSB0'\nscript = {}\n\
               [device.line]\nlatency_ms = [50, 10]\n",
        line: 6,
        col: 14,
        reason: "`latency_ms` range [50, 10]: the minimum is more than the maximum",
    },
    Bad {
        text: "[[device]]\nmodel = 'scripted'\nlink = '{dir}/ttyUSB0'\nscript = {}\n\
               [device.line]\nformat = '8X1'\n",
        line: 6,
        col: 10,
        reason: "bad character format \"8X1\"",
    },
    Bad {
        text: "[[device]]\nmodel = 'scripted'\nlink = '{dir}/ttyUSB0'\n[device.script]\n\
               rule = [{ request = 'A', reply = 'B' }]\n[[device.script.rule]]\n",
        line: 6,
        col: 17,
        reason: "duplicate key",
    },
    Bad {
        text: "[[device]]\nmodel = 'pi30'\nlink = '{dir}/ttyUSB0'\n\n\
               [device.pi30]\nbattery = { nominal_voltage = 36 }\n",
        line: 6,
        col: 31,
        reason: "battery nominal voltage must be 12, 24 or 48",
    },
    Bad {
        text: "[[device]]\nmodel = 'pi30'\nlink = '{dir}/ttyUSB{n}'\ncount = 11\nparallel = true\n",
        line: 5,
        col: 12,
        reason: "a parallel group has 1 to",
    },
    Bad {
        text: "[[device]]\nmodel = 'scripted'\nlink = '{dir}/ttyUSB{n}'\ncount = 2\nparallel = true\nscript = {}\n",
        line: 5,
        col: 12,
        reason: "`parallel` does not apply to model `scripted` (models with parallel groups: pi30)",
    },
    Bad {
        text: "[[device]]\nmodel = 'replay'\nlink = '{dir}/ttyUSB0'\n",
        line: 1,
        col: 1,
        reason: "model `replay` needs a [device.replay] table",
    },
    Bad {
        text: "[[device]]\nmodel = 'replay'\nlink = '{dir}/ttyUSB0'\n\n\
               [device.replay]\nfallback = 'nak'\ncapture = 'nowhere.jsonl'\n",
        line: 7,
        col: 11,
        reason: "nowhere.jsonl",
    },
    // What `run` would refuse or choke on, `check` refuses first, at the value.
    Bad {
        text: "[[device]]\nmodel = 'scripted'\nlink = '{dir}/ttyUSB0'\nscript = {}\n\
               [device.line]\nbaud = 0\n",
        line: 6,
        col: 8,
        reason: "`baud` must be from 50 to 4000000 (the rates a termios line names), not 0",
    },
    Bad {
        text: "[[device]]\nmodel = 'scripted'\nlink = '{dir}/ttyUSB0'\nscript = {}\n\
               [device.line]\nbaud = 1\n",
        line: 6,
        col: 8,
        reason: "not 1",
    },
    Bad {
        text: "[[device]]\nmodel = 'pi30'\nlink = '{dir}/ttyUSB0'\n\
               [device.pi30.battery]\ninitial_soc = 1.5\n",
        line: 5,
        col: 15,
        reason: "`battery.initial_soc` must be between 0 and 1, not 1.5",
    },
    Bad {
        text: "[[device]]\nmodel = 'pi30'\nlink = '{dir}/ttyUSB0'\n\
               [device.pi30.battery]\ninitial_soc = nan\n",
        line: 5,
        col: 15,
        reason: "`battery.initial_soc` must be between 0 and 1, not NaN",
    },
    Bad {
        text: "[[device]]\nmodel = 'pi30'\nlink = '{dir}/ttyUSB0'\n\
               [device.pi30.battery]\ncapacity_ah = nan\n",
        line: 5,
        col: 15,
        reason: "`battery.capacity_ah` must be a positive number, not NaN",
    },
    Bad {
        text: "[[device]]\nmodel = 'pi30'\nlink = '{dir}/ttyUSB0'\n\
               [device.pi30.plant]\npv_peak_w = inf\n",
        line: 5,
        col: 13,
        reason: "`plant.pv_peak_w` must be 0 or a positive number, not inf",
    },
    Bad {
        text: "[[device]]\nmodel = 'scripted'\nlink = '{dir}/a/ttyUSB0'\nscript = {}\n\n\
               [[device]]\nmodel = 'scripted'\nlink = '{dir}/a/x/../ttyUSB0'\nscript = {}\n",
        line: 8,
        col: 8,
        reason: "ttyUSB0): port `ttyUSB0` (line 1) has it too",
    },
    Bad {
        text: "[[device]]\nmodel = 'scripted'\nlink = '{dir}/ttyUSB0'\nscript = {}\n\n\
               [[device]]\nmodel = 'scripted'\nlink = '{dir}/ttyUSB0/ttyUSB1'\nscript = {}\n",
        line: 8,
        col: 8,
        reason: "are one inside the other",
    },
    Bad {
        text: "[[device]]\nmodel = 'scripted'\nlink = '/'\nscript = {}\n",
        line: 3,
        col: 8,
        reason: "link /: / cannot name a link: it has no file name",
    },
    Bad {
        text: "[[device]]\nmodel = 'scripted'\nlink = '/etc/passwd'\nscript = {}\n",
        line: 3,
        col: 8,
        reason: "link /etc/passwd: ",
    },
    Bad {
        text: "[[device]]\nmodel = 'scripted'\nlink = '/dev/null'\nscript = {}\n",
        line: 3,
        col: 8,
        reason: "link /dev/null: ",
    },
    Bad {
        text: "[[device]]\nmodel = 'scripted'\nlink = '/proc/self/mem'\nscript = {}\n",
        line: 3,
        col: 8,
        reason: "is in /proc, a kernel filesystem",
    },
    Bad {
        text: "[[device]]\nmodel = 'scripted'\nlink = '{dir}/ttyUSB0'\nscript = {}\n\
               faults = ['melt next=1']\n",
        line: 5,
        col: 11,
        reason: "unknown fault \"melt\" (known: drop, corrupt, break-crc, truncate, noise, \
                 duplicate, delay:<ms>, unplug:<ms>)",
    },
    Bad {
        text: "[clock]\nstart = 253402300800\n\n\
               [[device]]\nmodel = 'scripted'\nlink = '{dir}/ttyUSB0'\nscript = {}\n",
        line: 2,
        col: 9,
        reason: "`start` must be from 1970-01-01T00:00:00Z (Unix 0) to 9999-12-31T23:59:59Z",
    },
    Bad {
        text: "[clock]\nspeed = 1e7\n\n\
               [[device]]\nmodel = 'pi30'\nlink = '{dir}/ttyUSB0'\n",
        line: 2,
        col: 9,
        reason: "`speed` 10000000 is faster than model `pi30` (the [[device]] at line 4) can \
                 follow: at most 900000",
    },
    Bad {
        text: "[[device]]\nmodel = \"pi\\n30\\u001b[2J\"\nlink = '{dir}/ttyUSB0'\n",
        line: 2,
        col: 9,
        reason: "unknown model `pi\\n30\\u{1b}[2J` (known: pi30",
    },
    Bad {
        text: "# nothing here\n",
        line: 1,
        col: 1,
        reason: "no devices",
    },
    Bad {
        text: "[[device]]\nmodel = 'pi30'\nlink = 'ttyUSB0\n",
        line: 3,
        col: 16,
        reason: "invalid literal string",
    },
];

#[test]
fn bad_configs_are_rejected_at_the_offending_value() {
    for (i, bad) in BAD.iter().enumerate() {
        let dir = work_dir("bad");
        let text = bad.text.replace("{dir}", dir.to_str().unwrap());
        let config = write_config(&dir, &format!("bad{i}.toml"), &text);
        let config = config.to_str().unwrap();
        for command in ["run", "check"] {
            let out = run_to_end(&dir, &[command, config]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            let context = format!("case {i} ({command}):\n{text}\n---\n{stderr}");
            assert_eq!(out.status.code(), Some(2), "{context}");
            let prefix = format!("error: {config}:{}:{}: ", bad.line, bad.col);
            let line = stderr
                .lines()
                .find(|l| l.starts_with("error: "))
                .unwrap_or_else(|| panic!("no error line; {context}"));
            assert!(line.starts_with(&prefix), "want {prefix:?}; {context}");
            assert!(
                line.contains(bad.reason),
                "want reason {:?}; {context}",
                bad.reason
            );
            assert_eq!(
                stderr.lines().filter(|l| !l.trim().is_empty()).count(),
                1,
                "one line; {context}"
            );
            assert!(out.stdout.is_empty(), "{context}");
            assert_eq!(leftovers(&dir), Vec::<PathBuf>::new(), "{context}");
        }
    }
}

/// A pyvisa-sim file with a device behind an ASRL and three SOCKET resources.
const PYVISA_SIM_YAML: &str = "spec: '1.1'\ndevices:\n  d: {dialogues: [{q: A, r: B}]}\nresources:\n  \
    ASRL1::INSTR: {device: d}\n  TCPIP::localhost::10001::SOCKET: {device: d}\n  \
    TCPIP::localhost::10002::SOCKET: {device: d}\n  TCPIP::0.0.0.0::10003::SOCKET: {device: d}\n";

/// A pyvisa-sim `[[device]]` serving `resource` of `sim.yaml`, with `extra` keys.
fn pyvisa_sim_device(resource: &str, extra: &str) -> String {
    format!(
        "[[device]]\nmodel = 'pyvisa-sim'\n{extra}[device.pyvisa-sim]\nfile = 'sim.yaml'\n\
         resource = '{resource}'\n"
    )
}

/// `TCPIP::localhost::10001::SOCKET`, in [`PYVISA_SIM_YAML`].
const SOCKET: &str = "TCPIP::localhost::10001::SOCKET";

/// pyvisa-sim resources that cannot be served, and `TCPIP::host::port::SOCKET` ones that
/// cannot be served as written: `check` and `run` both refuse them at the value, in one line,
/// leaving nothing behind.
#[test]
fn pyvisa_sim_resources_are_refused_at_the_key() {
    // (config, where the error is: the first place this text is, why)
    let cases = [
        (
            pyvisa_sim_device("USB0::0x1111::0x2222::0x3333::0::INSTR", ""),
            "'USB0",
            "is a `USB INSTR` resource: a client reaches it through USBTMC, which serialtwin \
             does not speak",
        ),
        (
            pyvisa_sim_device("TCPIP0::localhost::inst0::INSTR", ""),
            "'TCPIP0",
            "through VXI-11 or HiSLIP",
        ),
        (
            pyvisa_sim_device("GPIB0::8::INSTR", "link = '{dir}/tty'\n"),
            "'GPIB0",
            "`GPIB INSTR` resource",
        ),
        (
            pyvisa_sim_device(SOCKET, "count = 2\nlink = '{dir}/tty{n}'\n"),
            "'TCPIP",
            "a SOCKET resource is one address: `count` is 2",
        ),
        (
            pyvisa_sim_device("TCPIP::localhost::0::SOCKET", ""),
            "'TCPIP",
            "port \"0\": a SOCKET resource names a port from 1 to 65535",
        ),
        (
            pyvisa_sim_device("TCPIP::[::1]::10001::SOCKET", ""),
            "'TCPIP",
            "an IPv6 address cannot be written in one",
        ),
        (
            pyvisa_sim_device("TCPIP::192.0.2.1::10001::SOCKET", ""),
            "'TCPIP",
            "host \"192.0.2.1\" (192.0.2.1) is not an address of this host",
        ),
        (
            format!(
                "{}[device.network]\ntcp = '7000'\n",
                pyvisa_sim_device(SOCKET, "")
            ),
            "'7000'",
            "tcp: 127.0.0.1:7000 is not 127.0.0.1:10001, the address the device's resource \
             names (line 5)",
        ),
        (
            format!(
                "{}{}",
                pyvisa_sim_device(SOCKET, ""),
                pyvisa_sim_device("tcpip0::localhost::10001::SOCKET", "name = 'twin'\n")
            ),
            "[[device]]\nmodel = 'pyvisa-sim'\nname",
            "127.0.0.1:10001 is taken by another endpoint (line 1)",
        ),
    ];
    for (i, (text, at, reason)) in cases.iter().enumerate() {
        let dir = work_dir("pyvisa-sim-bad");
        let yaml = dir.join("sim.yaml");
        std::fs::write(&yaml, PYVISA_SIM_YAML).unwrap();
        let text = text.replace("{dir}", dir.to_str().unwrap());
        let config = write_config(&dir, &format!("bad{i}.toml"), &text);
        let config = config.to_str().unwrap();
        let offset = text.find(at).unwrap();
        let line = text[..offset].matches('\n').count() + 1;
        let col = offset - text[..offset].rfind('\n').map_or(0, |n| n + 1) + 1;
        for command in ["check", "run"] {
            let out = run_to_end(&dir, &[command, config]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            let context = format!("case {i} ({command}):\n{text}\n---\n{stderr}");
            assert_eq!(out.status.code(), Some(2), "{context}");
            let want = format!("error: {config}:{line}:{col}: ");
            assert!(stderr.starts_with(&want), "want {want:?}; {context}");
            assert!(stderr.contains(reason), "want {reason:?}; {context}");
            assert_eq!(stderr.lines().count(), 1, "one line; {context}");
            let left: Vec<PathBuf> = leftovers(&dir).into_iter().filter(|p| *p != yaml).collect();
            assert_eq!(left, Vec::<PathBuf>::new(), "{context}");
        }
    }
}

/// What a SOCKET resource allows: a link beside its address, the address written again (as
/// a bare port or in full), [device.network]'s policies for it alone, another endpoint.
#[test]
fn what_a_pyvisa_sim_socket_resource_allows() {
    let dir = work_dir("pyvisa-sim-ok");
    std::fs::write(dir.join("sim.yaml"), PYVISA_SIM_YAML).unwrap();
    for (i, extra, network) in [
        (0, "link = '{dir}/tty'\n", ""),
        (1, "", "tcp = '10001'\n"),
        (
            2,
            "link = '{dir}/tty'\n",
            "tcp = '127.0.0.1:10001'\nrfc2217 = '0'\n",
        ),
        (3, "", "second_client = 'take-over'\nidle_timeout_s = 5\n"),
    ] {
        let network = if network.is_empty() {
            String::new()
        } else {
            format!("[device.network]\n{network}")
        };
        let text = format!("{}{network}", pyvisa_sim_device(SOCKET, extra))
            .replace("{dir}", dir.to_str().unwrap());
        let config = write_config(&dir, &format!("ok{i}.toml"), &text);
        let out = run_to_end(&dir, &["check", config.to_str().unwrap()]);
        assert!(out.status.success(), "{text}\n{out:?}");
    }
    // Off loopback: served, with a warning at the resource.
    let config = write_config(
        &dir,
        "wide.toml",
        &pyvisa_sim_device("TCPIP::0.0.0.0::10003::SOCKET", ""),
    );
    let out = run_to_end(&dir, &["check", config.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let want = format!(
        "warning: {}:5:12: resource \"TCPIP::0.0.0.0::10003::SOCKET\" listens on \
         0.0.0.0:10003, not a loopback address",
        config.display()
    );
    assert!(stderr.contains(&want), "want {want:?}: {stderr}");
}

/// The ends of what `check` accepts work in `run`: a clock started at the last second of
/// year 9999 (it stands there), and a scripted device on a clock as fast as a float goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_second_and_the_fastest_clock_are_served() {
    let dir = work_dir("edge");
    let config = write_config(
        &dir,
        "edge.toml",
        &format!(
            "[clock]\nstart = 9999-12-31T23:59:59Z\n\n\
             [[device]]\nmodel = 'pi30'\nlink = '{}/ttyUSB0'\n[device.line]\nlatency_ms = 0\n\
             [device.pi30]\nvariant = 'pi30max'\n",
            dir.display()
        ),
    );
    let out = run_to_end(&dir, &["check", config.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let run = start(&dir, &[config.to_str().unwrap()]);
    let mut inverter = open(&run.links()[0]);
    let qt = ask(&mut inverter, b"QT\r", b'\r').await;
    assert!(
        qt.starts_with(b"(99991231235959"),
        "{:?}",
        String::from_utf8_lossy(&qt)
    );
    assert!(
        ask(&mut inverter, b"QPIGS\r", b'\r')
            .await
            .starts_with(b"(")
    );
    drop(inverter);
    let links = run.links();
    let (status, extra) = run.stop_with(Signal::SIGINT);
    assert_clean_stop(status, &extra, &links);

    let fast = write_config(
        &dir,
        "fast.toml",
        &format!(
            "[clock]\nspeed = 1e308\n\n[[device]]\nmodel = 'scripted'\nlink = '{}/ttyUSB1'\n\
             framing = 'cr'\n[[device.script.rule]]\nrequest = 'T?'\nreply = 'ok'\n",
            dir.display()
        ),
    );
    let run = start(&dir, &[fast.to_str().unwrap()]);
    let mut meter = open(&run.links()[0]);
    assert_eq!(ask(&mut meter, b"T?\r", b'\r').await, b"ok\r");
    drop(meter);
    let links = run.links();
    let (status, extra) = run.stop_with(Signal::SIGINT);
    assert_clean_stop(status, &extra, &links);
}

#[test]
fn check_warns_about_paths_mppsolar_misreads() {
    let dir = work_dir("warn");
    let config = write_config(
        &dir,
        "warn.toml",
        &format!(
            "[[device]]\nmodel = 'pi30'\nlink = '{dir}/latest/ttyUSB0'\n\n\
             [[device]]\nmodel = 'pi30'\nlink = '{dir}/esphome/ttyUSB9'\n\n\
             [[device]]\nmodel = 'pi30'\nlink = '{dir}/ttyUSB1'\n",
            dir = dir.display()
        ),
    );
    let out = run_to_end(&dir, &["check", config.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stderr}");
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("warning: "))
        .collect();
    assert_eq!(warnings.len(), 2, "{stderr}");
    assert!(
        warnings[0].contains(":3:8: ") && warnings[0].contains("`test`"),
        "{stderr}"
    );
    assert!(warnings[0].contains("canned test data"), "{stderr}");
    assert!(
        warnings[1].contains(":7:8: ") && warnings[1].contains("ttyUSB"),
        "{stderr}"
    );
    assert!(stdout.contains("3 port(s), 2 warning(s)"), "{stdout}");
    assert_eq!(
        leftovers(&dir),
        Vec::<PathBuf>::new(),
        "check starts nothing"
    );
}

#[test]
fn the_example_configs_are_valid() {
    let root = common::workspace();
    // The default config: its link reads as serial to mppsolar (no warning). Its temp
    // directory is the test's own, so a user's `serialtwin run` holding the real default
    // (which `check` would rightly warn about) is none of this test's business.
    let dir = work_dir("examples");
    let out = output_within(
        Command::new(bin())
            .arg("check")
            .current_dir(&root)
            .env("TMPDIR", &*dir),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && out.stderr.is_empty(), "{out:?}");
    assert!(
        stdout.contains(&format!("pi30       {}/serialtwin/ttyUSB0", dir.display())),
        "{stdout}"
    );
    // The shipped examples, their links moved into the same directory (with the capture the
    // fleet's replay device reads beside them).
    std::fs::copy(root.join("examples/qpgs.jsonl"), dir.join("qpgs.jsonl")).unwrap();
    std::fs::copy(
        root.join("examples/pyvisa-sim.yaml"),
        dir.join("pyvisa-sim.yaml"),
    )
    .unwrap();
    for example in [
        "fleet.toml",
        "qpgs.toml",
        "modbus.toml",
        "gps.toml",
        "scpi.toml",
        "pyvisa-sim.toml",
        "ve-direct.toml",
    ] {
        let text = std::fs::read_to_string(root.join("examples").join(example)).unwrap();
        let moved = text.replace(
            "/tmp/serialtwin/",
            &format!("{}/serialtwin/", dir.display()),
        );
        let config = write_config(&dir, example, &moved);
        let out = run_to_end(&dir, &["check", config.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{example}: {stderr}");
        assert!(!stderr.contains("warning"), "{example}: {stderr}");
    }
}

#[test]
fn models_and_help() {
    let dir = work_dir("help");
    let out = run_to_end(&dir, &["models"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    let names: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    // Every model of the registry, in its order; a new model adds a line, not a CLI change.
    let registry: Vec<&str> = serialtwin_devices::MODELS.iter().map(|m| m.name).collect();
    assert_eq!(names, registry);
    assert_eq!(names[..3], ["pi30", "scripted", "replay"]);
    // One model in full, from its registry entry.
    let out = run_to_end(&dir, &["models", "pi30"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for needle in [
        "[device.pi30]",
        "pi30-reference",
        "grid ",
        "soc ",
        "model = \"pi30\"",
    ] {
        assert!(stdout.contains(needle), "{needle:?}:\n{stdout}");
    }
    let out = run_to_end(&dir, &["models", "pi31"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown model `pi31`"));
    // What `ctl set` takes, by model.
    let out = run_to_end(&dir, &["ctl", "--help"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("pi30       grid"), "{stdout}");
    for sub in [
        &["--help"][..],
        &["run", "--help"],
        &["check", "--help"],
        &["models", "--help"],
        &["ctl", "--help"],
        &["tap", "--help"],
        &["replay", "--help"],
        &["learn", "--help"],
    ] {
        let out = run_to_end(&dir, sub);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{sub:?}");
        assert!(
            stdout.contains("Examples:\n  serialtwin "),
            "{sub:?}:\n{stdout}"
        );
    }
}

/// Port names are one word of the control protocol: a config whose name (written, numbered for
/// a copy, or taken from the link's file name) is not one is refused at that value, on one line
/// with the name escaped, exit status 2.
#[test]
fn a_port_name_that_is_not_one_word_is_a_config_error() {
    let bad: &[(&str, usize, usize, &str)] = &[
        (
            "[[device]]\nmodel = 'pi30'\nlink = '{dir}/ttyUSB0'\nname = \"inv 0\"\n",
            4,
            8,
            r#"port name "inv 0" contains whitespace ' ' (U+0020) at character 4"#,
        ),
        (
            "[[device]]\nmodel = 'pi30'\nlink = '{dir}/ttyUSB0'\nname = \"*\"\n",
            4,
            8,
            "`*` cannot be a port name",
        ),
        (
            "[[device]]\nmodel = 'pi30'\nlink = '{dir}/ttyUSB0'\nname = \"inv\\u001b[2J\"\n",
            4,
            8,
            r#"port name "inv\u{1b}[2J" contains the control character '\u{1b}' (U+001B)"#,
        ),
        (
            "[[device]]\nmodel = 'pi30'\nlink = '{dir}/ttyUSB0'\nname = \"\"\n",
            4,
            8,
            "a port name cannot be empty",
        ),
        (
            "[[device]]\nmodel = 'pi30'\nlink = '{dir}/ttyUSB{n}'\ncount = 2\nname = 'inv {n}'\n",
            5,
            8,
            r#"port name "inv 0""#,
        ),
        (
            "[[device]]\nmodel = 'pi30'\nlink = '{dir}/tty\tUSB0'\n",
            3,
            8,
            r#"port name "tty\tUSB0" contains whitespace '\t' (U+0009) at character 4: a port name must be one word of the control protocol (printable, no whitespace); it is the link's file name: set `name`"#,
        ),
    ];
    for (i, (text, line, col, reason)) in bad.iter().enumerate() {
        let dir = work_dir("name");
        let text = text.replace("{dir}", dir.to_str().unwrap());
        let config = write_config(&dir, &format!("name{i}.toml"), &text);
        let config = config.to_str().unwrap();
        for command in ["check", "run"] {
            let out = run_to_end(&dir, &[command, config]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            let context = format!("case {i} ({command}):\n{text}\n---\n{stderr}");
            assert_eq!(out.status.code(), Some(2), "{context}");
            let lines: Vec<&str> = stderr.lines().collect();
            assert_eq!(lines.len(), 1, "one line; {context}");
            let prefix = format!("error: {config}:{line}:{col}: ");
            assert!(lines[0].starts_with(&prefix), "want {prefix:?}; {context}");
            assert!(stderr.contains(reason), "want {reason:?}; {context}");
            assert!(out.stdout.is_empty(), "{context}");
            assert_eq!(leftovers(&dir), Vec::<PathBuf>::new(), "{context}");
        }
    }
    // One printable word is a name.
    let dir = work_dir("name");
    let config = write_config(
        &dir,
        "good.toml",
        &format!(
            "[[device]]\nmodel = 'pi30'\nlink = '{}/ttyUSB0'\nname = 'inv-0.a_B'\n",
            dir.display()
        ),
    );
    let out = run_to_end(&dir, &["check", config.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("inv-0.a_B"));
}

/// `serialtwin ctl <args>` with the defaults under `tmp` (and no runtime directory).
fn ctl_in(tmp: &Path, args: &[&str]) -> std::process::Output {
    common::output_within(
        Command::new(common::bin())
            .arg("ctl")
            .args(args)
            .env("TMPDIR", tmp)
            .env("XDG_RUNTIME_DIR", ""),
    )
}

/// A user runs the main job twice: the second instance takes the next default link and a
/// control socket of its own, and says so; `ctl` without `--socket` names both and asks which;
/// each answers on its own socket; when both have stopped, no directory is left behind.
#[test]
fn a_second_default_instance_takes_the_next_link_and_a_socket_of_its_own() {
    let dir = work_dir("twoinst");
    let env = [("TMPDIR", dir.as_ref()), ("XDG_RUNTIME_DIR", Path::new(""))];
    let first = start_with_env(&dir, &[], &env);
    let second = start_with_env(&dir, &[], &env);
    assert_eq!(first.links(), [dir.join("serialtwin/ttyUSB0")]);
    assert_eq!(
        second.links(),
        [dir.join("serialtwin/ttyUSB1")],
        "{}",
        second.stderr()
    );
    // (Logged before readiness is printed, but on another stream.)
    let deadline = std::time::Instant::now() + PATIENCE;
    while !second.stderr().contains("serialtwin ctl --socket ")
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let said = second.stderr();
    assert!(
        said.contains("ttyUSB0 is in use by another serialtwin instance")
            && said.contains("takes ttyUSB1"),
        "{said}"
    );
    let socket = said
        .lines()
        .find_map(|l| l.split("serialtwin ctl --socket ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("the second names its socket: {said}"))
        .to_owned();
    assert!(
        Path::new(&socket)
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("control-")),
        "{socket}"
    );

    let both = ctl_in(&dir, &["list"]);
    let complaint = String::from_utf8_lossy(&both.stderr);
    assert_eq!(both.status.code(), Some(2), "{complaint}");
    assert!(
        complaint.contains("2 serialtwin instances are running")
            && complaint.contains("control.sock")
            && complaint.contains(&socket),
        "{complaint}"
    );
    let listed = ctl_in(&dir, &["--socket", &socket, "list"]);
    assert!(listed.status.success(), "{listed:?}");
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains(second.ports[0]["pty"].as_str().unwrap()),
        "{listed:?}"
    );

    let (status, _) = second.stop_with(Signal::SIGINT);
    assert!(status.success());
    let one = ctl_in(&dir, &["list"]);
    assert!(one.status.success(), "one instance left: {one:?}");
    let (status, _) = first.stop_with(Signal::SIGINT);
    assert!(status.success());
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().starts_with("serialtwin"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// `--exit-with-stdin`: the run stops cleanly (status 0, link removed) once the pipe on its
/// standard input closes — as it does when the parent holding it dies, even by SIGKILL.
#[test]
fn exit_with_stdin_stops_when_the_pipe_closes() {
    use std::io::{BufRead as _, BufReader};
    use std::process::Stdio;

    let dir = work_dir("stdin");
    let (config, link) = qpgs_example(&dir);
    let stderr_path = dir.join("stderr.log");
    let mut child = Command::new(bin())
        .args(["run", "--json", "--no-control", "--exit-with-stdin"])
        .arg(&config)
        .env("TMPDIR", &*dir)
        .env("XDG_RUNTIME_DIR", "")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    let stop = |child: &mut std::process::Child| {
        let _ = child.kill();
        let _ = child.wait();
    };
    loop {
        let Ok(out) = rx.recv_timeout(PATIENCE) else {
            stop(&mut child);
            panic!(
                "no readiness; stderr:\n{}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        };
        if out.contains("\"ready\"") {
            break;
        }
    }
    assert!(std::fs::symlink_metadata(&link).is_ok(), "link made");
    // Input it reads is ignored; the end of it stops the run.
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"anything\n").unwrap();
    }
    let deadline = std::time::Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            stop(&mut child);
            panic!("still running after its stdin closed");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let stderr = std::fs::read_to_string(&stderr_path).unwrap();
    assert_clean_stop(status, &rx.try_iter().collect::<Vec<_>>(), &[link]);
    assert!(
        stderr.contains("standard input closed"),
        "stderr says why:\n{stderr}"
    );
}
