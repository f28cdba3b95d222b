//! Setters: a valid argument gets `(ACK` and shows in the query that reports it; an invalid
//! one gets `(NAK` and changes nothing; `PF` restores QDI's defaults.

mod common;

use common::{NOON, ask, config_for, ctx_at, payload};
use serialtwin_core::Context;
use serialtwin_devices::pi30::{Pi30, Variant};

const ACK: &[u8] = b"(ACK9 \r";
const NAK: &[u8] = b"(NAKss\r";

/// Field `i` of the reply to `query`.
fn field(dev: &mut Pi30, ctx: &mut Context, query: &str, i: usize) -> String {
    let p = payload(&ask(dev, ctx, query));
    p.split(' ').nth(i).unwrap_or_default().to_string()
}

/// Every setter with a valid argument, the query and field that show it, and the new value.
const SHOWN: &[(Variant, &str, &str, usize, &str)] = &[
    (Variant::Pi30, "POP02", "QPIRI", 16, "2"),
    (Variant::Pi30, "PCP03", "QPIRI", 17, "3"),
    (Variant::Pi30, "PBCV44.0", "QPIRI", 8, "44.0"),
    (Variant::Pi30, "PBDV58.0", "QPIRI", 22, "58.0"),
    (Variant::Pi30, "PBDV00.0", "QPIRI", 22, "00.0"),
    (Variant::Pi30, "PSDV40.0", "QPIRI", 9, "40.0"),
    (Variant::Pi30, "PCVV58.4", "QPIRI", 10, "58.4"),
    (Variant::Pi30, "PBFT48.0", "QPIRI", 11, "48.0"),
    (Variant::Pi30, "PBT02", "QPIRI", 12, "2"),
    (Variant::Pi30, "PGR01", "QPIRI", 15, "1"),
    (Variant::Pi30, "F60", "QPIRI", 3, "60.0"),
    (Variant::Pi30, "F60", "QPIGS", 3, "60.0"),
    (Variant::Pi30, "MCHGC040", "QPIRI", 14, "040"),
    (Variant::Pi30, "MNCHGC0110", "QPIRI", 14, "110"),
    (Variant::Pi30, "MUCHGC002", "QPIRI", 13, "02"),
    (Variant::Pi30, "MUCHGC120", "QPIRI", 13, "120"),
    (Variant::Pi30, "POPM01", "QPIRI", 21, "1"),
    (Variant::Pi30, "POPM02", "QOPM", 0, "02"),
    (Variant::Pi30, "PPCP001", "QPIRI", 17, "1"),
    (Variant::Pi30, "PPVOKC1", "QPIRI", 23, "1"),
    (Variant::Pi30, "PSPB0", "QPIRI", 24, "0"),
    (Variant::Pi30, "POPLG02", "QPIRI", 26, "2"),
    (Variant::Pi30, "PEj", "QFLAG", 0, "EajkxyDbuvz"),
    (Variant::Pi30, "PDa", "QFLAG", 0, "EkxyDabjuvz"),
    (Variant::Pi30, "PEbuv", "QFLAG", 0, "EabkuvxyDjz"),
    (Variant::Pi30, "PBATMAXDISC150", "QBMS", 9, "0150"),
    (Variant::Pi30, "PBATCD100", "QMOD", 0, "L"),
    (Variant::Pi30, "PSAVE", "QPIGS", 16, "00110110"),
    (Variant::Pi30max, "PBATMAXDISC030", "QPIRI", 27, "030"),
    (Variant::Pi30max, "PEd", "QFLAG", 0, "EadkxyDbuvz"),
    (
        Variant::Pi30max,
        "DAT20240229235959",
        "QT",
        0,
        "20240229235959",
    ),
    (Variant::Pi30max, "PLEDE0", "QLED", 0, "0"),
    (Variant::Pi30max, "PLEDS2", "QLED", 1, "2"),
    (Variant::Pi30max, "PLEDM3", "QLED", 2, "3"),
    (Variant::Pi30max, "PLEDB9", "QLED", 3, "9"),
    (Variant::Pi30max, "PLEDT1", "QLED", 4, "1"),
    (
        Variant::Pi30max,
        "PLEDC2001002003",
        "QLED",
        5,
        "148000211001002003000255255",
    ),
    (Variant::Pi30max, "POP01", "QOPPT", 24, "1"),
    (Variant::Pi30max, "PCP03", "QCHPT", 0, "3"),
];

