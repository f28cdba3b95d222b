//! The PI30 wire: request checksums under both escape rules, the no-CRC rule, unknown
//! commands, reply checksums, and the framer (NUL padding, NUL inside a frame, overlong).

mod common;

use bytes::{Buf, Bytes, BytesMut};
use common::{NOON, ask, config_for, ctx_at, frame, show, wire};
use serialtwin_core::{Checksum, Device, FrameError, Framer, LineConfig};
use serialtwin_devices::framing_by_name;
use serialtwin_devices::pi30::{CrcVariant, Pi30, Pi30Config, Pi30Framer, UnknownPolicy, Variant};

const ACK: &[u8] = b"\x28\x41\x43\x4B\x39\x20\x0D";
const NAK: &[u8] = b"\x28\x4E\x41\x4B\x73\x73\x0D";

fn unit(f: impl FnOnce(&mut Pi30Config)) -> Pi30 {
    let mut cfg = config_for(Variant::Pi30);
    f(&mut cfg);
    Pi30::new(cfg).unwrap()
}

#[test]
fn requests_as_mppsolar_sends_them() {
    // pi30.md §1.3, "request bytes sent by mppsolar".
    for (cmd, hex) in [
        ("QPI", "51 50 49 be ac 0d"),
        ("QPIGS", "51 50 49 47 53 b7 a9 0d"),
        ("QBOOT", "51 42 4f 4f 54 0b 88 0d"),
        ("QGMN", "51 47 4d 4e 49 29 0d"),
        ("QPGS0", "51 50 47 53 30 3f da 0d"),
        ("POP02", "50 4f 50 30 32 e2 0b 0d"),
        ("PBCV44.0", "50 42 43 56 34 34 2e 30 e6 eb 0d"),
        ("POP05", "50 4f 50 30 35 92 ed 0d"),
    ] {
        let mut f = frame(cmd.as_bytes()).to_vec();
        f.push(b'\r');
        let got: Vec<String> = f.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(got.join(" "), hex, "{cmd}");
    }
}

#[tokio::test(start_paused = true)]
async fn ack_and_nak_bytes() {
    let mut dev = unit(|_| {});
    let mut ctx = ctx_at(NOON);
    assert_eq!(ask(&mut dev, &mut ctx, "POP02"), ACK);
    assert_eq!(ask(&mut dev, &mut ctx, "POP05"), NAK);
    // Reply escapes do not touch these two under either variant.
    let mut dev = unit(|c| c.crc = CrcVariant::Reference);
    assert_eq!(ask(&mut dev, &mut ctx, "PCP02"), ACK);
    assert_eq!(ask(&mut dev, &mut ctx, "PCP09"), NAK);
}

/// QID `92932004102647` has raw reply CRC 0x00CE: mppsolar's rule sends 0x01, the
/// reference rule 0x00 (pi30.md §4, both captured against mppsolar).
#[tokio::test(start_paused = true)]
async fn reply_crc_with_zero_byte_under_both_variants() {
    let mut ctx = ctx_at(NOON);
    let mut dev = unit(|c| c.serial = "92932004102647".into());
    assert_eq!(ask(&mut dev, &mut ctx, "QID"), b"(92932004102647\x01\xce\r");
    let mut dev = unit(|c| {
        c.serial = "92932004102647".into();
        c.crc = CrcVariant::Reference;
    });
    assert_eq!(ask(&mut dev, &mut ctx, "QID"), b"(92932004102647\x00\xce\r");
}

/// `QED20250305` has request CRC 0x7200: a reference client sends `72 00`, mppsolar `72 01`.
/// Both are answered; anything else is a bad CRC.
#[tokio::test(start_paused = true)]
async fn request_crc_with_zero_byte() {
    let mut dev = unit(|c| c.variant = Variant::Pi30max);
    let mut ctx = ctx_at(NOON);
    let reference = wire(&mut dev, &mut ctx, &b"QED20250305\x72\x00"[..]);
    let mppsolar = wire(&mut dev, &mut ctx, &b"QED20250305\x72\x01"[..]);
    assert_eq!(show(&reference), show(b"(00009031\xde\xbf\r"));
    assert_eq!(reference, mppsolar);
    assert_eq!(wire(&mut dev, &mut ctx, &b"QED20250305\x72\x02"[..]), NAK);
}

#[tokio::test(start_paused = true)]
async fn bad_request_crc_gets_nak() {
    let mut dev = unit(|_| {});
    let mut ctx = ctx_at(NOON);
    assert_eq!(wire(&mut dev, &mut ctx, &b"QPIGS\xb7\xaa"[..]), NAK);
    // Printable "CRC" bytes after a known command: still a bad CRC, not an unknown command.
    let mut dev = unit(|c| c.unknown_command = UnknownPolicy::Echo);
    assert_eq!(wire(&mut dev, &mut ctx, &b"QPIGSab"[..]), NAK);
    // Setters are checked the same way: nothing changes.
    assert_eq!(wire(&mut dev, &mut ctx, &b"POP02\xe2\x0c"[..]), NAK);
    let qpiri = common::payload(&ask(&mut dev, &mut ctx, "QPIRI"));
    assert_eq!(qpiri.split(' ').nth(16), Some("0"));
}

