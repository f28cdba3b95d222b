//! `serialtwin learn` of a Modbus conversation: the register map it writes loads through the
//! `modbus` model and answers each read that was recorded with the recorded words; what the
//! map cannot hold (refused writes, exceptions, silent units, replies that were not what their
//! request asked for) is said in comments, and never learned as values.

use std::time::Duration;

use bytes::Bytes;
use serialtwin_capture::Data;
use serialtwin_core::{Direction, LineSettings, ServeConfig, serve};
use serialtwin_devices::learn::{LearnOptions, learn};
use serialtwin_devices::modbus::ascii;
use serialtwin_devices::modbus::rtu::{self, crc16};
use serialtwin_devices::registry::{Build, Table};
use serialtwin_devices::replay::{Conversation, FrameSource};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio_util::sync::CancellationToken;

fn with_crc(frame: &[u8]) -> Vec<u8> {
    let mut adu = frame.to_vec();
    adu.extend_from_slice(&crc16(frame).to_le_bytes());
    adu
}

/// `frame` as a Modbus ASCII line.
fn ascii_line(frame: &[u8]) -> Vec<u8> {
    let mut line = b":".to_vec();
    for b in frame.iter().chain([ascii::lrc(frame)].iter()) {
        line.extend(format!("{b:02X}").bytes());
    }
    line.extend(b"\r\n");
    line
}

/// A conversation of (request frame, reply wire bytes or none) exchanges.
fn conversation(exchanges: &[(Vec<u8>, Option<Vec<u8>>)], framing: &str) -> Conversation {
    let mut frames = Vec::new();
    for (i, (request, reply)) in exchanges.iter().enumerate() {
        let t = Duration::from_millis(u64::try_from(i).unwrap() * 10);
        frames.push(Data {
            t,
            dir: Direction::Rx,
            bytes: Bytes::copy_from_slice(request),
        });
        if let Some(reply) = reply {
            frames.push(Data {
                t: t + Duration::from_millis(5),
                dir: Direction::Tx,
                bytes: Bytes::copy_from_slice(reply),
            });
        }
    }
    let mut c = Conversation::from_frames(frames, framing, FrameSource::Recorded);
    c.settings = Some(LineSettings::new(9600));
    c
}

