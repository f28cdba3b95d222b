//! The plant behind the numbers: a function of simulated time (not of polling), with
//! daylight, charge and discharge, grid loss, modes and warnings that follow from it; parallel
//! groups sharing one plant; the run-time handle; the serde configuration.

mod common;

use std::time::{Duration, UNIX_EPOCH};

use common::{NOON, START, ask, config, config_for, ctx_at, payload};
use serialtwin_core::{Context, SimClock};
use serialtwin_devices::pi30::{ConfigError, Pi30, Pi30Config, Settings, Variant};

const ACK: &[u8] = b"(ACK9 \r";
const NAK: &[u8] = b"(NAKss\r";
const HOUR: u64 = 3600;

fn fields(dev: &mut Pi30, ctx: &mut Context, query: &str) -> Vec<String> {
    payload(&ask(dev, ctx, query))
        .split(' ')
        .map(String::from)
        .collect()
}

fn qpigs_at(dev: &mut Pi30, unix: u64) -> Vec<String> {
    fields(dev, &mut ctx_at(unix), "QPIGS")
}

fn num(s: &str) -> f64 {
    s.parse().unwrap()
}

/// Without `start_unix`, `initial_soc` is the state of charge when the clock started — not at
/// midnight UTC before it — and a later first request still sees the plant run from there.
#[tokio::test(start_paused = true)]
async fn initial_soc_holds_when_the_clock_starts() {
    let mut cfg = config();
    cfg.plant.start_unix = None;
    cfg.battery.initial_soc = 0.5;
    // 15:00 UTC: a day of sun and load lies between midnight and the clock's start.
    let clock = SimClock::at_unix(START + 15 * HOUR, 1.0);
    let mut dev = Pi30::new(cfg.clone()).unwrap();
    let at_start = fields(&mut dev, &mut Context::for_test(clock), "QPIGS");
    assert_eq!(at_start[10], "050", "battery capacity at the clock's start");

    // The first request an hour after the clock started: the plant ran from the clock's start.
    let mut late = Pi30::new(cfg.clone()).unwrap();
    tokio::time::advance(Duration::from_secs(HOUR)).await;
    let an_hour_in = fields(&mut late, &mut Context::for_test(clock), "QPIGS");
    let mut pinned = cfg;
    pinned.plant.start_unix = Some(START + 15 * HOUR);
    let mut reference = Pi30::new(pinned).unwrap();
    let expected = fields(&mut reference, &mut ctx_at(START + 16 * HOUR), "QPIGS");
    assert_eq!(
        an_hour_in, expected,
        "same as a plant pinned at the clock's start"
    );
    assert_ne!(an_hour_in[10], "050", "an hour of sun moved the charge");
}

/// The same instant reached through different query histories gives identical bytes.
#[tokio::test(start_paused = true)]
async fn same_instant_same_bytes_whatever_the_history() {
    let queries = [
        "QPIGS",
        "QPGS0",
        "Q1",
        "QMOD",
        "QPIWS",
        "QBMS",
        "QET",
        "QLT",
        "QED20250305",
        "QPIGS2",
    ];
    let mut busy = Pi30::new(config_for(Variant::Pi30max)).unwrap();
    let mut quiet = Pi30::new(config_for(Variant::Pi30max)).unwrap();
    // `busy` is polled every 7 minutes 13 seconds from before the start until noon.
    let mut t = START - 600;
    while t < NOON {
        for q in ["QPIGS", "QMOD", "QET"] {
            ask(&mut busy, &mut ctx_at(t), q);
        }
        t += 433;
    }
    for q in queries {
        let a = ask(&mut busy, &mut ctx_at(NOON), q);
        let b = ask(&mut quiet, &mut ctx_at(NOON), q);
        assert_eq!(a, b, "{q}");
    }
    // And the plant did move: noon differs from dawn.
    assert_ne!(
        ask(&mut quiet, &mut ctx_at(NOON + HOUR), "QPIGS"),
        ask(&mut busy, &mut ctx_at(NOON), "QPIGS")
    );
}

/// The clock speed does not matter either: a context whose clock runs 3600x and has advanced
/// one tokio second reads the same instant as one pinned there.
#[tokio::test(start_paused = true)]
async fn sim_clock_speed_is_transparent() {
    let mut fast = Context::for_test(serialtwin_core::SimClock::at_unix(NOON - HOUR, 3600.0));
    tokio::time::advance(Duration::from_secs(1)).await;
    let mut a = Pi30::new(config()).unwrap();
    let mut b = Pi30::new(config()).unwrap();
    assert_eq!(
        ask(&mut a, &mut fast, "QPIGS"),
        ask(&mut b, &mut ctx_at(NOON), "QPIGS")
    );
}