/// A person typing `QPIGS` + Enter in a terminal sends no CRC: a printable frame that is,
/// as a whole, a known command is answered as if it had one.
#[tokio::test(start_paused = true)]
async fn printable_command_without_crc_is_answered() {
    let mut dev = unit(|_| {});
    let mut ctx = ctx_at(NOON);
    let typed = wire(&mut dev, &mut ctx, &b"QPIGS"[..]);
    let proper = ask(&mut dev, &mut ctx, "QPIGS");
    assert_eq!(typed.len(), 110);
    assert_eq!(typed, proper);
    assert_eq!(wire(&mut dev, &mut ctx, &b"POP01"[..]), ACK);
    assert_eq!(
        wire(&mut dev, &mut ctx, &b"QMOD"[..]),
        ask(&mut dev, &mut ctx, "QMOD")
    );
    // Unknown without CRC: the unknown-command policy.
    assert_eq!(wire(&mut dev, &mut ctx, &b"QXYZ"[..]), NAK);
}

#[tokio::test(start_paused = true)]
async fn unknown_commands_nak_or_echo() {
    let mut ctx = ctx_at(NOON);
    let request = frame(b"QXYZ");
    let mut dev = unit(|_| {});
    assert_eq!(wire(&mut dev, &mut ctx, request.clone()), NAK);
    let mut dev = unit(|c| c.unknown_command = UnknownPolicy::Echo);
    let mut echoed = request.to_vec();
    echoed.push(b'\r');
    assert_eq!(wire(&mut dev, &mut ctx, request), echoed);
    // A known command with a wrong CRC is a bad CRC, even under the echo policy.
    let mut dev = unit(|c| c.unknown_command = UnknownPolicy::Echo);
    assert_eq!(wire(&mut dev, &mut ctx, &b"QPGS9?\xda"[..]), NAK);
    // A typed unknown command is echoed as typed.
    assert_eq!(wire(&mut dev, &mut ctx, &b"HELLO"[..]), b"HELLO\r");
}

/// PI30MAX has no QVFW2 (mppsolar pops it): it is an unknown command there.
#[tokio::test(start_paused = true)]
async fn variant_command_sets() {
    let mut ctx = ctx_at(NOON);
    let mut max = unit(|c| c.variant = Variant::Pi30max);
    assert_eq!(ask(&mut max, &mut ctx, "QVFW2"), NAK);
    let mut max_echo = unit(|c| {
        c.variant = Variant::Pi30max;
        c.unknown_command = UnknownPolicy::Echo;
    });
    assert_eq!(ask(&mut max_echo, &mut ctx, "QVFW2"), b"QVFW2\xc3\xf5\r");
    let mut pi30 = unit(|c| c.unknown_command = UnknownPolicy::Echo);
    for cmd in [
        "QSID", "QT", "QET", "QPIGS2", "QVFW3", "QLED", "QBEQI", "QCHPT", "QOPPT", "PLEDE1",
    ] {
        let mut echoed = frame(cmd.as_bytes()).to_vec();
        echoed.push(b'\r');
        assert_eq!(ask(&mut pi30, &mut ctx, cmd), echoed, "{cmd}");
    }
    // The same QPIGS request: 21 fields on PI30, 24 on PI30MAX.
    let mut pi30 = unit(|_| {});
    assert_eq!(ask(&mut pi30, &mut ctx, "QPIGS").len(), 110);
    assert_eq!(ask(&mut max, &mut ctx, "QPIGS").len(), 120);
}

#[tokio::test(start_paused = true)]
async fn bad_query_arguments_nak() {
    let mut dev = unit(|c| c.variant = Variant::Pi30max);
    let mut ctx = ctx_at(NOON);
    for cmd in ["QED20251399", "QEM202513", "QPGS5", "QED2025030"] {
        assert_eq!(ask(&mut dev, &mut ctx, cmd), NAK, "{cmd}");
    }
    // A date with no data yet is zero, not an error.
    assert_eq!(
        common::payload(&ask(&mut dev, &mut ctx, "QED20250306")),
        "00000000"
    );
    assert_eq!(
        common::payload(&ask(&mut dev, &mut ctx, "QEY2024")),
        "00000000"
    );
}

