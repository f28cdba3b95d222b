//! Query answers: settings, identity and the plant's state printed in PI30's field layouts.
//!
//! Layouts follow mppsolar 0.16.56 (`pi30.py`, `pi30max.py`) and its test responses: e.g.
//! PI30's 21-field QPIGS payload is 106 characters (110 bytes on the wire with `(`, CRC, `\r`).

use std::fmt::Write as _;

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;

use super::super::config::{Pi30Config, Settings, Variant};
use super::super::plant::{ChargeStage, Snapshot, UnitFlows};
use super::super::shared::System;
use super::Name;
use super::fmt::{at_least, bit, bits, fixed, int};

/// Everything a query of one unit may read, at one instant.
pub(crate) struct View<'a> {
    /// Configuration.
    pub cfg: &'a Pi30Config,
    /// The group.
    pub sys: &'a System,
    /// Which unit answers.
    pub unit: usize,
    /// The plant now.
    pub snap: &'a Snapshot,
}

impl View<'_> {
    fn settings(&self) -> &Settings {
        &self.sys.settings[self.unit]
    }

    fn flows(&self, unit: usize) -> &UnitFlows {
        &self.snap.units[unit]
    }

    fn max(&self) -> bool {
        self.cfg.variant == Variant::Pi30max
    }

    /// Battery voltage as the unit reads it (with the `BTA` calibration).
    fn battery_v(&self, unit: usize) -> f64 {
        self.snap.battery_v + 0.05 * f64::from(self.sys.settings[unit].battery_calibration)
    }

    /// Output voltage and frequency (zero when the output is off).
    fn output(&self, unit: usize) -> (f64, f64) {
        let s = &self.sys.settings[unit];
        if self.flows(unit).output_on {
            (s.output_voltage, f64::from(s.output_frequency))
        } else {
            (0.0, 0.0)
        }
    }

    /// Apparent output power, VA.
    fn va(&self, unit: usize) -> f64 {
        self.flows(unit).load_w / self.cfg.plant.load_power_factor.clamp(0.1, 1.0)
    }

    /// Output load, percent of the rated apparent power.
    fn load_pct(&self, unit: usize) -> f64 {
        100.0 * self.va(unit) / f64::from(self.cfg.rated_power_va.max(1))
    }

    /// Inverter heat-sink temperature, °C.
    fn heat_sink_c(&self, unit: usize) -> f64 {
        let f = self.flows(unit);
        let pv_peak = (self.cfg.plant.pv_peak_w + self.cfg.plant.pv2_peak_w).max(1.0);
        self.cfg.plant.ambient_c
            + 30.0 * f.load_w / f64::from(self.cfg.rated_power_w.max(1))
            + 15.0 * (f.pv1_w + f.pv2_w) / pv_peak
    }

    /// DC bus voltage, V.
    fn bus_v(&self, unit: usize) -> f64 {
        if self.flows(unit).output_on || self.snap.irradiance > 0.0 {
            370.0 + 20.0 * self.snap.soc
        } else {
            0.0
        }
    }

    /// QMOD's letter for `unit`.
    fn mode(&self, unit: usize) -> char {
        let f = self.flows(unit);
        if !f.output_on {
            'S'
        } else if f.line {
            'L'
        } else {
            'B'
        }
    }

    fn charge_a(&self, unit: usize) -> f64 {
        self.flows(unit).charge_a
    }

    fn float_stage(&self) -> bool {
        self.snap.stage == ChargeStage::Float
    }
}