/// PV follows daylight; the battery charges during the day (utility-first, solar charging).
#[tokio::test(start_paused = true)]
async fn pv_follows_daylight_and_charges_the_battery() {
    let mut dev = Pi30::new(config()).unwrap();
    let night = qpigs_at(&mut dev, START + 3 * HOUR);
    assert_eq!(night[19], "00000", "no PV power at 03:00");
    assert_eq!(night[13], "000.0", "no PV voltage at 03:00");
    let morning = qpigs_at(&mut dev, START + 7 * HOUR);
    let midday = qpigs_at(&mut dev, START + 10 * HOUR);
    assert!(num(&morning[19]) > 0.0);
    assert!(
        num(&midday[10]) > num(&morning[10]),
        "SoC rises: {} -> {}",
        morning[10],
        midday[10]
    );
    assert!(num(&midday[9]) > 0.0, "charging current");
    assert_eq!(&midday[16][5..7], "11", "charging on, SCC charging on");
    let evening = qpigs_at(&mut dev, START + 20 * HOUR);
    assert_eq!(evening[19], "00000");
}

/// SBU priority at night: the inverter runs from the battery (QMOD B), which discharges.
#[tokio::test(start_paused = true)]
async fn sbu_discharges_the_battery_at_night() {
    let mut cfg = config();
    cfg.battery.initial_soc = 0.9;
    cfg.settings = Some(Settings {
        output_source_priority: 2,
        ..Settings::default()
    });
    let mut dev = Pi30::new(cfg).unwrap();
    let mut ctx = ctx_at(START + HOUR);
    assert_eq!(payload(&ask(&mut dev, &mut ctx, "QMOD")), "B");
    let one = qpigs_at(&mut dev, START + HOUR);
    let three = qpigs_at(&mut dev, START + 3 * HOUR);
    assert!(num(&one[15]) > 0.0, "discharge current {}", one[15]);
    assert_eq!(one[9], "000");
    assert!(
        num(&three[10]) < num(&one[10]),
        "SoC falls: {} -> {}",
        one[10],
        three[10]
    );
    assert!(num(&three[8]) < num(&one[8]), "voltage falls");
    // POP00 puts the load back on the grid.
    assert_eq!(ask(&mut dev, &mut ctx_at(START + 3 * HOUR), "POP00"), ACK);
    assert_eq!(
        payload(&ask(&mut dev, &mut ctx_at(START + 3 * HOUR + 10), "QMOD")),
        "L"
    );
}

/// The grid goes away through the handle: battery mode, line-fail warning, no input voltage.
#[tokio::test(start_paused = true)]
async fn grid_loss_through_the_handle() {
    let mut dev = Pi30::new(config()).unwrap();
    let handle = dev.control();
    let mut ctx = ctx_at(NOON);
    assert_eq!(payload(&ask(&mut dev, &mut ctx, "QMOD")), "L");
    assert!(handle.grid_present());
    handle.set_grid_present(false, UNIX_EPOCH + Duration::from_secs(NOON));
    assert_eq!(payload(&ask(&mut dev, &mut ctx, "QMOD")), "B");
    let qpiws = payload(&ask(&mut dev, &mut ctx, "QPIWS"));
    assert_eq!(&qpiws[5..6], "1", "line fail warning: {qpiws}");
    let q = fields(&mut dev, &mut ctx, "QPIGS");
    assert_eq!((q[0].as_str(), q[1].as_str()), ("000.0", "00.0"));
    assert_eq!(q[2], "230.0", "the output stays on");
    handle.set_grid_present(true, UNIX_EPOCH + Duration::from_secs(NOON + 60));
    assert_eq!(payload(&ask(&mut dev, &mut ctx_at(NOON + 60), "QMOD")), "L");
}

