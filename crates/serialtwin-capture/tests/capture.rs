//! Captures written and read back: lossless bytes and events, and files cut mid-record.

use std::path::Path;

use bytes::Bytes;
use serialtwin_capture::{CaptureWriter, Header, Record, Recorder, parse, read};
use serialtwin_core::output::Existing;
use serialtwin_core::{Direction, LineEvent, LineSettings, Observation, Observer as _, Seen};
use tokio::time::Instant;

fn every_byte() -> Bytes {
    (0..=255u8).collect::<Vec<_>>().into()
}

#[tokio::test]
async fn writer_then_reader_is_lossless() {
    let dir = std::env::temp_dir().join(format!("capture-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("all.jsonl");
    let mut header = Header::now();
    header.framing = Some("lf".into());
    let writer = CaptureWriter::create(&path, &header).unwrap();
    let all = every_byte();
    let start = Instant::now();
    writer.chunk(start, Direction::Rx, all.clone());
    let events = [
        LineEvent::Opened,
        LineEvent::Settings(LineSettings::new(2400)),
        LineEvent::Flush {
            input: true,
            output: false,
        },
        LineEvent::Flow(false),
        LineEvent::Closed,
    ];
    for e in &events {
        writer.observe(&Observation {
            at: start,
            port: "p".into(),
            seen: Seen::Event(e.clone()),
        });
    }
    writer.observe(&Observation {
        at: start,
        port: "p".into(),
        seen: Seen::Frame(Direction::Tx, all.slice(128..)),
    });
    writer.close().unwrap();
    writer.chunk(start, Direction::Tx, all.clone()); // after close: dropped

    let capture = read(&path).unwrap();
    assert_eq!(capture.header, header);
    assert_eq!(capture.truncated, None);
    assert_eq!(capture.records.len(), 2 + events.len());
    assert!(matches!(&capture.records[0], Record::Chunk(d) if d.bytes == all));
    for (r, e) in capture.records[1..].iter().zip(&events) {
        assert!(
            matches!(r, Record::Event { event, .. } if event == e),
            "{r:?}"
        );
    }
    assert_eq!(capture.frames().next().unwrap().bytes, all.slice(128..));
    let _ = std::fs::remove_dir_all(&dir);
}

/// One recorder writes many files with one thread; each gets only its own records, in order,
/// and a writer dropped without `close` still has its file completed.
#[tokio::test]
async fn one_recorder_keeps_many_files_apart() {
    let dir = std::env::temp_dir().join(format!("capture-many-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let recorder = Recorder::new().unwrap();
    let writers: Vec<CaptureWriter> = (0..200)
        .map(|i| {
            let mut header = Header::now();
            header.port = Some(format!("p{i}"));
            recorder
                .create(dir.join(format!("{i}.jsonl")), &header, Existing::Refuse)
                .unwrap()
        })
        .collect();
    let start = Instant::now();
    for round in 0..5u8 {
        for (i, w) in writers.iter().enumerate() {
            w.chunk(start, Direction::Rx, Bytes::from(format!("{i}:{round}")));
        }
    }
    // The first is dropped unclosed; closing the last afterwards waits for everything queued
    // before it, the drop's close included.
    let mut writers = writers.into_iter();
    drop(writers.next());
    let rest: Vec<CaptureWriter> = writers.collect();
    for w in rest.iter().rev() {
        w.close().unwrap();
    }
    for i in 0..200 {
        let capture = read(&dir.join(format!("{i}.jsonl"))).unwrap();
        assert_eq!(
            capture.header.port.as_deref(),
            Some(format!("p{i}").as_str())
        );
        let chunks: Vec<Bytes> = capture.chunks().map(|d| d.bytes.clone()).collect();
        let expected: Vec<Bytes> = (0..5)
            .map(|round| Bytes::from(format!("{i}:{round}")))
            .collect();
        assert_eq!(chunks, expected, "file {i}");
    }
    // Something in the way: refused, and the recorder goes on.
    assert!(
        recorder
            .create(dir.join("7.jsonl"), &Header::now(), Existing::Refuse)
            .is_err()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_cut_last_line_is_set_aside_and_the_rest_read() {
    let text = concat!(
        r#"{"type":"header","format":"serialtwin-capture","version":1,"started":"x"}"#,
        "\n",
        r#"{"type":"frame","t":0.5,"dir":"rx","text":"QPIGS"}"#,
        "\n",
        r#"{"type":"future-thing","t":0.6}"#,
        "\n",
        r#"{"type":"frame","t":0.7,"dir":"tx","hex":"28"#,
    );
    let c = parse(Path::new("c"), text.as_bytes()).unwrap();
    assert_eq!(c.records.len(), 1);
    assert_eq!(c.skipped, 1);
    assert_eq!(c.truncated, Some((4, 44)));
    // A broken line that is not the last is an error with its line number.
    let broken = text.replace(r#""text":"QPIGS"}"#, r#""text":"QPI"#);
    let e = parse(Path::new("c"), broken.as_bytes()).unwrap_err();
    assert!(
        e.to_string().starts_with("c:2: not a capture record"),
        "{e}"
    );
    // Not a capture at all.
    assert!(parse(Path::new("c"), b"{\"type\":\"open\",\"t\":0}\n").is_err());
    assert!(parse(Path::new("c"), b"").is_err());
}
