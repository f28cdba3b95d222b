//! A raw RTU master on the real port of a three-unit bus served by `serialtwin run`: who answers
//! which address, broadcasts that are carried out everywhere and answered nowhere, and a
//! pipelined burst to different units answered in order.
//!
//! Silence is shown without guessing a timeout where it can be: each request that must go
//! unanswered is followed at once by a read from a unit that answers, and the bytes that come
//! back must be exactly that unit's reply. The literal check — a raw read for 300 ms
//! after a broadcast returns nothing — is made as well.

mod common;

use std::fmt::Write as _;
use std::time::Duration;

use common::{PATIENCE, open_at, start, work_dir, write_config};
use serialtwin_devices::modbus::rtu::crc16;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The units on the bus, each with holding register 0 set to its own address × 100.
const UNITS: [u8; 3] = [1, 17, 247];

fn with_crc(payload: &[u8]) -> Vec<u8> {
    let mut adu = payload.to_vec();
    adu.extend_from_slice(&crc16(payload).to_le_bytes());
    adu
}

/// Function 3, holding register 0, one register, to `unit`.
fn read(unit: u8) -> Vec<u8> {
    with_crc(&[unit, 3, 0, 0, 0, 1])
}

/// What `unit` answers to [`read`] when its register holds `value`.
fn reply(unit: u8, value: u16) -> Vec<u8> {
    let [hi, lo] = value.to_be_bytes();
    with_crc(&[unit, 3, 2, hi, lo])
}

async fn read_exactly(port: &mut tokio_serial::SerialStream, n: usize) -> Vec<u8> {
    let mut got = vec![0u8; n];
    tokio::time::timeout(PATIENCE, port.read_exact(&mut got))
        .await
        .expect("a reply in time")
        .unwrap();
    got
}

fn bus(
    tag: &str,
) -> (
    common::Running,
    tokio_serial::SerialStream,
    common::scratch::Scratch,
) {
    let dir = work_dir(tag);
    let mut text = String::new();
    for unit in UNITS {
        let value = u16::from(unit) * 100;
        let _ = write!(
            text,
            "[[device.modbus.unit]]\nid = {unit}\n[[device.modbus.unit.holding]]\naddress = 0\nvalue = {value}\n"
        );
    }
    let config = write_config(
        &dir,
        "bus.toml",
        &format!(
            "[[device]]\nname = \"bus\"\nmodel = \"modbus\"\nlink = \"{}/ttyUSB-bus\"\n\n{text}",
            dir.display()
        ),
    );
    let run = start(&dir, &[config.to_str().unwrap(), "--no-control"]);
    let link = run.links().remove(0);
    let port = open_at(&link, 19_200);
    (run, port, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_every_address_finds_exactly_the_configured_units() {
    let (run, mut port, _dir) = bus("modbusraw-poll");
    let marker = reply(1, 100);
    let mut answered = Vec::new();
    for address in 1..=247u8 {
        // The request, then at once a read from unit 1: an absent unit leaves only unit 1's reply.
        port.write_all(&[read(address), read(1)].concat())
            .await
            .unwrap();
        let first = read_exactly(&mut port, marker.len()).await;
        if first == marker && address != 1 {
            continue;
        }
        let own = reply(address, u16::from(address) * 100);
        assert_eq!(first, own, "unit {address} answered with its own address");
        assert_eq!(
            read_exactly(&mut port, marker.len()).await,
            marker,
            "then unit 1"
        );
        answered.push(address);
    }
    assert_eq!(answered, UNITS);
    drop(run);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcasts_are_carried_out_everywhere_and_answered_nowhere() {
    let (run, mut port, _dir) = bus("modbusraw-broadcast");
    // Function 6 to unit 0: register 0 := 4711 on every unit, and not a byte back.
    port.write_all(&with_crc(&[0, 6, 0, 0, 0x12, 0x67]))
        .await
        .unwrap();
    let mut byte = [0u8; 1];
    let heard = tokio::time::timeout(Duration::from_millis(300), port.read(&mut byte)).await;
    assert!(heard.is_err(), "a broadcast was answered: {byte:02X?}");
    // A broadcast read is ignored, and so is the rest of what unit 0 may not do; the next
    // bytes on the line are unit 17's reply, showing the broadcast write.
    port.write_all(&[with_crc(&[0, 3, 0, 0, 0, 1]), read(17)].concat())
        .await
        .unwrap();
    assert_eq!(
        read_exactly(&mut port, 7).await,
        reply(17, 4711),
        "the broadcast reached unit 17, and the broadcast read went unanswered"
    );
    for unit in UNITS {
        port.write_all(&read(unit)).await.unwrap();
        assert_eq!(read_exactly(&mut port, 7).await, reply(unit, 4711));
    }
    drop(run);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipelined_burst_to_different_units_is_answered_in_order() {
    let (run, mut port, _dir) = bus("modbusraw-burst");
    let order = [247u8, 1, 17, 1, 247, 17, 17, 1];
    let burst: Vec<u8> = order.iter().flat_map(|&u| read(u)).collect();
    port.write_all(&burst).await.unwrap();
    let expected: Vec<u8> = order
        .iter()
        .flat_map(|&u| reply(u, u16::from(u) * 100))
        .collect();
    assert_eq!(read_exactly(&mut port, expected.len()).await, expected);
    drop(run);
}

/// `[device.modbus] read_only_writes` reaches the wire: a write to a read-only register
/// answers 02 by default (the standard's), 04 with `"device-failure"`, and is acknowledged with
/// `"ignore"`; the register keeps its value every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_to_read_only_registers_answer_as_the_config_says() {
    let write = with_crc(&[3, 6, 0, 0, 0, 9]);
    for (setting, answer) in [
        ("", with_crc(&[3, 0x86, 2])),
        (
            "read_only_writes = \"device-failure\"\n",
            with_crc(&[3, 0x86, 4]),
        ),
        ("read_only_writes = \"ignore\"\n", write.clone()),
    ] {
        let dir = work_dir("modbusraw-readonly");
        let config = write_config(
            &dir,
            "bus.toml",
            &format!(
                "[[device]]\nname = \"bus\"\nmodel = \"modbus\"\nlink = \"{}/ttyUSB-bus\"\n\n\
                 [device.modbus]\n{setting}\n\
                 [[device.modbus.unit]]\nid = 3\n\
                 [[device.modbus.unit.holding]]\naddress = 0\nvalue = 7\nwritable = false\n",
                dir.display()
            ),
        );
        let run = start(&dir, &[config.to_str().unwrap(), "--no-control"]);
        let mut port = open_at(&run.links().remove(0), 19_200);
        port.write_all(&write).await.unwrap();
        assert_eq!(
            read_exactly(&mut port, answer.len()).await,
            answer,
            "{setting:?}"
        );
        port.write_all(&read(3)).await.unwrap();
        assert_eq!(read_exactly(&mut port, 7).await, reply(3, 7), "{setting:?}");
        drop(run);
    }
}
