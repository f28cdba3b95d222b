//! Setters: validate the argument against the protocol's documented ranges, then change the
//! settings. A setter that returns `false` left everything untouched (the unit answers `(NAK`).
//!
//! Ranges come from the PI30 protocol PDFs as quoted in mppsolar's help strings, scaled to the
//! bank's nominal voltage. Where a setter addresses a unit of a parallel group (`MCHGC`,
//! `MNCHGC`, `MUCHGC`, `POPM`, `PPCP`) the unit digit must name a unit of the group; every other
//! setter changes all units, as a parallel system keeps its settings in step.

use jiff::civil::DateTime;
use jiff::tz::TimeZone;

use super::super::config::{Settings, Variant};
use super::super::shared::System;
use super::Name;

/// Apply setter `name` with argument `arg`, sent to unit `unit` at simulated second `now`.
/// Returns whether it was accepted.
pub(crate) fn apply(sys: &mut System, unit: usize, name: Name, arg: &str, now: i64) -> bool {
    let variant = sys.config.variant;
    let nominal = sys.config.battery.nominal_voltage;
    let n = sys.units.len();
    let accepted = match name {
        Name::Pf if arg.is_empty() => {
            let factory = sys.config.factory_settings();
            for s in &mut sys.settings {
                *s = factory.clone();
            }
            true
        }
        Name::Psave if arg.is_empty() => {
            for u in &mut sys.units {
                u.config_changed = false;
            }
            return true;
        }
        Name::Dat => return set_clock(sys, unit, arg, now),
        Name::Mchgc | Name::Muchgc | Name::Mnchgc => {
            let Some((target, amps)) = unit_current(arg, name == Name::Mnchgc, n) else {
                return false;
            };
            let options = if name == Name::Muchgc {
                &sys.config.utility_charging_current_options
            } else {
                &sys.config.charging_current_options
            };
            if !options.contains(&amps) {
                return false;
            }
            let s = &mut sys.settings[target];
            if name == Name::Muchgc {
                s.max_ac_charging_current = amps;
            } else {
                s.max_charging_current = amps;
            }
            true
        }
        Name::Popm | Name::Ppcp => {
            let b = arg.as_bytes();
            let (len, max) = if name == Name::Popm { (2, 4) } else { (3, 3) };
            if b.len() != len || !b.iter().all(u8::is_ascii_digit) {
                return false;
            }
            let target = usize::from(b[0] - b'0');
            let value = b[len - 1] - b'0';
            if target >= n || value > max || (name == Name::Ppcp && b[1] != b'0') {
                return false;
            }
            let s = &mut sys.settings[target];
            if name == Name::Popm {
                s.output_mode = value;
            } else {
                s.charger_source_priority = value;
            }
            true
        }
        _ => {
            let mut next = sys.settings[unit].clone();
            if !change(&mut next, name, arg, variant, nominal) {
                return false;
            }
            // Copy what changed to every unit, leaving per-unit settings alone.
            for s in &mut sys.settings {
                let keep = (
                    s.max_charging_current,
                    s.max_ac_charging_current,
                    s.output_mode,
                    s.charger_source_priority,
                );
                let pcp = next.charger_source_priority;
                *s = next.clone();
                (
                    s.max_charging_current,
                    s.max_ac_charging_current,
                    s.output_mode,
                    s.charger_source_priority,
                ) = keep;
                if name == Name::Pcp {
                    s.charger_source_priority = pcp;
                }
            }
            true
        }
    };
    if accepted {
        for u in &mut sys.units {
            u.config_changed = true;
        }
    }
    accepted
}

/// Parse `mnn` (or `mnnn` when `wide`) into a unit and a current. A single unit also takes
/// `nnn` as a plain current, as single-unit firmware does.
fn unit_current(arg: &str, wide: bool, units: usize) -> Option<(usize, u16)> {
    let len = if wide { 4 } else { 3 };
    if arg.len() != len || !arg.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if units == 1 && !wide {
        return Some((0, arg.parse().ok()?));
    }
    let target = usize::from(arg.as_bytes()[0] - b'0');
    (target < units).then_some((target, arg[1..].parse().ok()?))
}

