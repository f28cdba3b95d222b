//! serialtwin's RFC 2217 against the reference server, Debian's ser2net 4.3.11
//! (`telnet(rfc2217)` in front of serialtwin ptys, `local`, opened by pyserial with
//! `?ign_set_control` because ser2net on a pty never answers SET-CONTROL):
//!
//! - the same pyserial 3.5 story (`network/rfc2217_compare.py`) against ser2net and against
//!   serialtwin's own `rfc2217` endpoint for the same kind of device, each path checked for
//!   what really holds on it (what the device heard, from the trace; what the client got), and
//!   the differences asserted, as `docs/network.md` lists them;
//! - `serialtwin tap --upstream rfc2217://` through ser2net (which does not answer
//!   SET-CONTROL), and through serialtwin's own endpoint on IPv6 (which does), a client on the
//!   tap's link asking QPIGS and the capture holding the exchange; and a server refusing
//!   COM-PORT-OPTION, which the tap refuses in turn.
//!
//! ser2net runs in the foreground from a YAML file in the test's scratch dir, without UUCP
//! locks (`-u`) and with its pid file there (`-P`), on a free loopback port (retried if
//! another process takes it first); it is killed when the test ends, however it ends.
#![allow(missing_docs)]

mod common;

use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{PATIENCE, Running, start, work_dir, write_config};
use nix::sys::signal::Signal;
use serde_json::Value;

const COMPARE: &str = include_str!("network/rfc2217_compare.py");

/// Safety net for a Python process, never a timing assertion.
const PYTHON_PATIENCE: Duration = Duration::from_mins(3);

/// QPI and PI30's answer to it (`(PI30` and its CRC).
const QPI_REPLY: &str = "28504933309a0b0d";

/// A ser2net in the foreground, killed (SIGKILL: it may sit out a SIGTERM) when dropped.
struct Ser2net {
    child: Child,
    /// The telnet(rfc2217) port of each connection, in the order given.
    ports: Vec<u16>,
    log: PathBuf,
}

impl Ser2net {
    /// ser2net serving each of `links` as `telnet(rfc2217),tcp,127.0.0.1,<free port>` with
    /// `serialdev,<link>,9600n81,local`.
    fn start(dir: &Path, links: &[&Path]) -> Self {
        let binary = common::debian::ensure("ser2net", "ser2net");
        for attempt in 0..5 {
            let ports: Vec<u16> = links.iter().map(|_| free_port()).collect();
            let mut yaml = String::from("%YAML 1.1\n---\n");
            for (i, (link, port)) in links.iter().zip(&ports).enumerate() {
                let _ = write!(
                    yaml,
                    "connection: &c{i}\n  accepter: telnet(rfc2217),tcp,127.0.0.1,{port}\n  \
                     connector: serialdev,{},9600n81,local\n  options:\n    kickolduser: false\n",
                    link.display()
                );
            }
            let config = write_config(dir, &format!("ser2net-{attempt}.yaml"), &yaml);
            let log = dir.join(format!("ser2net-{attempt}.log"));
            let child = Command::new(&binary)
                // Foreground, debug to stdout, no UUCP lock files under /var/lock, the pid
                // file here: nothing global that parallel tests could fight over.
                .args(["-n", "-d", "-u", "-P"])
                .arg(dir.join("ser2net.pid"))
                .arg("-c")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(File::create(dir.join(format!("ser2net-{attempt}.out"))).unwrap())
                .stderr(File::create(&log).unwrap())
                .spawn()
                .unwrap();
            let mut ser2net = Self { child, ports, log };
            if ser2net.wait_listening() {
                return ser2net;
            }
            // Another process took a port between our probe and ser2net's bind: again.
            eprintln!("ser2net attempt {attempt}: {}", ser2net.log_text());
        }
        panic!("ser2net never listened on free ports");
    }

