//! Run-time control over the Unix socket, and scenario timelines.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::{Counter, ask, open_client, test_dir, wait_for};
use serialtwin::control::{self, Command, Ports, TimelineStep};
use serialtwin::devices::pi30::{Pi30, Pi30Config};
use serialtwin::{FaultKind, Fleet, PortSpec, Seen, SimClock};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_socket_sets_values_injects_faults_and_lists_ports() {
    let dir = test_dir("control");
    let fleet = Fleet::new();
    let mut spec = PortSpec::new("inv0");
    spec.serve.clock = SimClock::at_unix(1_741_176_000, 0.0);
    let config: Pi30Config = toml::from_str("[plant]\nstart_unix = 1741132800").unwrap();
    let inv = fleet.spawn(spec, Pi30::new(config).unwrap()).unwrap();
    let counter = fleet
        .spawn(PortSpec::new("c1"), Counter::default())
        .unwrap();
    let socket = dir.join("ctl/serialtwin.sock");
    let cancel = CancellationToken::new();
    let server = {
        let (socket, ports, cancel) = (
            socket.clone(),
            Ports::new([inv.clone(), counter.clone()]),
            cancel.clone(),
        );
        tokio::spawn(async move { control::serve_socket(&socket, ports, cancel).await })
    };
    let server_socket = socket.clone();
    // Wait for the socket to exist.
    tokio::time::timeout(common::PATIENCE, async {
        while !server_socket.exists() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(
        std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let list = control::request(&socket, "list").await.unwrap();
    assert!(
        list.starts_with("ok\n")
            && list.contains("inv0 /dev/pts/")
            && list.contains("c1 /dev/pts/"),
        "{list}"
    );

    // The grid fails: the inverter's warning bits show it ("Line fail warning", bit 5).
    let mut client = open_client(inv.pty());
    let before = ask_cr(&mut client, b"QPIWS\r").await;
    assert_eq!(before.as_bytes()[1 + 5], b'0', "{before}");
    assert_eq!(
        control::request(&socket, "set inv0 grid off")
            .await
            .unwrap(),
        "ok"
    );
    let after = ask_cr(&mut client, b"QPIWS\r").await;
    assert_eq!(after.as_bytes()[1 + 5], b'1', "{after}");
    let refused = control::request(&socket, "set inv0 soc 250").await.unwrap();
    assert!(
        refused.starts_with("error: port \"inv0\": soc must be between 0 and 100"),
        "{refused}"
    );
    let unknown = control::request(&socket, "set c1 grid off").await.unwrap();
    assert!(unknown.starts_with("error:"), "{unknown}");

    // A fault for the next reply of the counter.
    let mut seen = counter.observations();
    assert_eq!(
        control::request(&socket, "fault c1 drop next=1")
            .await
            .unwrap(),
        "ok"
    );
    let mut c = open_client(counter.pty());
    tokio::io::AsyncWriteExt::write_all(&mut c, b"INC\r\n")
        .await
        .unwrap();
    wait_for(&mut seen, |s| *s == Seen::Fault(FaultKind::Drop)).await;
    assert_eq!(
        ask(&mut c, b"INC\r\n").await,
        b"2\r\n",
        "the first reply was dropped"
    );

    assert!(
        control::request(&socket, "fault nope drop")
            .await
            .unwrap()
            .contains("no port named")
    );
    assert!(
        control::request(&socket, "bogus")
            .await
            .unwrap()
            .starts_with("error: unknown command")
    );

    cancel.cancel();
    server.await.unwrap().unwrap();
    assert!(!socket.exists(), "socket removed");
    fleet.shutdown().await;
}

/// Read one `\r`-terminated PI30 reply.
async fn ask_cr(client: &mut tokio_serial::SerialStream, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    client.write_all(request).await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(common::PATIENCE, async {
        let mut b = [0u8; 1];
        while reply.last() != Some(&b'\r') {
            client.read_exact(&mut b).await.unwrap();
            reply.push(b[0]);
        }
    })
    .await
    .unwrap();
    String::from_utf8_lossy(&reply).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeline_runs_unattended() {
    let fleet = Fleet::new();
    let port = fleet.spawn(PortSpec::new("t"), Counter::default()).unwrap();
    let mut seen = port.observations();
    let steps = vec![
        TimelineStep {
            at: Duration::from_millis(50),
            command: Command::parse("fault t duplicate next=1").unwrap(),
        },
        TimelineStep {
            at: Duration::from_millis(100),
            command: Command::parse(r"send t HELLO").unwrap(),
        },
    ];
    // The client is there before the timeline starts: unprompted output with no client is
    // dropped, so opening after the timeline would race its 100 ms.
    let mut client = open_client(port.pty());
    let cancel = CancellationToken::new();
    let timeline = tokio::spawn(control::run_timeline(
        steps,
        Ports::new([port.clone()]),
        cancel.clone(),
    ));
    timeline.await.unwrap();
    wait_for(&mut seen, |s| *s == Seen::Fault(FaultKind::Duplicate)).await;
    // The unprompted HELLO went out twice (the duplicate fault hit it).
    assert_eq!(common::read_line(&mut client).await, b"HELLO\r\n");
    assert_eq!(common::read_line(&mut client).await, b"HELLO\r\n");
    assert_eq!(ask(&mut client, b"INC\r\n").await, b"1\r\n");
    fleet.shutdown().await;
}
