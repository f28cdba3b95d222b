//! The solar system behind a charge controller: a PV array under the sun of the simulated
//! day, a lead-acid battery, and a DC load, integrated over the simulated clock.
//!
//! - Irradiance follows the sun of the simulated wall time (UTC): a half sine from 06:00 to
//!   18:00 peaking at 1000 W/m², dimmed by seeded passing clouds (up to 30 %), unless `set`
//!   pins it.
//! - The array gives `pv_w × irradiance / 1000`; the MPPT stage takes what the load and the
//!   battery can absorb (the charge current tapers above 90 % charge: boost, then float) and
//!   holds the array at its maximum power voltage, so PV power is PV volts times PV amps.
//! - The battery's voltage is its open-circuit voltage for its charge (11.8 V empty to
//!   13.1 V full, a 12 V lead-acid bank) plus its current through 15 mΩ; its charge integrates
//!   its current over its capacity.
//! - The load draws its setting while the battery holds: below 3 % charge the controller cuts
//!   it (low-voltage disconnect) and reconnects it above 20 %.
//! - Energy counters integrate the charger's output (generated) and the load (consumed), and
//!   the day's, month's and year's counters and the day's extremes restart at midnight UTC.
//!
//! The state moves in steps of at most 10 simulated seconds (more when a fast clock leaves a
//! long stretch, so that one read never costs more than [`MAX_STEPS`] of them), always from
//! the last moment reached, so the result does not depend on how often it is read.

use std::f64::consts::{PI, TAU};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::modbus::bound::Plant;
use crate::modbus::data::Value;

/// The longest integration step (s).
const STEP: f64 = 10.0;
/// The most steps one read takes (a clock at 900,000× still costs a bounded read).
const MAX_STEPS: f64 = 5_000.0;
/// The MPPT stage's efficiency.
const EFFICIENCY: f64 = 0.97;
/// The battery's internal resistance (Ω).
const RESISTANCE: f64 = 0.015;
/// The controller's rated charge current (A): a Tracer 3210AN's 30 A.
pub(super) const RATED_AMPS: f64 = 30.0;
/// The array's maximum power voltage at 1000 W/m² (two 36-cell modules in series).
const ARRAY_VOLTS: f64 = 35.0;
/// Below this charge the load is cut; above [`RECONNECT_SOC`] it comes back.
const DISCONNECT_SOC: f64 = 0.03;
const RECONNECT_SOC: f64 = 0.20;

/// What one of the controller's registers or inputs shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Quantity {
    /// PV array voltage (V).
    PvVolts,
    /// PV array current (A).
    PvAmps,
    /// PV array power (W).
    PvWatts,
    /// Battery voltage (V).
    BatteryVolts,
    /// The charger's output current into battery and load (A).
    ChargeAmps,
    /// The charger's output power (W).
    ChargeWatts,
    /// The battery's net current, positive charging (A).
    BatteryAmps,
    /// Load voltage (V).
    LoadVolts,
    /// Load current (A).
    LoadAmps,
    /// Load power (W).
    LoadWatts,
    /// Battery temperature (°C).
    BatteryCelsius,
    /// The controller's own temperature (°C).
    DeviceCelsius,
    /// State of charge (%).
    Soc,
    /// Battery status word (0x3200).
    BatteryStatus,
    /// Charging equipment status word (0x3201).
    ChargingStatus,
    /// Discharging equipment status word (0x3202).
    DischargingStatus,
    /// Today's highest and lowest PV voltage (V).
    MaxPvVoltsToday,
    /// See [`Quantity::MaxPvVoltsToday`].
    MinPvVoltsToday,
    /// Today's highest and lowest battery voltage (V).
    MaxBatteryVoltsToday,
    /// See [`Quantity::MaxBatteryVoltsToday`].
    MinBatteryVoltsToday,
    /// Energy consumed by the load (kWh): today, this month, this year, in total.
    Consumed(Period),
    /// Energy generated (kWh), the same four.
    Generated(Period),
}

/// Which energy counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Period {
    Day,
    Month,
    Year,
    Total,
}

