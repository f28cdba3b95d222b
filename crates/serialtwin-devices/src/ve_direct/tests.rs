//! The charger through `talk`, `handle` and `set` on a paused clock, through the serving loop
//! on a paced line (read back by a stream decoder written here), and its config through
//! `build`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use bytes::BytesMut;
use serialtwin_core::{Framer, Mismatch, ServeConfig, SimClock, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::framer::{VeDirectFramer, hex_bytes};
use super::*;
use crate::registry::Table;

/// 2026-06-21T12:00:00Z: the sun is up.
const NOON: u64 = 1_782_043_200;
/// 2026-06-21T00:00:00Z: night.
const MIDNIGHT: u64 = NOON - 12 * 3600;

fn charger(table: &str) -> VeDirect {
    let config: VeDirectConfig = Table::parse(table)
        .unwrap()
        .deserialize()
        .unwrap()
        .unwrap_or_default();
    VeDirect::new(config, 7).unwrap()
}

/// What the framer puts on the wire for each frame the device pushed.
fn wire(replies: &mut Replies) -> Vec<Vec<u8>> {
    let mut framer = VeDirectFramer::new();
    replies
        .drain()
        .map(|r| {
            let mut dst = BytesMut::new();
            framer.encode(&r.bytes, &mut dst).unwrap();
            dst.to_vec()
        })
        .collect()
}

fn beat(device: &mut VeDirect, ctx: &mut Context) -> Vec<Vec<u8>> {
    let mut replies = Replies::new();
    device.talk(ctx, &mut replies);
    wire(&mut replies)
}

fn ask(device: &mut VeDirect, ctx: &mut Context, request: &str) -> Vec<String> {
    let mut replies = Replies::new();
    device
        .handle(request.as_bytes(), ctx, &mut replies)
        .unwrap();
    wire(&mut replies)
        .into_iter()
        .map(|w| String::from_utf8(w).unwrap())
        .collect()
}

fn sum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |s, b| s.wrapping_add(*b))
}

/// A block's fields, in order, after checking its sum is 0 mod 256.
fn fields(block: &[u8]) -> Vec<(String, String)> {
    assert_eq!(sum(block), 0, "{}", String::from_utf8_lossy(block));
    let text = String::from_utf8_lossy(&block[..block.len() - 1]);
    let text = text.strip_prefix("\r\n").unwrap();
    text.split("\r\n")
        .map(|f| {
            let (label, value) = f.split_once('\t').unwrap();
            (label.to_owned(), value.to_owned())
        })
        .collect()
}

fn value(block: &BTreeMap<String, String>, label: &str) -> i64 {
    block[label].parse().unwrap()
}

/// The fields of §4.1's block in its order, their sum 0 mod 256, and values that agree with
/// each other and the hour: charging in the sun, off at night.
#[tokio::test(start_paused = true)]
async fn a_block_every_beat_with_the_plants_values() {
    let mut device = charger("");
    let mut ctx = Context::for_test(SimClock::at_unix(NOON, 1.0));
    let frames = beat(&mut device, &mut ctx);
    assert_eq!(frames.len(), 1, "no async frames by default");
    let block = fields(&frames[0]);
    let labels: Vec<&str> = block.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(
        labels,
        [
            "PID", "FW", "SER#", "V", "I", "VPV", "PPV", "CS", "MPPT", "OR", "ERR", "LOAD", "IL",
            "H19", "H20", "H21", "H22", "H23", "HSDS", "Checksum"
        ]
    );
    let day: BTreeMap<String, String> = block.into_iter().collect();
    assert_eq!(day["PID"], "0xA053");
    assert_eq!(day["SER#"], "HQ2133ABCDE");
    assert!((11_800..=14_800).contains(&value(&day, "V")), "{day:?}");
    assert!(value(&day, "PPV") > 50, "{day:?}");
    assert!(value(&day, "VPV") > value(&day, "V"), "{day:?}");
    assert!(matches!(value(&day, "CS"), 3 | 5), "{day:?}");
    assert!(value(&day, "I") > 0, "charging: {day:?}");
    assert_eq!(day["LOAD"], "ON");
    // IL is the 4 W load at the battery's voltage.
    let il = value(&day, "IL");
    let expected = 4.0e6 / f64::from(u32::try_from(value(&day, "V")).unwrap());
    assert!((il - whole(expected)).abs() <= 1, "{day:?}");
    assert_eq!(value(&day, "H21"), value(&day, "PPV"));

    let mut night = charger("");
    let mut ctx = Context::for_test(SimClock::at_unix(MIDNIGHT, 1.0));
    let block: BTreeMap<String, String> =
        fields(&beat(&mut night, &mut ctx)[0]).into_iter().collect();
    assert_eq!((value(&block, "PPV"), value(&block, "VPV")), (0, 0));
    assert_eq!((value(&block, "CS"), value(&block, "MPPT")), (0, 0));
    assert!(
        value(&block, "I") < 0,
        "the load drains the battery: {block:?}"
    );

    // The yield grows over a sunny hour, on the clock that started at noon.
    let mut sunny = charger("");
    let mut ctx = ctx_at(NOON);
    let before: BTreeMap<String, String> =
        fields(&beat(&mut sunny, &mut ctx)[0]).into_iter().collect();
    tokio::time::advance(Duration::from_hours(1)).await;
    let later: BTreeMap<String, String> =
        fields(&beat(&mut sunny, &mut ctx)[0]).into_iter().collect();
    assert!(
        value(&later, "H20") > value(&before, "H20"),
        "{before:?} {later:?}"
    );
    assert!(value(&later, "H19") > value(&before, "H19"));
    assert!(value(&later, "H21") >= value(&before, "PPV"));
}

