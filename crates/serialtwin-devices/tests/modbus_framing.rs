//! Modbus framing as a host sees it (issue 18, item 4): the reference's verified frames,
//! requests cut the same way however the bytes come, garbage and bad CRCs dropped without
//! losing the requests behind them, and the idle and frame timeouts through the serving loop.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use serialtwin_core::{
    Context, Device, FrameError, Framer, LineConfig, Observation, Replies, Seen, ServeConfig, serve,
};
use serialtwin_devices::modbus::ascii::{self, AsciiFramer};
use serialtwin_devices::modbus::functions::MAX_ADU_LEN;
use serialtwin_devices::modbus::rtu::{self, RtuFramer, crc16};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

/// `payload` with its CRC, low byte first.
fn with_crc(payload: &[u8]) -> Vec<u8> {
    let mut adu = payload.to_vec();
    adu.extend_from_slice(&crc16(payload).to_le_bytes());
    adu
}

/// Every frame `framer` cuts from `chunks` fed one after the other, asking `peek` first when
/// `peek` is set (as a lane does), with the errors counted. The buffer never holds more than
/// a request's worth once the framer has had its say, and the few bytes (fewer than 16) it
/// holds as not a request until their run is reported.
fn cut_all(cutter: &mut dyn Framer, chunks: &[&[u8]], peek: bool) -> (Vec<Bytes>, usize, BytesMut) {
    let (mut frames, mut errors, mut buf) = (Vec::new(), 0, BytesMut::new());
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        while !buf.is_empty() {
            if peek && let Some(at) = cutter.peek(&buf) {
                frames.push(Bytes::copy_from_slice(&buf[at.frame]));
                buf.advance(at.used);
                continue;
            }
            match cutter.decode(&mut buf) {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(_) => errors += 1,
            }
        }
        assert!(
            buf.len() < cutter.max_frame_len() + 16,
            "{} bytes held after decoding",
            buf.len()
        );
    }
    (frames, errors, buf)
}

fn rtu_cut(wire: &[u8]) -> (Vec<Bytes>, usize, BytesMut) {
    cut_all(&mut RtuFramer::new(), &[wire], false)
}

#[test]
fn the_reference_s_verified_rtu_frames_decode_and_encode_exactly() {
    let requests: [&[u8]; 3] = [
        &[0x01, 0x03, 0x00, 0x6B, 0x00, 0x03, 0x74, 0x17],
        &[0x01, 0x05, 0x00, 0xAC, 0xFF, 0x00, 0x4C, 0x1B],
        // FC 8: cut by the CRC scan.
        &[0x01, 0x08, 0x00, 0x00, 0xA5, 0x37, 0xDA, 0x8D],
    ];
    for wire in requests {
        let (frames, errors, rest) = rtu_cut(wire);
        assert_eq!(frames, [&wire[..wire.len() - 2]], "{wire:02X?}");
        assert_eq!((errors, rest.len()), (0, 0));
        let mut encoded = BytesMut::new();
        RtuFramer::new().encode(&frames[0], &mut encoded).unwrap();
        assert_eq!(&encoded[..], wire);
        assert_eq!(RtuFramer::new().checksum_range(wire), Some(6..8));
    }
    let replies: [&[u8]; 3] = [
        &[
            0x01, 0x03, 0x06, 0x02, 0x2B, 0x00, 0x00, 0x00, 0x64, 0x05, 0x7A,
        ],
        &[0x01, 0x83, 0x02, 0xC0, 0xF1],
        &[0x01, 0x83, 0x03, 0x01, 0x31],
    ];
    for wire in replies {
        let mut encoded = BytesMut::new();
        RtuFramer::new()
            .encode(&wire[..wire.len() - 2], &mut encoded)
            .unwrap();
        assert_eq!(&encoded[..], wire);
    }
    // The registry's round trip: a reply's wire bytes give back what the device pushed.
    assert_eq!(
        rtu::framing().unframe(replies[1]).as_deref(),
        Some(&replies[1][..3])
    );
    assert_eq!(rtu::framing().name(), "modbus-rtu");
}