    /// Whether every port ends up listening on a socket of this ser2net (false: a port was
    /// taken, or ser2net ended).
    fn wait_listening(&mut self) -> bool {
        let deadline = Instant::now() + PATIENCE;
        let pid = self.child.id();
        loop {
            if self.child.try_wait().unwrap().is_some()
                || self.log_text().contains("Unable to startup network port")
            {
                return false;
            }
            let ours = sockets_of(pid);
            if self
                .ports
                .iter()
                .all(|&port| listening_inodes(port).iter().any(|i| ours.contains(i)))
            {
                return true;
            }
            assert!(
                Instant::now() < deadline,
                "ser2net not listening: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Ser2net {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The socket inodes listening on 127.0.0.1:`port` (`/proc/net/tcp`, state 0A).
fn listening_inodes(port: u16) -> Vec<u64> {
    let wanted = format!("0100007F:{port:04X}");
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.get(1) == Some(&wanted.as_str()) && fields.get(3) == Some(&"0A"))
                .then(|| fields.get(9)?.parse().ok())
                .flatten()
        })
        .collect()
}

/// The socket inodes process `pid` holds open.
fn sockets_of(pid: u32) -> Vec<u64> {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|target| {
            target
                .to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect()
}

/// The fleet: for each path a PI30 inverter and an echoing scripted device (`{0}`: the
/// request back, framing `cr`), the ser2net ones plain ptys, the others with an `rfc2217`
/// endpoint on `endpoint`. Every line at 9600 with `mismatch = "ignore"`: baud changes are
/// read from the trace, not from garbled answers.
fn fleet(dir: &Path, endpoint: &str) -> PathBuf {
    let device = |name: &str, model: &str, network: bool| {
        let extra = if model == "scripted" {
            "framing = \"cr\"\n\n[device.script]\ndefault = \"{0}\"\n"
        } else {
            ""
        };
        let network = if network {
            format!("\n[device.network]\nrfc2217 = \"{endpoint}\"\n")
        } else {
            String::new()
        };
        format!(
            "[[device]]\nname = \"{name}\"\nmodel = \"{model}\"\nlink = \"{dir}/ttyUSB-{name}\"\n{extra}\n\
             [device.line]\nbaud = 9600\nmismatch = \"ignore\"\npace = false\n{network}\n",
            dir = dir.display()
        )
    };
    write_config(
        dir,
        "fleet.toml",
        &[
            device("inv", "pi30", false),
            device("echo", "scripted", false),
            device("invnet", "pi30", true),
            device("echonet", "scripted", true),
        ]
        .concat(),
    )
}

/// What the device `name` heard, from the trace: `settings ...`, `open`, `break on`...
fn heard<'a>(trace: &'a str, name: &str) -> Vec<&'a str> {
    let marker = format!(" {name} -- ");
    trace
        .lines()
        .filter_map(|l| l.split_once(&marker).map(|(_, event)| event))
        .collect()
}

