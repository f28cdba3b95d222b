//! Modbus units on a line, over an in-memory transport with the serving loop: the reference's
//! verified frames byte for byte, silence where the standard wants it, and a bus of units each
//! answering with its own address.

use std::time::Duration;

use serialtwin_core::{Bus, LineConfig, ServeConfig, serve};
use serialtwin_devices::modbus::rtu::crc16;
use serialtwin_devices::modbus::slave::{BadAddress, Slave, route, standard_line};
use serialtwin_devices::modbus::unit::{Access, Unit};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio_util::sync::CancellationToken;

fn with_crc(payload: &[u8]) -> Vec<u8> {
    let mut adu = payload.to_vec();
    adu.extend_from_slice(&crc16(payload).to_le_bytes());
    adu
}

/// A unit whose holding registers 0x6B–0x6D hold the reference's example (APP §6.3), the
/// first two writable.
fn example_unit() -> Unit {
    let mut unit = Unit::default();
    unit.holding
        .set_words(0x6B, &[0x022B, 0x0000], Access::ReadWrite)
        .unwrap();
    unit.holding
        .set_words(0x6D, &[0x0064], Access::ReadOnly)
        .unwrap();
    unit
}

/// Serve `body` on its own line (paced at its speed: time is paused).
fn start(body: impl serialtwin_core::Body) -> (DuplexStream, CancellationToken) {
    let (client, server) = tokio::io::duplex(4096);
    let cancel = CancellationToken::new();
    tokio::spawn(serve(
        body,
        server,
        ServeConfig::new("modbus"),
        cancel.clone(),
    ));
    (client, cancel)
}

async fn ask(client: &mut DuplexStream, request: &[u8], reply_len: usize) -> Vec<u8> {
    client.write_all(request).await.unwrap();
    let mut got = vec![0; reply_len];
    tokio::time::timeout(Duration::from_secs(5), client.read_exact(&mut got))
        .await
        .expect("a reply in time")
        .unwrap();
    got
}

/// Nothing comes within a second (the master's turnaround is 100–200 ms).
async fn silence(client: &mut DuplexStream) {
    let mut byte = [0];
    let got = tokio::time::timeout(Duration::from_secs(1), client.read(&mut byte)).await;
    assert!(
        got.is_err(),
        "a reply where there must be silence: {byte:02X?}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_references_frames_byte_for_byte() {
    let (mut client, cancel) = start(Slave::new(1, example_unit()).unwrap());
    // modbus.md §1, verified frames.
    let read = [0x01, 0x03, 0x00, 0x6B, 0x00, 0x03, 0x74, 0x17];
    let reply = [
        0x01, 0x03, 0x06, 0x02, 0x2B, 0x00, 0x00, 0x00, 0x64, 0x05, 0x7A,
    ];
    assert_eq!(ask(&mut client, &read, reply.len()).await, reply);
    // Past the table: exception 02.
    let beyond = with_crc(&[0x01, 0x03, 0x00, 0x6B, 0x00, 0x04]);
    assert_eq!(
        ask(&mut client, &beyond, 5).await,
        [0x01, 0x83, 0x02, 0xC0, 0xF1]
    );
    // A quantity the standard does not allow: exception 03.
    let too_many = with_crc(&[0x01, 0x03, 0x00, 0x6B, 0x00, 0x7E]);
    assert_eq!(
        ask(&mut client, &too_many, 5).await,
        [0x01, 0x83, 0x03, 0x01, 0x31]
    );
    cancel.cancel();
}

#[tokio::test(start_paused = true)]
async fn other_units_requests_bad_crcs_and_broadcasts_get_silence() {
    let (mut client, cancel) = start(Slave::new(1, example_unit()).unwrap());
    client
        .write_all(&with_crc(&[0x02, 0x03, 0x00, 0x6B, 0x00, 0x01]))
        .await
        .unwrap();
    silence(&mut client).await;
    let mut bad = with_crc(&[0x01, 0x03, 0x00, 0x6B, 0x00, 0x01]);
    bad[7] ^= 0xFF;
    client.write_all(&bad).await.unwrap();
    silence(&mut client).await;
    // A broadcast write (FC 6, register 0x6B = 0x1234) is carried out, and not answered...
    client
        .write_all(&with_crc(&[0x00, 0x06, 0x00, 0x6B, 0x12, 0x34]))
        .await
        .unwrap();
    silence(&mut client).await;
    // ...as the unit's own read shows.
    let read = with_crc(&[0x01, 0x03, 0x00, 0x6B, 0x00, 0x01]);
    let reply = with_crc(&[0x01, 0x03, 0x02, 0x12, 0x34]);
    assert_eq!(ask(&mut client, &read, reply.len()).await, reply);
    cancel.cancel();
}

/// Three units behind one port: each answers what is sent to it with its own address, a
/// pipelined burst to different units is answered in order, a broadcast reaches all, and an
/// address nobody has gets silence.
#[tokio::test(start_paused = true)]
async fn a_bus_of_units_each_answering_with_its_own_address() {
    let mut bus = Bus::new(
        route,
        serialtwin_devices::modbus::rtu::framing(),
        standard_line(),
    );
    for address in [1u8, 7, 247] {
        let mut unit = Unit::default();
        unit.holding
            .set_words(0, &[u16::from(address)], Access::ReadWrite)
            .unwrap();
        bus = bus.with(u32::from(address), Slave::new(address, unit).unwrap());
    }
    let (mut client, cancel) = start(bus);
    let read = |address: u8| with_crc(&[address, 0x03, 0x00, 0x00, 0x00, 0x01]);
    let reply = |address: u8, value: u8| with_crc(&[address, 0x03, 0x02, 0x00, value]);
    let burst: Vec<u8> = [247u8, 1, 7].iter().flat_map(|&a| read(a)).collect();
    let answers = ask(&mut client, &burst, 3 * 7).await;
    let expected: Vec<u8> = [247u8, 1, 7].iter().flat_map(|&a| reply(a, a)).collect();
    assert_eq!(answers, expected);
    client.write_all(&read(9)).await.unwrap();
    silence(&mut client).await;
    // FC 16 broadcast: register 0 = 0x0063 on every unit.
    client
        .write_all(&with_crc(&[
            0x00, 0x10, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x63,
        ]))
        .await
        .unwrap();
    silence(&mut client).await;
    for address in [1u8, 7, 247] {
        assert_eq!(
            ask(&mut client, &read(address), 7).await,
            reply(address, 0x63)
        );
    }
    cancel.cancel();
}

#[test]
fn a_unit_has_an_address_of_its_own() {
    assert_eq!(Slave::new(0, Unit::default()).unwrap_err(), BadAddress(0));
    assert_eq!(
        Slave::new(248, Unit::default()).unwrap_err(),
        BadAddress(248)
    );
    assert_eq!(Slave::new(247, Unit::default()).unwrap().address(), 247);
}

/// The standard's line: 19,200 8E1, whole frames from a native UART, a short turnaround.
#[test]
fn the_standard_line() {
    let line = standard_line();
    assert_eq!(line.baud, Some(19_200));
    assert_eq!(line.format.map(|f| f.to_string()).as_deref(), Some("8E1"));
    assert_eq!(line.adapter, serialtwin_core::Adapter::Native);
    assert!(line.pace);
    assert_ne!(line, LineConfig::default());
}