#[test]
fn the_reference_s_ascii_vector_decodes_and_encodes_exactly() {
    let frame = [0x01, 0x03, 0x00, 0x6B, 0x00, 0x03];
    let wire = b":0103006B00038E\r\n";
    let (frames, errors, rest) = cut_all(&mut AsciiFramer::new(), &[wire], false);
    assert_eq!(frames, [&frame[..]]);
    assert_eq!((errors, rest.len()), (0, 0));
    let mut encoded = BytesMut::new();
    AsciiFramer::new().encode(&frame, &mut encoded).unwrap();
    assert_eq!(&encoded[..], wire);
    assert_eq!(ascii::framing().unframe(wire).as_deref(), Some(&frame[..]));
    assert_eq!(ascii::framing().name(), "modbus-ascii");
}

#[test]
fn ascii_drops_bad_frames_and_keeps_the_good_one_after_them() {
    let good: &[u8] = b":0103006B00038E\r\n";
    let bad: [&[u8]; 6] = [
        b":0103006b00038e\r\n", // lowercase
        b":0103006B00038F\r\n", // wrong LRC
        b":0103006B00038\r\n",  // odd digits
        b":0103006B00G38E\r\n", // not hex
        b":0103006B00038E\rX",  // CR without LF
        b":01\r\n",             // too short
    ];
    for bad in bad {
        let wire = [bad, good].concat();
        let (frames, errors, _) = cut_all(&mut AsciiFramer::new(), &[&wire], false);
        assert_eq!(frames.len(), 1, "{}", String::from_utf8_lossy(bad));
        assert_eq!(&frames[0][..], [0x01, 0x03, 0x00, 0x6B, 0x00, 0x03]);
        assert!(errors >= 1, "{}", String::from_utf8_lossy(bad));
    }
    // A `:` restarts reception: the half frame before it is gone, the frame after it stays.
    let wire = [&b":01030"[..], good].concat();
    let (frames, errors, _) = cut_all(&mut AsciiFramer::new(), &[&wire], false);
    assert_eq!((frames.len(), errors), (1, 1));
    // Longer than 513 characters: dropped, and the next frame is found.
    let long = [&b":"[..], &[b'0'; 600], good].concat();
    let mut cutter = AsciiFramer::new();
    let (frames, errors, _) = cut_all(&mut cutter, &[&long], false);
    assert_eq!(frames.len(), 1);
    assert!(errors >= 1);
    // 513 characters exactly is a frame: 254 bytes and the LRC.
    let mut max = BytesMut::new();
    cutter.encode(&[7; 254], &mut max).unwrap();
    assert_eq!(max.len(), ascii::MAX_CHARS);
    let (frames, errors, _) = cut_all(&mut cutter, &[&max], false);
    assert_eq!((frames.len(), errors), (1, 0));
    assert!(cutter.encode(&[7; 255], &mut BytesMut::new()).is_err());
}

#[test]
fn ascii_waits_on_silence_only_inside_a_frame() {
    let settings = serialtwin_core::LineSettings::new(9600);
    let mut framer = AsciiFramer::new();
    let mut buf = BytesMut::from(&b":01030"[..]);
    assert_eq!(framer.decode(&mut buf).unwrap(), None);
    assert_eq!(framer.silence_gap(&settings), Some(ascii::IDLE));
    assert!(matches!(
        framer.on_silence(&mut buf),
        Err(FrameError::Malformed(_))
    ));
    assert!(buf.is_empty());
    assert_eq!(framer.silence_gap(&settings), None);
}