#[test]
fn device_line_and_framing() {
    let dev = unit(|_| {});
    assert_eq!(dev.line(), LineConfig::uart(2400));
    assert_eq!(dev.framing().name(), "pi30");
    let dev = unit(|c| c.crc = CrcVariant::Reference);
    assert_eq!(dev.framing().name(), "pi30-reference");
    assert_eq!(framing_by_name("pi30").unwrap().name(), "pi30");
    assert_eq!(
        framing_by_name("pi30-reference").unwrap().name(),
        "pi30-reference"
    );
    assert_eq!(framing_by_name("crlf").unwrap().name(), "crlf");
    assert!(framing_by_name("nope").is_none());
}

fn feed(f: &mut dyn Framer, buf: &mut BytesMut, bytes: &[u8]) -> Vec<Result<Bytes, String>> {
    buf.extend_from_slice(bytes);
    let mut out = Vec::new();
    loop {
        match f.decode(buf) {
            Ok(Some(frame)) => out.push(Ok(frame)),
            Ok(None) => return out,
            Err(e) => out.push(Err(e.to_string())),
        }
    }
}

#[expect(clippy::unnecessary_wraps, reason = "compared with `feed`'s results")]
fn ok(b: &[u8]) -> Result<Bytes, String> {
    Ok(Bytes::copy_from_slice(b))
}

/// What `input` yields read `chunk` bytes at a time, through `peek` where it answers and
/// `decode` where not, against `decode` alone: the same frames and errors, the same leftovers.
fn peek_agrees_with_decode(make: impl Fn() -> Pi30Framer, input: &[u8]) {
    for chunk in 1..=input.len() {
        let (mut by_decode, mut by_peek) = (make(), make());
        let (mut expected, mut decoded) = (Vec::new(), BytesMut::new());
        let (mut got, mut buf) = (Vec::new(), BytesMut::new());
        for piece in input.chunks(chunk) {
            expected.extend(feed(&mut by_decode, &mut decoded, piece));
            buf.extend_from_slice(piece);
            while !buf.is_empty() {
                if let Some(at) = by_peek.peek(&buf) {
                    got.push(ok(&buf[at.frame]));
                    buf.advance(at.used);
                    continue;
                }
                match by_peek.decode(&mut buf) {
                    Ok(Some(frame)) => got.push(Ok(frame)),
                    Ok(None) => break,
                    Err(e) => got.push(Err(e.to_string())),
                }
            }
        }
        assert_eq!(got, expected, "reads of {chunk}");
        assert_eq!(buf, decoded, "reads of {chunk}");
    }
}

#[test]
fn framer_peek_finds_what_decode_would_take() {
    // Padding, a bare `\r`, a NUL inside a frame, an overlong frame, a partial one.
    let input = b"\0\0QPI\xbe\xac\r\r\nQED20250305\x72\x00\r0123456789abcdef\rQPI\xbe\xac\rQMO";
    peek_agrees_with_decode(|| Pi30Framer::with_max_len(CrcVariant::Mppsolar, 12), input);
    // It does answer, past the padding.
    let mut f = Pi30Framer::new(CrcVariant::Mppsolar);
    assert_eq!(
        f.peek(b"\0\0QPI\xbe\xac\rQ"),
        Some(serialtwin_core::FrameAt {
            frame: 2..7,
            used: 8
        })
    );
}

#[test]
fn framer_skips_nul_padding_between_frames() {
    // The HID path: 8-byte reports, the last one NUL-padded after the `\r`.
    let mut f = Pi30Framer::new(CrcVariant::Mppsolar);
    let mut buf = BytesMut::new();
    assert!(feed(&mut f, &mut buf, b"QMCHGCR\xd8").is_empty());
    assert_eq!(
        feed(&mut f, &mut buf, b"U\r\0\0\0\0\0\0"),
        vec![ok(b"QMCHGCR\xd8U")]
    );
    assert_eq!(
        feed(&mut f, &mut buf, b"\0\0QPI\xbe\xac\r"),
        vec![ok(b"QPI\xbe\xac")]
    );
    assert!(buf.is_empty());
}

#[test]
fn framer_keeps_nul_inside_a_frame() {
    let mut f = Pi30Framer::new(CrcVariant::Reference);
    let mut buf = BytesMut::new();
    assert_eq!(
        feed(&mut f, &mut buf, b"\0QED20250305\x72\x00\rQPI\xbe\xac\r"),
        vec![ok(b"QED20250305\x72\x00"), ok(b"QPI\xbe\xac")]
    );
    // Split right after the NUL: still one frame.
    assert!(feed(&mut f, &mut buf, b"QED20250305\x72\x00").is_empty());
    assert_eq!(
        feed(&mut f, &mut buf, b"\r"),
        vec![ok(b"QED20250305\x72\x00")]
    );
}

