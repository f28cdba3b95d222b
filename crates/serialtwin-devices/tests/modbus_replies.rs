//! A recorded Modbus RTU line cut as `serialtwin tap --framing modbus-rtu` cuts it: replies
//! by the request they answer (`modbus.md` §3), for every function code, in any chunking,
//! with noise, bad CRCs, silent units, pipelined requests, broadcasts and replies nobody
//! asked for. Every frame and every report must be the same however the bytes were split
//! into reads, and nothing may wait for ever.
#![allow(missing_docs)]

use serialtwin_capture::{Cut, Cutter};
use serialtwin_core::{Direction, LineSettings};
use serialtwin_devices::modbus::functions::RequestLen;
use serialtwin_devices::modbus::replies::{MAX_PENDING, reply_len};
use serialtwin_devices::modbus::rtu::{self, crc16};

/// `frame` with its CRC, low byte first.
fn adu(frame: &[u8]) -> Vec<u8> {
    let mut v = frame.to_vec();
    v.extend_from_slice(&crc16(frame).to_le_bytes());
    v
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One thing on the line: bytes one way.
type Event = (Direction, Vec<u8>);

/// What the cutters made of the line: `rx <hex>` (a request as decoded), `tx <hex>` (a reply
/// as it went on the wire), `rx !` / `tx ! <message>` (a report).
fn outcome(direction: Direction, cuts: Vec<Cut>, out: &mut Vec<String>) {
    for cut in cuts {
        out.push(match (direction, cut) {
            (Direction::Rx, Ok((frame, _))) => format!("rx {}", hex(&frame)),
            (Direction::Tx, Ok((_, wire))) => format!("tx {}", hex(&wire)),
            (d, Err(e)) => format!("{d} ! {e}"),
        });
    }
}

/// Feed `events` in order, each cut into pieces by `split` (the piece lengths for an event of
/// that length, summing to it), then let the line go quiet.
fn cut(events: &[Event], split: &mut dyn FnMut(usize) -> Vec<usize>) -> Vec<String> {
    let (mut rx, mut tx) = Cutter::pair(&rtu::framing());
    let mut out = Vec::new();
    for (direction, bytes) in events {
        let cutter = match direction {
            Direction::Rx => &mut rx,
            Direction::Tx => &mut tx,
        };
        let mut at = 0;
        for len in split(bytes.len()) {
            let cuts = cutter.feed(&bytes[at..at + len]);
            outcome(*direction, cuts, &mut out);
            at += len;
        }
        assert_eq!(at, bytes.len());
    }
    let settings = LineSettings::new(19_200);
    for (direction, cutter) in [(Direction::Rx, &mut rx), (Direction::Tx, &mut tx)] {
        if cutter.silence_gap(&settings).is_some() {
            let cuts = cutter.on_silence();
            outcome(direction, cuts, &mut out);
        }
    }
    out
}

/// A small deterministic generator (no dependency, and every failure reproducible).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next()).unwrap() % n.max(1)
    }
}

/// `events` cut whole, then in every other chunking: one byte at a time, every two-piece
/// split of each event, and random pieces; all must agree. The agreed outcome.
fn in_any_chunking(events: &[Event]) -> Vec<String> {
    let whole = cut(events, &mut |n| vec![n]);
    assert_eq!(
        cut(events, &mut |n| vec![1; n]),
        whole,
        "one byte at a time"
    );
    let longest = events.iter().map(|(_, b)| b.len()).max().unwrap_or(0);
    for k in 1..longest {
        let split = cut(events, &mut |n| {
            if k < n { vec![k, n - k] } else { vec![n] }
        });
        assert_eq!(split, whole, "split at {k}");
    }
    for seed in 0..50 {
        let mut lcg = Lcg(seed);
        let random = cut(events, &mut |n| {
            let mut pieces = Vec::new();
            let mut left = n;
            while left > 0 {
                let piece = 1 + lcg.below(left);
                pieces.push(piece);
                left -= piece;
            }
            pieces
        });
        assert_eq!(random, whole, "random pieces, seed {seed}");
    }
    whole
}

