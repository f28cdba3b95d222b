//! Helpers for the PI30 tests: build units, send exact request bytes, get exact reply bytes.

#![allow(dead_code, unreachable_pub, missing_docs)]

use bytes::{Bytes, BytesMut};
use serialtwin_core::{Context, Device, Replies, SimClock};
use serialtwin_devices::pi30::{BatteryConfig, CrcVariant, Pi30, Pi30Config, PlantConfig, Variant};

/// 2025-03-05 00:00:00 UTC: the plant starts here in every test.
pub const START: u64 = 1_741_132_800;
/// 2025-03-05 12:00:00 UTC: the pinned instant of the golden tests.
pub const NOON: u64 = START + 12 * 3600;

/// A configuration with the plant pinned to [`START`], seed 7, and a bank big enough to
/// still be charging at noon (600 Ah, 25 % at midnight).
pub fn config() -> Pi30Config {
    Pi30Config {
        battery: BatteryConfig {
            capacity_ah: 600.0,
            initial_soc: 0.25,
            ..BatteryConfig::default()
        },
        plant: PlantConfig {
            start_unix: Some(START),
            seed: 7,
            pv2_peak_w: 2000.0,
            ..PlantConfig::default()
        },
        ..Pi30Config::default()
    }
}

/// [`config`] for `variant`.
pub fn config_for(variant: Variant) -> Pi30Config {
    Pi30Config {
        variant,
        ..config()
    }
}

/// A context whose clock reads `unix` (tokio time must be paused).
pub fn ctx_at(unix: u64) -> Context {
    Context::for_test(SimClock::at_unix(unix, 1.0))
}

/// `cmd` followed by its CRC (mppsolar's escapes, as mppsolar sends it), without `\r`.
pub fn frame(cmd: &[u8]) -> Bytes {
    let mut f = cmd.to_vec();
    f.extend_from_slice(&CrcVariant::Mppsolar.checksum(cmd));
    Bytes::from(f)
}

/// Send `request` (a frame without `\r`) and return every byte the unit puts on the wire.
pub fn wire(dev: &mut Pi30, ctx: &mut Context, request: impl Into<Bytes>) -> Vec<u8> {
    let mut replies = Replies::new();
    dev.handle(&request.into(), ctx, &mut replies).unwrap();
    let mut framer = dev.framing().build();
    let mut out = BytesMut::new();
    for r in replies.as_slice() {
        if r.raw {
            out.extend_from_slice(&r.bytes);
        } else {
            framer.encode(&r.bytes, &mut out).unwrap();
        }
    }
    out.to_vec()
}

/// Send `cmd` with its CRC; return the reply's wire bytes.
pub fn ask(dev: &mut Pi30, ctx: &mut Context, cmd: &str) -> Vec<u8> {
    wire(dev, ctx, frame(cmd.as_bytes()))
}

/// The payload of a reply (between `(` and the CRC), checking the frame around it.
pub fn payload(reply: &[u8]) -> String {
    assert_eq!(reply.first(), Some(&b'('), "reply {reply:?}");
    assert_eq!(reply.last(), Some(&b'\r'), "reply {reply:?}");
    String::from_utf8(reply[1..reply.len() - 3].to_vec()).unwrap()
}

/// Printable form of wire bytes, for golden files and messages: `\xNN` for non-printables.
pub fn show(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}