/// `DATyyyymmddHHMMSS`: set unit `unit`'s clock (QT).
fn set_clock(sys: &mut System, unit: usize, arg: &str, now: i64) -> bool {
    if arg.len() != 14 || !arg.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let Ok(dt) = DateTime::strptime("%Y%m%d%H%M%S", arg) else {
        return false;
    };
    let Ok(ts) = TimeZone::UTC.to_timestamp(dt) else {
        return false;
    };
    let local_now = now + i64::from(sys.config.plant.utc_offset_minutes) * 60;
    sys.units[unit].clock_offset = ts.as_second() - local_now;
    true
}

/// `dd.d` as tenths of a volt.
fn tenths(arg: &str) -> Option<u32> {
    let b = arg.as_bytes();
    let ok = b.len() == 4 && b[2] == b'.' && [0, 1, 3].iter().all(|&i| b[i].is_ascii_digit());
    ok.then(|| arg.replace('.', "").parse().ok()).flatten()
}

/// A two-digit option `0v` with `v <= max`.
fn option2(arg: &str, max: u8) -> Option<u8> {
    let b = arg.as_bytes();
    (b.len() == 2 && b[0] == b'0' && b[1].is_ascii_digit() && b[1] - b'0' <= max)
        .then(|| b[1] - b'0')
}

/// A one-digit option `v <= max`.
fn option1(arg: &str, max: u8) -> Option<u8> {
    let b = arg.as_bytes();
    (b.len() == 1 && b[0].is_ascii_digit() && b[0] - b'0' <= max).then(|| b[0] - b'0')
}

/// Tenths of a volt that PBCV accepts for a bank of `nominal` volts.
fn recharge_steps(nominal: u8) -> Vec<u32> {
    match nominal {
        12 => vec![110, 113, 115, 118, 120, 123, 125, 128],
        24 => (0..8).map(|i| 220 + 5 * i).collect(),
        _ => (0..8).map(|i| 440 + 10 * i).collect(),
    }
}

/// Tenths of a volt that PBDV accepts besides 00.0.
fn redischarge_steps(nominal: u8) -> Vec<u32> {
    match nominal {
        12 => vec![120, 123, 125, 128, 130, 133, 135, 138, 140, 143, 145],
        24 => (0..11).map(|i| 240 + 5 * i).collect(),
        _ => (0..11).map(|i| 480 + 10 * i).collect(),
    }
}

/// Scale a 48 V range bound (tenths) to `nominal`.
fn scaled(tenths48: u32, nominal: u8) -> u32 {
    tenths48 * u32::from(nominal) / 48
}

