//! The `framers` target: every framing the model registry knows, on raw bytes.
//!
//! The input's first byte picks the framing (`framing_names()[b % len]`, so a framing added
//! later is fuzzed without touching this file), the second seeds how the rest is split into
//! reads. Invariants:
//!
//! - no panic, and every `decode` that returns a frame or an error consumes input (the caller
//!   calls again after an error: one that consumed nothing would spin);
//! - every frame is within the framer's [`Framer::max_frame_len`], and what a framer keeps
//!   buffered while it waits is bounded by it too (plus a few delimiter bytes);
//! - the same frames and errors come out whether the input arrives in one read or in many, and
//!   whether the caller uses [`Framer::peek`] (as a fleet's lane does) or only `decode`;
//! - encode then decode gives the frame back: for every decoded frame, its payload
//!   ([`Checksum::payload`]) encodes to a wire form that decodes to one frame with the same
//!   payload and a checksum that verifies, and that [`Framing::unframe`] turns back into the
//!   payload. Only frames the framer decoded are encoded: those are what a framing promises to
//!   carry (no terminator inside, not too long). The exceptions: an encoding that grows past
//!   the limit (a payload plus the checksum the framer adds), which decoding reports as too
//!   long, and a frame that is nothing but a checksum (an empty payload);
//! - [`Framer::checksum_range`] of an encoded frame lies inside it, and [`Framing::unframe`]
//!   of any input gives a payload only when encoding that payload writes exactly the input.

use bytes::BytesMut;
use serialtwin_core::{Checksum, FrameError, Framer, Framing, LineSettings};
use serialtwin_devices::registry;

/// How many bytes beyond its frame limit a framer may hold while it waits for the rest of a
/// frame: room for delimiters (a terminator, a checksum), never for unbounded input.
const DELIMITER_SLACK: usize = 16;

/// One decode's outcome, comparable across runs (errors by kind).
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Frame(Vec<u8>),
    TooLong(usize),
    Malformed,
    Codec,
}

fn outcome(result: Result<Vec<u8>, &FrameError>) -> Outcome {
    match result {
        Ok(frame) => Outcome::Frame(frame),
        Err(FrameError::TooLong { limit }) => Outcome::TooLong(*limit),
        Err(FrameError::Malformed(_)) => Outcome::Malformed,
        Err(FrameError::Codec(_)) => Outcome::Codec,
    }
}

/// Decode everything complete in `buf`, checking progress and limits.
fn drain(framer: &mut dyn Framer, buf: &mut BytesMut, use_peek: bool, out: &mut Vec<Outcome>) {
    let limit = framer.max_frame_len();
    loop {
        let before = buf.len();
        if use_peek && let Some(at) = framer.peek(buf) {
            assert!(
                at.frame.start <= at.frame.end && at.frame.end <= at.used && at.used <= buf.len(),
                "peek gave {at:?} in a buffer of {} bytes",
                buf.len()
            );
            assert!(at.used > 0, "peek found a frame that uses no input");
            let frame = buf[at.frame].to_vec();
            assert!(
                frame.len() <= limit,
                "peeked frame of {} > {limit}",
                frame.len()
            );
            let _ = buf.split_to(at.used);
            out.push(Outcome::Frame(frame));
            continue;
        }
        match framer.decode(buf) {
            Ok(None) => {
                assert!(
                    buf.len() <= limit + DELIMITER_SLACK,
                    "a framer waiting with {} bytes buffered (limit {limit})",
                    buf.len()
                );
                return;
            }
            Ok(Some(frame)) => {
                assert!(frame.len() <= limit, "frame of {} > {limit}", frame.len());
                assert!(buf.len() < before, "a frame taken without consuming input");
                out.push(outcome(Ok(frame.to_vec())));
            }
            Err(e) => {
                assert!(buf.len() < before, "error {e} without consuming input");
                out.push(outcome(Err(&e)));
            }
        }
    }
}