/// Every function code's request and reply (`modbus.md` §3), as (request frame, reply frame),
/// neither with its CRC.
fn every_function() -> Vec<(Vec<u8>, Vec<u8>)> {
    vec![
        // Reads: counted replies.
        (vec![1, 1, 0, 0, 0, 10], vec![1, 1, 2, 0x55, 0x01]),
        (vec![1, 2, 0, 0, 0, 4], vec![1, 2, 1, 0x0D]),
        (
            vec![1, 3, 0, 0x6B, 0, 3],
            vec![1, 3, 6, 0x02, 0x2B, 0, 0, 0, 0x64],
        ),
        (vec![2, 4, 0, 0, 0, 1], vec![2, 4, 2, 0x12, 0x34]),
        // Writes: echoes.
        (vec![1, 5, 0, 0xAC, 0xFF, 0], vec![1, 5, 0, 0xAC, 0xFF, 0]),
        (vec![1, 6, 0, 1, 0, 3], vec![1, 6, 0, 1, 0, 3]),
        (
            vec![1, 15, 0, 0x13, 0, 10, 2, 0xCD, 0x01],
            vec![1, 15, 0, 0x13, 0, 10],
        ),
        (
            vec![1, 16, 0, 1, 0, 2, 4, 0, 0x0A, 1, 2],
            vec![1, 16, 0, 1, 0, 2],
        ),
        (
            vec![1, 22, 0, 4, 0, 0xF2, 0, 0x25],
            vec![1, 22, 0, 4, 0, 0xF2, 0, 0x25],
        ),
        // Read/write: the read part counted.
        (
            vec![1, 23, 0, 3, 0, 2, 0, 14, 0, 1, 2, 0, 0xFF],
            vec![1, 23, 4, 0, 0xFE, 0x0A, 0xCD],
        ),
        // Diagnostics: as long as the request, whatever its data.
        (
            vec![1, 8, 0, 0, 0xA5, 0x37, 0x12, 0x34],
            vec![1, 8, 0, 0, 0xA5, 0x37, 0x12, 0x34],
        ),
        // Serial-line only codes.
        (vec![1, 7], vec![1, 7, 0x6D]),
        (vec![1, 11], vec![1, 11, 0, 0, 1, 8]),
        (vec![1, 17], vec![1, 17, 3, 0xAB, 0xFF, 0x01]),
        // Device identification: walked object by object.
        (
            vec![1, 43, 14, 1, 0],
            vec![
                1, 43, 14, 1, 0x81, 0, 0, 3, 0, 4, b'A', b'C', b'M', b'E', 1, 2, b'P', b'M', 2, 3,
                b'2', b'.', b'7',
            ],
        ),
        // An exception: 5 bytes whatever the function.
        (vec![1, 3, 0, 0x64, 0, 1], vec![1, 0x83, 2]),
        (vec![1, 8, 0, 1, 0, 0], vec![1, 0x88, 1]),
        // A code without a length rule either way: cut where the CRC verifies.
        (vec![1, 0x41, 9, 9], vec![1, 0x41, 1, 2, 3, 4, 5]),
    ]
}

#[test]
fn every_function_s_reply_is_cut_by_its_request_in_any_chunking() {
    let mut events = Vec::new();
    let mut want = Vec::new();
    for (request, reply) in every_function() {
        events.push((Direction::Rx, adu(&request)));
        events.push((Direction::Tx, adu(&reply)));
        want.push(format!("rx {}", hex(&request)));
        want.push(format!("tx {}", hex(&adu(&reply))));
    }
    assert_eq!(in_any_chunking(&events), want);
}

