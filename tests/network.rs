//! Network endpoints in front of a fleet's ports, driven over real TCP connections: the
//! second-client policies, unplug, a silent client, and malformed Telnet. (pyserial's
//! `socket://` and `rfc2217://` against `serialtwin run` are in the CLI's `network.rs`.)

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::scratch::Scratch;
use common::{Counter, ask, test_dir};
use serialtwin::net::{Endpoint, EndpointConfig, EndpointKind, SecondClient};
use serialtwin::{Fleet, PortHandle, PortSpec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// Safety net for anything awaited here, never a timing assertion.
const PATIENCE: Duration = Duration::from_secs(10);

/// A fleet of one counting port (a link in a directory of the test's own, kept while the
/// returned guard lives), and an endpoint of `kind` in front of it on a free loopback port:
/// the directory, the fleet, the port, the endpoint's stop and its address.
async fn served(
    tag: &str,
    kind: EndpointKind,
    second_client: SecondClient,
    idle_timeout: Option<Duration>,
) -> (Scratch, Fleet, PortHandle, CancellationToken, SocketAddr) {
    let dir = test_dir(tag);
    let fleet = Fleet::new();
    let port = fleet
        .spawn(
            PortSpec::new("dev").link(dir.join("ttyUSB0")),
            Counter::default(),
        )
        .unwrap();
    let endpoint = Endpoint::bind(EndpointConfig {
        second_client,
        idle_timeout,
        ..EndpointConfig::new(kind, "127.0.0.1:0".parse().unwrap())
    })
    .await
    .unwrap();
    let addr = endpoint.local_addr();
    let stop = CancellationToken::new();
    tokio::spawn(endpoint.serve(port.clone(), stop.clone()));
    (dir, fleet, port, stop, addr)
}

/// Everything until the server closes the connection.
async fn until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut all))
        .await
        .expect("the server did not close the connection")
        .ok();
    all
}

#[tokio::test]
async fn a_new_client_takes_the_port_over_when_the_endpoint_says_so() {
    let (_dir, fleet, _port, stop, addr) = served(
        "net-takeover",
        EndpointKind::Tcp,
        SecondClient::TakeOver,
        None,
    )
    .await;
    let mut first = TcpStream::connect(addr).await.unwrap();
    assert_eq!(ask(&mut first, b"INC\r\n").await, b"1\r\n");
    let mut second = TcpStream::connect(addr).await.unwrap();
    assert_eq!(
        until_closed(&mut first).await,
        b"kicked off, new user is coming\r\n"
    );
    // The device kept its state: one port, one device, whoever talks to it.
    assert_eq!(ask(&mut second, b"INC\r\n").await, b"2\r\n");
    stop.cancel();
    assert_eq!(until_closed(&mut second).await, b"");
    fleet.shutdown().await;
}