/// A context whose clock started at `unix`, an hour ago of paused time or not.
fn ctx_at(unix: u64) -> Context {
    Context::for_test(SimClock::new(
        std::time::UNIX_EPOCH + Duration::from_secs(unix),
        1.0,
    ))
}

/// At midnight today's yield and highest power become yesterday's (H22, H23), today's start
/// again, and the day sequence number moves on.
#[tokio::test(start_paused = true)]
async fn a_new_day_moves_today_to_yesterday() {
    let mut device = charger("");
    let mut ctx = ctx_at(NOON + 11 * 3600); // 23:00
    device.set("irradiance", "1000", &mut ctx).unwrap();
    let read = |device: &mut VeDirect, ctx: &mut Context| -> BTreeMap<String, String> {
        fields(&beat(device, ctx)[0]).into_iter().collect()
    };
    let first = read(&mut device, &mut ctx);
    assert_eq!((value(&first, "HSDS"), value(&first, "H22")), (0, 0));
    tokio::time::advance(Duration::from_secs(3590)).await; // 23:59:50
    let late = read(&mut device, &mut ctx);
    assert!(value(&late, "H20") > 0, "{late:?}");
    tokio::time::advance(Duration::from_secs(20)).await; // 00:00:10
    let next = read(&mut device, &mut ctx);
    assert_eq!(value(&next, "HSDS"), 1);
    assert_eq!(value(&next, "H22"), value(&late, "H20"));
    assert_eq!(value(&next, "H23"), value(&late, "H21"));
    assert!(value(&next, "H20") < value(&late, "H20"), "{next:?}");
    assert_eq!(value(&next, "H21"), value(&next, "PPV"));
}

/// `set` moves the plant: no sun, no PV power; errors name the keys.
#[tokio::test(start_paused = true)]
async fn set_moves_the_plant() {
    let mut device = charger("");
    let mut ctx = ctx_at(NOON);
    device.set("irradiance", "0", &mut ctx).unwrap();
    let block: BTreeMap<String, String> = fields(&beat(&mut device, &mut ctx)[0])
        .into_iter()
        .collect();
    assert_eq!((value(&block, "PPV"), value(&block, "CS")), (0, 0));
    device.set("load_w", "0", &mut ctx).unwrap();
    let block: BTreeMap<String, String> = fields(&beat(&mut device, &mut ctx)[0])
        .into_iter()
        .collect();
    assert_eq!(value(&block, "IL"), 0);
    assert!(device.set("soc", "120", &mut ctx).is_err());
    let e = device.set("volts", "1", &mut ctx).unwrap_err();
    assert!(e.contains("irradiance"), "{e}");
}

