//! The line framer ([`LineFramer`]): lines cut from bytes however they arrive, bounded.

use bytes::{Buf, Bytes, BytesMut};
use serialtwin_core::{FrameAt, Framer, LineFramer, Terminator};

fn feed(f: &mut LineFramer, buf: &mut BytesMut, bytes: &[u8]) -> Vec<Result<Bytes, String>> {
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

#[expect(clippy::unnecessary_wraps, reason = "compared against decode results")]
fn ok(s: &[u8]) -> Result<Bytes, String> {
    Ok(Bytes::copy_from_slice(s))
}

/// Everything `bytes` yields fed in `chunk`-sized reads, through `peek` where it answers
/// (taking the frame out as a caller would) and `decode` where it does not; and what is
/// left in the buffer.
fn through_peek(
    f: &mut LineFramer,
    bytes: &[u8],
    chunk: usize,
) -> (Vec<Result<Bytes, String>>, BytesMut) {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for piece in bytes.chunks(chunk) {
        buf.extend_from_slice(piece);
        while !buf.is_empty() {
            if let Some(at) = f.peek(&buf) {
                out.push(ok(&buf[at.frame]));
                buf.advance(at.used);
                continue;
            }
            match f.decode(&mut buf) {
                Ok(Some(frame)) => out.push(Ok(frame)),
                Ok(None) => break,
                Err(e) => out.push(Err(e.to_string())),
            }
        }
    }
    (out, buf)
}

#[test]
fn peek_finds_what_decode_would_take() {
    let mut input = b"QPIGS\r\nQMOD\r\n\r\nA\nB\r\n".to_vec();
    input.extend_from_slice(&[b'x'; 40]);
    input.extend_from_slice(b"\r\nAFTER\r\n");
    // One over the limit, ended by a bare `\n`: within the window a CRLF framer looks at.
    input.extend_from_slice(&[b'z'; 17]);
    input.extend_from_slice(b"\n");
    input.extend_from_slice(&[b'y'; 10]);
    input.extend_from_slice(b"\r\nPART");
    for terminator in [Terminator::CrLf, Terminator::Cr, Terminator::Lf] {
        for chunk in [1, 2, 3, 7, 16, 64, input.len()] {
            let mut by_decode = LineFramer::new(terminator, 16);
            let mut buf = BytesMut::new();
            let mut expected = Vec::new();
            for piece in input.chunks(chunk) {
                expected.extend(feed(&mut by_decode, &mut buf, piece));
            }
            let mut by_peek = LineFramer::new(terminator, 16);
            let (got, left) = through_peek(&mut by_peek, &input, chunk);
            assert_eq!(got, expected, "{terminator:?}, reads of {chunk}");
            assert_eq!(left, buf, "{terminator:?}, reads of {chunk}");
            assert_eq!(
                by_peek.is_between_frames(),
                by_decode.is_between_frames(),
                "{terminator:?}, reads of {chunk}"
            );
        }
    }
    // It does answer: a complete line is found in place, its terminator counted as used.
    let mut f = LineFramer::new(Terminator::CrLf, 16);
    assert_eq!(
        f.peek(b"QPI\r\nQ"),
        Some(FrameAt {
            frame: 0..3,
            used: 5
        })
    );
    assert_eq!(f.peek(b"QPI"), None);
}

#[test]
fn frames_split_across_reads() {
    let mut f = LineFramer::new(Terminator::CrLf, 64);
    let mut buf = BytesMut::new();
    assert!(feed(&mut f, &mut buf, b"QP").is_empty());
    assert!(feed(&mut f, &mut buf, b"GS\r").is_empty());
    assert_eq!(feed(&mut f, &mut buf, b"\nQ"), vec![ok(b"QPGS")]);
    assert_eq!(buf.as_ref(), b"Q");
}

#[test]
fn several_frames_in_one_read() {
    let mut f = LineFramer::new(Terminator::CrLf, 64);
    let mut buf = BytesMut::new();
    assert_eq!(
        feed(&mut f, &mut buf, b"a\r\nbb\r\n\r\nccc\r\n"),
        vec![ok(b"a"), ok(b"bb"), ok(b""), ok(b"ccc")]
    );
    assert!(buf.is_empty());
}

#[test]
fn each_terminator() {
    let mut cr = LineFramer::new(Terminator::Cr, 64);
    let mut buf = BytesMut::new();
    assert_eq!(
        feed(&mut cr, &mut buf, b"QPI\rQID\r"),
        vec![ok(b"QPI"), ok(b"QID")]
    );

    let mut lf = LineFramer::new(Terminator::Lf, 64);
    let mut buf = BytesMut::new();
    // A CR before LF is data for the LF framer.
    assert_eq!(
        feed(&mut lf, &mut buf, b"a\r\nb\n"),
        vec![ok(b"a\r"), ok(b"b")]
    );

    let mut crlf = LineFramer::new(Terminator::CrLf, 64);
    let mut buf = BytesMut::new();
    // A lone CR is data; a bare LF still ends the line.
    assert_eq!(
        feed(&mut crlf, &mut buf, b"a\rb\r\nc\n"),
        vec![ok(b"a\rb"), ok(b"c")]
    );
}

#[test]
fn binary_bytes_inside_a_frame() {
    let mut f = LineFramer::new(Terminator::Cr, 64);
    let mut buf = BytesMut::new();
    assert_eq!(
        feed(&mut f, &mut buf, b"(\x00\xff\x28\x0a\x01\r"),
        vec![ok(b"(\x00\xff\x28\x0a\x01")]
    );
}

#[test]
fn overlong_frame_then_good_frame() {
    let mut f = LineFramer::new(Terminator::CrLf, 8);
    let mut buf = BytesMut::new();
    let got = feed(&mut f, &mut buf, b"0123456789abcdef\r\nok\r\n");
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got[0].as_ref().unwrap_err().contains("longer than 8"));
    assert_eq!(got[1], ok(b"ok"));
}