#[tokio::test]
async fn an_unplug_drops_the_connection_and_the_endpoint_serves_the_port_when_it_is_back() {
    let (_dir, fleet, port, stop, addr) = served(
        "net-unplug",
        EndpointKind::Rfc2217,
        SecondClient::Refuse,
        None,
    )
    .await;
    let mut client = TcpStream::connect(addr).await.unwrap();
    // Data needs no negotiation first: the server's opening offers come back before it.
    let reply = ask(&mut client, b"INC\r\n").await;
    assert!(reply.ends_with(b"1\r\n"), "{reply:?}");
    port.unplug(Duration::from_millis(300)).await.unwrap();
    until_closed(&mut client).await;
    // Back on a new pty: a client that connects again is served by the same device.
    let answered = tokio::time::timeout(PATIENCE, async {
        loop {
            // A connection made just before the port came back is closed at once: try again.
            if port.current_pty().is_some()
                && let Ok(mut again) = TcpStream::connect(addr).await
                && again.write_all(b"INC\r\n").await.is_ok()
            {
                let mut got = Vec::new();
                let mut b = [0_u8; 64];
                while let Ok(n) = again.read(&mut b).await {
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&b[..n]);
                    if got.ends_with(b"\n") {
                        return got;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the endpoint never served the port again");
    assert!(answered.ends_with(b"2\r\n"), "{answered:?}");
    stop.cancel();
    fleet.shutdown().await;
}

#[tokio::test]
async fn malformed_telnet_closes_that_connection_only() {
    let (_dir, fleet, _port, stop, addr) = served(
        "net-malformed",
        EndpointKind::Rfc2217,
        SecondClient::Refuse,
        None,
    )
    .await;
    // A COM-PORT subnegotiation that never ends: 1 MiB without IAC SE.
    let mut hostile = TcpStream::connect(addr).await.unwrap();
    let mut flood = vec![0xFF, 0xFA, 0x2C, 0x01];
    flood.extend(std::iter::repeat_n(0x41, 1 << 20));
    let (mut reader, mut writer) = hostile.split();
    let write = async {
        // The server may close before it has read it all.
        let _ = writer.write_all(&flood).await;
    };
    let read = async {
        let mut all = Vec::new();
        tokio::time::timeout(PATIENCE, reader.read_to_end(&mut all))
            .await
            .expect("the server kept the connection")
    };
    let ((), _) = tokio::join!(write, read);
    // Unknown options, a truncated subnegotiation and stray commands on the next
    // connection: refused or ignored, and the device answers.
    let mut client = TcpStream::connect(addr).await.unwrap();
    client
        .write_all(&[
            0xFF, 0xFB, 0x63, 0xFF, 0xFD, 0x64, 0xFF, 0xF1, 0xFF, 0xFA, 0x2C,
        ])
        .await
        .unwrap();
    client.write_all(&[0x02, 0x08, 0xFF, 0xF0]).await.unwrap();
    let reply = ask(&mut client, b"INC\r\n").await;
    assert!(reply.ends_with(b"1\r\n"), "{reply:?}");
    // DONT and WONT for the unknown options were sent back.
    assert!(
        reply.windows(3).any(|w| w == [0xFF, 0xFE, 0x63]),
        "{reply:?}"
    );
    assert!(
        reply.windows(3).any(|w| w == [0xFF, 0xFC, 0x64]),
        "{reply:?}"
    );
    stop.cancel();
    fleet.shutdown().await;
}

#[tokio::test]
async fn an_idle_client_is_closed_after_the_idle_timeout() {
    let (_dir, fleet, _port, stop, addr) = served(
        "net-idle",
        EndpointKind::Tcp,
        SecondClient::Refuse,
        Some(Duration::from_millis(200)),
    )
    .await;
    let mut client = TcpStream::connect(addr).await.unwrap();
    assert_eq!(ask(&mut client, b"INC\r\n").await, b"1\r\n");
    assert_eq!(until_closed(&mut client).await, b"");
    // The endpoint is free for the next client.
    let mut next = TcpStream::connect(addr).await.unwrap();
    assert_eq!(ask(&mut next, b"INC\r\n").await, b"2\r\n");
    stop.cancel();
    fleet.shutdown().await;
}

/// Read from `client` until `wanted` has arrived; everything read so far.
async fn read_until(client: &mut TcpStream, seen: &mut Vec<u8>, wanted: &[u8]) {
    tokio::time::timeout(PATIENCE, async {
        let mut buf = [0_u8; 256];
        while !seen.windows(wanted.len()).any(|w| w == wanted) {
            let n = client.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before {wanted:02x?}: {seen:02x?}");
            seen.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {wanted:02x?} in {seen:02x?}"));
}

#[tokio::test]
async fn a_device_break_is_one_linestate_notification_per_break_for_a_client_that_asks() {
    use serialtwin::DeviceLine;
    let (dir, fleet, port, stop, addr) = served(
        "net-break",
        EndpointKind::Rfc2217,
        SecondClient::Refuse,
        None,
    )
    .await;
    // A port no RFC 2217 endpoint serves has no line to hold in break.
    let bare = fleet
        .spawn(
            PortSpec::new("bare").link(dir.join("ttyUSB1")),
            Counter::default(),
        )
        .unwrap();
    let refused = bare.set_line(DeviceLine::Break, true).unwrap_err();
    assert!(
        refused.to_string().contains("no network endpoint"),
        "{refused}"
    );

    let mut client = TcpStream::connect(addr).await.unwrap();
    // WILL COM-PORT-OPTION, SET-LINESTATE-MASK 0x10 (break detect): answered with the mask.
    client
        .write_all(&[0xFF, 0xFB, 0x2C, 0xFF, 0xFA, 0x2C, 0x0A, 0x10, 0xFF, 0xF0])
        .await
        .unwrap();
    let mut seen = Vec::new();
    read_until(
        &mut client,
        &mut seen,
        &[0xFF, 0xFA, 0x2C, 0x6E, 0x10, 0xFF, 0xF0],
    )
    .await;
    let notify_break = [0xFF, 0xFA, 0x2C, 0x6A, 0x10, 0xFF, 0xF0];
    port.set_line(DeviceLine::Break, true).unwrap();
    read_until(&mut client, &mut seen, &notify_break).await;
    // Held again: no new break. Ended and begun again at once: one more, whenever the
    // endpoint looks. Then a modem line, whose notification comes after any break's.
    port.set_line(DeviceLine::Break, true).unwrap();
    port.set_line(DeviceLine::Break, false).unwrap();
    port.set_line(DeviceLine::Break, true).unwrap();
    port.set_line(DeviceLine::Break, false).unwrap();
    port.set_modem_line(serialtwin::net::ModemLine::Cts, false)
        .unwrap();
    // CD, DSR and delta CTS.
    read_until(
        &mut client,
        &mut seen,
        &[0xFF, 0xFA, 0x2C, 0x6B, 0xA1, 0xFF, 0xF0],
    )
    .await;
    let breaks = seen
        .windows(notify_break.len())
        .filter(|w| *w == notify_break)
        .count();
    assert_eq!(breaks, 2, "{seen:02x?}");
    stop.cancel();
    fleet.shutdown().await;
}

#[tokio::test]
async fn a_client_at_another_baud_rate_hears_framing_errors_with_the_garbage() {
    use serialtwin::LineConfig;
    let dir = test_dir("net-framing");
    let fleet = Fleet::new();
    let mut spec = PortSpec::new("dev").link(dir.join("ttyUSB0"));
    // A 9600-baud UART, unpaced: garbage for a client at any other speed.
    spec.serve.line = Some(LineConfig {
        pace: false,
        ..LineConfig::uart(9600)
    });
    let port = fleet.spawn(spec, Counter::default()).unwrap();
    let endpoint = Endpoint::bind(EndpointConfig::new(
        EndpointKind::Rfc2217,
        "127.0.0.1:0".parse().unwrap(),
    ))
    .await
    .unwrap();
    let addr = endpoint.local_addr();
    let stop = CancellationToken::new();
    tokio::spawn(endpoint.serve(port.clone(), stop.clone()));

    let mut client = TcpStream::connect(addr).await.unwrap();
    let baud = |rate: u32| {
        let mut sb = vec![0xFF, 0xFA, 0x2C, 0x01];
        sb.extend_from_slice(&rate.to_be_bytes());
        sb.extend_from_slice(&[0xFF, 0xF0]);
        sb
    };
    // WILL COM-PORT-OPTION, SET-LINESTATE-MASK 0x08 (framing error), SET-BAUDRATE 19200.
    let mut hello = vec![0xFF, 0xFB, 0x2C, 0xFF, 0xFA, 0x2C, 0x0A, 0x08, 0xFF, 0xF0];
    hello.extend(baud(19_200));
    client.write_all(&hello).await.unwrap();
    let mut seen = Vec::new();
    // The baud rate answered (server code 101) with the value in effect.
    let mut answered = vec![0xFF, 0xFA, 0x2C, 101];
    answered.extend_from_slice(&19_200_u32.to_be_bytes());
    read_until(&mut client, &mut seen, &answered).await;
    // Ask at 19,200: the answer comes garbled, behind a framing error.
    let framing = [0xFF, 0xFA, 0x2C, 0x6A, 0x08, 0xFF, 0xF0];
    client.write_all(b"INC\r\n").await.unwrap();
    read_until(&mut client, &mut seen, &framing).await;
    let errors = |seen: &[u8]| {
        seen.windows(framing.len())
            .filter(|w| *w == framing)
            .count()
    };
    let before = errors(&seen);
    // At the device's own speed: a clean answer, and no framing error with it.
    client.write_all(&baud(9600)).await.unwrap();
    let mut answered = vec![0xFF, 0xFA, 0x2C, 101];
    answered.extend_from_slice(&9600_u32.to_be_bytes());
    read_until(&mut client, &mut seen, &answered).await;
    let from = seen.len();
    client.write_all(b"INC\r\n").await.unwrap();
    read_until(&mut client, &mut seen, b"2\r\n").await;
    assert_eq!(
        errors(&seen[from..]),
        0,
        "a framing error at the device's speed: {seen:02x?}"
    );
    assert!(before >= 1);
    stop.cancel();
    fleet.shutdown().await;
}