/// §4.2's frames: ping, gets of known and unknown registers, a set, a bad checksum, a
/// command this charger does not take; and a value agrees with the block's.
#[tokio::test(start_paused = true)]
async fn hex_is_answered_with_checksummed_frames() {
    let mut device = charger("battery_ah = 120.0\n");
    let mut ctx = ctx_at(NOON);
    assert_eq!(ask(&mut device, &mut ctx, ":154"), [":55941B6\n"]);
    assert_eq!(
        ask(&mut device, &mut ctx, ":70010003E\r"),
        [":70010007800C6\n"]
    );
    assert_eq!(ask(&mut device, &mut ctx, ":155"), [":4AAAAFD\n"]);
    assert_eq!(ask(&mut device, &mut ctx, ":1ZZ"), [":4AAAAFD\n"]);
    assert_eq!(
        ask(&mut device, &mut ctx, "no colon here"),
        Vec::<String>::new()
    );
    // Restart (6) is not taken: the bare "unknown" response.
    assert_eq!(ask(&mut device, &mut ctx, ":64F"), [":352\n"]);
    // An unknown register: id and flags 01 echoed.
    let unknown = ask(&mut device, &mut ctx, &request(0x7, &[0x34, 0x12, 0x00]));
    assert_eq!(
        unknown,
        [format!("{}\n", request(0x7, &[0x34, 0x12, 0x01]))]
    );
    // Set the battery capacity, then read it back.
    let set = ask(
        &mut device,
        &mut ctx,
        &request(0x8, &[0x00, 0x10, 0x00, 0xC8, 0x00]),
    );
    assert_eq!(
        set,
        [format!(
            "{}\n",
            request(0x8, &[0x00, 0x10, 0x00, 0xC8, 0x00])
        )]
    );
    let got = ask(&mut device, &mut ctx, ":70010003E");
    assert_eq!(
        got,
        [format!(
            "{}\n",
            request(0x7, &[0x00, 0x10, 0x00, 0xC8, 0x00])
        )]
    );

    // Charger voltage (0.01 V) is the block's V; device state its CS.
    let volts = ask(&mut device, &mut ctx, ":7D5ED008C");
    let (command, bytes) = hex_bytes(&volts[0].trim_end().as_bytes()[1..]).unwrap();
    assert_eq!((command, &bytes[..3]), (0x7, &[0xD5, 0xED, 0x00][..]));
    let centivolts = i64::from(u16::from_le_bytes([bytes[3], bytes[4]]));
    let state = ask(&mut device, &mut ctx, &request(0x7, &[0x01, 0x02, 0x00]));
    let (_, state) = hex_bytes(&state[0].trim_end().as_bytes()[1..]).unwrap();
    let block: BTreeMap<String, String> = fields(&beat(&mut device, &mut ctx)[0])
        .into_iter()
        .collect();
    assert_eq!(centivolts, value(&block, "V") / 10);
    assert_eq!(i64::from(state[3]), value(&block, "CS"));
}

/// A host's request with its checksum: `:`, nibble, payload, checksum in hex.
fn request(command: u8, payload: &[u8]) -> String {
    let mut frame = hex_frame(command, payload);
    let _ = write!(frame, "{:02X}", framer::hex_checksum(command, payload));
    frame
}

/// Firmware ≥ 1.53 keeps sending blocks through HEX traffic; the older behaviour pauses text
/// from a valid HEX frame until `hex_quiet_s` pass without one. A bad frame does not pause.
#[tokio::test(start_paused = true)]
async fn text_pauses_while_hex_flows_or_keeps_flowing() {
    let blocks = |device: &mut VeDirect, ctx: &mut Context| {
        beat(device, ctx)
            .iter()
            .filter(|f| f.starts_with(b"\r\n"))
            .count()
    };
    let mut keeps = charger("");
    let mut pauses = charger("pause_text_on_hex = true\nhex_quiet_s = 3.0\n");
    let mut ctx = ctx_at(NOON);
    for device in [&mut keeps, &mut pauses] {
        assert_eq!(blocks(device, &mut ctx), 1);
        ask(device, &mut ctx, ":155"); // bad: no mode change
        assert_eq!(blocks(device, &mut ctx), 1);
        ask(device, &mut ctx, ":154");
    }
    let mut heard = (0, 0);
    for _ in 0..6 {
        tokio::time::advance(Duration::from_secs(1)).await;
        heard.0 += blocks(&mut keeps, &mut ctx);
        heard.1 += blocks(&mut pauses, &mut ctx);
    }
    // Paused at +1 s and +2 s, back from +3 s.
    assert_eq!(heard, (6, 4));
    ask(&mut pauses, &mut ctx, ":154");
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(
        blocks(&mut pauses, &mut ctx),
        0,
        "paused again by the new frame"
    );
}