/// A random request of a code whose length the header gives (`fc`), or FC 8 (whose length
/// only its CRC says), with random fields.
fn random_request(rng: &mut fastrand::Rng, fc: u8) -> Vec<u8> {
    let mut pdu = vec![rng.u8(1..=247), fc];
    let bytes = |n: usize, pdu: &mut Vec<u8>, rng: &mut fastrand::Rng| {
        pdu.extend((0..n).map(|_| rng.u8(..)));
    };
    match fc {
        1..=6 => bytes(4, &mut pdu, rng),
        7 | 11 | 12 | 17 => {}
        8 => {
            let items = rng.usize(0..=12);
            bytes(2 + 2 * items, &mut pdu, rng);
        }
        15 | 16 => {
            bytes(4, &mut pdu, rng);
            let count = rng.u8(0..=60);
            pdu.push(count);
            bytes(usize::from(count), &mut pdu, rng);
        }
        20 | 21 => {
            let count = rng.u8(0..=40);
            pdu.push(count);
            bytes(usize::from(count), &mut pdu, rng);
        }
        22 => bytes(6, &mut pdu, rng),
        23 => {
            bytes(8, &mut pdu, rng);
            let count = rng.u8(0..=40);
            pdu.push(count);
            bytes(usize::from(count), &mut pdu, rng);
        }
        24 => bytes(2, &mut pdu, rng),
        43 => pdu.extend([14, rng.u8(1..=4), rng.u8(..)]),
        _ => unreachable!("FC {fc}"),
    }
    with_crc(&pdu)
}

/// Whether a shorter even prefix of an FC 8 request verifies too: the framer (rightly) takes
/// the shortest, so such a request is not the one generated.
fn ambiguous_fc8(adu: &[u8]) -> bool {
    adu[1] == 8
        && (6..adu.len())
            .step_by(2)
            .any(|n| crc16(&adu[..n - 2]).to_le_bytes() == adu[n - 2..n])
}

/// A stream's bytes, the good requests to come out of it, the bad ones, the sentinel.
type Stream = (Vec<u8>, Vec<Vec<u8>>, Vec<Vec<u8>>, Vec<u8>);

const CODES: [u8; 18] = [
    1, 2, 3, 4, 5, 6, 7, 8, 11, 12, 15, 16, 17, 20, 21, 22, 23, 24,
];

/// A stream of good requests, requests with a broken CRC and garbage between them, ending in
/// enough good requests of one kind (the sentinel, returned) to settle whatever a false start
/// before them claims. Returned too: the good requests that must come out, in order, without
/// CRC (not an FC 8 request behind garbage or a bad CRC, which only a request of known length
/// resynchronises after), and the bad ones.
fn random_stream(rng: &mut fastrand::Rng) -> Stream {
    let (mut wire, mut good, mut bad) = (Vec::new(), Vec::new(), Vec::new());
    let mut hunting = false;
    for _ in 0..rng.usize(4..=14) {
        let fc = if rng.u8(..10) == 0 {
            43
        } else {
            CODES[rng.usize(..CODES.len())]
        };
        let mut adu = random_request(rng, fc);
        while ambiguous_fc8(&adu) {
            adu = random_request(rng, fc);
        }
        match rng.u8(..10) {
            0..=5 if fc == 8 && hunting => {}
            0..=5 => {
                good.push(adu[..adu.len() - 2].to_vec());
                hunting = false;
            }
            6 | 7 => {
                let last = adu.len() - 1;
                adu[last] ^= rng.u8(1..);
                bad.push(adu[..adu.len() - 2].to_vec());
                hunting = true;
            }
            _ => {
                adu = (0..rng.usize(1..=12)).map(|_| rng.u8(..)).collect();
                hunting = true;
            }
        }
        wire.extend_from_slice(&adu);
    }
    let sentinel = with_crc(&[0x01, 0x03, 0x00, 0x6B, 0x00, 0x03]);
    for _ in 0..(MAX_ADU_LEN / sentinel.len() + 4) {
        wire.extend_from_slice(&sentinel);
    }
    (wire, good, bad, sentinel[..6].to_vec())
}

/// `wire` cut into random pieces.
fn random_chunks<'a>(rng: &mut fastrand::Rng, wire: &'a [u8]) -> Vec<&'a [u8]> {
    let mut chunks = Vec::new();
    let mut rest = wire;
    while !rest.is_empty() {
        let (head, tail) = rest.split_at(rng.usize(1..=rest.len().min(40)));
        chunks.push(head);
        rest = tail;
    }
    chunks
}

