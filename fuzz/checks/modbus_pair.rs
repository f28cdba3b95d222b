//! The `modbus_pair` target: the framers that cut a recorded Modbus line (`serialtwin tap
//! --framing modbus-rtu` / `modbus-ascii`), requests and replies sharing the requests waiting
//! for their reply, on any bytes in both directions.
//!
//! The input's first byte picks the framing (RTU or ASCII), the second seeds the chunking;
//! the rest is split into pieces that go alternately to the request side and the reply side,
//! as a tap reads them off the two halves of a line. Invariants:
//!
//! - no panic, and no spin: a decode that returns an error without consuming input reports
//!   a waiting request (retired by the report), so such errors are bounded by the requests
//!   cut so far (plus one "forgotten" report);
//! - every frame is within its framer's [`Framer::max_frame_len`], and what a framer keeps
//!   while it waits is bounded by that too (plus a few delimiter bytes);
//! - every RTU reply that comes out answers a request cut before it: the same unit and
//!   function (an exception's function with its high bit set; a request whose code already
//!   has it, which no Modbus function does, is answered with that same code).

use bytes::BytesMut;
use serialtwin_core::{Framer, LineSettings};
use serialtwin_devices::registry;

/// Room beyond a frame limit a framer may hold while it waits (delimiters, a checksum).
const DELIMITER_SLACK: usize = 16;

/// Decode what `buf` holds; the frames cut and the errors that consumed nothing.
fn drain(framer: &mut dyn Framer, buf: &mut BytesMut, cut: &mut Vec<Vec<u8>>) -> usize {
    let limit = framer.max_frame_len();
    let mut idle_errors = 0;
    loop {
        let before = buf.len();
        match framer.decode(buf) {
            Ok(None) => {
                assert!(
                    buf.len() <= limit + DELIMITER_SLACK,
                    "waiting with {} bytes buffered (limit {limit})",
                    buf.len()
                );
                return idle_errors;
            }
            Ok(Some(frame)) => {
                assert!(frame.len() <= limit, "frame of {} > {limit}", frame.len());
                assert!(buf.len() < before, "a frame taken without consuming input");
                cut.push(frame.to_vec());
            }
            Err(_) => {
                if buf.len() == before {
                    idle_errors += 1;
                    assert!(idle_errors < 10_000, "a framer reporting without end");
                }
            }
        }
    }
}

/// Run the pair on `data` (see the module docs).
pub(crate) fn check(data: &[u8]) {
    let [pick, seed, rest @ ..] = data else {
        return;
    };
    let name = if pick % 2 == 0 {
        "modbus-rtu"
    } else {
        "modbus-ascii"
    };
    let framing = registry::framing(name).expect("the Modbus framings are registered");
    // RTU replies are cut by the request they answer; ASCII lines cut themselves, each
    // direction with its own framer.
    assert_eq!(framing.has_pair(), name == "modbus-rtu", "{name}");
    let (mut requests, mut replies) = framing.build_pair();
    let (mut rx, mut tx) = (BytesMut::new(), BytesMut::new());
    let (mut asked, mut answered) = (Vec::new(), Vec::new());
    let mut idle_errors = 0;
    let mut size = usize::from(*seed % 13) + 1;
    for (i, piece) in rest.chunks(size).enumerate() {
        if i % 2 == 0 {
            rx.extend_from_slice(piece);
            idle_errors += drain(requests.as_mut(), &mut rx, &mut asked);
        } else {
            tx.extend_from_slice(piece);
            idle_errors += drain(replies.as_mut(), &mut tx, &mut answered);
        }
        size = size % 7 + 1;
    }
    // The line goes quiet: what a framer that ends frames by silence holds is settled.
    for (framer, buf, out) in [
        (requests.as_mut(), &mut rx, &mut asked),
        (replies.as_mut(), &mut tx, &mut answered),
    ] {
        if framer
            .silence_gap(&LineSettings::default())
            .is_some_and(|_| !buf.is_empty())
            && let Ok(Some(frame)) = framer.on_silence(buf)
        {
            out.push(frame.to_vec());
        }
    }
    assert!(
        idle_errors <= asked.len() + 1,
        "{idle_errors} reports that consumed nothing, for {} requests",
        asked.len()
    );
    if name == "modbus-rtu" {
        for reply in &answered {
            let [unit, function, ..] = reply[..] else {
                panic!("a reply shorter than its header: {reply:02X?}");
            };
            assert!(
                asked
                    .iter()
                    .any(|r| r.len() >= 2 && r[0] == unit && r[1] & 0x7F == function & 0x7F),
                "a reply no request asked for came out: {reply:02X?}"
            );
        }
    }
}
