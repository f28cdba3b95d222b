//! Golden tests: exact request bytes in, exact reply bytes out, for every PI30 and PI30MAX
//! query at a pinned instant (2025-03-05 12:00 UTC, plant started at midnight, seed 7).
//!
//! Where a payload equals one of mppsolar's test responses (QPI, QID, QVFW, QFLAG, QDI,
//! QMCHGCR, QBOOT, QMN, QGMN, QLED, the 36-bit QPIWS, ...) the expected bytes, CRC included,
//! are exactly mppsolar's; the others follow the same layouts with the plant's values.

mod common;

use common::{NOON, ask, config_for, ctx_at, frame, payload, show, wire};
use serialtwin_devices::pi30::{Pi30, Variant, command_names};

/// Every PI30 query at noon, as the wire carries it (mppsolar CRC variant).
const PI30: &[(&[u8], &[u8])] = &[
        (b"QPI", b"(PI30\x9a\x0b\r"),
        (b"QID", b"(92932004102453\x1d\x1b\r"),
        (b"QVFW", b"(VERFW:00072.70S\xa7\r"),
        (b"QVFW2", b"(VERFW2:00000.00\xb6\xdb\r"),
        (b"QPIGS", b"(226.3 50.0 230.0 50.0 0305 0281 006 390 56.09 011 098 0028 0010 350.3 56.09 00000 00110110 00 00 00580 010\x84\x1e\r"),
        (b"QPIRI", b"(230.0 21.7 230.0 50.0 21.7 5000 5000 48.0 46.0 42.0 56.4 54.0 0 30 060 0 0 2 9 01 0 0 54.0 0 1 000 0\x16\t\r"),
        (b"QMOD", b"(L\x06\x07\r"),
        (b"QPIWS", b"(00000000000000000000000000000000\xeb\xe4\r"),
        (b"QFLAG", b"(EakxyDbjuvz/)\r"),
        (b"QDI", b"(230.0 50.0 0030 42.0 54.0 56.4 46.0 60 0 0 2 0 0 0 0 0 1 1 0 0 1 0 54.0 0 1 000\x9e`\r"),
        (b"QMCHGCR", b"(010 020 030 040 050 060 070 080 090 100 110 120\x0c\xcb\r"),
        (b"QMUCHGCR", b"(002 010 020 030 040 050 060 070 080 090 100 110 120\xca#\r"),
        (b"QBOOT", b"(0\xb9\x1c\r"),
        (b"QOPM", b"(00\x1c\xa1\r"),
        (b"QPGS0", b"(1 92932004102453 L 00 226.3 50.00 230.0 50.00 0305 0281 006 56.1 011 098 350.3 011 00305 00281 006 10100010 0 2 060 120 30 02 000 350.3 00\xd6\x83\r"),
        (b"Q1", b"(01689 00000 01 01 10 028 028 028 027 00 00 000 0038 0580 0000 50.00 12\x81\x85\r"),
        (b"QMN", b"(MKS2-5000\x8b\x0b\r"),
        (b"QGMN", b"(044\xc8\xae\r"),
        (b"QBMS", b"(0 098 0 0 0 564 540 420 0060 0000\x8dH\r"),
];