/// Whether `wanted` appears in `frames` in order (other frames may sit between them).
fn in_order(frames: &[Bytes], wanted: &[Vec<u8>]) -> bool {
    let mut frames = frames.iter();
    wanted
        .iter()
        .all(|w| frames.any(|f| f.as_ref() == w.as_slice()))
}

#[test]
fn property_every_chunking_cuts_the_same_requests_and_drops_every_bad_crc() {
    let mut rng = fastrand::Rng::with_seed(0x18_04);
    let (mut lost, mut extra) = (0, 0);
    let streams = 300;
    for stream in 0..streams {
        let (wire, good, bad, sentinel) = random_stream(&mut rng);
        let (whole, _, _) = rtu_cut(&wire);
        let bytewise: Vec<&[u8]> = wire.chunks(1).collect();
        let mut chunkings = vec![(bytewise, false), (vec![&wire[..]], true)];
        for peek in [false, true, false] {
            chunkings.push((random_chunks(&mut rng, &wire), peek));
        }
        for (chunks, peek) in &chunkings {
            let (frames, _, _) = cut_all(&mut RtuFramer::new(), chunks, *peek);
            assert_eq!(frames, whole, "stream {stream}: {} pieces", chunks.len());
        }
        for b in &bad {
            assert!(
                !whole.iter().any(|f| f.as_ref() == b.as_slice()),
                "stream {stream}: a request with a bad CRC got through"
            );
        }
        // The sentinels settle every false start: at least the last ones come out.
        let last_two = [Bytes::from(sentinel.clone()), Bytes::from(sentinel.clone())];
        assert!(whole.ends_with(&last_two), "stream {stream}");
        // A good request is lost only to a false frame (a CRC verifying by chance over
        // garbage and what follows it), which is rare.
        if !in_order(&whole, &good) {
            lost += 1;
        }
        let sentinels = whole
            .iter()
            .rev()
            .take_while(|f| f.as_ref() == sentinel)
            .count();
        if whole.len() - sentinels != good.len() {
            extra += 1;
        }
    }
    eprintln!("{lost} lost, {extra} with false frames of {streams} streams");
    assert!(
        lost * 50 <= streams,
        "{lost} of {streams} streams lost a request"
    );
}

#[test]
fn a_good_request_right_behind_garbage_or_a_bad_crc_is_found() {
    let good = with_crc(&[0x01, 0x03, 0x00, 0x6B, 0x00, 0x03]);
    let mut broken = with_crc(&[0x01, 0x06, 0x00, 0x01, 0x00, 0x03]);
    broken[7] ^= 0xFF;
    // `07 01` reads as FC 1 at address 7: its 8 bytes swallow most of the good request, and
    // fail their CRC; the hunt resumes one byte on.
    for prefix in [&[0x07][..], &broken, &[0x00, 0x10, 0xFF, 0xFF]] {
        let wire = [prefix, &good, &good].concat();
        let (frames, errors, rest) = rtu_cut(&wire);
        assert_eq!(frames, [&good[..6], &good[..6]], "{prefix:02X?}");
        assert!(errors >= 1);
        assert!(rest.is_empty());
    }
    // A byte count claiming more than 256 bytes is no request.
    let wire = [&[0x01, 0x10, 0, 0, 0, 0x7B, 0xFF][..], &good].concat();
    assert_eq!(rtu_cut(&wire).0, [&good[..6]]);
}

#[test]
fn an_overlong_undecided_request_is_given_up_at_256_bytes() {
    // An undefined code whose CRC never verifies: dropped from the front once 256 bytes are
    // buffered, one byte at a time, so the buffer stays bounded.
    let mut junk = vec![0x01, 0x41];
    junk.extend((0u8..=253).map(|i| i.wrapping_mul(37)));
    junk.extend_from_slice(&[0x55; 300]);
    let chunks: Vec<&[u8]> = junk.chunks(7).collect();
    let (_, errors, rest) = cut_all(&mut RtuFramer::new(), &chunks, false);
    assert!(errors > 0);
    assert!(rest.len() < MAX_ADU_LEN);
    // An undefined code whose CRC verifies is cut by the scan.
    let odd = with_crc(&[0x01, 0x41, 0x12]);
    assert_eq!(rtu_cut(&odd).0, [&odd[..3]]);
}