/// The learned config's `modbus` device, built by the model as `serialtwin run` builds it,
/// served over an in-memory line.
fn serve_map(map: &str, framing: serialtwin_core::Framing) -> (DuplexStream, CancellationToken) {
    let table_text = map
        .split_once("[device.modbus]")
        .unwrap()
        .1
        .replace("device.modbus.", "");
    let table = Table::parse(&table_text).unwrap_or_else(|e| panic!("{e:?}\n{map}"));
    let asked = Build {
        framing: Some(framing),
        ..Build::new(table)
    };
    let built = (serialtwin_devices::modbus::MODEL.build)(&asked)
        .unwrap_or_else(|e| panic!("{e:?}\n{map}"))
        .remove(0);
    let (client, server) = tokio::io::duplex(4096);
    let cancel = CancellationToken::new();
    tokio::spawn(serve(
        built.device,
        server,
        ServeConfig::new("learned"),
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

#[tokio::test(start_paused = true)]
#[expect(
    clippy::too_many_lines,
    reason = "one recorded line, and each thing the map must make of it"
)]
async fn a_recorded_rtu_line_becomes_a_map_that_answers_its_reads() {
    let read_holding = vec![1, 3, 0, 0, 0, 3];
    let first = with_crc(&[1, 3, 6, 0x00, 0x01, 0x00, 0x02, 0x00, 0x03]);
    let later = with_crc(&[1, 3, 6, 0x00, 0x01, 0x00, 0x09, 0x00, 0x03]);
    let mut corrupted = later.clone();
    corrupted[4] ^= 0xFF;
    let exchanges = vec![
        (read_holding.clone(), Some(first)),
        // The device's counter moved.
        (read_holding.clone(), Some(later.clone())),
        // A corrupted reply and one with the wrong count: not learned.
        (read_holding.clone(), Some(corrupted)),
        (
            vec![1, 4, 0, 0, 0, 2],
            Some(with_crc(&[1, 4, 2, 0x12, 0x34])),
        ),
        // Input registers, right.
        (
            vec![1, 4, 0, 10, 0, 2],
            Some(with_crc(&[1, 4, 4, 0xAB, 0xCD, 0x00, 0x07])),
        ),
        // A write refused: register 20 read-only.
        (
            vec![1, 16, 0, 20, 0, 1, 2, 0, 5],
            Some(with_crc(&[1, 0x90, 2])),
        ),
        (
            vec![1, 3, 0, 20, 0, 1],
            Some(with_crc(&[1, 3, 2, 0x11, 0x11])),
        ),
        // Read/write: writes 30, reads 31-32.
        (
            vec![1, 23, 0, 31, 0, 2, 0, 30, 0, 1, 2, 0x0F, 0x0F],
            Some(with_crc(&[1, 23, 4, 0, 0x31, 0, 0x32])),
        ),
        // A mask write on a value that was read: its result is learned.
        (
            vec![1, 22, 0, 2, 0xFF, 0x00, 0x00, 0x44],
            Some(with_crc(&[1, 22, 0, 2, 0xFF, 0x00, 0x00, 0x44])),
        ),
        // Coils, then two written.
        (
            vec![1, 1, 0, 0, 0, 10],
            Some(with_crc(&[1, 1, 2, 0b0000_0101, 0b10])),
        ),
        (
            vec![1, 15, 0, 0, 0, 2, 1, 0b10],
            Some(with_crc(&[1, 15, 0, 0, 0, 2])),
        ),
        // A silent unit, a broadcast, an exception to a read past the table.
        (vec![5, 3, 0, 0, 0, 1], None),
        (vec![0, 6, 0, 0, 0, 9], None),
        (vec![1, 3, 0, 99, 0, 1], Some(with_crc(&[1, 0x83, 2]))),
        // Identification.
        (
            vec![1, 43, 14, 1, 0],
            Some(with_crc(&[
                1, 43, 14, 1, 0x81, 0, 0, 2, 0, 2, b'A', b'C', 1, 3, b'P', b'"', b'3',
            ])),
        ),
    ];
    let framing = rtu::framing();
    let map = learn(
        &conversation(&exchanges, "modbus-rtu"),
        &framing,
        &LearnOptions::default(),
    );
    for line in [
        "model = \"modbus\"",
        "baud = 9600",
        "# Never answered, and left off the map (silent): unit(s) 5.",
        "# broadcast write register 0x0000 = 0x0009 (a broadcast: no unit answers) (seen 1 time(s))",
        "# unit 1 read holding 0x0000 ×3: answered with something else, not learned (seen 1 time(s))",
        "# unit 1 read input 0x0000 ×2: the reply is not what was asked for, not learned (seen 1 time(s))",
        "# unit 1 write registers 0x0014 ×1: 0x0005: exception 02 (illegal data address) (seen 1 time(s))",
        "writable = false  # a write was refused",
        "value = 9  # changed: 0x0002, 0x0009 (the last kept)",
        "value = 68  # changed: 0x0003, 0x0044 (the last kept); written by the client",
        "vendor = \"AC\"",
        "product = \"P\\\"3\"",
        "value = false  # changed: on, off (the last kept); written by the client",
        "value = true  # changed: off, on (the last kept); written by the client",
        "# unit 5 read holding 0x0000 ×1: no answer (seen 1 time(s))",
    ] {
        assert!(map.contains(line), "{line} not in:\n{map}");
    }
    // The unit as `serialtwin run` builds it from the map.
    let (mut client, cancel) = serve_map(&map, framing);
    let read = |frame: &[u8]| with_crc(frame);
    assert_eq!(
        ask(&mut client, &read(&[1, 3, 0, 0, 0, 3]), 11).await,
        with_crc(&[1, 3, 6, 0, 1, 0, 9, 0, 0x44])
    );
    assert_eq!(
        ask(&mut client, &read(&[1, 4, 0, 10, 0, 2]), 9).await,
        with_crc(&[1, 4, 4, 0xAB, 0xCD, 0x00, 0x07])
    );
    // Never read correctly: not in the map.
    assert_eq!(
        ask(&mut client, &read(&[1, 4, 0, 0, 0, 1]), 5).await,
        with_crc(&[1, 0x84, 2])
    );
    assert_eq!(
        ask(&mut client, &read(&[1, 3, 0, 30, 0, 3]), 11).await,
        with_crc(&[1, 3, 6, 0x0F, 0x0F, 0, 0x31, 0, 0x32])
    );
    // Coil 0 written off, coil 1 on; 2 and 9 as read.
    assert_eq!(
        ask(&mut client, &read(&[1, 1, 0, 0, 0, 10]), 7).await,
        with_crc(&[1, 1, 2, 0b0000_0110, 0b10])
    );
    // The refused write is refused again.
    assert_eq!(
        ask(&mut client, &read(&[1, 6, 0, 20, 0, 5]), 5).await,
        with_crc(&[1, 0x86, 2])
    );
    assert_eq!(
        ask(&mut client, &read(&[1, 3, 0, 99, 0, 1]), 5).await,
        with_crc(&[1, 0x83, 2])
    );
    cancel.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_recorded_ascii_line_is_learned_from_its_lines() {
    let exchanges = vec![
        (
            vec![7, 3, 0, 4, 0, 2],
            Some(ascii_line(&[7, 3, 4, 0xBE, 0xEF, 0x00, 0x01])),
        ),
        // An LRC that fails: not learned.
        (vec![7, 4, 0, 0, 0, 1], {
            let mut line = ascii_line(&[7, 4, 2, 0, 1]);
            line[11] = b'0';
            Some(line)
        }),
    ];
    let framing = ascii::framing();
    let map = learn(
        &conversation(&exchanges, "modbus-ascii"),
        &framing,
        &LearnOptions::default(),
    );
    assert!(map.contains("framing = \"modbus-ascii\""), "{map}");
    assert!(
        map.contains("# unit 7 read input 0x0000 ×1: answered with something else, not learned"),
        "{map}"
    );
    let (mut client, cancel) = serve_map(&map, framing);
    let reply = ascii_line(&[7, 3, 4, 0xBE, 0xEF, 0x00, 0x01]);
    assert_eq!(
        ask(&mut client, &ascii_line(&[7, 3, 0, 4, 0, 2]), reply.len()).await,
        reply
    );
    cancel.cancel();
}