#[test]
fn a_line_carried_in_single_reads_is_cut_the_same() {
    // Every request and its reply in one read each way, as a USB adapter may deliver them
    // after a pause: lengths alone cut them.
    let mut requests = Vec::new();
    let mut replies = Vec::new();
    let mut want_rx = Vec::new();
    let mut want_tx = Vec::new();
    for (request, reply) in every_function().into_iter().take(MAX_PENDING) {
        requests.extend(adu(&request));
        replies.extend(adu(&reply));
        want_rx.push(format!("rx {}", hex(&request)));
        want_tx.push(format!("tx {}", hex(&adu(&reply))));
    }
    let got = in_any_chunking(&[(Direction::Rx, requests), (Direction::Tx, replies)]);
    want_rx.extend(want_tx);
    assert_eq!(got, want_rx);
}

#[test]
fn noise_and_bad_crcs_are_reported_and_the_next_reply_is_found() {
    let read = adu(&[1, 3, 0, 0, 0, 2]);
    let reply = adu(&[1, 3, 4, 0, 1, 0, 2]);
    let mut corrupted = reply.clone();
    corrupted[4] ^= 0x40;
    let mut noisy = vec![0xFF, 0x00, 0x13];
    noisy.extend(&reply);
    let got = in_any_chunking(&[
        (Direction::Rx, read.clone()),
        (Direction::Tx, corrupted),
        (Direction::Rx, read.clone()),
        (Direction::Tx, noisy),
    ]);
    assert_eq!(
        got,
        [
            "rx 01 03 00 00 00 02".to_owned(),
            "tx ! malformed frame: reply to unit 1 read holding 0x0000 ×2 fails its CRC: 9 byte(s) dropped".to_owned(),
            "rx 01 03 00 00 00 02".to_owned(),
            "tx ! malformed frame: 3 byte(s) from the device dropped: no waiting request has that unit and function code at the first".to_owned(),
            format!("tx {}", hex(&reply)),
        ]
    );
}

#[test]
fn silent_units_broadcasts_and_pipelined_requests() {
    let silent = adu(&[9, 3, 0, 0, 0, 1]);
    let broadcast = adu(&[0, 6, 0, 1, 0, 7]);
    let listen_only = adu(&[1, 8, 0, 4, 0, 0]);
    let first = adu(&[1, 4, 0, 0, 0, 1]);
    let second = adu(&[2, 1, 0, 0, 0, 3]);
    let first_reply = adu(&[1, 4, 2, 0xAB, 0xCD]);
    let second_reply = adu(&[2, 1, 1, 0x05]);
    let got = in_any_chunking(&[
        (Direction::Rx, silent),
        (Direction::Rx, broadcast),
        (Direction::Rx, listen_only),
        // Two requests before either reply (a client that does not wait).
        (Direction::Rx, [first, second].concat()),
        (
            Direction::Tx,
            [first_reply.clone(), second_reply.clone()].concat(),
        ),
    ]);
    assert_eq!(
        got,
        [
            "rx 09 03 00 00 00 01".to_owned(),
            "rx 00 06 00 01 00 07".to_owned(),
            "rx 01 08 00 04 00 00".to_owned(),
            "rx 01 04 00 00 00 01".to_owned(),
            "rx 02 01 00 00 00 03".to_owned(),
            // The broadcast and "listen only" wait for nothing; the silent unit's request is
            // given up when a later one is answered.
            "tx ! malformed frame: no reply to unit 9 read holding 0x0000 ×1".to_owned(),
            format!("tx {}", hex(&first_reply)),
            format!("tx {}", hex(&second_reply)),
        ]
    );
}

#[test]
fn a_reply_nobody_asked_for_is_reported_with_what_it_says() {
    let got = in_any_chunking(&[(Direction::Tx, adu(&[1, 3, 2, 0x12, 0x34]))]);
    assert_eq!(
        got,
        [
            "tx ! malformed frame: 7-byte reply with no request waiting, dropped: unit 1 holding ×1: 0x1234"
        ]
    );
}