/// A flat battery without grid at night: cut-off, output off (standby), shutdown warning.
#[tokio::test(start_paused = true)]
async fn flat_battery_without_grid_cuts_off() {
    let mut dev = Pi30::new(config()).unwrap();
    let handle = dev.control();
    let t = START + 20 * HOUR;
    let at = |s| UNIX_EPOCH + Duration::from_secs(s);
    handle.set_grid_present(false, at(t));
    handle.set_soc(0.02, at(t));
    assert!((handle.snapshot(at(t)).soc - 0.02).abs() < 1e-9);
    let mut later = ctx_at(t + 600);
    assert_eq!(payload(&ask(&mut dev, &mut later, "QMOD")), "S");
    let qpiws = payload(&ask(&mut dev, &mut later, "QPIWS"));
    assert_eq!(&qpiws[14..15], "1", "battery under shutdown: {qpiws}");
    let q = fields(&mut dev, &mut later, "QPIGS");
    assert_eq!((q[2].as_str(), q[5].as_str()), ("000.0", "0000"));
    // The grid comes back: line mode, and the battery charges from it.
    handle.set_grid_present(true, at(t + 600));
    let q = qpigs_at(&mut dev, t + 1200);
    assert_eq!(payload(&ask(&mut dev, &mut ctx_at(t + 1200), "QMOD")), "L");
    assert!(
        num(&q[9]) > 0.0 && q[16].ends_with('1'),
        "AC charging: {q:?}"
    );
}

/// PV and load energy accumulate per local day (PI30MAX QET/QEY/QEM/QED, QLT/...).
#[tokio::test(start_paused = true)]
async fn energy_counters() {
    let mut cfg = config_for(Variant::Pi30max);
    cfg.plant.pv_energy_before_wh = 1_000_000;
    let mut dev = Pi30::new(cfg).unwrap();
    let next_noon = NOON + 24 * HOUR;
    let mut ctx = ctx_at(next_noon);
    let day1 = num(&payload(&ask(&mut dev, &mut ctx, "QED20250305")));
    let day2 = num(&payload(&ask(&mut dev, &mut ctx, "QED20250306")));
    let month = num(&payload(&ask(&mut dev, &mut ctx, "QEM202503")));
    let year = num(&payload(&ask(&mut dev, &mut ctx, "QEY2025")));
    let total = num(&payload(&ask(&mut dev, &mut ctx, "QET")));
    assert!(day1 > 0.0 && day2 > 0.0);
    // Each counter is rounded to whole Wh on its own.
    assert!(
        (month - (day1 + day2)).abs() <= 1.0,
        "{month} vs {day1} + {day2}"
    );
    assert!((year - month).abs() < 0.5);
    assert!((total - (1_000_000.0 + year)).abs() <= 1.0);
    let load1 = num(&payload(&ask(&mut dev, &mut ctx, "QLD20250305")));
    let load_total = num(&payload(&ask(&mut dev, &mut ctx, "QLT")));
    assert!(load1 > 0.0 && load_total > load1);
    // Yesterday's counter does not move.
    let later = num(&payload(&ask(
        &mut dev,
        &mut ctx_at(next_noon + HOUR),
        "QED20250305",
    )));
    assert!((later - day1).abs() < 0.5);
}

/// A parallel group: one plant, every port answers QPGS0..QPGS2 the same, setters spread.
#[tokio::test(start_paused = true)]
async fn parallel_group_shares_one_plant() {
    let mut units = Pi30::group(config(), 3).unwrap();
    let mut ctx = ctx_at(NOON);
    let mut serials = Vec::new();
    for u in &mut units {
        serials.push(payload(&ask(u, &mut ctx, "QID")));
    }
    assert_eq!(
        serials,
        ["92932004102453", "92932004102454", "92932004102455"]
    );
    let mut reference = Vec::new();
    for n in 0..3 {
        reference.push(ask(&mut units[0], &mut ctx, &format!("QPGS{n}")));
    }
    for u in &mut units[1..] {
        for (n, want) in reference.iter().enumerate() {
            assert_eq!(&ask(u, &mut ctx, &format!("QPGS{n}")), want, "QPGS{n}");
        }
        assert_eq!(ask(u, &mut ctx, "QPGS3"), NAK);
    }
    for (n, r) in reference.iter().enumerate() {
        let f: Vec<String> = payload(r).split(' ').map(String::from).collect();
        assert_eq!((f[0].as_str(), f[1].as_str()), ("1", serials[n].as_str()));
        assert_eq!(f[13], reference_soc(&reference[0]), "one battery");
    }
    // Totals are the sum of the units.
    let f = |r: &Vec<u8>, i: usize| num(payload(r).split(' ').nth(i).unwrap());
    let total_w: f64 = reference.iter().map(|r| f(r, 9)).sum();
    assert!((f(&reference[0], 17) - total_w).abs() <= 2.0);
    // A setter on one port shows on the others; a unit-addressed one on its unit only.
    assert_eq!(ask(&mut units[1], &mut ctx, "POP02"), ACK);
    assert_eq!(fields(&mut units[2], &mut ctx, "QPIRI")[16], "2");
    assert_eq!(ask(&mut units[0], &mut ctx, "MCHGC240"), ACK);
    assert_eq!(fields(&mut units[2], &mut ctx, "QPIRI")[14], "040");
    assert_eq!(fields(&mut units[1], &mut ctx, "QPIRI")[14], "060");
    assert_eq!(ask(&mut units[0], &mut ctx, "MCHGC340"), NAK);
    // The handle of any port changes the shared plant.
    units[2]
        .control()
        .set_grid_present(false, UNIX_EPOCH + Duration::from_secs(NOON));
    assert_eq!(payload(&ask(&mut units[0], &mut ctx, "QMOD")), "B");
    assert_eq!(units[0].control().units(), 3);
}