/// With async frames on, every beat starts with a checksummed `:A` frame for each reported
/// value that changed (all of them on the first), then the block; off, there are none.
#[tokio::test(start_paused = true)]
async fn async_frames_report_changes() {
    let mut device = charger("async_frames = true\n");
    let mut ctx = ctx_at(NOON);
    let first = beat(&mut device, &mut ctx);
    assert_eq!(first.len(), 4);
    let framer = VeDirectFramer::new();
    let mut ids = Vec::new();
    for frame in &first[..3] {
        let text = frame.strip_suffix(b"\n").unwrap();
        assert!(matches!(
            framer.check(text),
            serialtwin_core::Checksum::Valid { .. }
        ));
        let (command, bytes) = hex_bytes(&text[1..]).unwrap();
        assert_eq!((command, bytes[2]), (0xA, 0x00));
        ids.push(u16::from_le_bytes([bytes[0], bytes[1]]));
    }
    assert_eq!(ids, [0x0201, 0xEDD5, 0xEDDB]);
    fields(&first[3]);
    // Nothing changed at the same moment: the block alone.
    assert_eq!(beat(&mut device, &mut ctx).len(), 1);
    // The sun goes: the state (and voltage) change, and are reported.
    device.set("irradiance", "0", &mut ctx).unwrap();
    let after = beat(&mut device, &mut ctx);
    assert!(
        after.iter().any(|f| f.starts_with(b":A0102000")),
        "{after:?}"
    );
}

/// With `async_in_block`, the frames go between the block's fields, before `ERR`; the
/// block's text still sums to 0 without them.
#[tokio::test(start_paused = true)]
async fn async_frames_can_go_between_a_blocks_fields() {
    let mut device = charger("async_frames = true\nasync_in_block = true\n");
    let mut ctx = ctx_at(NOON);
    let frames = beat(&mut device, &mut ctx);
    assert_eq!(frames.len(), 5);
    assert!(frames[0].starts_with(b"\r\nPID\t"));
    assert!(frames[1..4].iter().all(|f| f.starts_with(b":A")));
    assert!(frames[4].starts_with(b"\r\nERR\t"));
    let block = [&frames[0][..], &frames[4][..]].concat();
    assert_eq!(fields(&block).len(), 20);
    // Nothing changed: the block whole.
    let frames = beat(&mut device, &mut ctx);
    assert_eq!(frames.len(), 1);
    fields(&frames[0]);
}

/// A stream decoder as `OpenDTU`'s: `:` starts a HEX frame anywhere but at a block's checksum
/// byte; HEX bytes stay out of the text sum; the text state resumes after the HEX `\n`.
#[derive(Debug, Default)]
struct StreamDecoder {
    block: Vec<u8>,
    hex: Option<Vec<u8>>,
    /// The label `Checksum\t` was seen: the next byte is the checksum, whatever it is.
    at_checksum: bool,
}

/// What the decoder found.
#[derive(Debug, PartialEq, Eq)]
enum Found {
    /// A block whose sum is 0 mod 256 (its bytes).
    Block(Vec<u8>),
    /// A block whose sum is not.
    BadBlock,
    /// A HEX frame (without `\n`) whose sum is 0x55.
    Hex(String),
    /// A HEX frame whose sum is not.
    BadHex,
}

impl StreamDecoder {
    fn push(&mut self, byte: u8) -> Option<Found> {
        if let Some(hex) = &mut self.hex {
            if byte != b'\n' {
                hex.push(byte);
                return None;
            }
            let text = self.hex.take().unwrap_or_default();
            let ok = hex_bytes(&text[1..]).is_some_and(|(c, bytes)| {
                !bytes.is_empty() && bytes.iter().fold(c, |s, b| s.wrapping_add(*b)) == 0x55
            });
            return Some(if ok {
                Found::Hex(String::from_utf8(text).unwrap())
            } else {
                Found::BadHex
            });
        }
        if byte == b':' && !self.at_checksum {
            self.hex = Some(vec![byte]);
            return None;
        }
        self.block.push(byte);
        if self.at_checksum {
            self.at_checksum = false;
            let block = std::mem::take(&mut self.block);
            return Some(if sum(&block) == 0 {
                Found::Block(block)
            } else {
                Found::BadBlock
            });
        }
        self.at_checksum = self.block.ends_with(b"\r\nChecksum\t");
        None
    }
}