/// Runs the comparison script against one path.
fn compare(label: &str, pi30_url: &str, echo_url: &str) -> Value {
    let out = common::output_within_for(
        Command::new(common::venv().join("bin/python"))
            .arg("-c")
            .arg(COMPARE)
            .args([label, pi30_url, echo_url])
            .stderr(Stdio::piped()),
        PYTHON_PATIENCE,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap_or_else(|e| {
        panic!(
            "no observations from python ({e}):\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn endpoint(run: &Running, port: usize) -> String {
    run.ports[port]["rfc2217"]
        .as_str()
        .unwrap_or_else(|| panic!("port {port} has no rfc2217 endpoint: {:?}", run.ports[port]))
        .to_owned()
}

#[test]
fn pyserial_sees_ser2net_and_serialtwins_endpoint_alike_but_for_the_listed_differences() {
    let dir = work_dir("ser2net-compare");
    let socket = dir.join("run/control.sock");
    let config = fleet(&dir, "127.0.0.1:0");
    let run = start(
        &dir,
        &[
            config.to_str().unwrap(),
            "--trace",
            "--control",
            socket.to_str().unwrap(),
        ],
    );
    let links = run.links();
    let ser2net = Ser2net::start(&dir, &[&links[0], &links[1]]);
    let s2n = |i: usize| format!("rfc2217://127.0.0.1:{}?ign_set_control", ser2net.ports[i]);
    let via_ser2net = compare("ser2net", &s2n(0), &s2n(1));
    let own = |i: usize| format!("rfc2217://{}", endpoint(&run, i));
    let via_own = compare("serialtwin", &own(2), &own(3));
    let both = format!(
        "ser2net: {via_ser2net:#}\nserialtwin: {via_own:#}\nser2net log: {}",
        ser2net.log_text()
    );

    // What holds on both paths: the device answers at 9600, after the baud change, the
    // parity change, the purges and the break; 0xFF passes both ways.
    for seen in [&via_ser2net, &via_own] {
        let session = &seen["session"];
        for reply in [
            "reply_9600",
            "reply_19200",
            "reply_8E1",
            "reply_after_purge",
            "reply_after_break",
        ] {
            assert_eq!(session[reply], QPI_REPLY, "{reply}:\n{both}");
        }
        assert_eq!(session["purged"], true, "{both}");
        assert_eq!(session["break"], "sent", "{both}");
        let ff = &seen["ff_transparency"];
        assert_eq!(
            ff["echoed"].as_str(),
            Some(format!("{}0d", ff["sent"].as_str().unwrap()).as_str()),
            "0xFF both ways:\n{both}"
        );
    }

    // Difference 1: SET-CONTROL. serialtwin answers it, so plain rfc2217:// opens; ser2net
    // on a pty never does, and pyserial gives up waiting for the answer.
    assert_eq!(
        via_own["open_without_ign_set_control"]["reply"], QPI_REPLY,
        "{both}"
    );
    let refused = via_ser2net["open_without_ign_set_control"]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(
        refused.contains("timeout while waiting for option 'control'"),
        "ser2net answers SET-CONTROL after all?\n{both}"
    );

    // Difference 2: modem lines. serialtwin sends NOTIFY-MODEMSTATE at once, CD, DSR and CTS
    // on. ser2net on a pty (which has no modem lines) reports every line off, and only once
    // its poll has run: a client asking right after the open may get no state at all
    // (pyserial then raises), which run to run is either.
    assert_eq!(
        via_own["session"]["modem"],
        serde_json::json!({"cd": true, "cts": true, "dsr": true, "ri": false}),
        "{both}"
    );
    let ser2net_modem = &via_ser2net["session"]["modem"];
    assert!(
        *ser2net_modem == serde_json::json!({"cd": false, "cts": false, "dsr": false, "ri": false})
            || ser2net_modem["error"]
                .as_str()
                .is_some_and(|e| e.contains("no NOTIFY_MODEMSTATE")),
        "{both}"
    );

    // Difference 3: the signature. serialtwin's says what it is; ser2net 4.3.11's default
    // is its own.
    let own_signature = via_own["signature"]["text"].as_str().unwrap_or_default();
    assert!(own_signature.starts_with("serialtwin"), "{both}");
    let ser2net_signature = &via_ser2net["signature"];
    assert!(
        ser2net_signature["text"]
            .as_str()
            .is_some_and(|t| t.contains("ser2net")),
        "ser2net's signature: {both}"
    );

    // What each device heard, from the trace.
    let trace_path = run.stderr_path.clone();
    let (status, _) = run.stop_with(Signal::SIGTERM);
    assert!(status.success());
    drop(ser2net);
    let trace = std::fs::read_to_string(trace_path).unwrap();
    heard_on_both_paths(&trace, &both);
}

/// What each PI30 heard through the comparison (from the trace): `inv` through ser2net,
/// `invnet` through serialtwin's endpoint. `both` is the observations, for the messages.
fn heard_on_both_paths(trace: &str, both: &str) {
    let inv = heard(trace, "inv");
    let invnet = heard(trace, "invnet");
    let report = format!("inv (ser2net): {inv:#?}\ninvnet (serialtwin): {invnet:#?}\n{both}");
    // The observations, for whoever reads the log (docs/network.md is made of them).
    eprintln!("{report}\necho (ser2net): {:#?}", heard(trace, "echo"));
    // Baud propagation, both paths. Through ser2net the pty shows the baud only: the data
    // bits and parity ser2net sets on it are invisible on a pty, so the parity change never
    // reaches the device, whereas serialtwin's endpoint hands it over as a line event.
    for events in [&inv, &invnet] {
        assert!(events.contains(&"settings 19200 8N1"), "{report}");
    }
    assert!(invnet.contains(&"settings 19200 8E1"), "{report}");
    assert!(
        !inv.iter().any(|e| e.contains("8E1")),
        "a pty cannot show parity: {report}"
    );
    // Break: serialtwin's endpoint hands it to the device; through ser2net the device hears
    // no break at all (a pty has none to give).
    assert!(
        invnet.contains(&"break on") && invnet.contains(&"break off"),
        "{report}"
    );
    assert!(!inv.iter().any(|e| e.starts_with("break")), "{report}");
    // DTR and RTS: serialtwin hands them over (pyserial raises both at open, the bridge drops
    // them at close); a pty has none, so through ser2net the device never hears of them.
    for event in ["dtr on", "rts on", "dtr off", "rts off"] {
        assert!(invnet.contains(&event), "{event}: {report}");
    }
    assert!(
        !inv.iter()
            .any(|e| e.starts_with("dtr") || e.starts_with("rts")),
        "{report}"
    );
    // Purges: serialtwin's endpoint passes PURGE-DATA 1 and 2 as an input and an output flush;
    // ser2net purges with tcflush on the pty, which the device sees as flushes too.
    for events in [&inv, &invnet] {
        assert!(events.iter().any(|e| e.starts_with("flush")), "{report}");
    }
    assert!(
        invnet.contains(&"flush input") && invnet.contains(&"flush output"),
        "{report}"
    );
    // ser2net puts its configured line (9600n81) back on the pty when the client leaves.
    let last_settings = inv.iter().rev().find(|e| e.starts_with("settings"));
    assert_eq!(last_settings, Some(&"settings 9600 8N1"), "{report}");
}

/// A `serialtwin tap ... --json` until stopped, killed if dropped.
struct TapProcess {
    child: Child,
    stderr: PathBuf,
}

impl TapProcess {
    /// `serialtwin tap --upstream <upstream>` at 9600 with PI30 framing; waits for `ready`.
    fn start(dir: &Path, tag: &str, upstream: &str, link: &Path, capture: &Path) -> Self {
        use std::io::{BufRead, BufReader};
        let stderr = dir.join(format!("{tag}.log"));
        let mut child = Command::new(common::bin())
            .args(["tap", "--upstream", upstream, "--link"])
            .arg(link)
            .arg("--capture")
            .arg(capture)
            .args(["--framing", "pi30", "--baud", "9600", "--trace", "--json"])
            .current_dir(dir)
            .env("TMPDIR", dir)
            .env("XDG_RUNTIME_DIR", "")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let tap = Self { child, stderr };
        let mut said = Vec::new();
        loop {
            let Ok(printed) = rx.recv_timeout(PATIENCE) else {
                panic!("tap not ready ({said:?}):\n{}", tap.log());
            };
            let v: Value = serde_json::from_str(&printed).unwrap();
            if v.get("ready").is_some() {
                break;
            }
            said.push(v);
        }
        assert_eq!(
            said[0]["upstream"], upstream,
            "--json reports the upstream as given"
        );
        tap
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// SIGTERM, then the exit status and stderr.
    fn stop(mut self) -> (bool, String) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        nix::sys::signal::kill(pid, Signal::SIGTERM).unwrap();
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "tap did not stop:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        (status.success(), self.log())
    }
}

impl Drop for TapProcess {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The capture's records of `type`.
fn records(capture: &Path, kind: &str) -> Vec<Value> {
    std::fs::read_to_string(capture)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["type"] == kind)
        .collect()
}

/// Through the tap at `link`: QPIGS at 9600, then at 19200 (the upstream follows); both
/// answers, as the client got them.
fn ask_through(link: &Path) -> Vec<Vec<u8>> {
    use tokio_serial::SerialPort as _;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut port = common::open_at(link, 9600);
        let first = common::ask(&mut port, b"QPIGS\xb7\xa9\r", b'\r').await;
        port.set_baud_rate(19_200).unwrap();
        let second = common::ask(&mut port, b"QPIGS\xb7\xa9\r", b'\r').await;
        vec![first, second]
    })
}

/// What a tap through `upstream` recorded and said, the device behind it being `device`.
fn tap_story(dir: &Path, tag: &str, upstream: &str) -> (Vec<Vec<u8>>, PathBuf, String) {
    let link = dir.join(format!("{tag}/ttyUSB0"));
    let capture = dir.join(format!("{tag}.jsonl"));
    let tap = TapProcess::start(dir, tag, upstream, &link, &capture);
    let answers = ask_through(&link);
    let deadline = Instant::now() + PATIENCE;
    while records(&capture, "frame").len() < 4 {
        assert!(
            Instant::now() < deadline,
            "frames not recorded: {:#?}\n{}",
            records(&capture, "frame"),
            tap.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (ok, log) = tap.stop();
    assert!(ok, "{log}");
    (answers, capture, log)
}

/// The capture holds the exchange: the header names the upstream as given, each QPIGS is an
/// `rx` frame and each answer, byte for byte as the client got it, a `tx` frame.
fn check_capture(capture: &Path, upstream: &str, answers: &[Vec<u8>]) {
    let header = &records(capture, "header")[0];
    assert_eq!(header["upstream"], upstream);
    let frames: Vec<(String, String)> = records(capture, "frame")
        .iter()
        .map(|f| {
            (
                f["dir"].as_str().unwrap().to_owned(),
                f["hex"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let hex = |b: &[u8]| {
        b.iter().fold(String::new(), |mut s, x| {
            let _ = write!(s, "{x:02x}");
            s
        })
    };
    let qpigs = hex(b"QPIGS\xb7\xa9");
    let want: Vec<(String, String)> = answers
        .iter()
        .flat_map(|a| [("rx".to_owned(), qpigs.clone()), ("tx".to_owned(), hex(a))])
        .collect();
    assert_eq!(frames, want);
    assert!(
        records(capture, "settings")
            .iter()
            .any(|s| s["baud"] == 19_200),
        "the client's baud change is recorded"
    );
}

#[test]
fn tap_records_through_ser2net_and_through_serialtwins_own_endpoint() {
    let dir = work_dir("ser2net-tap");
    let socket = dir.join("run/control.sock");
    let config = fleet(&dir, "[::1]:0");
    let run = start(
        &dir,
        &[
            config.to_str().unwrap(),
            "--trace",
            "--control",
            socket.to_str().unwrap(),
        ],
    );
    let links = run.links();
    let ser2net = Ser2net::start(&dir, &[&links[0]]);

    // Through ser2net, which never answers SET-CONTROL on a pty: the tap says so and goes on.
    let upstream = format!("rfc2217://127.0.0.1:{}", ser2net.ports[0]);
    let (answers, capture, log) = tap_story(&dir, "via-ser2net", &upstream);
    for answer in &answers {
        assert!(
            answer.starts_with(b"(") && answer.ends_with(b"\r"),
            "{answer:?}\n{log}"
        );
    }
    check_capture(&capture, &upstream, &answers);
    assert!(log.contains("does not answer SET-CONTROL"), "{log}");
    eprintln!("tap through ser2net:\n{log}");

    // Through serialtwin's own endpoint on IPv6, which answers everything: no warning.
    let endpoint = endpoint(&run, 2);
    assert!(endpoint.starts_with("[::1]:"), "{endpoint}");
    let upstream = format!("rfc2217://{endpoint}");
    let (answers_own, capture, log) = tap_story(&dir, "via-own", &upstream);
    check_capture(&capture, &upstream, &answers_own);
    assert!(!log.contains("does not answer SET-CONTROL"), "{log}");
    assert!(!log.contains("refuses"), "{log}");

    // Both devices heard the client's new baud, which the tap passed on.
    let trace_path = run.stderr_path.clone();
    let (status, _) = run.stop_with(Signal::SIGTERM);
    assert!(status.success());
    drop(ser2net);
    let trace = std::fs::read_to_string(trace_path).unwrap();
    for name in ["inv", "invnet"] {
        let events = heard(&trace, name);
        assert!(
            events.contains(&"settings 19200 8N1"),
            "{name} heard {events:#?}"
        );
    }
}

/// A Telnet server that refuses COM-PORT-OPTION (`DONT 44`) is no RFC 2217 server: the tap
/// stops at once with that reason, and leaves neither link nor capture behind.
#[test]
fn tap_stops_on_an_upstream_that_refuses_com_port_option() {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.write_all(&[0xFF, 0xFE, 44]).unwrap();
        // Until the tap hangs up.
        let mut sink = Vec::new();
        let _ = stream.read_to_end(&mut sink);
        sink
    });
    let dir = work_dir("ser2net-refused");
    let link = dir.join("tap/ttyUSB0");
    let capture = dir.join("refused.jsonl");
    let out = common::output_within(
        Command::new(common::bin())
            .args([
                "tap",
                "--upstream",
                &format!("rfc2217://{address}"),
                "--link",
            ])
            .arg(&link)
            .arg("--capture")
            .arg(&capture)
            .current_dir(&dir),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("refuses COM-PORT-OPTION: not an RFC 2217 server"),
        "{stderr}"
    );
    assert!(!link.exists() && !capture.exists());
    // What the tap sent first: WILL COM-PORT-OPTION.
    let sent = server.join().unwrap();
    assert_eq!(sent.get(..3), Some(&[0xFF, 0xFB, 44][..]), "{sent:02x?}");
}