/// Every PI30MAX query at noon.
const PI30MAX: &[(&[u8], &[u8])] = &[
        (b"QPI", b"(PI30\x9a\x0b\r"),
        (b"QID", b"(92932004102453\x1d\x1b\r"),
        (b"QSID", b"(1492932004102453000000\xa1n\r"),
        (b"QVFW", b"(VERFW:00072.70S\xa7\r"),
        (b"QVFW3", b"(VERFW3:00000.31\x9c\xec\r"),
        (b"VERFW", b"(VERFW:00001.0068\r"),
        (b"QPIGS", b"(226.3 50.0 230.0 50.0 0305 0281 006 390 56.23 009 099 0028 00.8 350.3 56.23 00000 00110110 00 00 00271 010 0 00 0000\xf2k\r"),
        (b"QPIGS2", b"(00.5 350.3 00181 k\x97\r"),
        (b"QPIRI", b"(230.0 21.7 230.0 50.0 21.7 5000 5000 48.0 46.0 42.0 56.4 54.0 0 30 060 0 0 2 9 01 0 0 54.0 0 1 000 0 000c\x82\r"),
        (b"QMOD", b"(L\x06\x07\r"),
        (b"QPIWS", b"(000000000000000000000000000000000000<\x8e\r"),
        (b"QFLAG", b"(EakxyDbduvz\x8ds\r"),
        (b"QDI", b"(230.0 50.0 0030 42.0 54.0 56.4 46.0 60 0 0 2 0 0 0 0 0 1 1 0 0 1 0 54.0 0 1 000 000>\x83\r"),
        (b"QMCHGCR", b"(010 020 030 040 050 060 070 080 090 100 110 120\x0c\xcb\r"),
        (b"QMUCHGCR", b"(002 010 020 030 040 050 060 070 080 090 100 110 120\xca#\r"),
        (b"QBOOT", b"(0\xb9\x1c\r"),
        (b"QOPM", b"(00\x1c\xa1\r"),
        (b"QPGS0", b"(1 92932004102453 L 00 226.3 50.00 230.0 50.00 0305 0281 006 56.2 009 099 350.3 009 00305 00281 006 10100010 0 2 060 120 030 01 000 350.3 01\x1e-\r"),
        (b"Q1", b"(01145 00000 01 01 08 027 028 028 027 00 00 000 0036 0452 0000 50.00 12\xfa<\r"),
        (b"QMN", b"(MKS2-5000\x8b\x0b\r"),
        (b"QGMN", b"(044\xc8\xae\r"),
        (b"QBMS", b"(0 099 0 0 0 564 540 420 0060 0000}\xae\r"),
        (b"QT", b"(20250305120000\xef\xc4\r"),
        (b"QET", b"(00009031\xde\xbf\r"),
        (b"QEY2025", b"(00009031\xde\xbf\r"),
        (b"QEM202503", b"(00009031\xde\xbf\r"),
        (b"QED20250305", b"(00009031\xde\xbf\r"),
        (b"QLT", b"(00004540\x85\x7f\r"),
        (b"QLY2025", b"(00004540\x85\x7f\r"),
        (b"QLM202503", b"(00004540\x85\x7f\r"),
        (b"QLD20250305", b"(00004540\x85\x7f\r"),
        (b"QBEQI", b"(0 030 030 080 000 55.40 000 030 0 00000\x0e\r"),
        (b"QLED", b"(1 1 2 5 3 148000211255255255000255255\xdaj\r"),
        (b"QCHPT", b"(2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 0 0 0@\x7f\r"),
        (b"QOPPT", b"(0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0q\xb6\r"),
];

fn check(variant: Variant, table: &[(&[u8], &[u8])]) {
    let mut dev = Pi30::new(config_for(variant)).unwrap();
    let mut ctx = ctx_at(NOON);
    for (cmd, expected) in table {
        let got = wire(&mut dev, &mut ctx, frame(cmd));
        assert_eq!(
            show(&got),
            show(expected),
            "{variant:?} {}",
            String::from_utf8_lossy(cmd)
        );
    }
}

#[tokio::test(start_paused = true)]
async fn every_pi30_query_at_noon() {
    check(Variant::Pi30, PI30);
}

#[tokio::test(start_paused = true)]
async fn every_pi30max_query_at_noon() {
    check(Variant::Pi30max, PI30MAX);
}