/// Through the serving loop at 19,200 baud: a block each second, each summing to 0, and a
/// ping and a get answered between them; with async frames on, those too, all checksummed.
#[tokio::test(start_paused = true)]
async fn served_paced_blocks_and_hex_in_between() {
    served("async_frames = true\n").await;
}

/// The same with async frames between a block's fields: the decoder keeps them out of the
/// block's sum, which still comes to 0.
#[tokio::test(start_paused = true)]
async fn served_with_async_frames_inside_blocks() {
    served("async_frames = true\nasync_in_block = true\n").await;
}

async fn served(table: &str) {
    let device = charger(table);
    let mut config = ServeConfig::new("mppt");
    config.clock = SimClock::at_unix(NOON, 1.0);
    config.line = Some(LineConfig {
        mismatch: Mismatch::Ignore,
        ..device.line()
    });
    let (mut client, server) = tokio::io::duplex(1 << 16);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(serve(device, server, config, cancel.clone()));
    let t0 = tokio::time::Instant::now();
    let mut decoder = StreamDecoder::default();
    let (mut blocks, mut hex, mut buf) = (Vec::new(), Vec::new(), [0u8; 256]);
    while blocks.len() < 5 {
        if blocks.len() == 2 && hex.len() < 4 {
            client.write_all(b":154\n:7D5ED008C\n").await.unwrap();
        }
        let n = tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf))
            .await
            .expect("output (safety net)")
            .unwrap();
        for &b in &buf[..n] {
            match decoder.push(b) {
                Some(Found::Block(_)) => blocks.push(t0.elapsed()),
                Some(Found::Hex(frame)) => hex.push(frame),
                Some(other) => panic!("{other:?}"),
                None => {}
            }
        }
    }
    cancel.cancel();
    task.await.unwrap().unwrap();
    // One a second: the n-th block left the wire within its second (≈ 0.1 s at 19,200).
    for (n, at) in (1u32..).zip(&blocks) {
        assert!(
            *at >= Duration::from_secs(n.into())
                && *at < Duration::from_secs(n.into()) + Duration::from_millis(300),
            "{blocks:?}"
        );
    }
    assert!(hex.iter().any(|h| h == ":55941B6"), "{hex:?}");
    assert!(hex.iter().any(|h| h.starts_with(":7D5ED00")), "{hex:?}");
    assert!(
        hex.iter().filter(|h| h.starts_with(":A")).count() >= 3,
        "{hex:?}"
    );
}

/// The example builds at 19,200 with its framing; bad values are pointed at.
#[test]
fn the_example_builds_and_bad_configs_are_pointed_at() {
    let doc = toml::de::DeTable::parse(EXAMPLE).unwrap().into_inner();
    let device = doc["device"].get_ref().as_array().unwrap()[0].get_ref();
    let built = build(&Build::new(Table::new(
        device.get("ve-direct").unwrap().clone(),
    )))
    .unwrap();
    assert_eq!(built[0].line.baud, Some(19_200));
    assert_eq!(built[0].framing.name(), "ve-direct");
    for (text, at) in [
        ("serial = 'HQ 21'\n", "'HQ 21'"),
        ("firmware = 42\n", "42"),
        ("pv_w = -1.0\n", "-1.0"),
        ("soc = 101.0\n", "101.0"),
        ("hex_quiet_s = 0.0\n", "0.0"),
        ("async_frames = 'yes'\n", "'yes'"),
    ] {
        let e = build(&Build::new(Table::parse(text).unwrap())).unwrap_err();
        let span = e.at.clone().unwrap();
        assert_eq!(&text[span], at, "{text}: {e}");
    }
    let e = build(&Build::new(Table::parse("relay = true\n").unwrap())).unwrap_err();
    assert!(e.to_string().contains("relay"), "{e}");
}