#[test]
fn framer_discards_overlong_frames_and_recovers() {
    let mut f = Pi30Framer::with_max_len(CrcVariant::Mppsolar, 8);
    let mut buf = BytesMut::new();
    let out = feed(&mut f, &mut buf, b"0123456789abcdef");
    assert_eq!(out, vec![Err(FrameError::TooLong { limit: 8 }.to_string())]);
    assert!(feed(&mut f, &mut buf, b"ghij").is_empty());
    assert_eq!(
        feed(&mut f, &mut buf, b"klm\rQPI\xbe\xac\r"),
        vec![ok(b"QPI\xbe\xac")]
    );
    // Exactly the limit is fine; one more is not.
    assert_eq!(feed(&mut f, &mut buf, b"12345678\r"), vec![ok(b"12345678")]);
    let out = feed(&mut f, &mut buf, b"123456789\rQ1\x1b\xfc\r");
    assert_eq!(
        out,
        vec![
            Err(FrameError::TooLong { limit: 8 }.to_string()),
            ok(b"Q1\x1b\xfc")
        ]
    );
    assert_eq!(f.max_frame_len(), 8);
}

/// Found by the `framers` fuzz target: the padding after an overlong frame was kept as the
/// next frame's first byte when both came in one read (a CRLF terminal after a long line got
/// `(NAK` for its next command), and not when they came apart.
#[test]
fn framer_skips_padding_after_an_overlong_frame_in_the_same_read() {
    let input = b"123456789\r\nQPI\xbe\xac\r\0\n12345678\r";
    let make = || Pi30Framer::with_max_len(CrcVariant::Mppsolar, 8);
    let mut f = make();
    let mut buf = BytesMut::new();
    let expected = vec![
        Err(FrameError::TooLong { limit: 8 }.to_string()),
        ok(b"QPI\xbe\xac"),
        ok(b"12345678"),
    ];
    assert_eq!(feed(&mut f, &mut buf, input), expected);
    let mut f = make();
    let mut buf = BytesMut::new();
    let bytewise: Vec<_> = input
        .iter()
        .flat_map(|b| feed(&mut f, &mut buf, &[*b]))
        .collect();
    assert_eq!(bytewise, expected);
    // Padding then a frame of exactly the limit after the overlong one.
    let mut f = make();
    let mut buf = BytesMut::new();
    assert_eq!(
        feed(&mut f, &mut buf, b"123456789abc\r\n12345678\r"),
        vec![
            Err(FrameError::TooLong { limit: 8 }.to_string()),
            ok(b"12345678")
        ]
    );
    peek_agrees_with_decode(make, input);
}

#[test]
fn framer_skips_empty_lines_and_crlf() {
    let mut f = Pi30Framer::new(CrcVariant::Mppsolar);
    let mut buf = BytesMut::new();
    assert_eq!(
        feed(&mut f, &mut buf, b"\r\r\nQPIGS\r\n"),
        vec![ok(b"QPIGS")]
    );
    assert!(buf.is_empty());
}

#[test]
fn framer_encodes_crc_and_cr() {
    let mut out = BytesMut::new();
    Pi30Framer::new(CrcVariant::Mppsolar)
        .encode(b"(92932004102647", &mut out)
        .unwrap();
    Pi30Framer::new(CrcVariant::Reference)
        .encode(b"(92932004102647", &mut out)
        .unwrap();
    Pi30Framer::new(CrcVariant::Reference)
        .encode(b"(NAK", &mut out)
        .unwrap();
    assert_eq!(
        show(&out),
        show(b"(92932004102647\x01\xce\r(92932004102647\x00\xce\r(NAKss\r")
    );
}

#[test]
fn framer_checks_and_strips_the_crc_it_adds() {
    let framer = Pi30Framer::new(CrcVariant::Mppsolar);
    assert_eq!(
        framer.check(b"QPIGS\xb7\xa9"),
        Checksum::Valid { payload: 5 }
    );
    // A printable CRC (QMOD's is `I\xc1`), and a CRC valid only under the reference rule.
    assert_eq!(framer.check(b"QMODI\xc1").payload(b"QMODI\xc1"), b"QMOD");
    assert_eq!(
        framer.check(b"(92932004102647\x00\xce"),
        Checksum::Valid { payload: 15 }
    );
    // Typed without a CRC, or corrupted: nothing to strip.
    assert_eq!(framer.check(b"QPIGS"), Checksum::Invalid);
    assert_eq!(framer.check(b"QPIGS\xb7\xa8"), Checksum::Invalid);
    assert_eq!(framer.check(b""), Checksum::Invalid);
    // What learn does with a recorded reply: the payload the framer re-creates exactly.
    let pi30 = framing_by_name("pi30").unwrap();
    assert_eq!(pi30.unframe(b"(NAKss\r").as_deref(), Some(&b"(NAK"[..]));
    assert_eq!(pi30.unframe(b"(NAKst\r"), None);
}