/// Answers every request with itself: the framer's CRC makes the reply's wire bytes the
/// request's.
struct Echo;

impl Device for Echo {
    type Error = std::convert::Infallible;

    fn handle(
        &mut self,
        request: &[u8],
        _: &mut Context,
        out: &mut Replies,
    ) -> Result<(), Self::Error> {
        out.push(Bytes::copy_from_slice(request));
        Ok(())
    }
}

/// Serves [`Echo`] with `framing` over a duplex; the frame errors seen go into the vector.
fn start(
    framing: serialtwin_core::Framing,
    line: Option<LineConfig>,
) -> (DuplexStream, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let errors = seen.clone();
    let mut config = ServeConfig::new("modbus").observe(move |o: &Observation| {
        if let Seen::FrameError(e) = &o.seen {
            errors.lock().unwrap().push(e.clone());
        }
    });
    config.framing = Some(framing);
    config.line = line;
    let (client, server) = tokio::io::duplex(4096);
    // A token nobody cancels: serving ends when the client hangs up.
    let cancel = serialtwin_core::Fleet::without_lanes().cancellation();
    tokio::spawn(serve(Echo, server, config, cancel));
    (client, seen)
}

async fn read_exactly(client: &mut DuplexStream, n: usize) -> Vec<u8> {
    let mut got = vec![0; n];
    tokio::time::timeout(Duration::from_secs(5), client.read_exact(&mut got))
        .await
        .expect("reply in time")
        .unwrap();
    got
}

/// Nothing more comes within a second.
async fn nothing_more(client: &mut DuplexStream) {
    let mut byte = [0];
    let more = tokio::time::timeout(Duration::from_secs(1), client.read(&mut byte)).await;
    assert!(more.is_err(), "unexpected {byte:02X?}");
}

#[tokio::test(start_paused = true)]
async fn served_rtu_answers_pipelined_requests_and_stays_silent_on_bad_ones() {
    let (mut client, seen) = start(rtu::framing(), None);
    let a = with_crc(&[0x01, 0x03, 0x00, 0x6B, 0x00, 0x03]);
    let b = with_crc(&[0x01, 0x08, 0x00, 0x00, 0x12, 0x34, 0x56, 0x78]);
    let mut broken = with_crc(&[0x02, 0x06, 0x00, 0x01, 0x00, 0x03]);
    broken[6] ^= 1;
    // FC 8 behind a request is cut by its CRC; behind garbage it would go with the garbage.
    let wire = [&a[..], &b, &broken, &[0xFF], &a].concat();
    client.write_all(&wire).await.unwrap();
    let want = [&a[..], &b, &a].concat();
    assert_eq!(read_exactly(&mut client, want.len()).await, want);
    nothing_more(&mut client).await;
    assert!(
        !seen.lock().unwrap().is_empty(),
        "the bad bytes are reported"
    );
}

#[tokio::test(start_paused = true)]
async fn served_rtu_gives_up_an_undecided_request_after_the_idle_timeout() {
    let (mut client, seen) = start(rtu::framing(), None);
    let good = with_crc(&[0x01, 0x03, 0x00, 0x6B, 0x00, 0x03]);
    // An undefined code, and an FC 8 request cut short: no prefix's CRC verifies, with or
    // without the good request behind them, so only silence can end them.
    for undecided in [
        &[0x01, 0x41, 0x12, 0x34][..],
        &[0x01, 0x08, 0x00, 0x00, 0xA5],
    ] {
        let joined = [undecided, &good].concat();
        assert!((4..=joined.len()).all(|n| crc16(&joined[..n]) != 0));
        client.write_all(undecided).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        client.write_all(&good).await.unwrap();
        assert_eq!(read_exactly(&mut client, good.len()).await, good);
    }
    nothing_more(&mut client).await;
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen.iter().all(|e| e.contains("after silence")), "{seen:?}");
}