#[test]
fn a_reply_without_a_length_rule_and_no_crc_is_given_up_when_the_line_goes_quiet() {
    let request = adu(&[1, 0x41, 9, 9]);
    // No prefix of it verifies as a CRC.
    let reply = vec![1, 0x41, 1, 2, 3, 4, 5, 6];
    let got = in_any_chunking(&[(Direction::Rx, request), (Direction::Tx, reply)]);
    assert_eq!(
        got,
        [
            "rx 01 41 09 09",
            "tx ! malformed frame: 8 byte(s) from the device dropped after silence: no CRC verifies at the first"
        ]
    );
}

#[test]
fn too_many_waiting_requests_forget_the_oldest_and_say_so() {
    let mut events = Vec::new();
    for i in 0..=MAX_PENDING {
        events.push((
            Direction::Rx,
            adu(&[9, 3, 0, u8::try_from(i).unwrap(), 0, 1]),
        ));
    }
    // Only the last asks for input registers: the reply answers it, and every one before it
    // still remembered was never answered.
    events.push((Direction::Rx, adu(&[9, 4, 0, 0, 0, 1])));
    let last = adu(&[9, 4, 2, 0, 7]);
    events.push((Direction::Tx, last.clone()));
    let got = cut(&events, &mut |n| vec![n]);
    let reports: Vec<&String> = got.iter().filter(|l| l.starts_with("tx")).collect();
    assert_eq!(reports.len(), 1 + (MAX_PENDING - 1) + 1, "{reports:#?}");
    assert_eq!(
        reports[0],
        "tx ! malformed frame: 2 request(s) forgotten unanswered: more than 16 were waiting"
    );
    assert!(reports[1].ends_with("no reply to unit 9 read holding 0x0002 ×1"));
    assert_eq!(reports.last().unwrap(), &&format!("tx {}", hex(&last)));
}

#[test]
fn reply_lengths_from_the_reference_table() {
    assert_eq!(reply_len(None, &[1]), RequestLen::NeedHeader(2));
    assert_eq!(reply_len(None, &[1, 3]), RequestLen::NeedHeader(3));
    assert_eq!(reply_len(None, &[1, 3, 6]), RequestLen::Exact(11));
    assert_eq!(reply_len(None, &[1, 0x83]), RequestLen::Exact(5));
    for fc in [5, 6, 15, 16] {
        assert_eq!(reply_len(None, &[1, fc]), RequestLen::Exact(8), "FC {fc}");
    }
    assert_eq!(
        reply_len(None, &[1, 8]),
        RequestLen::Scan { min: 6, step: 2 }
    );
    assert_eq!(
        reply_len(Some(&[1, 8, 0, 0, 1, 2, 3, 4]), &[1, 8]),
        RequestLen::Exact(10)
    );
    assert_eq!(
        reply_len(None, &[1, 43, 14, 1, 0x81, 0, 0]),
        RequestLen::NeedHeader(8)
    );
    assert_eq!(
        reply_len(None, &[1, 43, 14, 1, 0x81, 0, 0, 1, 0]),
        RequestLen::NeedHeader(10)
    );
    assert_eq!(
        reply_len(None, &[1, 43, 14, 1, 0x81, 0, 0, 1, 0, 3]),
        RequestLen::Exact(15)
    );
    // An object list claiming more than an ADU holds: too long, not a wait for ever.
    let mut huge = vec![1, 43, 14, 1, 0x81, 0, 0, 3];
    for id in 0..3 {
        huge.extend([id, 250]);
        huge.extend([0; 250]);
    }
    assert!(matches!(reply_len(None, &huge), RequestLen::Exact(n) if n > 256));
}