/// A calendar date (UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Civil {
    pub(crate) year: i64,
    pub(crate) month: u32,
    pub(crate) day: u32,
    pub(crate) hour: u32,
    pub(crate) minute: u32,
    pub(crate) second: u32,
}

impl Civil {
    /// The date and time `unix` seconds after 1970-01-01T00:00:00Z (H. Hinnant's
    /// `civil_from_days`).
    pub(crate) fn from_unix(unix: i64) -> Self {
        let days = unix.div_euclid(86_400);
        let secs = unix.rem_euclid(86_400);
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        let small = |x: i64| u32::try_from(x).unwrap_or(0);
        Self {
            year,
            month: small(month),
            day: small(day),
            hour: small(secs / 3600),
            minute: small(secs % 3600 / 60),
            second: small(secs % 60),
        }
    }

    /// Seconds since 1970 of this date and time (`days_from_civil`).
    pub(crate) fn to_unix(self) -> i64 {
        let (m, d) = (i64::from(self.month), i64::from(self.day));
        let y = if m <= 2 { self.year - 1 } else { self.year };
        let era = y.div_euclid(400);
        let yoe = y.rem_euclid(400);
        let mp = if m > 2 { m - 3 } else { m + 9 };
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        days * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
    }
}

/// What the system does at one moment, given its charge and the sun.
#[derive(Clone, Copy, Debug, Default)]
struct Flows {
    irradiance: f64,
    pv_volts: f64,
    pv_watts: f64,
    battery_volts: f64,
    charge_watts: f64,
    load_watts: f64,
    battery_amps: f64,
    /// The charge current tapers: float rather than boost.
    floating: bool,
}

/// The solar system behind one controller.
#[derive(Debug)]
pub(crate) struct SolarPlant {
    /// The array's power at 1000 W/m² (W).
    pv_w: f64,
    /// The battery's capacity (Ah).
    capacity_ah: f64,
    /// The load's power while connected (W).
    load_w: f64,
    /// `Some`: irradiance pinned by `set`; `None`: the sun of the day.
    pinned: Option<f64>,
    /// The clouds' phase (radians).
    cloud_phase: f64,
    /// The wall time the clock began at (Unix seconds), told before every request.
    epoch: f64,
    /// The moment the state below is at (s since the clock began).
    at: f64,
    soc: f64,
    load_on: bool,
    /// Wh: consumed, generated, per [`Period`] (day, month, year, total).
    consumed: [f64; 4],
    generated: [f64; 4],
    /// The calendar day and month the day's and month's counters are for.
    today: (i64, u32, u32),
    /// Today's extremes: PV max/min, battery max/min (V).
    extremes: [f64; 4],
}

impl SolarPlant {
    /// A system with a `pv_w` array, a `capacity_ah` battery at charge `soc` (0–1) and a
    /// `load_w` load, its clouds from `seed`, the clock having begun at `epoch`.
    pub(crate) fn new(
        pv_w: f64,
        capacity_ah: f64,
        load_w: f64,
        soc: f64,
        seed: u64,
        epoch: SystemTime,
    ) -> Self {
        let mut rng = fastrand::Rng::with_seed(seed);
        let total = [rng.f64() * 50.0, rng.f64() * 300.0];
        let mut plant = Self {
            pv_w,
            capacity_ah,
            load_w,
            pinned: None,
            cloud_phase: rng.f64() * TAU,
            epoch: 0.0,
            at: 0.0,
            soc: soc.clamp(0.0, 1.0),
            load_on: soc > DISCONNECT_SOC,
            // A controller in service: some energy in its lifetime counters (kWh).
            consumed: [0.0, 0.0, 0.0, total[0] * 1000.0],
            generated: [0.0, 0.0, 0.0, total[1] * 1000.0],
            today: (0, 0, 0),
            extremes: [0.0; 4],
        };
        plant.set_epoch(epoch);
        plant
    }

    /// The clock began at `epoch` (the same every time: the first call sets the calendar).
    pub(crate) fn set_epoch(&mut self, epoch: SystemTime) {
        let unix = epoch
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        if (unix - self.epoch).abs() > f64::EPSILON {
            self.epoch = unix;
            let c = self.civil(self.at);
            self.today = (c.year, c.month, c.day);
            let flows = self.flows(self.at);
            self.extremes = [
                flows.pv_volts,
                flows.pv_volts,
                flows.battery_volts,
                flows.battery_volts,
            ];
        }
    }