#[tokio::test(start_paused = true)]
async fn valid_setters_ack_and_show() {
    for &(variant, setter, query, i, want) in SHOWN {
        let mut dev = Pi30::new(config_for(variant)).unwrap();
        let mut ctx = ctx_at(NOON);
        assert_eq!(ask(&mut dev, &mut ctx, setter), ACK, "{setter}");
        assert_eq!(
            field(&mut dev, &mut ctx, query, i),
            want,
            "{setter} -> {query}[{i}]"
        );
    }
}

/// Out-of-range or malformed arguments: `(NAK`, and every settings query unchanged.
#[tokio::test(start_paused = true)]
async fn invalid_setters_nak_and_change_nothing() {
    let invalid = [
        "POP05",
        "POP3",
        "PCP04",
        "PBCV43.0",
        "PBCV52.0",
        "PBCV44",
        "PBDV47.0",
        "PBDV59.0",
        "PBDV45.0",
        "PSDV39.9",
        "PSDV48.1",
        "PCVV58.5",
        "PCVV47.9",
        "PCVV50.0",
        "PBFT58.4",
        "PBT03",
        "PGR02",
        "F55",
        "F",
        "MCHGC045",
        "MCHGC130",
        "MNCHGC1110",
        "MUCHGC005",
        "POPM05",
        "POPM11",
        "PPCP004",
        "PPCP101",
        "PPVOKC2",
        "PSPB2",
        "PEq",
        "PDd",
        "PE",
        "POPLG03",
        "PBATCD012",
        "PBATCD01",
        "DAT20250230120000",
        "DAT2025030512000",
        "PBATMAXDISC020",
        "PBATMAXDISC151",
        "BTA+10",
        "BTA01",
        "PFX",
        "PSAVE1",
        "FOO",
    ];
    let queries = ["QPIRI", "QFLAG", "QOPM", "QBMS", "QPIGS", "QMOD"];
    let mut dev = Pi30::new(config_for(Variant::Pi30)).unwrap();
    let mut ctx = ctx_at(NOON);
    let mut before = Vec::new();
    for q in queries {
        before.push(ask(&mut dev, &mut ctx, q));
    }
    for setter in invalid {
        assert_eq!(ask(&mut dev, &mut ctx, setter), NAK, "{setter}");
    }
    for (q, b) in queries.iter().zip(&before) {
        assert_eq!(&ask(&mut dev, &mut ctx, q), b, "{q}");
    }
}

/// PI30MAX-only setters are unknown to PI30 (NAK by default).
#[tokio::test(start_paused = true)]
async fn led_setters_only_on_pi30max() {
    let mut dev = Pi30::new(config_for(Variant::Pi30)).unwrap();
    let mut ctx = ctx_at(NOON);
    assert_eq!(ask(&mut dev, &mut ctx, "PLEDE1"), NAK);
    assert_eq!(ask(&mut dev, &mut ctx, "PEd"), NAK);
    let mut dev = Pi30::new(config_for(Variant::Pi30max)).unwrap();
    assert_eq!(ask(&mut dev, &mut ctx, "PEj"), NAK);
    assert_eq!(ask(&mut dev, &mut ctx, "PLEDC4000000000"), NAK);
    assert_eq!(ask(&mut dev, &mut ctx, "PLEDC1256000000"), NAK);
}

/// QDI reports the factory settings; `PF` puts them back into QPIRI and QFLAG.
#[tokio::test(start_paused = true)]
async fn pf_restores_qdi_defaults() {
    let mut dev = Pi30::new(config_for(Variant::Pi30)).unwrap();
    let mut ctx = ctx_at(NOON);
    let qpiri = ask(&mut dev, &mut ctx, "QPIRI");
    let qflag = ask(&mut dev, &mut ctx, "QFLAG");
    let qdi = ask(&mut dev, &mut ctx, "QDI");
    for s in [
        "POP02", "PCP03", "PBCV48.0", "PBFT50.0", "PSDV44.0", "F60", "PDa", "PEj", "MCHGC100",
    ] {
        assert_eq!(ask(&mut dev, &mut ctx, s), ACK, "{s}");
    }
    assert_ne!(ask(&mut dev, &mut ctx, "QPIRI"), qpiri);
    assert_eq!(ask(&mut dev, &mut ctx, "QDI"), qdi, "QDI never changes");
    assert_eq!(ask(&mut dev, &mut ctx, "PF"), ACK);
    assert_eq!(ask(&mut dev, &mut ctx, "QPIRI"), qpiri);
    assert_eq!(ask(&mut dev, &mut ctx, "QFLAG"), qflag);
    // QDI's fields are QPIRI's settings: output V, frequency, voltages, currents, priorities.
    let qdi = payload(&qdi);
    let qdi: Vec<&str> = qdi.split(' ').collect();
    let qpiri = payload(&qpiri);
    let qpiri: Vec<&str> = qpiri.split(' ').collect();
    for (d, r) in [
        (0, 2),
        (1, 3),
        (3, 9),
        (4, 11),
        (5, 10),
        (6, 8),
        (8, 15),
        (9, 16),
        (10, 17),
        (11, 12),
        (22, 22),
    ] {
        assert_eq!(qdi[d], qpiri[r], "QDI[{d}] vs QPIRI[{r}]");
    }
}