/// The tables cover every query the variant knows (QPGS, QEY... with their argument).
#[test]
fn tables_cover_every_query() {
    for (variant, table) in [(Variant::Pi30, PI30), (Variant::Pi30max, PI30MAX)] {
        for name in command_names(variant) {
            let is_query = name.starts_with('Q') || name == "VERFW";
            if is_query {
                assert!(
                    table
                        .iter()
                        .any(|(cmd, _)| cmd.starts_with(name.as_bytes())),
                    "{variant:?} {name} has no golden"
                );
            }
        }
    }
}

/// mppsolar's example replies with the same payloads: byte-identical, CRC included.
#[tokio::test(start_paused = true)]
async fn replies_match_mppsolar_examples() {
    let mut dev = Pi30::new(config_for(Variant::Pi30)).unwrap();
    let mut ctx = ctx_at(NOON);
    for (cmd, expected) in [
        ("QPI", &b"(PI30\x9a\x0b\r"[..]),
        ("QID", b"(92932004102453\x1d\x1b\r"),
        ("QVFW", b"(VERFW:00072.70S\xa7\r"),
        ("QVFW2", b"(VERFW2:00000.00\xb6\xdb\r"),
        ("QMOD", b"(L\x06\x07\r"),
        ("QPIWS", b"(00000000000000000000000000000000\xeb\xe4\r"),
        ("QFLAG", b"(EakxyDbjuvz/)\r"),
        ("QDI", b"(230.0 50.0 0030 42.0 54.0 56.4 46.0 60 0 0 2 0 0 0 0 0 1 1 0 0 1 0 54.0 0 1 000\x9e`\r"),
        ("QMCHGCR", b"(010 020 030 040 050 060 070 080 090 100 110 120\x0c\xcb\r"),
        ("QMUCHGCR", b"(002 010 020 030 040 050 060 070 080 090 100 110 120\xca#\r"),
        ("QBOOT", b"(0\xb9\x1c\r"),
        ("QOPM", b"(00\x1c\xa1\r"),
        ("QMN", b"(MKS2-5000\x8b\x0b\r"),
        ("QGMN", b"(044\xc8\xae\r"),
    ] {
        assert_eq!(show(&ask(&mut dev, &mut ctx, cmd)), show(expected), "{cmd}");
    }
}

/// Fixed-length clients depend on these sizes (pi30.md §6, ned-kelly's `qpigs=110`).
#[tokio::test(start_paused = true)]
async fn reply_lengths_and_field_counts() {
    let cases = [
        (Variant::Pi30, None, None, 110, 21, 104, 27),
        (Variant::Pi30, Some(17), Some(25), 94, 17, 98, 25),
        (Variant::Pi30max, None, None, 120, 24, 108, 28),
        (Variant::Pi30max, Some(21), Some(27), 110, 21, 104, 27),
    ];
    for (variant, qpigs, qpiri, qpigs_len, qpigs_n, qpiri_len, qpiri_n) in cases {
        let mut cfg = config_for(variant);
        cfg.qpigs_fields = qpigs;
        cfg.qpiri_fields = qpiri;
        let mut dev = Pi30::new(cfg).unwrap();
        let mut ctx = ctx_at(NOON);
        let r = ask(&mut dev, &mut ctx, "QPIGS");
        assert_eq!(
            (r.len(), payload(&r).split(' ').count()),
            (qpigs_len, qpigs_n)
        );
        let r = ask(&mut dev, &mut ctx, "QPIRI");
        assert_eq!(
            (r.len(), payload(&r).split(' ').count()),
            (qpiri_len, qpiri_n)
        );
    }
    let mut dev = Pi30::new(config_for(Variant::Pi30)).unwrap();
    let mut ctx = ctx_at(NOON);
    for (cmd, len, fields) in [
        ("QMOD", 5, 1),
        ("QPIWS", 36, 1),
        ("QDI", 83, 26),
        ("QPGS0", 142, 29),
        ("Q1", 74, 17),
    ] {
        let r = ask(&mut dev, &mut ctx, cmd);
        assert_eq!(
            (r.len(), payload(&r).split(' ').count()),
            (len, fields),
            "{cmd}"
        );
    }
}
