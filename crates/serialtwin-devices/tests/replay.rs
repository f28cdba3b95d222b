//! Replay and learn from captures: order, binary safety, matching, strict mode, truncation.
#![allow(missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use serialtwin_capture::{self as capture, CaptureWriter, Header};
use serialtwin_core::{
    Context, Device, Direction, Framing, Observation, Observer, Replies, Seen, SimClock,
};
use serialtwin_devices::learn::{LearnOptions, learn};
use serialtwin_devices::pi30::{CrcVariant, Pi30, Pi30Config};
use serialtwin_devices::replay::{Conversation, Fallback, Replay, ReplayOptions};
use serialtwin_devices::scripted::{Script, ScriptConfig, Scripted};

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("replay-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// A PI30 request on the wire as mppsolar frames it (without the `\r`, as the framer yields it).
fn request(command: &str) -> Bytes {
    let mut r = command.as_bytes().to_vec();
    r.extend_from_slice(&CrcVariant::Mppsolar.checksum(command.as_bytes()));
    r.into()
}

fn pi30_framing() -> Framing {
    serialtwin_devices::framing_by_name("pi30").unwrap()
}

/// Record `exchanges` (request, wire replies) as frame records, 0.1 s apart.
fn write_capture(path: &Path, framing: &str, exchanges: &[(Bytes, Vec<Bytes>)]) {
    let mut header = Header::now();
    header.framing = Some(framing.into());
    // The writer never replaces a file: one left by an earlier run with the same pid goes first.
    let _ = std::fs::remove_file(path);
    let writer = CaptureWriter::create(path, &header).unwrap();
    let start = tokio::time::Instant::now();
    let mut at = start;
    let mut see = |dir, bytes: &Bytes| {
        at += std::time::Duration::from_millis(100);
        writer.observe(&Observation {
            at,
            port: "p".into(),
            seen: Seen::Frame(dir, bytes.clone()),
        });
    };
    for (req, replies) in exchanges {
        see(Direction::Rx, req);
        for r in replies {
            see(Direction::Tx, r);
        }
    }
    writer.close().unwrap();
}

fn conversation(path: &Path, framing: &Framing) -> Arc<Conversation> {
    let capture = capture::read(path).unwrap();
    Arc::new(Conversation::from_capture(&capture, framing).unwrap())
}

fn ask(device: &mut Replay, req: &Bytes) -> Vec<Bytes> {
    let mut replies = Replies::new();
    let _ = device.answer(req, &mut replies);
    replies.drain().map(|r| r.bytes).collect()
}

/// A real PI30 conversation: QPIRI, POP02, QPIRI (the output priority changed), and QPIGS
/// three times while the plant's numbers drift.
async fn pi30_conversation() -> Vec<(Bytes, Vec<Bytes>)> {
    let framing = pi30_framing();
    let mut framer = framing.build();
    let mut device = Pi30::new(Pi30Config::default()).unwrap();
    let clock = SimClock::at_unix(1_750_000_000, 3600.0);
    let mut ctx = Context::for_test(clock);
    let mut out = Vec::new();
    for command in ["QPIRI", "POP02", "QPIRI", "QPIGS", "QPIGS", "QPIGS"] {
        let req = request(command);
        let mut replies = Replies::new();
        device.handle(&req, &mut ctx, &mut replies).unwrap();
        let wire = replies
            .drain()
            .map(|r| {
                let mut buf = BytesMut::new();
                framer.encode(&r.bytes, &mut buf).unwrap();
                buf.freeze()
            })
            .collect();
        out.push((req, wire));
        // An hour of simulated time between polls: the plant drifts.
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    out
}

#[tokio::test(start_paused = true)]
async fn same_request_replays_its_replies_in_recorded_order_then_sticks() {
    let recorded = pi30_conversation().await;
    let (qpiri_before, qpiri_after) = (&recorded[0].1, &recorded[2].1);
    assert_ne!(qpiri_before, qpiri_after, "POP02 changes QPIRI");
    let qpigs: Vec<_> = recorded[3..].iter().map(|(_, r)| r.clone()).collect();
    assert_ne!(qpigs[0], qpigs[1], "QPIGS drifts");
    assert_ne!(qpigs[1], qpigs[2], "QPIGS drifts");

    let path = temp("order.jsonl");
    write_capture(&path, "pi30", &recorded);
    let framing = pi30_framing();
    let conv = conversation(&path, &framing);
    assert_eq!(conv.exchanges.len(), 6);

    let mut replay = Replay::new(conv.clone(), framing.clone(), ReplayOptions::default());
    for (req, replies) in &recorded {
        assert_eq!(&ask(&mut replay, req), replies);
    }
    // Used up: each request keeps answering its last recorded reply.
    assert_eq!(&ask(&mut replay, &request("QPIRI")), qpiri_after);
    assert_eq!(ask(&mut replay, &request("QPIGS")), qpigs[2]);

    // --cycle: back to the first.
    let options = ReplayOptions {
        cycle: true,
        ..ReplayOptions::default()
    };
    let mut cycling = Replay::new(conv.clone(), framing.clone(), options);
    for _ in 0..3 {
        ask(&mut cycling, &request("QPIGS"));
    }
    assert_eq!(ask(&mut cycling, &request("QPIGS")), qpigs[0]);

    // The learned scripted device answers the same, byte for byte through its framing.
    let toml = learn(&conv, &framing, &LearnOptions::default());
    assert!(toml.contains("sequence = ["), "{toml}");
    let mut scripted = scripted_from(&toml, &framing);
    for (req, replies) in &recorded {
        assert_eq!(
            &scripted_ask(&mut scripted, &framing, req),
            replies,
            "{toml}"
        );
    }
    assert_eq!(
        &scripted_ask(&mut scripted, &framing, &request("QPIRI")),
        qpiri_after
    );
    assert_eq!(
        scripted_ask(&mut scripted, &framing, &request("QPIGS")),
        qpigs[2]
    );
    // Replies are written editable: without their CRC and `\r`.
    assert!(toml.contains("'(ACK'"), "{toml}");
    let _ = std::fs::remove_file(&path);
}

#[derive(serde::Deserialize)]
struct Fleet {
    device: Vec<Dev>,
}

#[derive(serde::Deserialize)]
struct Dev {
    model: String,
    framing: String,
    script: ScriptConfig,
}

fn scripted_from(toml_text: &str, framing: &Framing) -> Scripted {
    let fleet: Fleet = toml::from_str(toml_text).unwrap_or_else(|e| panic!("{e}\n{toml_text}"));
    let dev = &fleet.device[0];
    assert_eq!(dev.model, "scripted");
    assert_eq!(dev.framing, framing.name());
    let script = Script::compile(&dev.script).unwrap();
    Scripted::new(Arc::new(script)).with_framing(framing.clone())
}

/// What a scripted device puts on the wire for `req`.
fn scripted_ask(device: &mut Scripted, framing: &Framing, req: &[u8]) -> Vec<Bytes> {
    let mut framer = framing.build();
    let mut replies = Replies::new();
    device
        .answer(req, &mut replies)
        .expect("a script written in TOML never raises");
    replies
        .drain()
        .map(|r| {
            if r.raw {
                r.bytes
            } else {
                let mut buf = BytesMut::new();
                framer.encode(&r.bytes, &mut buf).unwrap();
                buf.freeze()
            }
        })
        .collect()
}

#[tokio::test]
async fn every_byte_value_round_trips_through_writer_reader_replay_and_learn() {
    let all: Bytes = (0..=255u8).collect::<Vec<_>>().into();
    let reversed: Bytes = all.iter().rev().copied().collect::<Vec<_>>().into();
    let path = temp("binary.jsonl");
    write_capture(
        &path,
        "crlf",
        &[(all.clone(), vec![reversed.clone(), all.clone()])],
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.is_ascii(), "a capture is plain text");
    let framing = Framing::default();
    let conv = conversation(&path, &framing);
    assert_eq!(conv.exchanges[0].request, all);
    assert_eq!(conv.exchanges[0].replies[0].1, reversed);

    let mut replay = Replay::new(conv.clone(), framing.clone(), ReplayOptions::default());
    assert_eq!(ask(&mut replay, &all), [reversed.clone(), all.clone()]);

    // Learned: not CRLF frames, so written raw, still byte for byte.
    let toml = learn(&conv, &framing, &LearnOptions::default());
    assert!(toml.contains("raw = true"), "{toml}");
    let mut scripted = scripted_from(&toml, &framing);
    assert_eq!(
        scripted_ask(&mut scripted, &framing, &all),
        [reversed, all.clone()]
    );
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn normalised_matching_and_fallbacks() {
    let path = temp("normal.jsonl");
    let qpigs = request("QPIGS");
    write_capture(
        &path,
        "pi30",
        &[(qpigs.clone(), vec![Bytes::from_static(b"(230.0\xab\xcd\r")])],
    );
    let framing = pi30_framing();
    let conv = conversation(&path, &framing);
    let mut replay = Replay::new(conv.clone(), framing.clone(), ReplayOptions::default());
    // Typed by a person: no CRC, lower case, a trailing space.
    assert_eq!(
        ask(&mut replay, &Bytes::from_static(b"qpigs ")),
        [Bytes::from_static(b"(230.0\xab\xcd\r")]
    );
    assert!(ask(&mut replay, &request("QMOD")).is_empty(), "silence");
    // QMOD's CRC is printable (`I\xc1`): a PI30 framing strips a valid CRC before normalising.
    assert_eq!(request("QMOD").as_ref(), b"QMODI\xc1");
    assert_eq!(
        serialtwin_devices::replay::normalise_for(&framing, &request("QMOD")),
        b"QMOD"
    );
    let counts = replay.report().counts();
    assert_eq!(
        (counts.exact, counts.normalised, counts.fallback),
        (0, 1, 1)
    );

    for (fallback, want) in [("nak", &b"(NAK"[..]), (r"ERR\x01", b"ERR\x01")] {
        let options = ReplayOptions {
            fallback: Fallback::parse(fallback).unwrap(),
            ..ReplayOptions::default()
        };
        let mut replay = Replay::new(conv.clone(), framing.clone(), options);
        let mut replies = Replies::new();
        replay.answer(&request("QMOD"), &mut replies).unwrap();
        let r = &replies.as_slice()[0];
        assert!(!r.raw, "a fallback goes through the framing");
        assert_eq!(r.bytes.as_ref(), want);
    }

    // --timing keeps the recorded delay (0.1 s between request and reply here).
    let options = ReplayOptions {
        timing: true,
        ..ReplayOptions::default()
    };
    let mut timed = Replay::new(conv, framing, options);
    let mut replies = Replies::new();
    timed.answer(&qpigs, &mut replies).unwrap();
    assert_eq!(
        replies.as_slice()[0].delay,
        std::time::Duration::from_millis(100)
    );
    let _ = std::fs::remove_file(&path);
}

#[tokio::test(start_paused = true)]
async fn strict_mode_reports_where_the_client_deviates() {
    let recorded = pi30_conversation().await;
    let path = temp("strict.jsonl");
    write_capture(&path, "pi30", &recorded);
    let framing = pi30_framing();
    let conv = conversation(&path, &framing);
    let options = ReplayOptions {
        strict: true,
        fallback: Fallback::Nak,
        ..ReplayOptions::default()
    };
    let mut replay = Replay::new(conv, framing, options);
    let mut replies = Replies::new();
    replay.answer(&recorded[0].0, &mut replies).unwrap();
    assert_eq!(replies.drain().next().unwrap().bytes, recorded[0].1[0]);
    // Skips POP02: the QPIRI is out of order.
    let e = replay.answer(&recorded[2].0, &mut replies).unwrap_err();
    let message = e.to_string();
    assert!(
        message.contains("deviates at exchange 2") && message.contains("expected \"POP02"),
        "{message}"
    );
    assert_eq!(replies.drain().next().unwrap().bytes.as_ref(), b"(NAK");
    // Back in step.
    for (req, wire) in &recorded[1..] {
        replay.answer(req, &mut replies).unwrap();
        let got: Vec<Bytes> = replies.drain().map(|r| r.bytes).collect();
        assert_eq!(&got, wire);
    }
    let e = replay.answer(&recorded[0].0, &mut replies).unwrap_err();
    assert!(
        e.to_string().contains("after the recorded conversation"),
        "{e}"
    );
    let counts = replay.report().counts();
    assert_eq!(counts.in_order, 6);
    assert_eq!(counts.deviations.len(), 2);
    let _ = std::fs::remove_file(&path);
}

#[tokio::test(start_paused = true)]
async fn a_capture_cut_mid_record_replays_up_to_its_last_complete_record() {
    let recorded = pi30_conversation().await;
    let path = temp("cut.jsonl");
    write_capture(&path, "pi30", &recorded);
    let text = std::fs::read(&path).unwrap();
    // Cut in the middle of the last record (the last QPIGS reply).
    let cut = text.len() - 40;
    std::fs::write(&path, &text[..cut]).unwrap();
    let capture = capture::read(&path).unwrap();
    assert!(capture.truncated.is_some());
    let framing = pi30_framing();
    let conv = Conversation::from_capture(&capture, &framing).unwrap();
    assert_eq!(conv.exchanges.len(), 6);
    assert!(
        conv.exchanges[5].replies.is_empty(),
        "the cut reply is gone"
    );
    assert_eq!(conv.exchanges[4].replies[0].1, recorded[4].1[0]);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn chunks_are_cut_again_with_another_framing() {
    let text = concat!(
        r#"{"type":"header","format":"serialtwin-capture","version":1,"started":"x"}"#,
        "\n",
        r#"{"type":"chunk","t":0.1,"dir":"rx","text":"PI"}"#,
        "\n",
        r#"{"type":"chunk","t":0.2,"dir":"rx","text":"NG\r\nVER\r\n"}"#,
        "\n",
        r#"{"type":"chunk","t":0.3,"dir":"tx","text":"PONG\r\n1.0\r"}"#,
        "\n",
        r#"{"type":"chunk","t":0.5,"dir":"tx","text":"\n"}"#,
        "\n",
    );
    let capture = capture::parse(Path::new("chunks"), text.as_bytes()).unwrap();
    let conv = Conversation::from_capture(&capture, &Framing::default()).unwrap();
    // Both requests complete at 0.2 s, both replies later: the first request gets both.
    assert_eq!(conv.exchanges.len(), 2);
    assert_eq!(conv.exchanges[0].request.as_ref(), b"PING");
    assert_eq!(conv.exchanges[1].request.as_ref(), b"VER");
    let replies: Vec<&[u8]> = conv.exchanges[1]
        .replies
        .iter()
        .map(|(_, b)| b.as_ref())
        .collect();
    assert_eq!(replies, [&b"PONG\r\n"[..], b"1.0\r\n"]);
}

/// LF lines ending in a one-byte sum of the payload: a protocol replay and learn know nothing
/// about but what its framer says.
struct Summed(serialtwin_core::LineFramer);

fn sum(payload: &[u8]) -> u8 {
    payload.iter().fold(0u8, |s, b| s.wrapping_add(*b))
}

impl serialtwin_core::Framer for Summed {
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, serialtwin_core::FrameError> {
        self.0.decode(buf)
    }
    fn encode(
        &mut self,
        frame: &[u8],
        dst: &mut BytesMut,
    ) -> Result<(), serialtwin_core::FrameError> {
        dst.extend_from_slice(frame);
        dst.extend_from_slice(&[sum(frame), b'\n']);
        Ok(())
    }
    fn check(&self, frame: &[u8]) -> serialtwin_core::Checksum {
        match frame.split_last() {
            Some((&s, payload)) if s == sum(payload) => serialtwin_core::Checksum::Valid {
                payload: payload.len(),
            },
            _ => serialtwin_core::Checksum::Invalid,
        }
    }
    fn max_frame_len(&self) -> usize {
        256
    }
}

/// Replay strips a checksum by asking the framer, and learn writes replies without the
/// checksum the framer adds back: for any protocol, not one known by name.
#[tokio::test]
async fn replay_and_learn_use_the_framers_checksum_whatever_the_protocol() {
    let framing = Framing::new("summed", || {
        Summed(serialtwin_core::LineFramer::new(
            serialtwin_core::Terminator::Lf,
            256,
        ))
    });
    let with_sum = |text: &[u8]| {
        let mut frame = text.to_vec();
        frame.push(sum(text));
        Bytes::from(frame)
    };
    // The checksum of `READ?` is `[`: printable, so only the framer can tell it apart.
    assert_eq!(sum(b"READ?"), b'[');
    let mut wire = with_sum(b"1.5").to_vec();
    wire.push(b'\n');
    let conv = Arc::new(Conversation::from_frames(
        vec![
            capture::Data {
                t: std::time::Duration::from_millis(100),
                dir: Direction::Rx,
                bytes: with_sum(b"READ?"),
            },
            capture::Data {
                t: std::time::Duration::from_millis(200),
                dir: Direction::Tx,
                bytes: Bytes::from(wire.clone()),
            },
        ],
        framing.name(),
        serialtwin_devices::replay::FrameSource::Recorded,
    ));
    let mut replay = Replay::new(conv.clone(), framing.clone(), ReplayOptions::default());
    // Typed without the checksum, in lower case: found by its payload.
    assert_eq!(ask(&mut replay, &Bytes::from_static(b"read?")), [wire]);
    let text = learn(&conv, &framing, &LearnOptions::default());
    assert!(text.contains("reply = '1.5'"), "{text}");
}

/// `request` framed as a PI30 reply goes on the wire: its CRC (mppsolar's) and `\r`.
fn pi30_wire(payload: &str) -> Bytes {
    let mut wire = BytesMut::new();
    pi30_framing()
        .build()
        .encode(payload.as_bytes(), &mut wire)
        .unwrap();
    wire.freeze()
}

/// A learned PI30 script matches as replay does, one rule per normalised form: two spellings
/// of one request (with and without CRC, two CRC escape variants) share their rule and its
/// replies in recorded order, so none is shadowed; a binary request stays exact; a command
/// never recorded gets `(NAK` through the framer.
#[tokio::test]
async fn a_learned_script_matches_every_spelling_of_a_request_in_recorded_order() {
    let qed_mpp = request("QED20250305");
    let mut qed_ref = b"QED20250305".to_vec();
    qed_ref.extend_from_slice(&CrcVariant::Reference.checksum(b"QED20250305"));
    let qed_ref = Bytes::from(qed_ref);
    assert_ne!(qed_mpp, qed_ref, "the escape rules differ for this one");
    let binary = Bytes::from_static(b"\x01\x03\x00");
    let recorded = [
        (request("QPIGS"), vec![pi30_wire("(1")]),
        (Bytes::from_static(b"QPIGS"), vec![pi30_wire("(2")]),
        (qed_mpp.clone(), vec![pi30_wire("(00100")]),
        (request("QMOD"), vec![pi30_wire("(B")]),
        (qed_ref.clone(), vec![pi30_wire("(00200")]),
        (request("QPIGS"), vec![pi30_wire("(3")]),
        (binary.clone(), vec![Bytes::from_static(b"\x01\x83\r")]),
    ];
    let path = temp("spellings.jsonl");
    write_capture(&path, "pi30", &recorded);
    let framing = pi30_framing();
    let conv = conversation(&path, &framing);
    let toml = learn(&conv, &framing, &LearnOptions::default());

    // Readable requests, one rule (plus its stick-at-the-last) per normalised form.
    assert!(toml.contains("match = \"normalised\""), "{toml}");
    assert_eq!(toml.matches("request = 'QPIGS'\n").count(), 2, "{toml}");
    assert_eq!(
        toml.matches("request = 'QED20250305'\n").count(),
        2,
        "{toml}"
    );
    assert_eq!(toml.matches("request = 'QMOD'\n").count(), 1, "{toml}");
    assert_eq!(toml.matches("request = ").count(), 6, "{toml}");
    assert!(
        toml.contains(r"# recorded as 'QPIGS\xb7\xa9', 'QPIGS': "),
        "{toml}"
    );
    assert!(toml.contains(r"request = '\x01\x03\x00'"), "{toml}");
    assert!(toml.contains("default = '(NAK'"), "{toml}");

    // Any spelling advances the same replies, in recorded order, then sticks at the last.
    let mut dev = scripted_from(&toml, &framing);
    let mut ask = |req: &[u8]| scripted_ask(&mut dev, &framing, req);
    assert_eq!(ask(b"qpigs"), [pi30_wire("(1")]);
    assert_eq!(ask(&request("QPIGS")), [pi30_wire("(2")]);
    assert_eq!(ask(b"QPIGS\xff\xff"), [pi30_wire("(3")]);
    assert_eq!(ask(b"QPIGS"), [pi30_wire("(3")]);
    assert_eq!(ask(&qed_ref), [pi30_wire("(00100")]);
    assert_eq!(ask(&qed_mpp), [pi30_wire("(00200")]);
    assert_eq!(ask(b"QMOD"), [pi30_wire("(B")]);
    // Binary: byte for byte only, as replay.
    assert_eq!(ask(&binary), [Bytes::from_static(b"\x01\x83\r")]);
    // Never recorded: what a PI30 answers, (NAK with its CRC and \r.
    assert_eq!(ask(b"\x01\x03\x01"), [pi30_wire("(NAK")]);
    assert_eq!(ask(&request("QXYZ")), [pi30_wire("(NAK")]);
    let _ = std::fs::remove_file(&path);
}

/// A request whose text is not all printable is written as recorded, and still found by its
/// normalised form; a line framing's protocol says nothing of unknown commands (silence), and
/// `default` chooses another answer.
#[tokio::test]
async fn learn_writes_what_it_cannot_make_readable_as_recorded_and_the_default_asked() {
    let path = temp("lines.jsonl");
    let recorded = [
        (
            Bytes::from_static(b"AB\x01CD"),
            vec![Bytes::from_static(b"1\r\n")],
        ),
        (
            Bytes::from_static(b"*idn? "),
            vec![Bytes::from_static(b"ACME\r\n")],
        ),
    ];
    write_capture(&path, "crlf", &recorded);
    let framing = Framing::default();
    let conv = conversation(&path, &framing);
    let toml = learn(&conv, &framing, &LearnOptions::default());
    assert!(toml.contains(r"request = 'AB\x01CD'"), "{toml}");
    assert!(toml.contains("request = '*idn?'"), "{toml}");
    assert!(!toml.contains("\ndefault"), "{toml}");
    assert!(
        toml.contains("get silence (framing crlf says nothing"),
        "{toml}"
    );
    let mut dev = scripted_from(&toml, &framing);
    let mut ask = |req: &[u8]| scripted_ask(&mut dev, &framing, req);
    assert_eq!(ask(b"ab"), [Bytes::from_static(b"1\r\n")]);
    assert_eq!(ask(b"*IDN?"), [Bytes::from_static(b"ACME\r\n")]);
    // The same text before an unprintable byte: the same request, as replay has it.
    assert_eq!(ask(b"AB\x02"), [Bytes::from_static(b"1\r\n")]);
    assert!(ask(b"nothing").is_empty());

    for (asked, want) in [
        ("silence", None),
        ("nak", Some("default = '(NAK'")),
        (r"ERR {x}\x01", Some(r"default = 'ERR {{x}}\x01'")),
    ] {
        let options = LearnOptions {
            default: Some(Fallback::parse(asked).unwrap()),
            ..LearnOptions::default()
        };
        for (framing, conv) in [(&framing, &conv), (&pi30_framing(), &conv)] {
            let toml = learn(conv, framing, &options);
            match want {
                Some(line) => assert!(toml.contains(line), "{asked}: {toml}"),
                None => assert!(!toml.contains("\ndefault"), "{asked}: {toml}"),
            }
        }
    }
    let options = LearnOptions {
        default: Some(Fallback::parse(r"ERR {x}\x01").unwrap()),
        ..LearnOptions::default()
    };
    let mut dev = scripted_from(&learn(&conv, &framing, &options), &framing);
    assert_eq!(
        scripted_ask(&mut dev, &framing, b"nothing"),
        [Bytes::from_static(b"ERR {x}\x01\r\n")]
    );
    let _ = std::fs::remove_file(&path);
}