/// Validate and apply a setter that changes ordinary settings, on a copy.
fn change(s: &mut Settings, name: Name, arg: &str, variant: Variant, nominal: u8) -> bool {
    let volts = |t: u32| f64::from(t) / 10.0;
    let v10 = |x: f64| {
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "volts"
        )]
        let t = (x * 10.0).round().max(0.0) as u32;
        t
    };
    match name {
        Name::Pop => option2(arg, 2).map(|v| s.output_source_priority = v),
        Name::Pcp => option2(arg, 3).map(|v| s.charger_source_priority = v),
        Name::Pbt => option2(arg, 2).map(|v| s.battery_type = v),
        Name::Pgr => option2(arg, 1).map(|v| s.input_voltage_range = v),
        Name::Poplg => option2(arg, 2).map(|v| s.operation_logic = v),
        Name::Ppvokc => option1(arg, 1).map(|v| s.pv_ok_condition = v),
        Name::Pspb => option1(arg, 1).map(|v| s.pv_power_balance = v),
        Name::F => match arg {
            "50" | "60" => {
                s.output_frequency = if arg == "50" { 50 } else { 60 };
                Some(())
            }
            _ => None,
        },
        Name::Pbcv => tenths(arg)
            .filter(|t| recharge_steps(nominal).contains(t))
            .filter(|&t| {
                s.battery_redischarge_voltage <= 0.0 || t < v10(s.battery_redischarge_voltage)
            })
            .map(|t| s.battery_recharge_voltage = volts(t)),
        Name::Pbdv => tenths(arg)
            .filter(|t| *t == 0 || redischarge_steps(nominal).contains(t))
            .filter(|&t| t == 0 || t > v10(s.battery_recharge_voltage))
            .map(|t| s.battery_redischarge_voltage = volts(t)),
        Name::Psdv => tenths(arg)
            .filter(|&t| (scaled(400, nominal)..=scaled(480, nominal)).contains(&t))
            .map(|t| s.battery_under_voltage = volts(t)),
        Name::Pcvv => tenths(arg)
            .filter(|&t| (scaled(480, nominal)..=scaled(584, nominal)).contains(&t))
            .filter(|&t| t >= v10(s.battery_float_voltage))
            .map(|t| s.battery_bulk_voltage = volts(t)),
        Name::Pbft => tenths(arg)
            .filter(|&t| (scaled(480, nominal)..=scaled(584, nominal)).contains(&t))
            .filter(|&t| t <= v10(s.battery_bulk_voltage))
            .map(|t| s.battery_float_voltage = volts(t)),
        Name::Pe | Name::Pd => set_flags(s, arg, name == Name::Pe, variant).then_some(()),
        Name::Pbatcd => {
            let b = arg.as_bytes();
            (b.len() == 3 && b.iter().all(|c| matches!(c, b'0' | b'1'))).then(|| {
                s.grid_charging = b[0] == b'1';
                s.battery_discharge = b[1] == b'1';
                s.grid_feed = b[2] == b'1';
            })
        }
        Name::Pbatmaxdisc => {
            let ok = arg.len() == 3 && arg.bytes().all(|b| b.is_ascii_digit());
            ok.then(|| arg.parse::<u16>().ok())
                .flatten()
                .filter(|&a| a == 0 || (30..=150).contains(&a))
                .map(|a| s.max_discharging_current = a)
        }
        Name::Bta => {
            let b = arg.as_bytes();
            let ok = b.len() == 3
                && matches!(b[0], b'+' | b'-')
                && b[1] == b'0'
                && b[2].is_ascii_digit();
            ok.then(|| {
                let steps = i8::try_from(b[2] - b'0').unwrap_or(0);
                s.battery_calibration = if b[0] == b'-' { -steps } else { steps };
            })
        }
        Name::Plede => option1(arg, 1).map(|v| s.led.enabled = v == 1),
        Name::Pleds => option1(arg, 2).map(|v| s.led.speed = v),
        Name::Pledm => option1(arg, 3).map(|v| s.led.effect = v),
        Name::Pledb => option1(arg, 9)
            .filter(|&v| v >= 1)
            .map(|v| s.led.brightness = v),
        Name::Pledt => option1(arg, 3)
            .filter(|&v| v >= 1)
            .map(|v| s.led.colors = v),
        Name::Pledc => set_led_color(s, arg).then_some(()),
        _ => None,
    }
    .is_some()
}

/// `PE`/`PD` followed by one or more flag letters of the variant.
fn set_flags(s: &mut Settings, letters: &str, on: bool, variant: Variant) -> bool {
    if letters.is_empty() {
        return false;
    }
    let mut next = s.flags;
    for c in letters.chars().map(|c| c.to_ascii_lowercase()) {
        let flag = match (c, variant) {
            ('a', _) => &mut next.buzzer,
            ('b', _) => &mut next.overload_bypass,
            ('j', Variant::Pi30) => &mut next.power_saving,
            ('d', Variant::Pi30max) => &mut next.solar_feed_to_grid,
            ('k', _) => &mut next.lcd_reset,
            ('u', _) => &mut next.overload_restart,
            ('v', _) => &mut next.over_temperature_restart,
            ('x', _) => &mut next.backlight,
            ('y', _) => &mut next.primary_source_alarm,
            ('z', _) => &mut next.record_fault_code,
            _ => return false,
        };
        *flag = on;
    }
    s.flags = next;
    true
}

/// `PLEDCnRRRGGGBBB`: colour `n` (1 line, 2 AVR, 3 battery mode).
fn set_led_color(s: &mut Settings, arg: &str) -> bool {
    if arg.len() != 10 || !arg.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let slot = usize::from(arg.as_bytes()[0] - b'0');
    if !(1..=3).contains(&slot) {
        return false;
    }
    let mut rgb = [0u8; 3];
    for (i, c) in rgb.iter_mut().enumerate() {
        match arg[1 + 3 * i..4 + 3 * i].parse::<u8>() {
            Ok(v) => *c = v,
            Err(_) => return false,
        }
    }
    s.led.rgb[slot - 1] = rgb;
    true
}
