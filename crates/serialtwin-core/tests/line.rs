//! The serial line: the client's [`LineSettings`] and character formats, and what the [`Line`]
//! does to bytes (pacing, mismatched speeds, latency).

use std::time::Duration;

use bytes::Bytes;

use serialtwin_core::{
    Adapter, CharFormat, FlowControl, Latency, Line, LineConfig, LineSettings, Mismatch, Parity,
    StopBits,
};
use tokio::time::Instant;

#[test]
fn display_is_the_usual_shorthand() {
    assert_eq!(LineSettings::new(2400).to_string(), "2400 8N1");
    let s = LineSettings {
        stop_bits: StopBits::Two,
        flow: FlowControl::Hardware,
        parity: Parity::Even,
        ..LineSettings::new(19200)
    };
    assert_eq!(s.to_string(), "19200 8E2 rtscts");
    assert_eq!(s.bits_per_char(), 12);
    assert_eq!(LineSettings::new(9600).bits_per_char(), 10);
}

#[tokio::test(start_paused = true)]
async fn pacing_spreads_bytes_over_their_wire_time() {
    let mut line = Line::new(LineConfig::uart(2400));
    let mut rng = fastrand::Rng::with_seed(1);
    let (mut a, mut b) = tokio::io::duplex(4096);
    let t0 = Instant::now();
    line.transmit(&mut a, &[b'x'; 110], &LineSettings::new(2400), &mut rng)
        .await
        .unwrap();
    // 110 bytes * 10 bits / 2400 baud = 458.3 ms
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(458), "{took:?}");
    assert!(took < Duration::from_millis(470), "{took:?}");
    let mut buf = [0; 110];
    tokio::io::AsyncReadExt::read_exact(&mut b, &mut buf)
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn pacing_counts_the_devices_parity_and_stop_bits_not_the_clients() {
    let mut rng = fastrand::Rng::with_seed(1);
    let mut line = Line::new(LineConfig {
        format: Some("8E2".parse().unwrap()),
        ..LineConfig::uart(1200)
    });
    let (mut a, _b) = tokio::io::duplex(4096);
    let t0 = Instant::now();
    // The client says 8N1 (all a pty can show); the device's UART sends 12 bits a byte.
    line.transmit(&mut a, &[0u8; 100], &LineSettings::new(1200), &mut rng)
        .await
        .unwrap();
    // 100 bytes * 12 bits / 1200 baud = 1 s
    let took = t0.elapsed();
    assert!(took >= Duration::from_secs(1), "{took:?}");
    assert!(took < Duration::from_millis(1010), "{took:?}");
}

#[test]
fn char_formats_parse_and_print() {
    for (text, bits) in [
        ("8N1", 10),
        ("7E1", 10),
        ("8E2", 12),
        ("5O1", 8),
        ("8o2", 12),
    ] {
        let f: CharFormat = text.parse().unwrap();
        assert_eq!(f.bits_per_char(), bits, "{text}");
        assert_eq!(f.to_string(), text.to_ascii_uppercase());
    }
    for bad in ["", "8N", "9N1", "8X1", "8N3", "8N11", "4N1"] {
        assert!(bad.parse::<CharFormat>().is_err(), "{bad:?}");
    }
}

#[tokio::test]
async fn mismatch_policies() {
    let mut rng = fastrand::Rng::with_seed(1);
    let client = LineSettings::new(9600);
    let mut silent = Line::new(LineConfig {
        mismatch: Mismatch::Silence,
        ..LineConfig::uart(2400)
    });
    let mut out = Vec::new();
    silent
        .transmit(&mut out, b"hello", &client, &mut rng)
        .await
        .unwrap();
    assert!(out.is_empty());
    assert!(!silent.accepts_input(&client));

    let mut garbage = Line::new(LineConfig {
        pace: false,
        ..LineConfig::uart(2400)
    });
    garbage
        .transmit(&mut out, b"hello", &client, &mut rng)
        .await
        .unwrap();
    assert_eq!(out.len(), 5);
    assert!(out.iter().zip(b"hello").all(|(a, b)| a != b));
    assert!(garbage.accepts_input(&client));

    let mut plain = Line::new(LineConfig::default());
    out.clear();
    plain
        .transmit(&mut out, b"hello", &client, &mut rng)
        .await
        .unwrap();
    assert_eq!(out, b"hello");
}

#[test]
fn latency_range_is_seeded() {
    let l = Latency::Range {
        min: Duration::from_millis(10),
        max: Duration::from_millis(20),
    };
    let a: Vec<_> = {
        let mut r = fastrand::Rng::with_seed(7);
        (0..10).map(|_| l.sample(&mut r)).collect()
    };
    let b: Vec<_> = {
        let mut r = fastrand::Rng::with_seed(7);
        (0..10).map(|_| l.sample(&mut r)).collect()
    };
    assert_eq!(a, b);
    assert!(
        a.iter()
            .all(|d| *d >= Duration::from_millis(10) && *d <= Duration::from_millis(20))
    );
}

/// The `i`th byte of a test reply.
fn byte(i: usize) -> u8 {
    u8::try_from(i % 251).unwrap()
}

/// A small count as a float.
fn float(n: impl TryInto<u32, Error: std::fmt::Debug>) -> f64 {
    f64::from(n.try_into().unwrap())
}