/// A setter flags "configuration changed" (QPIGS status bit 1) until `PSAVE`.
#[tokio::test(start_paused = true)]
async fn configuration_changed_until_psave() {
    let mut dev = Pi30::new(config_for(Variant::Pi30)).unwrap();
    let mut ctx = ctx_at(NOON);
    assert_eq!(field(&mut dev, &mut ctx, "QPIGS", 16), "00110110");
    assert_eq!(ask(&mut dev, &mut ctx, "PGR01"), ACK);
    assert_eq!(field(&mut dev, &mut ctx, "QPIGS", 16), "01110110");
    assert_eq!(field(&mut dev, &mut ctx, "QPGS0", 19), "10100011");
    assert_eq!(ask(&mut dev, &mut ctx, "PSAVE"), ACK);
    assert_eq!(field(&mut dev, &mut ctx, "QPIGS", 16), "00110110");
}

/// `BTA` shifts the battery voltage reading in 0.05 V steps.
#[tokio::test(start_paused = true)]
async fn bta_calibrates_the_battery_reading() {
    let mut dev = Pi30::new(config_for(Variant::Pi30)).unwrap();
    let mut ctx = ctx_at(NOON);
    let before: f64 = field(&mut dev, &mut ctx, "QPIGS", 8).parse().unwrap();
    assert_eq!(ask(&mut dev, &mut ctx, "BTA-04"), ACK);
    let after: f64 = field(&mut dev, &mut ctx, "QPIGS", 8).parse().unwrap();
    assert!((before - after - 0.20).abs() < 0.006, "{before} -> {after}");
}

/// `DAT` sets the device clock, which then runs on with simulated time.
#[tokio::test(start_paused = true)]
async fn dat_sets_the_clock() {
    let mut dev = Pi30::new(config_for(Variant::Pi30max)).unwrap();
    let mut ctx = ctx_at(NOON);
    assert_eq!(field(&mut dev, &mut ctx, "QT", 0), "20250305120000");
    assert_eq!(ask(&mut dev, &mut ctx, "DAT20300101000000"), ACK);
    let mut later = ctx_at(NOON + 3661);
    assert_eq!(field(&mut dev, &mut later, "QT", 0), "20300101010101");
}

/// `PBATCD`'s second flag decides whether the battery carries the load at night (SBU
/// priority): on, the unit runs on battery and QPIGS shows a discharge current; off, it takes
/// the load from the grid and the discharge current is 0.
#[tokio::test(start_paused = true)]
async fn pbatcd_decides_whether_the_battery_carries_the_load_at_night() {
    let night = common::START + 3600;
    let mut dev = Pi30::new(config_for(Variant::Pi30)).unwrap();
    let mut ctx = ctx_at(night);
    assert_eq!(ask(&mut dev, &mut ctx, "POP02"), ACK);
    assert_eq!(field(&mut dev, &mut ctx, "QMOD", 0), "B");
    let discharge: f64 = field(&mut dev, &mut ctx, "QPIGS", 15).parse().unwrap();
    assert!(discharge > 0.0, "discharging on battery: {discharge}");

    assert_eq!(ask(&mut dev, &mut ctx, "PBATCD101"), ACK);
    assert_eq!(field(&mut dev, &mut ctx, "QMOD", 0), "L");
    assert_eq!(field(&mut dev, &mut ctx, "QPIGS", 15), "00000");

    assert_eq!(ask(&mut dev, &mut ctx, "PBATCD111"), ACK);
    assert_eq!(field(&mut dev, &mut ctx, "QMOD", 0), "B");
}