    /// The wall time `t` seconds after the clock began.
    pub(crate) fn civil(&self, t: f64) -> Civil {
        #[expect(
            clippy::cast_possible_truncation,
            reason = "simulated time stays within year 9999"
        )]
        Civil::from_unix((self.epoch + t).floor() as i64)
    }

    /// Pin the irradiance (W/m², 0–1500), or `None` to follow the sun, from `now`.
    pub(crate) fn pin_irradiance(&mut self, irradiance: Option<f64>, now: Duration) {
        self.advance(now.as_secs_f64());
        self.pinned = irradiance;
    }

    /// The load draws `load_w` from `now` on.
    pub(crate) fn set_load(&mut self, load_w: f64, now: Duration) {
        self.advance(now.as_secs_f64());
        self.load_w = load_w;
    }

    /// The battery holds `soc` (0–1) from `now` on.
    pub(crate) fn set_soc(&mut self, soc: f64, now: Duration) {
        self.advance(now.as_secs_f64());
        self.soc = soc.clamp(0.0, 1.0);
        self.load_on = self.soc > DISCONNECT_SOC;
    }

    /// The irradiance at `t` (W/m²).
    fn irradiance(&self, t: f64) -> f64 {
        if let Some(pinned) = self.pinned {
            return pinned;
        }
        let c = self.civil(t);
        let hour = f64::from(c.hour) + f64::from(c.minute) / 60.0 + f64::from(c.second) / 3600.0;
        if !(6.0..18.0).contains(&hour) {
            return 0.0;
        }
        let clear = 1000.0 * (PI * (hour - 6.0) / 12.0).sin();
        let clouds = 1.0 - 0.3 * (0.5 + 0.5 * (TAU * t / 1800.0 + self.cloud_phase).sin());
        clear * clouds
    }

    fn flows(&self, t: f64) -> Flows {
        let irradiance = self.irradiance(t);
        let available = self.pv_w * irradiance / 1000.0;
        let open_circuit = 11.8 + 1.3 * self.soc;
        let load_watts = if self.load_on { self.load_w } else { 0.0 };
        // Boost at full current up to 90 %, then a taper to 2 % of it when full (float).
        let taper = if self.soc < 0.9 {
            1.0
        } else {
            (1.0 - (self.soc - 0.9) / 0.1 * 0.98).max(0.02)
        };
        // The most the battery takes: its current limit at the voltage that current makes.
        let limit_amps = RATED_AMPS * taper;
        let battery_limit = limit_amps * (open_circuit + limit_amps * RESISTANCE);
        let charge_watts = (available * EFFICIENCY).min(load_watts + battery_limit);
        // The battery's power is its current times its terminal voltage, which that current
        // raises (or lowers) through the internal resistance: R·I² + OCV·I − P = 0.
        let net = charge_watts - load_watts;
        let battery_amps = 2.0 * net
            / (open_circuit
                + (open_circuit * open_circuit + 4.0 * RESISTANCE * net)
                    .max(0.0)
                    .sqrt());
        let battery_volts = open_circuit + battery_amps * RESISTANCE;
        let pv_watts = charge_watts / EFFICIENCY;
        let pv_volts = if irradiance > 0.0 {
            (ARRAY_VOLTS * (1.0 + 0.05 * (irradiance / 1000.0).ln())).max(battery_volts + 2.0)
        } else {
            0.0
        };
        Flows {
            irradiance,
            pv_volts,
            pv_watts,
            battery_volts,
            charge_watts,
            load_watts,
            battery_amps,
            floating: taper < 1.0,
        }
    }

    /// Bring the state to `t`.
    fn advance(&mut self, t: f64) {
        if t <= self.at {
            return;
        }
        let step = STEP.max((t - self.at) / MAX_STEPS);
        while self.at < t {
            let dt = step.min(t - self.at);
            let flows = self.flows(self.at + dt / 2.0);
            self.soc =
                (self.soc + flows.battery_amps * dt / 3600.0 / self.capacity_ah).clamp(0.0, 1.0);
            if self.load_on && self.soc < DISCONNECT_SOC {
                self.load_on = false;
            } else if !self.load_on && self.soc > RECONNECT_SOC {
                self.load_on = true;
            }
            self.at += dt;
            let c = self.civil(self.at);
            if (c.year, c.month, c.day) != self.today {
                let (year, month, _) = self.today;
                let restart = if c.year != year {
                    3
                } else if c.month != month {
                    2
                } else {
                    1
                };
                for counters in [&mut self.consumed, &mut self.generated] {
                    for counter in &mut counters[..restart] {
                        *counter = 0.0;
                    }
                }
                self.today = (c.year, c.month, c.day);
                let now = self.flows(self.at);
                self.extremes = [
                    now.pv_volts,
                    now.pv_volts,
                    now.battery_volts,
                    now.battery_volts,
                ];
            }
            for counter in &mut self.consumed {
                *counter += flows.load_watts * dt / 3600.0;
            }
            for counter in &mut self.generated {
                *counter += flows.charge_watts * dt / 3600.0;
            }
            let now = self.flows(self.at);
            self.extremes[0] = self.extremes[0].max(now.pv_volts);
            self.extremes[1] = self.extremes[1].min(now.pv_volts);
            self.extremes[2] = self.extremes[2].max(now.battery_volts);
            self.extremes[3] = self.extremes[3].min(now.battery_volts);
        }
    }

    /// Whether it is night for the controller (no PV input): discrete input 0x200C.
    pub(crate) fn is_night(&mut self, now: Duration) -> bool {
        let t = now.as_secs_f64();
        self.advance(t);
        self.flows(t).irradiance <= 0.0
    }

    fn value(&mut self, quantity: Quantity, t: f64) -> f64 {
        use Quantity as Q;
        self.advance(t);
        let f = self.flows(self.at.max(t));
        let index = |p: Period| match p {
            Period::Day => 0,
            Period::Month => 1,
            Period::Year => 2,
            Period::Total => 3,
        };
        match quantity {
            Q::PvVolts => f.pv_volts,
            Q::PvAmps if f.pv_volts > 0.0 => f.pv_watts / f.pv_volts,
            Q::PvAmps => 0.0,
            Q::PvWatts => f.pv_watts,
            Q::BatteryVolts | Q::LoadVolts => f.battery_volts,
            Q::ChargeAmps => f.charge_watts / f.battery_volts,
            Q::ChargeWatts => f.charge_watts,
            Q::BatteryAmps => f.battery_amps,
            Q::LoadAmps => f.load_watts / f.battery_volts,
            Q::LoadWatts => f.load_watts,
            Q::BatteryCelsius => 25.0 + 3.0 * (TAU * t / 86_400.0 + self.cloud_phase).sin(),
            Q::DeviceCelsius => 27.0 + f.pv_watts / 40.0,
            Q::Soc => (self.soc * 100.0).round(),
            Q::BatteryStatus => {
                // D3-D0: 0 normal, 2 under voltage, 3 over discharge (the load cut).
                if !self.load_on {
                    3.0
                } else if f.battery_volts < 12.0 {
                    2.0
                } else {
                    0.0
                }
            }
            Q::ChargingStatus => {
                // D0 running; D3-D2: 0 not charging, 1 float, 2 boost; D15-D14: 1 no input.
                let mut word = 1.0;
                if f.irradiance <= 0.0 {
                    word += f64::from(1u32 << 14);
                } else if f.charge_watts > 0.0 {
                    word += if f.floating { 4.0 } else { 8.0 };
                }
                word
            }
            Q::DischargingStatus => {
                // D0 running (the load on); D13-D12: 0 light, 1 moderate, 2 rated load.
                let share = f.load_watts / (RATED_AMPS * 12.0);
                let level = if share < 0.25 {
                    0.0
                } else if share < 0.75 {
                    1.0
                } else {
                    2.0
                };
                f64::from(u8::from(self.load_on)) + level * f64::from(1u32 << 12)
            }
            Q::MaxPvVoltsToday => self.extremes[0],
            Q::MinPvVoltsToday => self.extremes[1],
            Q::MaxBatteryVoltsToday => self.extremes[2],
            Q::MinBatteryVoltsToday => self.extremes[3],
            Q::Consumed(p) => self.consumed[index(p)] / 1000.0,
            Q::Generated(p) => self.generated[index(p)] / 1000.0,
        }
    }
}