/// The pieces a line makes of `len` bytes sent at `t0`, as (milliseconds after `t0`, bytes).
fn pieces(line: &mut Line, len: usize, t0: Instant) -> Vec<(f64, Bytes)> {
    let mut rng = fastrand::Rng::with_seed(1);
    let bytes = Bytes::from((0..len).map(byte).collect::<Vec<_>>());
    let mut out = Vec::new();
    let settings = LineSettings::new(line.config().baud.unwrap_or(9600));
    line.schedule(bytes, &settings, &mut rng, t0, |at, piece| {
        out.push(((at - t0).as_secs_f64() * 1000.0, piece));
    });
    out
}

#[test]
fn a_usb_adapter_hands_a_2400_baud_reply_over_in_16_ms_chunks() {
    let mut line = Line::new(LineConfig::uart(2400));
    let t0 = Instant::now();
    let got = pieces(&mut line, 110, t0);
    // A byte every 25/6 ms: the latency timer runs out every 16 ms with 3 or 4 bytes waiting,
    // 28 times, and the last chunk goes when the last byte has left the wire (458.3 ms).
    let times: Vec<f64> = got.iter().map(|(t, _)| *t).collect();
    let mut expected: Vec<f64> = (1..=28).map(|k| 16.0 * f64::from(k)).collect();
    expected.push(110.0 * 10.0 / 2.4);
    assert_eq!(times.len(), 29, "{times:?}");
    for (t, e) in times.iter().zip(&expected) {
        assert!((t - e).abs() < 1e-3, "{times:?}");
    }
    let sizes: Vec<usize> = got.iter().map(|(_, p)| p.len()).collect();
    // Bytes done by 16 ms: 3 (12.5 ms); by 32 ms: 7 (29.2 ms); ...
    assert_eq!(&sizes[..4], &[3, 4, 4, 4], "{sizes:?}");
    assert_eq!(sizes.iter().sum::<usize>(), 110);
}

#[test]
fn a_usb_chunk_holds_at_most_62_bytes_and_goes_when_full() {
    let mut line = Line::new(LineConfig::uart(115_200));
    let t0 = Instant::now();
    let got = pieces(&mut line, 200, t0);
    let per_byte = 10.0 / 115.2;
    let sizes: Vec<usize> = got.iter().map(|(_, p)| p.len()).collect();
    assert_eq!(sizes, [62, 62, 62, 14]);
    for (i, (t, _)) in got.iter().enumerate() {
        let done = (62 * (i + 1)).min(200);
        assert!((t - per_byte * float(done)).abs() < 1e-3, "{got:?}");
    }
}

#[test]
fn every_byte_arrives_after_its_wire_time_and_within_one_chunk_of_it() {
    for baud in [50, 300, 1200, 2400, 9600, 19_200, 57_600, 115_200, 921_600] {
        for chunk_ms in [1, 2, 16, 40, 255] {
            for len in [1, 2, 61, 62, 63, 110, 500] {
                let chunk = Duration::from_millis(chunk_ms);
                let mut line = Line::new(LineConfig {
                    adapter: Adapter::Usb { chunk },
                    ..LineConfig::uart(baud)
                });
                let t0 = Instant::now();
                let got = pieces(&mut line, len, t0);
                let case = format!("{baud} baud, {chunk_ms} ms chunks, {len} bytes");
                let per_byte = 10_000.0 / f64::from(baud);
                let mut at = Vec::new();
                let mut joined = Vec::new();
                let mut before = 0.0;
                for (t, piece) in &got {
                    assert!(*t >= before, "{case}: out of order");
                    assert!(!piece.is_empty() && piece.len() <= 62, "{case}");
                    before = *t;
                    joined.extend_from_slice(piece);
                    at.extend(std::iter::repeat_n(*t, piece.len()));
                }
                let want: Vec<u8> = (0..len).map(byte).collect();
                assert_eq!(joined, want, "{case}");
                for (i, t) in at.iter().enumerate() {
                    let wire = per_byte * float(i + 1);
                    assert!(*t >= wire - 1e-3, "{case}: byte {i} at {t} before {wire}");
                    assert!(
                        *t <= wire + float(chunk_ms) + 1e-3,
                        "{case}: byte {i} at {t}, more than a chunk after {wire}"
                    );
                }
                let end = per_byte * float(len);
                assert!(
                    (before - end).abs() < 1e-3,
                    "{case}: last chunk at {before}, not {end}"
                );
            }
        }
    }
}

#[test]
fn a_native_uart_writes_each_frame_whole_with_35_characters_between_frames() {
    let mut line = Line::new(LineConfig {
        adapter: Adapter::Native,
        ..LineConfig::uart(9600)
    });
    let t0 = Instant::now();
    let char_ms = 10.0 / 9.6;
    let first = pieces(&mut line, 8, t0);
    assert_eq!(first.len(), 1, "one write");
    assert!((first[0].0 - 8.0 * char_ms).abs() < 1e-3, "{first:?}");
    // Queued at once behind it: its first byte starts 3.5 characters after the first frame's
    // last, and it is written when its own last byte is done.
    let second = pieces(&mut line, 5, t0);
    assert_eq!(second.len(), 1);
    assert!(
        (second[0].0 - (8.0 + 3.5 + 5.0) * char_ms).abs() < 1e-3,
        "{second:?}"
    );
    // Long after: no wait beyond its own wire time.
    let later = t0 + Duration::from_secs(1);
    let third = pieces(&mut line, 5, later);
    assert!((third[0].0 - 5.0 * char_ms).abs() < 1e-3, "{third:?}");
}