fn reference_soc(qpgs0: &[u8]) -> String {
    payload(qpgs0).split(' ').nth(13).unwrap().to_string()
}

#[test]
fn config_is_a_toml_table() {
    let cfg: Pi30Config = toml::from_str(
        r#"
        variant = "pi30max"
        crc = "reference"
        unknown_command = "echo"
        serial = "12345678901234"
        qpigs_fields = 21
        [battery]
        nominal_voltage = 24
        [settings]
        output_source_priority = 2
        [settings.flags]
        buzzer = false
        [plant]
        start_unix = 1741132800
        grid_present = false
        "#,
    )
    .unwrap();
    assert_eq!(cfg.variant, Variant::Pi30max);
    assert_eq!(cfg.battery.nominal_voltage, 24);
    assert!((cfg.battery.capacity_ah - 200.0).abs() < 1e-9);
    assert_eq!(cfg.settings.as_ref().unwrap().output_source_priority, 2);
    assert!(!cfg.settings.as_ref().unwrap().flags.buzzer);
    assert_eq!(cfg.factory_settings(), Settings::for_battery(24));
    assert!(Pi30::new(cfg.clone()).is_ok());
    let back: Pi30Config = toml::from_str(&toml::to_string(&cfg).unwrap()).unwrap();
    assert_eq!(back, cfg);
    assert!(toml::from_str::<Pi30Config>("serail = \"1\"").is_err());
    assert!(toml::from_str::<Pi30Config>("[plant]\nsunrise = 5.0").is_err());
}

#[test]
fn invalid_configs_are_refused() {
    let mut cfg = config();
    cfg.battery.nominal_voltage = 36;
    assert_eq!(Pi30::new(cfg).unwrap_err(), ConfigError::BatteryVoltage(36));
    let mut cfg = config();
    cfg.qpigs_fields = Some(24);
    assert!(matches!(
        Pi30::new(cfg),
        Err(ConfigError::FieldCount { .. })
    ));
    let mut cfg = config();
    cfg.model_name = "MKS 5000".into();
    assert!(matches!(Pi30::new(cfg), Err(ConfigError::Text(_))));
    assert!(matches!(
        Pi30::group(config(), 0),
        Err(ConfigError::GroupSize { .. })
    ));
    assert!(matches!(
        Pi30::group(config(), 10),
        Err(ConfigError::GroupSize { .. })
    ));
}

/// A 24 V bank scales setter ranges and defaults.
#[tokio::test(start_paused = true)]
async fn setter_ranges_scale_with_the_bank() {
    let mut cfg = config();
    cfg.battery.nominal_voltage = 24;
    let mut dev = Pi30::new(cfg).unwrap();
    let mut ctx = ctx_at(NOON);
    assert_eq!(fields(&mut dev, &mut ctx, "QPIRI")[7], "24.0");
    assert_eq!(ask(&mut dev, &mut ctx, "PBCV44.0"), NAK);
    assert_eq!(ask(&mut dev, &mut ctx, "PBCV22.5"), ACK);
    assert_eq!(ask(&mut dev, &mut ctx, "PSDV20.0"), ACK);
    assert_eq!(ask(&mut dev, &mut ctx, "PCVV29.3"), NAK);
}
