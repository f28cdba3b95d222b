//! Injected faults as a client sees them, on real ports.

mod common;

use std::time::Duration;

use common::{
    Counter, PATIENCE, ask, expect_hangup, open_client, reopen_when_back, test_dir, wait_for,
};
use serialtwin::{Control, FaultKind, FaultRule, Fleet, PortSpec, Seen};
use tokio::io::AsyncReadExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unplug_is_a_hangup_and_the_same_link_comes_back_with_state() {
    let dir = test_dir("unplug");
    let link = dir.join("ttyUSB0");
    let fleet = Fleet::new();
    let port = fleet
        .spawn(PortSpec::new("usb").link(&link), Counter::default())
        .unwrap();
    let mut client = open_client(&link);
    assert_eq!(ask(&mut client, b"INC\r\n").await, b"1\r\n");
    port.unplug(Duration::from_millis(500)).await.unwrap();
    // The client sees the hangup: end of stream or EIO, not a hang.
    expect_hangup(&mut client).await;
    drop(client);
    // Reconnect logic: retry the same link until it is back.
    let mut client = reopen_when_back(&link, &port).await;
    assert_eq!(
        ask(&mut client, b"INC\r\n").await,
        b"2\r\n",
        "device state survives the unplug"
    );
    // (The kernel may hand out the same /dev/pts number again: it reuses the lowest free one.)
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        port.current_pty().unwrap()
    );
    drop(client);
    fleet.shutdown().await;
    assert!(std::fs::symlink_metadata(&link).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unplug_fault_loses_the_requests_already_sent_and_the_port_comes_back() {
    let dir = test_dir("unplugfault");
    let link = dir.join("ttyUSB0");
    let fleet = Fleet::new();
    let port = fleet
        .spawn(PortSpec::new("usb").link(&link), Counter::default())
        .unwrap();
    port.control(Control::Fault(FaultRule::next(
        FaultKind::Unplug(Duration::from_millis(300)),
        1,
    )))
    .await
    .unwrap();
    let mut seen = port.observations();
    let mut client = open_client(&link);
    // Three requests in one write: the first one's answer pulls the plug, and the other two
    // go with the line, as they would on real hardware.
    tokio::io::AsyncWriteExt::write_all(&mut client, b"INC\r\nINC\r\nINC\r\n")
        .await
        .unwrap();
    wait_for(&mut seen, |s| {
        *s == Seen::Fault(FaultKind::Unplug(Duration::from_millis(300)))
    })
    .await;
    expect_hangup(&mut client).await;
    drop(client);
    let mut client = reopen_when_back(&link, &port).await;
    assert_eq!(
        ask(&mut client, b"INC\r\n").await,
        b"2\r\n",
        "only the first request reached the device before the plug was pulled"
    );
    drop(client);
    fleet.shutdown().await;
}

/// Run a pyserial snippet from the pinned venv against `port`.
fn pyserial(script: &str, port: &std::path::Path) -> String {
    common::python::run_script(script, &[port])
}

async fn with_fault(kind: FaultKind, script: &'static str) -> String {
    let fleet = Fleet::new();
    let mut spec = PortSpec::new("faulty");
    spec.serve
        .faults
        .add(FaultRule::next(kind, 1).for_command(&b"INC"[..]));
    let port = fleet.spawn(spec, Counter::default()).unwrap();
    let path = port.pty().to_owned();
    let out = tokio::task::spawn_blocking(move || pyserial(script, &path))
        .await
        .unwrap();
    fleet.shutdown().await;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_reply_still_arrives_with_a_long_timeout() {
    let out = with_fault(
        FaultKind::Delay(Duration::from_millis(1500)),
        r#"
import sys, time, serial
s = serial.Serial(sys.argv[1], 2400, timeout=5)
t0 = time.monotonic()
s.write(b"INC\r\n")
print(repr(s.readline()), time.monotonic() - t0 >= 1.5)
"#,
    )
    .await;
    assert_eq!(out.trim(), "b'1\\r\\n' True");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicated_reply_arrives_twice() {
    let out = with_fault(
        FaultKind::Duplicate,
        r#"
import sys, serial
s = serial.Serial(sys.argv[1], 2400, timeout=2)
s.write(b"INC\r\n")
print(repr(s.readline()), repr(s.readline()))
"#,
    )
    .await;
    assert_eq!(out.trim(), r"b'1\r\n' b'1\r\n'");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noise_arrives_before_the_reply() {
    let out = with_fault(
        FaultKind::Noise,
        r#"
import sys, serial
s = serial.Serial(sys.argv[1], 2400, timeout=2)
s.write(b"INC\r\n")
line = s.readline()
print(len(line) > 3, line.endswith(b"1\r\n"))
"#,
    )
    .await;
    assert_eq!(out.trim(), "True True");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_reply_never_comes_and_the_next_one_does() {
    let out = with_fault(
        FaultKind::Drop,
        r#"
import sys, serial
s = serial.Serial(sys.argv[1], 2400, timeout=1)
s.write(b"INC\r\n")
first = s.readline()
s.write(b"INC\r\n")
print(repr(first), repr(s.readline()))
"#,
    )
    .await;
    assert_eq!(out.trim(), r"b'' b'2\r\n'");
}

#[tokio::test]
async fn faults_can_be_injected_at_run_time_and_are_observed() {
    let fleet = Fleet::new();
    let port = fleet
        .spawn(PortSpec::new("rt"), Counter::default())
        .unwrap();
    let mut seen = port.observations();
    port.control(Control::Fault(FaultRule::next(FaultKind::Truncate, 1)))
        .await
        .unwrap();
    let mut client = open_client(port.pty());
    tokio::io::AsyncWriteExt::write_all(&mut client, b"INC\r\nINC\r\n")
        .await
        .unwrap();
    wait_for(&mut seen, |s| *s == Seen::Fault(FaultKind::Truncate)).await;
    // The truncated "1\r\n" is "1" or "1\r"; the next reply is whole.
    let mut got = Vec::new();
    tokio::time::timeout(PATIENCE, async {
        while !got.ends_with(b"2\r\n") {
            let mut b = [0u8; 8];
            let n = client.read(&mut b).await.unwrap();
            got.extend_from_slice(&b[..n]);
        }
    })
    .await
    .unwrap();
    assert!(got == b"12\r\n" || got == b"1\r2\r\n", "{got:?}");
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_reply_differs_in_one_byte_and_the_next_is_whole() {
    let out = with_fault(
        FaultKind::Corrupt,
        r#"
import sys, serial
s = serial.Serial(sys.argv[1], 2400, timeout=2)
s.write(b"INC\r\n")
bad = s.read(3)
s.write(b"INC\r\n")
print(repr(bad), repr(s.readline()))
"#,
    )
    .await;
    let (bad, good) = out.trim().split_once(' ').unwrap();
    assert_ne!(bad, r"b'1\r\n'", "{out}");
    assert_eq!(good, r"b'2\r\n'", "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probability_fault_hits_about_its_share_and_is_seeded() {
    // p = 0.5 over 40 requests, twice with the same seed: the same replies are dropped.
    let mut runs = Vec::new();
    for _ in 0..2 {
        let fleet = Fleet::new();
        let mut spec = PortSpec::new("coin");
        spec.serve.seed = 42;
        spec.serve
            .faults
            .add(FaultRule::probability(FaultKind::Drop, 0.5));
        let port = fleet.spawn(spec, Counter::default()).unwrap();
        let mut seen = port.observations();
        let mut client = open_client(port.pty());
        // Observations of each exchange: the request, the reply, then the drop if it hit.
        let mut log = Vec::new();
        for i in 0..=40 {
            tokio::io::AsyncWriteExt::write_all(&mut client, b"INC\r\n")
                .await
                .unwrap();
            // Wait for the reply's frame (the 41st request only marks the end of the 40th).
            tokio::time::timeout(PATIENCE, async {
                loop {
                    let seen = seen.recv().await.unwrap().seen;
                    let done = match &seen {
                        Seen::Frame(serialtwin::Direction::Tx, _) => i < 40,
                        Seen::Frame(serialtwin::Direction::Rx, _) => i == 40,
                        _ => false,
                    };
                    log.push(seen);
                    if done {
                        return;
                    }
                }
            })
            .await
            .unwrap();
        }
        let answered: Vec<bool> = log
            .iter()
            .enumerate()
            .filter(|(_, s)| matches!(s, Seen::Frame(serialtwin::Direction::Tx, _)))
            .map(|(i, _)| log.get(i + 1) != Some(&Seen::Fault(FaultKind::Drop)))
            .collect();
        assert_eq!(answered.len(), 40);
        let hits = answered.iter().filter(|a| !**a).count();
        assert!((5..=35).contains(&hits), "{hits} of 40 dropped");
        runs.push(answered);
        drop(client);
        fleet.shutdown().await;
    }
    assert_eq!(runs[0], runs[1], "the same seed drops the same replies");
}
