//! The tap: frames cut with their exact wire bytes, and every byte passed and recorded.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serialtwin_capture::{CaptureWriter, Cutter, Header, Tap, TapEnd, read};
use serialtwin_core::{Direction, Framing, Observation, Plain, Terminator};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_util::sync::CancellationToken;

#[test]
fn cutter_frames_and_wire_bytes_concatenate_back() {
    let framing = Framing::lines(Terminator::CrLf, 8);
    let mut cutter = Cutter::new(&framing);
    let mut frames = Vec::new();
    let mut wire = Vec::new();
    let mut errors = 0;
    for piece in [&b"AB\r"[..], b"\nCD\r\n", b"0123456789abc\r\nE", b"F\r\n"] {
        for cut in cutter.feed(piece) {
            match cut {
                Ok((f, w)) => {
                    frames.push(f);
                    wire.extend_from_slice(&w);
                }
                Err(_) => errors += 1,
            }
        }
    }
    assert_eq!(frames, [&b"AB"[..], b"CD", b"EF"]);
    assert_eq!(errors, 1);
    assert_eq!(wire, b"AB\r\nCD\r\n0123456789abc\r\nEF\r\n");
    assert_eq!(cutter.buffered(), 0);
}

/// Every byte value, both ways, through a tap over in-memory pipes: passed unchanged and
/// recorded losslessly.
#[tokio::test]
async fn every_byte_passes_unchanged_and_is_recorded() {
    let dir = std::env::temp_dir().join(format!("tap-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tap.jsonl");
    let writer = CaptureWriter::create(&path, &Header::now()).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let tap = Tap::new("t")
        .framing(Framing::lines(Terminator::Lf, 1024))
        .capture(writer.clone())
        .observe(Arc::new(move |o: &Observation| {
            log.lock().unwrap().push(o.seen.clone());
        }));
    let (mut client, client_side) = tokio::io::duplex(4096);
    let (upstream, mut device) = tokio::io::duplex(4096);
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    let running = tokio::spawn(async move { tap.run(Plain(client_side), upstream, &stop).await });

    let all: Vec<u8> = (0..=255u8).collect();
    let reversed: Vec<u8> = all.iter().rev().copied().collect();
    client.write_all(&all).await.unwrap();
    let mut got = vec![0; 256];
    device.read_exact(&mut got).await.unwrap();
    assert_eq!(got, all);
    device.write_all(&reversed).await.unwrap();
    client.read_exact(&mut got).await.unwrap();
    assert_eq!(got, reversed);
    cancel.cancel();
    assert_eq!(running.await.unwrap().unwrap(), TapEnd::Cancelled);
    writer.close().unwrap();

    let c = read(&path).unwrap();
    let stream = |dir| -> Vec<u8> {
        c.chunks()
            .filter(|d| d.dir == dir)
            .flat_map(|d| d.bytes.to_vec())
            .collect()
    };
    assert_eq!(stream(Direction::Rx), all);
    assert_eq!(stream(Direction::Tx), reversed);
    // The LF framer cut each direction at 0x0a: rx frame 0x00..=0x09, tx wire 0xff..=0x0a.
    let frames: Vec<_> = c.frames().map(|d| (d.dir, d.bytes.clone())).collect();
    assert_eq!(
        frames,
        [
            (Direction::Rx, Bytes::from(all[..10].to_vec())),
            (Direction::Tx, Bytes::from(reversed[..=245].to_vec())),
        ]
    );
    assert_eq!(seen.lock().unwrap().len(), 2);
    let _ = std::fs::remove_dir_all(&dir);
}
