//! Clients that leave in the middle of things, on a paced PI30 (2400 baud, each byte on the wire
//! for its time): whoever opens the port next reads nothing that was meant for them, and a
//! client that is still there loses nothing.
//!
//! The clients are real: `open(2)` on the pty as the simplest programs do, and pyserial. Each
//! test waits for the port's own report of a departure (its `close` event), never a sleep.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::bare::bare_open;
use common::{PATIENCE, wait_for};
use serialtwin::{Fleet, LineEvent, PortHandle, PortSpec, Seen, SimClock};
use serialtwin_devices::pi30::{Pi30, Pi30Config};

/// `QPI` with its CRC, and what the inverter answers.
const QPI: &[u8] = b"QPI\xbe\xac\r";
const QPI_REPLY: &[u8] = b"(PI30\x9a\x0b\r";
/// `QPIGS` with its CRC: a 110-byte answer, 0.46 s on the wire.
const QPIGS: &[u8] = b"QPIGS\xb7\xa9\r";

fn inverter(fleet: &Fleet, name: &str) -> PortHandle {
    let mut spec = PortSpec::new(name);
    spec.serve.clock = SimClock::at_unix(1_741_176_000, 0.0);
    fleet
        .spawn(spec, Pi30::new(Pi30Config::default()).unwrap())
        .unwrap()
}