impl Plant for SolarPlant {
    type Quantity = Quantity;

    fn reading(&mut self, quantity: Quantity, now: Duration) -> Value {
        Value::Float(self.value(quantity, now.as_secs_f64()))
    }
}

#[cfg(test)]
#[expect(clippy::float_cmp, reason = "exact values: zeros and status codes")]
mod tests {
    use super::*;

    /// 2026-06-21T12:00:00Z.
    const NOON: u64 = 1_782_043_200;

    fn plant(soc: f64) -> SolarPlant {
        SolarPlant::new(
            600.0,
            200.0,
            40.0,
            soc,
            9,
            UNIX_EPOCH + Duration::from_secs(NOON),
        )
    }

    #[test]
    fn dates_round_trip() {
        for unix in [
            0,
            951_782_400,
            1_782_043_200,
            4_102_444_799,
            253_402_300_799,
        ] {
            assert_eq!(Civil::from_unix(unix).to_unix(), unix);
        }
        let c = Civil::from_unix(1_782_043_200);
        assert_eq!((c.year, c.month, c.day, c.hour), (2026, 6, 21, 12));
        let leap = Civil::from_unix(951_782_400); // 2000-02-29
        assert_eq!((leap.year, leap.month, leap.day), (2000, 2, 29));
    }