#[tokio::test(start_paused = true)]
async fn served_rtu_joins_a_request_split_within_the_idle_timeout() {
    let (mut client, _) = start(rtu::framing(), None);
    let fc8 = with_crc(&[0x01, 0x08, 0x00, 0x00, 0xA5, 0x37]);
    let fc3 = with_crc(&[0x01, 0x03, 0x00, 0x6B, 0x00, 0x03]);
    for wire in [&fc8, &fc3] {
        client.write_all(&wire[..3]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
        client.write_all(&wire[3..]).await.unwrap();
        assert_eq!(read_exactly(&mut client, wire.len()).await, *wire);
    }
}

#[tokio::test(start_paused = true)]
async fn served_rtu_drops_a_stale_partial_request_of_known_length_at_the_frame_timeout() {
    let line = LineConfig {
        frame_timeout: Some(Duration::from_secs(1)),
        ..LineConfig::default()
    };
    let (mut client, seen) = start(rtu::framing(), Some(line));
    let good = with_crc(&[0x01, 0x03, 0x00, 0x6B, 0x00, 0x03]);
    // Half a request of known length waits however long (no silence timer for it)...
    client.write_all(&good[..4]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    client.write_all(&good[4..]).await.unwrap();
    assert_eq!(read_exactly(&mut client, good.len()).await, good);
    // ...until the line's frame timeout: then the next request starts afresh.
    client.write_all(&[0x01, 0x10, 0x00, 0x00]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    client.write_all(&good).await.unwrap();
    assert_eq!(read_exactly(&mut client, good.len()).await, good);
    nothing_more(&mut client).await;
    let seen = seen.lock().unwrap();
    assert!(
        seen.iter().any(|e| e.contains("stale partial request")),
        "{seen:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn served_ascii_answers_and_drops_a_frame_idle_for_a_second() {
    let (mut client, seen) = start(ascii::framing(), None);
    let good = b":0103006B00038E\r\n";
    client.write_all(b":0103006B").await.unwrap();
    tokio::time::sleep(Duration::from_millis(900)).await;
    client.write_all(b"00038E\r\n").await.unwrap();
    assert_eq!(read_exactly(&mut client, good.len()).await, good);
    // Idle for more than a second: the half frame goes, and its rest is noise.
    client.write_all(b":0103006B").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    client.write_all(b"00038E\r\n").await.unwrap();
    nothing_more(&mut client).await;
    client.write_all(good).await.unwrap();
    assert_eq!(read_exactly(&mut client, good.len()).await, good);
    assert!(
        seen.lock().unwrap().iter().any(|e| e.contains("idle")),
        "{:?}",
        seen.lock().unwrap()
    );
}

/// The silence timer of a request that starts after the line was idle counts from that
/// request's bytes: these framers ask for silence only once such a request has started (so
/// that a port whose requests have known lengths can be lent to a lane), and the serving loop
/// times every read.
#[tokio::test(start_paused = true)]
async fn a_request_split_after_an_idle_line_is_joined() {
    let fc8 = with_crc(&[0x01, 0x08, 0x00, 0x00, 0xA5, 0x37]);
    let (mut client, _) = start(rtu::framing(), None);
    tokio::time::sleep(Duration::from_secs(1)).await;
    client.write_all(&fc8[..3]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2)).await;
    client.write_all(&fc8[3..]).await.unwrap();
    assert_eq!(read_exactly(&mut client, fc8.len()).await, fc8);

    let good = b":0103006B00038E\r\n";
    let (mut client, _) = start(ascii::framing(), None);
    tokio::time::sleep(Duration::from_secs(2)).await;
    client.write_all(b":0103006B").await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    client.write_all(b"00038E\r\n").await.unwrap();
    assert_eq!(read_exactly(&mut client, good.len()).await, good);
}