/// Every frame and error of `stream` fed in reads of the given sizes (cycled; 0 is one piece).
fn run(framing: &Framing, stream: &[u8], reads: &[usize], use_peek: bool) -> Vec<Outcome> {
    let mut framer = framing.build();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    // An empty buffer is no frame.
    assert!(matches!(framer.decode(&mut buf), Ok(None)));
    let mut rest = stream;
    let mut sizes = reads.iter().cycle();
    while !rest.is_empty() {
        let n = match sizes.next() {
            Some(&n) if n > 0 => n.min(rest.len()),
            _ => rest.len(),
        };
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        drain(&mut framer, &mut buf, use_peek, &mut out);
    }
    // A framer that ends frames by silence gets its gap at the end of the input.
    if framer
        .silence_gap(&LineSettings::default())
        .is_some_and(|_| !buf.is_empty())
    {
        let limit = framer.max_frame_len();
        match framer.on_silence(&mut buf) {
            Ok(Some(frame)) => {
                assert!(frame.len() <= limit, "frame of {} > {limit}", frame.len());
                out.push(outcome(Ok(frame.to_vec())));
            }
            Ok(None) => {}
            Err(e) => out.push(outcome(Err(&e))),
        }
    }
    out
}

/// Encode `frame`'s payload and decode it again.
fn round_trip(framing: &Framing, frame: &[u8]) {
    let mut framer = framing.build();
    let check = framer.check(frame);
    let payload = check.payload(frame);
    if payload.is_empty() && matches!(check, Checksum::Valid { .. }) {
        // A frame that is nothing but a checksum: no protocol's frame, and not one a framing
        // promises to carry (PI30's reference escapes write an empty payload's CRC as `\0\0`,
        // which the other end skips as padding).
        return;
    }
    let mut wire = BytesMut::new();
    framer.encode(payload, &mut wire).unwrap_or_else(|e| {
        panic!(
            "{}: a decoded frame's payload does not encode: {e}",
            framing.name()
        )
    });
    let wire = wire.freeze();
    if let Some(range) = framer.checksum_range(&wire) {
        assert!(
            range.start <= range.end && range.end <= wire.len(),
            "checksum at {range:?} in {} bytes",
            wire.len()
        );
    }
    let mut fresh = framing.build();
    let mut buf = BytesMut::from(&wire[..]);
    let mut decoded = Vec::new();
    loop {
        match fresh.decode(&mut buf) {
            Ok(Some(f)) => decoded.push(f),
            Ok(None) => break,
            Err(FrameError::TooLong { limit }) if wire.len() > limit => return,
            Err(e) => panic!(
                "{}: {payload:?} encoded as {wire:?} does not decode: {e}",
                framing.name()
            ),
        }
    }
    assert!(
        buf.is_empty(),
        "{}: {payload:?} encoded as {wire:?} leaves {buf:?}",
        framing.name()
    );
    assert_eq!(
        decoded.len(),
        1,
        "{}: {payload:?} encoded as {wire:?} decodes to {decoded:?}",
        framing.name()
    );
    let back = &decoded[0];
    let back_check = fresh.check(back);
    assert_ne!(
        back_check,
        Checksum::Invalid,
        "{}: {payload:?} encoded as {wire:?}: the checksum the framer wrote fails its check",
        framing.name()
    );
    assert_eq!(
        back_check.payload(back),
        payload,
        "{}: {payload:?} encoded as {wire:?} decodes to {back:?}",
        framing.name()
    );
    assert_eq!(
        framing.unframe(&wire).as_deref(),
        Some(payload),
        "{}: unframe of {wire:?}",
        framing.name()
    );
}

/// The check for one input.
pub(crate) fn check(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let (seed, stream) = rest.split_first().unwrap_or((&0, &[]));
    let names = registry::framing_names();
    let name = names[usize::from(pick) % names.len()];
    let framing = registry::framing(name).expect("a registered framing builds");
    assert!(!framing.name().is_empty(), "{name}: a framing has a name");

    let whole = run(&framing, stream, &[], false);
    // Reads of 1 to 8 bytes, in a pattern the seed picks; and of one byte each.
    let reads: Vec<usize> = (0..4)
        .map(|i| usize::from((seed >> (2 * i)) & 7) + 1)
        .collect();
    let split = run(&framing, stream, &reads, false);
    assert_eq!(whole, split, "{name}: one read vs reads of {reads:?}");
    let bytewise = run(&framing, stream, &[1], true);
    assert_eq!(whole, bytewise, "{name}: one read vs byte by byte, peeking");
    let peeked = run(&framing, stream, &[], true);
    assert_eq!(whole, peeked, "{name}: decode vs peek");

    for outcome in &whole {
        if let Outcome::Frame(frame) = outcome {
            round_trip(&framing, frame);
        }
    }

    if let Some(payload) = framing.unframe(stream) {
        assert!(payload.len() <= stream.len());
        let mut wire = BytesMut::new();
        framing
            .build()
            .encode(&payload, &mut wire)
            .expect("unframe encoded it");
        assert_eq!(&wire[..], stream, "{name}: unframe gave {payload:?}");
    }
}