#[test]
fn random_lines_are_cut_the_same_in_any_chunking_and_every_reply_verifies() {
    // Real exchanges with random noise, corrupted bytes and missing replies between them:
    // whatever comes, no panic, no wait for ever (the line going quiet settles everything),
    // the same outcome however the reads split, and every reply frame a reply whose CRC
    // verifies.
    let functions = every_function();
    for seed in 0..200 {
        let mut lcg = Lcg(seed);
        let mut events = Vec::new();
        for _ in 0..6 {
            let (request, reply) = &functions[lcg.below(functions.len())];
            events.push((Direction::Rx, adu(request)));
            let mut wire = adu(reply);
            match lcg.below(6) {
                0 => wire.clear(),
                1 => {
                    let at = lcg.below(wire.len());
                    wire[at] ^= 1 << lcg.below(8);
                }
                2 => {
                    let noise: Vec<u8> = (0..=lcg.below(20))
                        .map(|_| u8::try_from(lcg.below(256)).unwrap())
                        .collect();
                    wire.splice(0..0, noise);
                }
                _ => {}
            }
            if !wire.is_empty() {
                events.push((Direction::Tx, wire));
            }
        }
        let got = in_any_chunking(&events);
        for line in &got {
            if let Some(hex) = line.strip_prefix("tx ").filter(|h| !h.starts_with('!')) {
                let bytes: Vec<u8> = hex
                    .split(' ')
                    .map(|b| u8::from_str_radix(b, 16).unwrap())
                    .collect();
                assert_eq!(crc16(&bytes), 0, "seed {seed}: {line}");
            }
        }
    }
}

/// Through a real [`Tap`] (in-memory pipes, paused time): a reply whose length nothing gives
/// waits for its CRC across a pause shorter than the tap's idle timeout, and one whose CRC
/// never verifies is given up once its direction has been quiet that long, not before.
#[tokio::test(start_paused = true)]
async fn the_tap_waits_on_silence_only_for_replies_of_unknown_length() {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use serialtwin_capture::{Tap, TapEnd};
    use serialtwin_core::{Observation, Plain, Seen};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio_util::sync::CancellationToken;

    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let tap = Tap::new("t")
        .framing(rtu::framing())
        .idle(Duration::from_millis(20))
        .observe(Arc::new(move |o: &Observation| {
            let line = match &o.seen {
                Seen::Frame(dir, bytes) => format!("{dir} {}", hex(bytes)),
                Seen::FrameError(e) => format!("! {e}"),
                _ => return,
            };
            log.lock().unwrap().push(line);
        }));
    let (mut client, client_side) = tokio::io::duplex(4096);
    let (upstream, mut device) = tokio::io::duplex(4096);
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    let running = tokio::spawn(async move { tap.run(Plain(client_side), upstream, &stop).await });
    let mut scratch = [0u8; 64];

    // A user-defined function: the request is cut where its CRC verifies.
    let request = adu(&[1, 0x41, 9, 9]);
    client.write_all(&request).await.unwrap();
    device
        .read_exact(&mut scratch[..request.len()])
        .await
        .unwrap();
    // Its reply in two pieces, 10 ms apart: one frame.
    let reply = adu(&[1, 0x41, 1, 2, 3, 4, 5]);
    device.write_all(&reply[..4]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    device.write_all(&reply[4..]).await.unwrap();
    client
        .read_exact(&mut scratch[..reply.len()])
        .await
        .unwrap();
    // The same request again, and a reply that never verifies: given up after 20 ms quiet.
    client.write_all(&request).await.unwrap();
    device
        .read_exact(&mut scratch[..request.len()])
        .await
        .unwrap();
    device.write_all(&[1, 0x41, 7, 7, 7]).await.unwrap();
    client.read_exact(&mut scratch[..5]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(15)).await;
    let before = seen.lock().unwrap().len();
    tokio::time::sleep(Duration::from_millis(10)).await;
    cancel.cancel();
    assert_eq!(running.await.unwrap().unwrap(), TapEnd::Cancelled);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            "rx 01 41 09 09".to_owned(),
            format!("tx {}", hex(&reply)),
            "rx 01 41 09 09".to_owned(),
            "! tx: malformed frame: 5 byte(s) from the device dropped after silence: no CRC verifies at the first".to_owned(),
        ]
    );
    assert_eq!(
        before, 3,
        "given up before the line had been quiet for 20 ms"
    );
}
