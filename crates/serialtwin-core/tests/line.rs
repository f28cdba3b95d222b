//! The serial line: the client's [`LineSettings`] and character formats, and what the [`Line`]
//! does to bytes (pacing, mismatched speeds, latency).

use std::time::Duration;

use serialtwin_core::{
    CharFormat, FlowControl, Latency, Line, LineConfig, LineSettings, Mismatch, Parity, StopBits,
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