    #[test]
    fn pv_power_is_volts_times_amps_and_the_battery_charges_at_noon() {
        let mut p = plant(0.5);
        let (v, a, w) = (
            p.value(Quantity::PvVolts, 0.0),
            p.value(Quantity::PvAmps, 0.0),
            p.value(Quantity::PvWatts, 0.0),
        );
        assert!(w > 300.0, "{w}");
        assert!((w - v * a).abs() < 1e-9 * w);
        let soc0 = p.soc;
        let charged = p.value(Quantity::Generated(Period::Day), 3600.0);
        assert!(p.soc > soc0 && charged > 0.2, "{} {charged}", p.soc);
        let amps = p.value(Quantity::BatteryAmps, 3600.0);
        assert!(amps > 0.0);
        // What the charger gives less what the load takes is the battery's current times
        // its terminal voltage.
        let net = p.value(Quantity::ChargeWatts, 3600.0) - p.value(Quantity::LoadWatts, 3600.0);
        let volts = p.value(Quantity::BatteryVolts, 3600.0);
        assert!(
            (net - amps * volts).abs() < 1e-9 * net.abs(),
            "{net} {amps} {volts}"
        );
    }

    #[test]
    fn at_night_the_load_drains_the_battery_until_it_is_cut() {
        let mut p = plant(0.05);
        // An eclipse from noon: 40 W from the 10 Ah left in a 200 Ah battery.
        p.pin_irradiance(Some(0.0), Duration::ZERO);
        let night = 600.0;
        assert_eq!(p.value(Quantity::PvWatts, night), 0.0);
        assert!(p.value(Quantity::BatteryAmps, night) < 0.0);
        assert!(p.is_night(Duration::from_secs_f64(night)));
        // Past midnight.
        let later = 13.0 * 3600.0;
        assert_eq!(p.value(Quantity::LoadWatts, later), 0.0);
        assert_eq!(p.value(Quantity::BatteryStatus, later), 3.0);
        // Midnight passed: the day's counters restarted, the totals did not.
        assert!(
            p.value(Quantity::Consumed(Period::Day), later)
                < p.value(Quantity::Consumed(Period::Total), later)
        );
    }

    #[test]
    fn the_result_does_not_depend_on_how_often_it_is_read() {
        let mut once = plant(0.6);
        let mut often = plant(0.6);
        for k in 0..=360 {
            let _ = often.value(Quantity::Soc, f64::from(k) * 10.0);
        }
        let a = once.value(Quantity::Generated(Period::Total), 3600.0);
        let b = often.value(Quantity::Generated(Period::Total), 3600.0);
        assert!((a - b).abs() < 1e-9, "{a} {b}");
    }
}