/// Answer `name` (with argument `arg`) from `view`; `None` means `(NAK`.
pub(crate) fn answer(name: Name, arg: &str, v: &View<'_>) -> Option<String> {
    let cfg = v.cfg;
    let s = v.settings();
    Some(match name {
        Name::Qpi => cfg.protocol_id.clone(),
        Name::Qid => v.sys.units[v.unit].serial.clone(),
        Name::Qsid => {
            let serial = &v.sys.units[v.unit].serial;
            format!("{:02}{serial:0<20}", serial.len())
        }
        Name::Qvfw => format!("VERFW:{}", cfg.firmware_main),
        Name::Qvfw2 => format!("VERFW2:{}", cfg.firmware_secondary),
        Name::Qvfw3 => format!("VERFW3:{}", cfg.firmware_remote),
        Name::Verfw => format!("VERFW:{}", cfg.firmware_bluetooth),
        Name::Qpigs => qpigs(v),
        Name::Qpigs2 => {
            let f = v.flows(v.unit);
            let amps = if f.pv2_v > 0.0 {
                f.pv2_w / f.pv2_v
            } else {
                0.0
            };
            // mppsolar's only example ends in a space before the CRC; kept for fidelity.
            format!(
                "{} {} {} ",
                fixed(amps, 4, 1),
                fixed(f.pv2_v, 5, 1),
                int(f.pv2_w, 5)
            )
        }
        Name::Qpiri => qpiri(v, s),
        Name::Qmod => v.mode(v.unit).to_string(),
        Name::Qpiws => qpiws(v, s),
        Name::Qflag => qflag(cfg.variant, s),
        Name::Qdi => qdi(cfg, &cfg.factory_settings()),
        Name::Qmchgcr => options(&cfg.charging_current_options),
        Name::Qmuchgcr => options(&cfg.utility_charging_current_options),
        Name::Qboot => bit(cfg.dsp_bootstrap).to_string(),
        Name::Qopm => at_least(s.output_mode, 2),
        Name::Qpgs => {
            let n: usize = arg.parse().ok()?;
            if n >= v.sys.units.len() {
                return None;
            }
            qpgs(v, n)
        }
        Name::Q1 => q1(v, s),
        Name::Qmn => cfg.model_name.clone(),
        Name::Qgmn => cfg.general_model.clone(),
        Name::Qbms => qbms(v, s),
        Name::Qt => device_time(v)?,
        Name::Qet | Name::Qey | Name::Qem | Name::Qed => {
            let e = energy(v, arg)?;
            int(e.0 + as_f64(cfg.plant.pv_energy_before_wh) * e.2, 8)
        }
        Name::Qlt | Name::Qly | Name::Qlm | Name::Qld => {
            let e = energy(v, arg)?;
            int(e.1 + as_f64(cfg.plant.load_energy_before_wh) * e.2, 8)
        }
        Name::Qbeqi => qbeqi(v),
        Name::Qled => {
            let l = &s.led;
            let rgb = l.rgb.iter().flatten().fold(String::new(), |mut acc, c| {
                let _ = write!(acc, "{c:03}");
                acc
            });
            format!(
                "{} {} {} {} {} {rgb}",
                bit(l.enabled),
                l.speed,
                l.effect,
                l.brightness,
                l.colors
            )
        }
        Name::Qchpt => schedule(s.charger_source_priority),
        Name::Qoppt => schedule(s.output_source_priority),
        _ => return None,
    })
}

#[expect(
    clippy::cast_precision_loss,
    reason = "energy counters are far below 2^53 Wh"
)]
fn as_f64(v: u64) -> f64 {
    v as f64
}

/// `010 020 ...`: a list of currents.
fn options(list: &[u16]) -> String {
    list.iter()
        .map(|&a| at_least(a, 3))
        .collect::<Vec<_>>()
        .join(" ")
}

/// QCHPT/QOPPT: the priority for each of the 24 hours, the device's priority, and the three
/// order selections. The emulator has no time-slot setters, so every hour carries the current
/// priority and no order is selected (0).
fn schedule(priority: u8) -> String {
    let mut fields = vec![priority.to_string(); 25];
    fields.extend(["0", "0", "0"].map(String::from));
    fields.join(" ")
}