#[test]
fn overlong_frame_across_many_reads_reported_once() {
    let mut f = LineFramer::new(Terminator::CrLf, 8);
    let mut buf = BytesMut::new();
    let mut errors = 0;
    for _ in 0..1000 {
        errors += feed(&mut f, &mut buf, b"xxxxxxx").len();
        assert!(buf.len() <= 10, "buffer grew to {}", buf.len());
    }
    assert_eq!(errors, 1);
    assert_eq!(feed(&mut f, &mut buf, b"\r\nPING\r\n"), vec![ok(b"PING")]);
}

#[test]
fn exactly_max_len_is_accepted_one_more_is_not() {
    let mut f = LineFramer::new(Terminator::CrLf, 4);
    let mut buf = BytesMut::new();
    assert_eq!(feed(&mut f, &mut buf, b"abcd\r\n"), vec![ok(b"abcd")]);
    let got = feed(&mut f, &mut buf, b"abcde\r\nz\r\n");
    assert!(got[0].is_err(), "{got:?}");
    assert_eq!(got[1..], [ok(b"z")]);
    // Split exactly at the CR of a max-length line.
    assert!(feed(&mut f, &mut buf, b"wxyz\r").is_empty());
    assert_eq!(feed(&mut f, &mut buf, b"\n"), vec![ok(b"wxyz")]);
}

#[test]
fn reset_forgets_discarding() {
    let mut f = LineFramer::new(Terminator::Lf, 4);
    let mut buf = BytesMut::new();
    assert_eq!(feed(&mut f, &mut buf, b"toolong").len(), 1);
    f.reset();
    buf.clear();
    assert_eq!(feed(&mut f, &mut buf, b"ok\n"), vec![ok(b"ok")]);
}

#[test]
fn encode_appends_terminator() {
    let mut f = LineFramer::new(Terminator::CrLf, 64);
    let mut dst = BytesMut::new();
    f.encode(b"correct result", &mut dst).unwrap();
    assert_eq!(dst.as_ref(), b"correct result\r\n");
}
