//! Injected faults ([`Faults`]): which replies a rule picks, drawn from a seeded source, and
//! fault names parsed. (What a fault does to a reply's bytes is tested beside the module.)

use std::time::Duration;

use serialtwin_core::{FaultKind, FaultRule, Faults};

#[test]
fn next_n_is_spent_after_n() {
    let mut f = Faults::new();
    f.add(FaultRule::next(FaultKind::Drop, 2).for_command(&b"QPIGS"[..]));
    let mut rng = fastrand::Rng::with_seed(1);
    assert!(f.draw(Some(b"QPIRI"), &mut rng).is_empty());
    assert_eq!(f.draw(Some(b"QPIGS\xb7\xa9"), &mut rng), [FaultKind::Drop]);
    assert_eq!(f.draw(Some(b"QPIGS"), &mut rng), [FaultKind::Drop]);
    assert!(f.draw(Some(b"QPIGS"), &mut rng).is_empty());
    assert!(f.is_empty());
}

#[test]
fn probability_is_seeded() {
    let draw = |seed| {
        let mut f = Faults::new();
        f.add(FaultRule::probability(FaultKind::Corrupt, 0.5));
        let mut rng = fastrand::Rng::with_seed(seed);
        (0..64)
            .map(|_| f.draw(None, &mut rng).len())
            .collect::<Vec<_>>()
    };
    assert_eq!(draw(9), draw(9));
    let hits: usize = draw(9).iter().sum();
    assert!((16..48).contains(&hits), "{hits}");
}

#[test]
fn parse_names() {
    assert_eq!(FaultKind::parse("break-crc"), Ok(FaultKind::BreakChecksum));
    assert_eq!(
        FaultKind::parse("delay:1500"),
        Ok(FaultKind::Delay(Duration::from_millis(1500)))
    );
    assert_eq!(
        FaultKind::parse("unplug:2000ms"),
        Ok(FaultKind::Unplug(Duration::from_secs(2)))
    );
    assert!(FaultKind::parse("explode").is_err());
}

/// A rule for one device of a bus hits that device's replies only, and never a reply whose
/// device is unknown.
#[test]
fn a_unit_rule_hits_its_unit_only() {
    let mut f = Faults::new();
    f.add(FaultRule::next(FaultKind::Drop, 1).for_unit(2));
    let mut rng = fastrand::Rng::with_seed(1);
    assert!(f.per_unit());
    assert!(
        f.draw(Some(b"\x02\x03"), &mut rng).is_empty(),
        "whose unknown"
    );
    assert!(f.draw_for(Some(b"\x01\x03"), Some(1), &mut rng).is_empty());
    assert_eq!(
        f.draw_for(Some(b"\x02\x03"), Some(2), &mut rng),
        [FaultKind::Drop]
    );
    assert!(f.is_empty(), "spent");
}