/// General status (QPIGS): 17 or 21 fields, 24 on PI30MAX.
fn qpigs(v: &View<'_>) -> String {
    let u = v.unit;
    let f = v.flows(u);
    let bat_v = v.battery_v(u);
    let (out_v, out_hz) = v.output(u);
    let charging = f.charge_a > 0.0;
    let status = [
        false, // SBU priority version added: not a firmware this emulator claims
        v.sys.units[u].config_changed,
        true, // SCC firmware updated
        f.output_on && f.load_w > 0.0,
        charging && v.float_stage(),
        charging,
        f.pv_charge_w > 0.0,
        f.ac_charge_w > 0.0,
    ];
    let pv_current = if v.max() {
        fixed(
            if f.pv1_v > 0.0 {
                f.pv1_w / f.pv1_v
            } else {
                0.0
            },
            4,
            1,
        )
    } else {
        int(
            if bat_v > 0.0 {
                f.pv_charge_w / bat_v
            } else {
                0.0
            },
            4,
        )
    };
    let mut fields = vec![
        fixed(v.snap.grid_v, 5, 1),
        fixed(v.snap.grid_hz, 4, 1),
        fixed(out_v, 5, 1),
        fixed(out_hz, 4, 1),
        int(v.va(u), 4),
        int(f.load_w, 4),
        int(v.load_pct(u), 3),
        int(v.bus_v(u), 3),
        fixed(bat_v, 5, 2),
        int(f.charge_a, 3),
        int(v.snap.soc * 100.0, 3),
        int(v.heat_sink_c(u), 4),
        pv_current,
        fixed(f.pv1_v, 5, 1),
        fixed(if f.pv_charge_w > 0.0 { bat_v } else { 0.0 }, 5, 2),
        int(f.discharge_a, 5),
        bits(&status),
        int(f64::from(v.cfg.fan_voltage_offset), 2),
        int(f64::from(v.cfg.eeprom_version), 2),
        int(f.pv1_w, 5),
        bits(&[
            charging && v.float_stage(),
            f.output_on,
            false, // reserved (PI30MAX: dustproof kit installed)
        ]),
    ];
    if v.max() {
        let s = v.settings();
        fields.push(bit(s.flags.solar_feed_to_grid).to_string());
        fields.push(int(f64::from(v.cfg.country), 2));
        fields.push(int(f.feed_w, 4));
    }
    fields.truncate(v.cfg.qpigs_len());
    fields.join(" ")
}

/// Current settings (QPIRI): 25 or 27 fields, 28 on PI30MAX.
fn qpiri(v: &View<'_>, s: &Settings) -> String {
    let cfg = v.cfg;
    let out_a = f64::from(cfg.rated_power_va) / s.output_voltage.max(1.0);
    let mut fields = vec![
        fixed(cfg.ac_input_voltage, 5, 1),
        fixed(cfg.ac_input_current, 4, 1),
        fixed(s.output_voltage, 5, 1),
        fixed(f64::from(s.output_frequency), 4, 1),
        fixed(out_a, 4, 1),
        int(f64::from(cfg.rated_power_va), 4),
        int(f64::from(cfg.rated_power_w), 4),
        fixed(f64::from(cfg.battery.nominal_voltage), 4, 1),
        fixed(s.battery_recharge_voltage, 4, 1),
        fixed(s.battery_under_voltage, 4, 1),
        fixed(s.battery_bulk_voltage, 4, 1),
        fixed(s.battery_float_voltage, 4, 1),
        s.battery_type.to_string(),
        at_least(s.max_ac_charging_current, 2),
        at_least(s.max_charging_current, 3),
        s.input_voltage_range.to_string(),
        s.output_source_priority.to_string(),
        s.charger_source_priority.to_string(),
        cfg.max_parallel_units.to_string(),
        cfg.machine_type.clone(),
        cfg.topology.to_string(),
        s.output_mode.to_string(),
        fixed(s.battery_redischarge_voltage, 4, 1),
        s.pv_ok_condition.to_string(),
        s.pv_power_balance.to_string(),
        at_least(s.max_cv_charging_time, 3),
        s.operation_logic.to_string(),
    ];
    if v.max() {
        fields.push(at_least(s.max_discharging_current, 3));
    }
    fields.truncate(cfg.qpiri_len());
    fields.join(" ")
}

/// Warning bits (QPIWS): 32 on PI30, 36 on PI30MAX.
#[expect(
    clippy::many_single_char_names,
    reason = "v, s, f: view, settings, flows throughout"
)]
fn qpiws(v: &View<'_>, s: &Settings) -> String {
    let f = v.flows(v.unit);
    let k = f64::from(v.cfg.battery.nominal_voltage) / 24.0;
    let mut w = vec![false; if v.max() { 36 } else { 32 }];
    // Bit 0 is unnamed on PI30 and "PV loss" on PI30MAX.
    w[0] = v.max() && f.pv1_v <= 0.0 && f.pv2_v <= 0.0;
    w[5] = !v.snap.grid_present;
    w[12] = f.output_on && !f.line && v.battery_v(v.unit) < s.battery_under_voltage + k;
    w[14] = !f.output_on;
    w[16] = v.va(v.unit) > f64::from(v.cfg.rated_power_va);
    bits(&w)
}