/// Read until `\r`, or `n` bytes if `n` comes first.
async fn read_reply(file: &mut std::fs::File, n: usize) -> Vec<u8> {
    let mut got = Vec::new();
    tokio::time::timeout(PATIENCE, async {
        while got.len() < n && got.last() != Some(&b'\r') {
            let mut b = [0u8; 1];
            match file.read(&mut b) {
                Ok(1) => got.push(b[0]),
                Ok(_) => panic!("end of input"),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                Err(e) => panic!("read: {e}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no reply in time; got {got:?}"));
    got
}

/// What a client opening the port now gets for `QPI`: exactly the answer, nothing before it.
async fn next_client_asks(port: &PortHandle) {
    assert_eq!(
        port.probe().unwrap().unread().unwrap(),
        0,
        "bytes wait in the line for whoever opens next"
    );
    let mut next = bare_open(port.pty());
    next.write_all(QPI)
        .expect("the next client's write is taken");
    assert_eq!(read_reply(&mut next, 64).await, QPI_REPLY);
}

async fn departure(seen: &mut tokio::sync::broadcast::Receiver<serialtwin::Observation>) {
    wait_for(seen, |s| matches!(s, Seen::Event(LineEvent::Closed))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_gone_mid_reply_leaves_nothing_for_the_next() {
    let fleet = Fleet::new();
    let port = inverter(&fleet, "midreply");
    let mut seen = port.observations();
    let mut first = bare_open(port.pty());
    first.write_all(QPIGS).unwrap();
    // The reply has started: 10 of its 110 bytes are here, the rest is still being paced.
    assert_eq!(read_reply(&mut first, 10).await.len(), 10);
    drop(first);
    departure(&mut seen).await;
    next_client_asks(&port).await;
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_pipelined_requests_then_gone_leave_nothing_for_the_next() {
    // A Python client pipelines twenty QPIGS, reads the first answer and a little of the
    // second (nine seconds of answers to go) and closes; another opens at once, before the
    // port can have seen the departure, and asks only once the port has reported it.
    let fleet = Fleet::new();
    let port = inverter(&fleet, "pipelined");
    let mut seen = port.observations();
    let mut child = std::process::Command::new(common::python::python())
        .arg("-c")
        .arg(
            r#"
import os, sys, time
def bare():
    return os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY)
first = bare()
os.write(first, b"QPIGS\xb7\xa9\r" * 20)
got = b""
while len(got) < 115:
    got += os.read(first, 115 - len(got))
os.close(first)
second = bare()
print("reopened", flush=True)
sys.stdin.readline()
os.write(second, b"QPI\xbe\xac\r")
out = b""
while not out.endswith(b"(PI30\x9a\x0b\r"):
    out += os.read(second, 512)
print(len(out) - 8, "bytes before its own answer", flush=True)
"#,
        )
        .arg(port.pty())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    tokio::task::block_in_place(|| std::io::BufRead::read_line(&mut stdout, &mut line)).unwrap();
    assert_eq!(line.trim(), "reopened");
    departure(&mut seen).await;
    stdin.write_all(b"go\n").unwrap();
    line.clear();
    let read = tokio::time::timeout(
        PATIENCE,
        tokio::task::spawn_blocking(move || {
            std::io::BufRead::read_line(&mut stdout, &mut line).map(|_| line)
        }),
    )
    .await;
    let _ = child.kill();
    let _ = child.wait();
    let line = read.expect("an answer in time").unwrap().unwrap();
    // At most the rest of the answer that was on the wire came before its own.
    let before: usize = line.split_whitespace().next().unwrap().parse().unwrap();
    assert!(before <= 110 - 5, "{line}");
    departure(&mut seen).await;
    // Whoever opens after the departures were seen reads nothing from before.
    next_client_asks(&port).await;
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_wrote_without_reading_leaves_nothing_for_the_next() {
    let fleet = Fleet::new();
    let port = inverter(&fleet, "noreader");
    let mut seen = port.observations();
    let mut first = bare_open(port.pty());
    // Requests until the line takes no more: thousands, none of their answers read.
    let mut written = 0usize;
    tokio::time::timeout(PATIENCE, async {
        let mut stalls = 0;
        while stalls < 50 {
            match first.write(QPIGS) {
                Ok(n) => {
                    written += n;
                    stalls = 0;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    stalls += 1;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                Err(e) => panic!("write: {e}"),
            }
        }
    })
    .await
    .unwrap();
    assert!(written > 10 * QPIGS.len(), "{written} bytes written");
    drop(first);
    departure(&mut seen).await;
    next_client_asks(&port).await;
    // And again: nothing was left in the port's own buffers either.
    next_client_asks(&port).await;
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_gets_the_reply_to_a_request_another_client_wrote_and_left() {
    // `cat port & echo QPIGS > port`: the writer is gone before the answer is, the listener
    // is still there and gets all of it.
    let fleet = Fleet::new();
    let port = inverter(&fleet, "catecho");
    let mut seen = port.observations();
    let mut listener = bare_open(port.pty());
    wait_for(&mut seen, |s| matches!(s, Seen::Event(LineEvent::Opened))).await;
    for _ in 0..3 {
        let mut writer = bare_open(port.pty());
        writer.write_all(b"QPIGS\r").unwrap();
        drop(writer);
        let reply = read_reply(&mut listener, 200).await;
        assert_eq!(reply.len(), 110, "{reply:?}");
        assert!(reply.starts_with(b"("), "{reply:?}");
    }
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_killed_mid_request_does_not_spoil_the_next_clients_request() {
    // A pyserial client writes half a request, hangs, and is killed (SIGKILL) before the rest;
    // the next client opens and asks at once, without waiting for the port to notice the
    // departure: every answer is the right one. (The half request is written a moment before
    // the kill, as by a client that hung mid-request: bytes of the departed client and of the
    // next one that reach the port in one read cannot be told apart, by us or by a UART.)
    let fleet = Fleet::new();
    let port = inverter(&fleet, "midrequest");
    let out = tokio::task::spawn_blocking({
        let path = port.pty().to_owned();
        move || {
            common::python::run_script(
                r#"
import subprocess, sys, serial
half = """
import sys, time, serial
s = serial.Serial(sys.argv[1], 2400, timeout=5)
s.write(b"QPIG")
time.sleep(0.2)
print("half a request written", flush=True)
time.sleep(60)
"""
bad = 0
for i in range(20):
    child = subprocess.Popen([sys.executable, "-c", half, sys.argv[1]], stdout=subprocess.PIPE)
    child.stdout.readline()
    child.kill()
    child.wait()
    s = serial.Serial(sys.argv[1], 2400, timeout=5)
    s.write(b"QPI\xbe\xac\r")
    reply = s.read_until(b"\r")
    if reply != b"(PI30\x9a\x0b\r":
        bad += 1
        print("bad", repr(reply))
    s.close()
print("bad answers:", bad)
"#,
                &[path],
            )
        }
    })
    .await
    .unwrap();
    assert!(out.contains("bad answers: 0"), "{out}");
    fleet.shutdown().await;
}
