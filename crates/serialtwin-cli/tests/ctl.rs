//! Faults and a timeline from the config file, and `serialtwin ctl` against a running fleet.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{PATIENCE, bin, ctl, start, work_dir, write_config};
use nix::sys::signal::Signal;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn ask_cr(path: &Path, request: &[u8]) -> Vec<u8> {
    let mut port = tokio_serial::SerialPortBuilderExt::open_native_async(tokio_serial::new(
        path.to_str().unwrap(),
        2400,
    ))
    .unwrap();
    port.write_all(request).await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(PATIENCE, async {
        let mut b = [0u8; 1];
        while reply.last() != Some(&b'\r') {
            port.read_exact(&mut b).await.unwrap();
            reply.push(b[0]);
        }
    })
    .await
    .unwrap();
    reply
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_faults_timeline_and_ctl() {
    let dir = work_dir("ctl");
    let socket = dir.join("run/control.sock");
    let config = write_config(
        &dir,
        "fleet.toml",
        &format!(
            r#"
[[device]]
name = "inv"
model = "pi30"
link = "{dir}/ttyUSB0"
faults = ["break-crc next=1 cmd=QPI"]

[[device]]
name = "meter"
model = "scripted"
link = "{dir}/ttyUSB1"
framing = "cr"
[device.script]
rule = [{{ request = "PING", reply = "PONG" }}]

[[timeline]]
at = "100ms"
run = "send meter HELLO"

[[timeline]]
at = "100ms"
run = "fault inv break-crc next=1 cmd=QMOD"
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
    let links = run.links();

    // The configured fault: the first QPI reply has a broken CRC, the second is right.
    let first = ask_cr(&links[0], b"QPI\xbe\xac\r").await;
    assert!(
        first.starts_with(b"(PI30") && first != b"(PI30\x9a\x0b\r",
        "{first:?}"
    );
    assert_eq!(
        ask_cr(&links[0], b"QPI\xbe\xac\r").await,
        b"(PI30\x9a\x0b\r"
    );

    // ctl: list, a run-time fault, a device value, errors with a non-zero status.
    let (ok, list) = ctl(&socket, &["list"]);
    assert!(
        ok && list.contains("inv /dev/pts/") && list.contains("meter /dev/pts/"),
        "{list}"
    );
    // Scoped to PING: an unscoped `next=1` would also count the timeline's unprompted HELLO,
    // and whether that comes before or after this command depends on the machine's pace.
    let (ok, text) = ctl(&socket, &["fault", "meter", "drop", "next=1", "cmd=PING"]);
    assert!(ok, "{text}");
    let (ok, text) = ctl(&socket, &["set", "inv", "grid", "off"]);
    // A command that answers nothing more says `ok`, as README says.
    assert!(ok && text == "ok\n", "{text:?}");
    let qpiws = ask_cr(&links[0], b"QPIWS\r").await;
    assert_eq!(
        qpiws[1 + 5],
        b'1',
        "line fail warning after grid off: {qpiws:?}"
    );
    let (ok, text) = ctl(&socket, &["set", "inv", "soc", "lots"]);
    assert!(!ok && text.contains("soc must be a percentage"), "{text}");
    let (ok, text) = ctl(&socket, &["unplug", "nobody", "1s"]);
    assert!(!ok && text.contains("no port named"), "{text}");

    // The meter's next reply is dropped; the one after arrives.
    let mut meter = tokio_serial::SerialPortBuilderExt::open_native_async(tokio_serial::new(
        links[1].to_str().unwrap(),
        2400,
    ))
    .unwrap();
    meter.write_all(b"PING\r").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    meter.write_all(b"PING\r").await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(PATIENCE, async {
        while got.last() != Some(&b'\r') {
            let mut b = [0u8; 16];
            let n = meter.read(&mut b).await.unwrap();
            got.extend_from_slice(&b[..n]);
        }
    })
    .await
    .unwrap();
    assert_eq!(got, b"PONG\r");
    drop(meter);

    timeline_fault_is_seen(&links[0]).await;
    unplug_through_ctl(&socket, &links[0]).await;

    values_and_steps_are_logged(&run.stderr());
    let (status, extra) = run.stop_with(Signal::SIGINT);
    assert!(status.success(), "{status:?}");
    assert!(extra.is_empty(), "{extra:?}");
    assert!(!socket.exists(), "control socket removed");
    let (ok, text) = ctl(&socket, &["list"]);
    assert!(
        !ok && text.contains("is `serialtwin run` running?"),
        "{text}"
    );
}

/// Values set and timeline steps run are logged, as unplugs are.
fn values_and_steps_are_logged(said: &str) {
    assert!(
        said.contains("device value set") && said.contains("grid") && said.contains("off"),
        "{said}"
    );
    assert!(said.contains("timeline step done"), "{said}");
}

/// The config's timeline put a broken CRC on one QMOD answer, whenever its step ran.
async fn timeline_fault_is_seen(link: &Path) {
    // The timeline's fault: one QMOD answer (whenever the step has run) has a broken CRC.
    let crc_ok = |reply: &[u8]| {
        let body = &reply[..reply.len() - 1];
        serialtwin_devices::pi30::crc::strip_valid(body).is_some()
    };
    tokio::time::timeout(PATIENCE, async {
        while crc_ok(&ask_cr(link, b"QMOD\x49\xc1\r").await) {}
    })
    .await
    .expect("the timeline's fault hits one QMOD");
    assert!(crc_ok(&ask_cr(link, b"QMOD\x49\xc1\r").await), "once only");
}

/// `serialtwin ctl unplug` on a running port: its client sees a hangup, the link comes back.
async fn unplug_through_ctl(socket: &Path, link: &Path) {
    // Unplugging a running port: its client sees a hangup, and the link comes back.
    let mut inv = tokio_serial::SerialPortBuilderExt::open_native_async(tokio_serial::new(
        link.to_str().unwrap(),
        2400,
    ))
    .unwrap();
    let (ok, text) = ctl(socket, &["unplug", "inv", "300ms"]);
    assert!(ok, "{text}");
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(PATIENCE, inv.read(&mut buf))
        .await
        .expect("hangup seen");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    drop(inv);
    tokio::time::timeout(PATIENCE, async {
        loop {
            let (_, list) = ctl(socket, &["list"]);
            let back = list.lines().any(|l| l.starts_with("inv /dev/pts/"))
                && std::fs::read_link(link).is_ok_and(|p| list.contains(&*p.to_string_lossy()));
            if back {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the port comes back");
    assert_eq!(ask_cr(link, b"QPI\xbe\xac\r").await, b"(PI30\x9a\x0b\r");
}

#[test]
fn bad_faults_and_timelines_are_rejected_at_the_value() {
    let dir = work_dir("ctlbad");
    for (body, line, reason) in [
        (
            "[[device]]\nmodel = \"pi30\"\nfaults = [\"melt\"]\n",
            3,
            "unknown fault",
        ),
        (
            "[[device]]\nmodel = \"pi30\"\n[[timeline]]\nat = \"soon\"\nrun = \"list\"\n",
            4,
            "bad duration",
        ),
        (
            "[[device]]\nmodel = \"pi30\"\n[[timeline]]\nat = \"1s\"\nrun = \"set ghost grid off\"\n",
            5,
            "no port named `ghost`",
        ),
    ] {
        let config = write_config(&dir, "bad.toml", body);
        let out = Command::new(bin())
            .arg("check")
            .arg(&config)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains(&format!("bad.toml:{line}:")) && err.contains(reason),
            "{err}"
        );
    }
}