/// Enable flags (QFLAG): `E` and the enabled letters, `D` and the disabled ones.
fn qflag(variant: Variant, s: &Settings) -> String {
    let f = &s.flags;
    let all: &[(char, bool)] = match variant {
        Variant::Pi30 => &[
            ('a', f.buzzer),
            ('b', f.overload_bypass),
            ('j', f.power_saving),
            ('k', f.lcd_reset),
            ('u', f.overload_restart),
            ('v', f.over_temperature_restart),
            ('x', f.backlight),
            ('y', f.primary_source_alarm),
            ('z', f.record_fault_code),
        ],
        Variant::Pi30max => &[
            ('a', f.buzzer),
            ('b', f.overload_bypass),
            ('d', f.solar_feed_to_grid),
            ('k', f.lcd_reset),
            ('u', f.overload_restart),
            ('v', f.over_temperature_restart),
            ('x', f.backlight),
            ('y', f.primary_source_alarm),
            ('z', f.record_fault_code),
        ],
    };
    let pick = |on: bool| -> String {
        all.iter()
            .filter(|(_, v)| *v == on)
            .map(|(c, _)| *c)
            .collect()
    };
    format!("E{}D{}", pick(true), pick(false))
}

/// Default settings (QDI): 26 fields, 27 on PI30MAX.
fn qdi(cfg: &Pi30Config, d: &Settings) -> String {
    let f = &d.flags;
    let mut fields = vec![
        fixed(d.output_voltage, 5, 1),
        fixed(f64::from(d.output_frequency), 4, 1),
        at_least(d.max_ac_charging_current, 4),
        fixed(d.battery_under_voltage, 4, 1),
        fixed(d.battery_float_voltage, 4, 1),
        fixed(d.battery_bulk_voltage, 4, 1),
        fixed(d.battery_recharge_voltage, 4, 1),
        at_least(d.max_charging_current, 2),
        d.input_voltage_range.to_string(),
        d.output_source_priority.to_string(),
        d.charger_source_priority.to_string(),
        d.battery_type.to_string(),
        // The buzzer field is inverted: 0 means enabled.
        bit(!f.buzzer).to_string(),
        bit(f.power_saving).to_string(),
        bit(f.overload_restart).to_string(),
        bit(f.over_temperature_restart).to_string(),
        bit(f.backlight).to_string(),
        bit(f.primary_source_alarm).to_string(),
        bit(f.record_fault_code).to_string(),
        bit(f.overload_bypass).to_string(),
        bit(f.lcd_reset).to_string(),
        d.output_mode.to_string(),
        fixed(d.battery_redischarge_voltage, 4, 1),
        d.pv_ok_condition.to_string(),
        d.pv_power_balance.to_string(),
        at_least(d.max_cv_charging_time, 3),
    ];
    if cfg.variant == Variant::Pi30max {
        fields.push(at_least(d.max_discharging_current, 3));
    }
    fields.join(" ")
}

