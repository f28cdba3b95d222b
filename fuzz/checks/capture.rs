//! The `capture` target: the capture reader, `serialtwin_capture::parse`, on any bytes.
//!
//! Invariants:
//!
//! - no panic;
//! - an error about a record names a line of the input (1 to its number of lines), and a
//!   truncated last line is the input's last line, with its length;
//! - what the reader returns is what a writer would write back: the header and every record
//!   written with [`Record::to_json`] (one line each) read back equal, and nothing is skipped
//!   or truncated in that file.

use std::path::Path;

use serialtwin_capture::{Capture, CaptureError, Record, parse};

/// The lines [`parse`] counts: pieces between newlines, the empty one after a final newline
/// not counted.
fn line_count(data: &[u8]) -> usize {
    let pieces = data.split(|&b| b == b'\n').count();
    if data.last() == Some(&b'\n') {
        pieces - 1
    } else {
        pieces
    }
}

/// `capture` written the way a writer writes it.
fn write_back(capture: &Capture) -> Vec<u8> {
    let mut header = serde_json::to_value(&capture.header).expect("a header serialises");
    header
        .as_object_mut()
        .expect("a header is an object")
        .insert("type".into(), "header".into());
    let mut file = serde_json::to_vec(&header).expect("JSON serialises");
    file.push(b'\n');
    for record in &capture.records {
        let json = record.to_json();
        assert!(!json.is_empty(), "{record:?} does not serialise");
        assert!(!json.contains('\n'), "{record:?} is not one line: {json}");
        file.extend_from_slice(json.as_bytes());
        file.push(b'\n');
    }
    file
}

/// The check for one input.
pub(crate) fn check(data: &[u8]) {
    let path = Path::new("fuzz.jsonl");
    let lines = line_count(data);
    let capture = match parse(path, data) {
        Ok(capture) => capture,
        Err(CaptureError::Record { line, .. }) => {
            assert!(
                line >= 1 && line <= lines,
                "record error at line {line} of {lines}"
            );
            return;
        }
        Err(_) => return,
    };
    if let Some((line, len)) = capture.truncated {
        assert_eq!(line, lines, "the truncated line is the last");
        let last = data.split(|&b| b == b'\n').next_back().unwrap_or_default();
        assert_eq!(len, last.len(), "the truncated line's length");
    }
    let file = write_back(&capture);
    let back = parse(path, &file).unwrap_or_else(|e| {
        panic!(
            "a capture written back does not read: {e}\n{}",
            String::from_utf8_lossy(&file)
        )
    });
    assert_eq!(back.header, capture.header, "the header written back");
    assert_eq!(back.truncated, None);
    assert_eq!(back.skipped, 0);
    assert_eq!(back.records.len(), capture.records.len());
    for (read, written) in capture.records.iter().zip(&back.records) {
        assert_eq!(read, written, "{}", Record::to_json(read));
    }
}