/// Parallel information (`QPGSn`) of unit `n`: 29 fields.
#[expect(
    clippy::many_single_char_names,
    reason = "v, s, f: view, settings, flows throughout"
)]
fn qpgs(v: &View<'_>, n: usize) -> String {
    let cfg = v.cfg;
    let s = &v.sys.settings[n];
    let f = v.flows(n);
    let (out_v, out_hz) = v.output(n);
    let units = 0..v.sys.units.len();
    let total_charge: f64 = units.clone().map(|i| v.charge_a(i)).sum();
    let total_va: f64 = units.clone().map(|i| v.va(i)).sum();
    let total_w: f64 = units.clone().map(|i| v.flows(i).load_w).sum();
    #[expect(clippy::cast_precision_loss, reason = "a handful of units")]
    let rated_total = f64::from(cfg.rated_power_va) * v.sys.units.len() as f64;
    let bat_v = v.battery_v(n);
    let k = f64::from(cfg.battery.nominal_voltage) / 24.0;
    let status = [
        cfg.plant.pv_peak_w > 0.0,
        f.ac_charge_w > 0.0,
        f.pv_charge_w > 0.0,
        bat_v > s.battery_bulk_voltage + k,
        bat_v < s.battery_under_voltage,
        !v.snap.grid_present,
        f.output_on && f.load_w > 0.0,
        v.sys.units[n].config_changed,
    ];
    let pv_a = if f.pv1_v > 0.0 {
        f.pv1_w / f.pv1_v
    } else {
        0.0
    };
    let string2_a = if f.pv2_v > 0.0 {
        f.pv2_w / f.pv2_v
    } else {
        0.0
    };
    let range = cfg
        .charging_current_options
        .iter()
        .copied()
        .max()
        .unwrap_or(0);
    [
        "1".to_string(),
        v.sys.units[n].serial.clone(),
        v.mode(n).to_string(),
        "00".to_string(), // fault code: the emulator models no faults
        fixed(v.snap.grid_v, 5, 1),
        fixed(v.snap.grid_hz, 5, 2),
        fixed(out_v, 5, 1),
        fixed(out_hz, 5, 2),
        int(v.va(n), 4),
        int(f.load_w, 4),
        int(v.load_pct(n), 3),
        fixed(bat_v, 4, 1),
        int(f.charge_a, 3),
        int(v.snap.soc * 100.0, 3),
        fixed(f.pv1_v, 5, 1),
        int(total_charge, 3),
        int(total_va, 5),
        int(total_w, 5),
        int(100.0 * total_va / rated_total.max(1.0), 3),
        bits(&status),
        s.output_mode.to_string(),
        s.charger_source_priority.to_string(),
        at_least(s.max_charging_current, 3),
        at_least(range, 3),
        at_least(s.max_ac_charging_current, if v.max() { 3 } else { 2 }),
        int(pv_a, 2),
        int(f.discharge_a, 3),
        fixed(f.pv2_v, 5, 1),
        int(string2_a, 2),
    ]
    .join(" ")
}

/// The undocumented Q1 (17 fields; meanings from the AEVA forum via mppsolar).
fn q1(v: &View<'_>, s: &Settings) -> String {
    let cfg = v.cfg;
    let f = v.flows(v.unit);
    let amb = cfg.plant.ambient_c;
    let pv_frac = (f.pv1_w + f.pv2_w) / (cfg.plant.pv_peak_w + cfg.plant.pv2_peak_w).max(1.0);
    let load_frac = f.load_w / f64::from(cfg.rated_power_w.max(1));
    let absorb_left = if v.snap.stage == ChargeStage::Absorb && f.charge_a > 0.0 {
        (0.99 - v.snap.soc).max(0.0) * cfg.battery.capacity_ah / f.charge_a * 3600.0
    } else {
        0.0
    };
    let stage = match v.snap.stage {
        ChargeStage::None => "10",
        ChargeStage::Bulk => "11",
        ChargeStage::Absorb => "12",
        ChargeStage::Float => "13",
    };
    let (_, out_hz) = v.output(v.unit);
    let sync_hz = if v.snap.grid_present {
        v.snap.grid_hz
    } else {
        out_hz
    };
    [
        int(absorb_left, 5),
        int(0.0, 5), // float time left: float charging has no end
        format!("0{}", bit(cfg.plant.pv_peak_w > 0.0)),
        format!(
            "0{}",
            bit(s.flags.solar_feed_to_grid || cfg.plant.pv_peak_w > 0.0)
        ),
        int(f.pv_charge_w / v.battery_v(v.unit).max(1.0), 2),
        int(amb + 25.0 * pv_frac, 3),
        int(v.heat_sink_c(v.unit), 3),
        int(amb + 3.0, 3),
        int(amb + 35.0 * load_frac, 3),
        "00".to_string(),
        "00".to_string(),
        "000".to_string(),
        int(30.0 + 70.0 * load_frac.max(pv_frac), 4),
        int(f.pv_charge_w, 4),
        "0000".to_string(),
        fixed(sync_hz, 5, 2),
        stage.to_string(),
    ]
    .join(" ")
}

/// Lithium battery information (QBMS), as the inverter sees its bank.
fn qbms(v: &View<'_>, s: &Settings) -> String {
    [
        "0".to_string(),
        int(v.snap.soc * 100.0, 3),
        "0".to_string(),
        bit(v.snap.cutoff).to_string(),
        bit(v.snap.soc >= 0.999).to_string(),
        int(s.battery_bulk_voltage * 10.0, 3),
        int(s.battery_float_voltage * 10.0, 3),
        int(s.battery_under_voltage * 10.0, 3),
        int(f64::from(s.max_charging_current), 4),
        int(f64::from(s.max_discharging_current), 4),
    ]
    .join(" ")
}

/// Battery equalisation status (QBEQI). Equalisation repeats every `period_days` from the
/// plant's start and is active for its first `time_min` minutes.
fn qbeqi(v: &View<'_>) -> String {
    let e = &v.cfg.equalization;
    #[expect(
        clippy::cast_precision_loss,
        reason = "simulated times are far below 2^53"
    )]
    let start = v.sys.plant.start().map_or(v.snap.t, |s| s as f64);
    let period_h = f64::from(e.period_days.max(1)) * 24.0;
    let since_h = ((v.snap.t - start) / 3600.0).max(0.0) % period_h;
    let active = e.enabled && since_h * 60.0 < f64::from(e.time_min);
    [
        bit(e.enabled).to_string(),
        at_least(e.time_min, 3),
        at_least(e.period_days, 3),
        at_least(e.max_current, 3),
        "000".to_string(), // reserved
        fixed(e.voltage, 5, 2),
        "000".to_string(), // reserved
        at_least(e.over_time_min, 3),
        bit(active).to_string(),
        int(if e.enabled { since_h.floor() } else { 0.0 }, 4),
    ]
    .join(" ")
}

/// The device clock (QT): simulated time, shifted to local time and by any `DAT`.
///
/// Counted on civil dates, which reach the last second of 9999 (jiff's timestamps stop a
/// day short of it), so a clock standing at the end of simulated time still shows its date.
fn device_time(v: &View<'_>) -> Option<String> {
    let secs = local_seconds(v)?;
    let day = Date::new(1970, 1, 1)
        .ok()?
        .checked_add(jiff::Span::new().try_days(secs.div_euclid(86_400)).ok()?)
        .ok()?;
    let time = secs.rem_euclid(86_400);
    Some(format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}",
        day.year(),
        day.month(),
        day.day(),
        time / 3600,
        time % 3600 / 60,
        time % 60
    ))
}

/// The unit's local clock now, whole seconds since 1970 (as if local time were UTC).
pub(crate) fn local_seconds(v: &View<'_>) -> Option<i64> {
    #[expect(
        clippy::cast_possible_truncation,
        reason = "simulated times are far inside i64"
    )]
    let now = v.snap.t.floor() as i64;
    now.checked_add(i64::from(v.cfg.plant.utc_offset_minutes) * 60)?
        .checked_add(v.sys.units[v.unit].clock_offset)
}

/// Day number (days since 1970-01-01) of a civil date.
fn day_number(d: Date) -> Option<i64> {
    let ts = TimeZone::UTC.to_timestamp(DateTime::from(d)).ok()?;
    Some(ts.as_second().div_euclid(86_400))
}

/// PV and load energy (Wh) for the period named by `arg` (`""` total, `yyyy`, `yyyymm`,
/// `yyyymmdd`), and whether the pre-start counters count (only for the total: 1.0 or 0.0).
fn energy(v: &View<'_>, arg: &str) -> Option<(f64, f64, f64)> {
    let num = |r: std::ops::Range<usize>| arg.get(r)?.parse::<i16>().ok();
    let (first, last) = match arg.len() {
        0 => {
            let e = v.sys.plant.energy_total(v.unit);
            return Some((e.pv_wh, e.load_wh, 1.0));
        }
        4 => {
            let y = num(0..4)?;
            (Date::new(y, 1, 1).ok()?, Date::new(y, 12, 31).ok()?)
        }
        6 => {
            let first = Date::new(num(0..4)?, i8::try_from(num(4..6)?).ok()?, 1).ok()?;
            (first, first.last_of_month())
        }
        8 => {
            let d = Date::new(
                num(0..4)?,
                i8::try_from(num(4..6)?).ok()?,
                i8::try_from(num(6..8)?).ok()?,
            )
            .ok()?;
            (d, d)
        }
        _ => return None,
    };
    let e = v
        .sys
        .plant
        .energy(v.unit, day_number(first)?, day_number(last)?);
    Some((e.pv_wh, e.load_wh, 0.0))
}
