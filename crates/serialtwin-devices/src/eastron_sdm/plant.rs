//! The circuit an energy meter measures: a load drawing power from the grid over one or three
//! phases, followed over the simulated clock.
//!
//! Everything is derived from a handful of seeded constants and the load setting, in closed
//! form, so any moment can be read without stepping through the ones before it:
//!
//! - the load's active power `P(t) = load_w × (1 + SWING × sin(2π t / 1 day + φ))`, split
//!   between the phases in fixed shares;
//! - each phase's voltage swings a little around 230 V (±2 % over the day, ±0.5 % over a
//!   minute and a half), the frequency around 50 Hz (±0.03 Hz);
//! - each phase has a fixed (inductive) power factor, so its current is `P / (V × PF)`, its
//!   apparent power `V × I`, its reactive power `√(S² − P²)`;
//! - the import energy is the integral of `P` (exact: the integral of a sine), piecewise over
//!   the load settings `set` made, so it never decreases whatever the clock or the settings do.
//!
//! Nothing is exported: the export registers stay at zero, and the totals equal the imports.

use std::f64::consts::TAU;
use std::time::Duration;

use crate::modbus::bound::Plant;
use crate::modbus::data::Value;

/// The nominal phase voltage (V).
pub(super) const NOMINAL_VOLTS: f64 = 230.0;
/// The nominal frequency (Hz).
const NOMINAL_HERTZ: f64 = 50.0;
/// How far the load swings either way over the day, relative to its mean.
const SWING: f64 = 0.25;
/// One simulated day, the load's and the voltage's slow period (s).
const DAY: f64 = 86_400.0;
/// Seconds per hour, for W·s to Wh.
const HOUR: f64 = 3_600.0;
/// The demand period Eastron meters leave the factory with (60 minutes), over which demand
/// values are averaged.
pub(super) const DEMAND_PERIOD: f64 = 3_600.0;

/// What one of the meter's input registers shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Quantity {
    /// Phase voltage (V), phase 0–2.
    Volts(usize),
    /// Phase current (A).
    Amps(usize),
    /// Phase active power (W).
    Watts(usize),
    /// Phase apparent power (VA).
    VoltAmps(usize),
    /// Phase reactive power (var).
    Vars(usize),
    /// Phase power factor.
    PowerFactor(usize),
    /// Phase angle (degrees).
    Angle(usize),
    /// The mean phase voltage.
    MeanVolts,
    /// The mean line current.
    MeanAmps,
    /// The sum of the line currents.
    SumAmps,
    /// Total active power.
    TotalWatts,
    /// Total apparent power.
    TotalVoltAmps,
    /// Total reactive power.
    TotalVars,
    /// Total power factor (total P over total S).
    TotalPowerFactor,
    /// Total phase angle (degrees).
    TotalAngle,
    /// Frequency (Hz).
    Hertz,
    /// Imported active energy (kWh).
    ImportKwh,
    /// Exported active energy (kWh).
    ExportKwh,
    /// Imported reactive energy (kvarh).
    ImportKvarh,
    /// Exported reactive energy (kvarh).
    ExportKvarh,
    /// Apparent energy (kVAh).
    TotalKvah,
    /// Import plus export active energy (kWh).
    TotalKwh,
    /// Import plus export reactive energy (kvarh).
    TotalKvarh,
    /// A phase's imported active energy (kWh).
    PhaseImportKwh(usize),
    /// A phase's exported active energy (kWh).
    PhaseExportKwh(usize),
    /// A phase's active energy, import plus export (kWh).
    PhaseKwh(usize),
    /// A phase's imported reactive energy (kvarh).
    PhaseImportKvarh(usize),
    /// A phase's exported reactive energy (kvarh).
    PhaseExportKvarh(usize),
    /// A phase's reactive energy (kvarh).
    PhaseKvarh(usize),
    /// Total system power demand: active power averaged over the demand period (W).
    TotalDemandWatts,
    /// Its maximum so far.
    MaxTotalDemandWatts,
    /// Import power demand (W).
    ImportDemandWatts,
    /// Its maximum so far.
    MaxImportDemandWatts,
    /// Export power demand (W).
    ExportDemandWatts,
    /// Its maximum so far.
    MaxExportDemandWatts,
    /// Apparent power demand (VA).
    DemandVoltAmps,
    /// Its maximum so far.
    MaxDemandVoltAmps,
    /// Neutral current demand (A).
    NeutralDemandAmps,
    /// Its maximum so far.
    MaxNeutralDemandAmps,
    /// A phase's current demand (A).
    DemandAmps(usize),
    /// Its maximum so far.
    MaxDemandAmps(usize),
    /// Line-to-line voltage L1-L2, L2-L3, L3-L1 (V).
    LineVolts(usize),
    /// The mean line-to-line voltage.
    MeanLineVolts,
    /// Neutral current (A): the phasor sum of the line currents.
    NeutralAmps,
    /// A phase voltage's total harmonic distortion (%).
    VoltsThd(usize),
    /// A line current's total harmonic distortion (%).
    AmpsThd(usize),
    /// The mean phase voltage THD.
    MeanVoltsThd,
    /// The mean current THD.
    MeanAmpsThd,
    /// A line-to-line voltage's THD (%).
    LineVoltsThd(usize),
    /// The mean line-to-line voltage THD.
    MeanLineVoltsThd,
}

/// One stretch of constant load setting: from `start` on, the mean load was `load_w`, and the
/// import energy at `start` was `wh`.
#[derive(Clone, Copy, Debug)]
struct Stretch {
    start: f64,
    load_w: f64,
    wh: f64,
}

/// The circuit behind one meter.
#[derive(Debug)]
pub(crate) struct MeterPlant {
    /// 1 (SDM120) or 3 (SDM630).
    phases: usize,
    /// Each phase's share of the load (summing to 1 over the meter's phases).
    shares: [f64; 3],
    /// Each phase's power factor (fixed: the load's nature, not its size).
    power_factors: [f64; 3],
    /// The load's daily phase (radians).
    load_phase: f64,
    /// Each phase voltage's slow and fast phases (radians).
    volt_phases: [(f64, f64); 3],
    /// The frequency's phase (radians).
    hertz_phase: f64,
    /// Voltage and current THD per phase (%).
    thd: [(f64, f64); 3],
    /// The load settings so far, oldest first (never empty).
    stretches: Vec<Stretch>,
    /// The highest demand values seen: total W, VA, neutral A, per-phase A.
    max_demand: [f64; 6],
}

impl MeterPlant {
    /// A circuit of `phases` phases (1 or 3) drawing `load_w` on average, whose import register
    /// read `import_kwh` when the clock began; the rest drawn from `seed`.
    pub(crate) fn new(phases: usize, load_w: f64, import_kwh: f64, seed: u64) -> Self {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut within = |lo: f64, hi: f64| lo + (hi - lo) * rng.f64();
        let shares = if phases == 1 {
            [1.0, 0.0, 0.0]
        } else {
            let raw = [within(0.8, 1.2), within(0.8, 1.2), within(0.8, 1.2)];
            let sum: f64 = raw.iter().sum();
            raw.map(|r| r / sum)
        };
        let power_factors = [within(0.88, 0.98), within(0.88, 0.98), within(0.88, 0.98)];
        let load_phase = within(0.0, TAU);
        let volt_phases = [
            (within(0.0, TAU), within(0.0, TAU)),
            (within(0.0, TAU), within(0.0, TAU)),
            (within(0.0, TAU), within(0.0, TAU)),
        ];
        let hertz_phase = within(0.0, TAU);
        let thd = [
            (within(1.0, 3.0), within(4.0, 12.0)),
            (within(1.0, 3.0), within(4.0, 12.0)),
            (within(1.0, 3.0), within(4.0, 12.0)),
        ];
        Self {
            phases,
            shares,
            power_factors,
            load_phase,
            volt_phases,
            hertz_phase,
            thd,
            stretches: vec![Stretch {
                start: 0.0,
                load_w,
                wh: import_kwh * 1000.0,
            }],
            max_demand: [0.0; 6],
        }
    }

    /// From `now` on, the load draws `load_w` on average (W, at least 0).
    pub(crate) fn set_load(&mut self, load_w: f64, now: Duration) {
        let t = now.as_secs_f64();
        let wh = self.import_wh(t);
        // A setting at a moment already passed (clocks never go back, but be safe) applies
        // from the last stretch's start: energy stays monotonic.
        let start = t.max(self.stretches.last().map_or(0.0, |s| s.start));
        self.stretches.push(Stretch { start, load_w, wh });
    }

    /// The load's total active power at `t` (W).
    fn watts_at(&self, stretch: &Stretch, t: f64) -> f64 {
        stretch.load_w * (1.0 + SWING * (TAU * t / DAY + self.load_phase).sin())
    }

    /// The import energy at `t` (Wh): the stretch's energy plus the exact integral of its
    /// power since its start.
    fn import_wh(&self, t: f64) -> f64 {
        let stretch = self.stretch_at(t);
        let t = t.max(stretch.start);
        let omega = TAU / DAY;
        let cos = |x: f64| (omega * x + self.load_phase).cos();
        let joules =
            stretch.load_w * ((t - stretch.start) - SWING / omega * (cos(t) - cos(stretch.start)));
        stretch.wh + joules / HOUR
    }

    /// The load setting in force at `t` (the first one before the clock began).
    fn stretch_at(&self, t: f64) -> Stretch {
        self.stretches
            .iter()
            .rev()
            .find(|s| s.start <= t)
            .or(self.stretches.first())
            .copied()
            .unwrap_or(Stretch {
                start: 0.0,
                load_w: 0.0,
                wh: 0.0,
            })
    }

    /// Phase `i`'s voltage at `t`.
    fn volts(&self, i: usize, t: f64) -> f64 {
        let (slow, fast) = self.volt_phases[i];
        NOMINAL_VOLTS
            * (1.0 + 0.02 * (TAU * t / DAY + slow).sin() + 0.005 * (TAU * t / 90.0 + fast).sin())
    }

    /// Phase `i`'s active power at `t`.
    fn phase_watts(&self, i: usize, t: f64) -> f64 {
        if i >= self.phases {
            return 0.0;
        }
        self.shares[i] * self.watts_at(&self.stretch_at(t), t)
    }

    fn phase_amps(&self, i: usize, t: f64) -> f64 {
        if i >= self.phases {
            return 0.0;
        }
        self.phase_watts(i, t) / (self.volts(i, t) * self.power_factors[i])
    }

    fn phase_volt_amps(&self, i: usize, t: f64) -> f64 {
        self.volts(i, t) * self.phase_amps(i, t)
    }

    fn phase_vars(&self, i: usize, t: f64) -> f64 {
        let (s, p) = (self.phase_volt_amps(i, t), self.phase_watts(i, t));
        (s * s - p * p).max(0.0).sqrt()
    }

    /// Reactive over active power for phase `i` (tan φ).
    fn tan(&self, i: usize) -> f64 {
        let pf = self.power_factors[i];
        (1.0 - pf * pf).sqrt() / pf
    }

    fn phases(&self) -> std::ops::Range<usize> {
        0..self.phases
    }

    /// A phase's voltage shown on a meter of fewer phases: zero.
    fn shown_volts(&self, i: usize, t: f64) -> f64 {
        if i < self.phases {
            self.volts(i, t)
        } else {
            0.0
        }
    }

    /// Average active power over the demand period ending at `t` (W): energy over time.
    fn demand_watts(&self, t: f64) -> f64 {
        let from = (t - DEMAND_PERIOD).max(0.0);
        if t - from < 1.0 {
            return self.watts_at(&self.stretch_at(t), t);
        }
        (self.import_wh(t) - self.import_wh(from)) * HOUR / (t - from)
    }

    /// Phase `i`'s current demand: its share of the power demand at nominal voltage.
    fn demand_amps(&self, i: usize, t: f64) -> f64 {
        if i >= self.phases {
            return 0.0;
        }
        self.shares[i] * self.demand_watts(t) / (NOMINAL_VOLTS * self.power_factors[i])
    }

    fn demand_volt_amps(&self, t: f64) -> f64 {
        self.phases()
            .map(|i| self.shares[i] * self.demand_watts(t) / self.power_factors[i])
            .sum()
    }

    fn neutral_amps(&self, amps: impl Fn(usize) -> f64) -> f64 {
        if self.phases == 1 {
            return amps(0);
        }
        let (mut re, mut im) = (0.0, 0.0);
        for i in 0..3 {
            #[expect(clippy::cast_precision_loss, reason = "phase index 0-2")]
            let angle = -(i as f64) * TAU / 3.0 - self.power_factors[i].acos();
            re += amps(i) * angle.cos();
            im += amps(i) * angle.sin();
        }
        re.hypot(im)
    }

    /// Energies at `t`: phase `i`'s import (kWh).
    fn phase_import_kwh(&self, i: usize, t: f64) -> f64 {
        if i >= self.phases {
            return 0.0;
        }
        self.shares[i] * self.import_wh(t) / 1000.0
    }

    #[expect(
        clippy::too_many_lines,
        reason = "one arm per quantity the meter shows, read side by side"
    )]
    fn value(&mut self, quantity: Quantity, t: f64) -> f64 {
        use Quantity as Q;
        let n = self.phases;
        #[expect(clippy::cast_precision_loss, reason = "1 or 3 phases")]
        let count = n as f64;
        let total_watts = || self.phases().map(|i| self.phase_watts(i, t)).sum::<f64>();
        let total_volt_amps = || {
            self.phases()
                .map(|i| self.phase_volt_amps(i, t))
                .sum::<f64>()
        };
        let total_vars = || self.phases().map(|i| self.phase_vars(i, t)).sum::<f64>();
        let total_pf = || {
            let s = total_volt_amps();
            if s > 0.0 { total_watts() / s } else { 1.0 }
        };
        let line_volts = |k: usize| {
            if n == 1 {
                return 0.0;
            }
            let (a, b) = (self.volts(k, t), self.volts((k + 1) % 3, t));
            // Phasors 120° apart: |Va − Vb∠−120°|.
            (a * a + b * b + a * b).sqrt()
        };
        let import_kwh = self.import_wh(t) / 1000.0;
        let import_kvarh = self
            .phases()
            .map(|i| self.phase_import_kwh(i, t) * self.tan(i))
            .sum::<f64>();
        match quantity {
            Q::Volts(i) => self.shown_volts(i, t),
            Q::Amps(i) => self.phase_amps(i, t),
            Q::Watts(i) => self.phase_watts(i, t),
            Q::VoltAmps(i) => self.phase_volt_amps(i, t),
            Q::Vars(i) => self.phase_vars(i, t),
            Q::PowerFactor(i) if i < n => self.power_factors[i],
            Q::Angle(i) if i < n => self.power_factors[i].acos().to_degrees(),
            Q::MeanVolts => self.phases().map(|i| self.volts(i, t)).sum::<f64>() / count,
            Q::MeanAmps => self.phases().map(|i| self.phase_amps(i, t)).sum::<f64>() / count,
            Q::SumAmps => self.phases().map(|i| self.phase_amps(i, t)).sum::<f64>(),
            Q::TotalWatts => total_watts(),
            Q::TotalVoltAmps => total_volt_amps(),
            Q::TotalVars => total_vars(),
            Q::TotalPowerFactor => total_pf(),
            Q::TotalAngle => total_pf().clamp(-1.0, 1.0).acos().to_degrees(),
            Q::Hertz => NOMINAL_HERTZ + 0.03 * (TAU * t / 300.0 + self.hertz_phase).sin(),
            Q::ImportKwh | Q::TotalKwh => import_kwh,
            Q::ImportKvarh | Q::TotalKvarh => import_kvarh,
            Q::TotalKvah => self
                .phases()
                .map(|i| self.phase_import_kwh(i, t) / self.power_factors[i])
                .sum::<f64>(),
            Q::PhaseImportKwh(i) | Q::PhaseKwh(i) => self.phase_import_kwh(i, t),
            Q::PhaseImportKvarh(i) | Q::PhaseKvarh(i) if i < n => {
                self.phase_import_kwh(i, t) * self.tan(i)
            }
            Q::TotalDemandWatts | Q::ImportDemandWatts => self.demand(0, self.demand_watts(t)),
            Q::MaxTotalDemandWatts | Q::MaxImportDemandWatts => {
                self.demand(0, self.demand_watts(t));
                self.max_demand[0]
            }
            Q::DemandVoltAmps => self.demand(1, self.demand_volt_amps(t)),
            Q::MaxDemandVoltAmps => {
                self.demand(1, self.demand_volt_amps(t));
                self.max_demand[1]
            }
            Q::NeutralDemandAmps | Q::MaxNeutralDemandAmps => {
                let amps = self.neutral_amps(|i| self.demand_amps(i, t));
                let now = self.demand(2, amps);
                if quantity == Q::NeutralDemandAmps {
                    now
                } else {
                    self.max_demand[2]
                }
            }
            Q::DemandAmps(i) | Q::MaxDemandAmps(i) => {
                let now = if i < 3 {
                    self.demand(3 + i, self.demand_amps(i, t))
                } else {
                    0.0
                };
                if matches!(quantity, Q::DemandAmps(_)) {
                    now
                } else {
                    self.max_demand.get(3 + i).copied().unwrap_or(0.0)
                }
            }
            Q::LineVolts(k) => line_volts(k),
            Q::MeanLineVolts => (0..3).map(line_volts).sum::<f64>() / 3.0,
            Q::NeutralAmps => self.neutral_amps(|i| self.phase_amps(i, t)),
            Q::VoltsThd(i) if i < n => self.thd[i].0,
            Q::AmpsThd(i) if i < n => self.thd[i].1,
            Q::MeanVoltsThd => self.phases().map(|i| self.thd[i].0).sum::<f64>() / count,
            Q::MeanAmpsThd => self.phases().map(|i| self.thd[i].1).sum::<f64>() / count,
            // Line-to-line distortion: the two phases' own, combined as uncorrelated.
            Q::LineVoltsThd(k) if n == 3 => {
                (self.thd[k].0.hypot(self.thd[(k + 1) % 3].0)) / 2.0_f64.sqrt()
            }
            Q::MeanLineVoltsThd if n == 3 => {
                (0..3)
                    .map(|k| self.thd[k].0.hypot(self.thd[(k + 1) % 3].0) / 2.0_f64.sqrt())
                    .sum::<f64>()
                    / 3.0
            }
            // Phases (and phase pairs) a single-phase meter lacks, and everything exported:
            // nothing.
            Q::PowerFactor(_)
            | Q::Angle(_)
            | Q::ExportKwh
            | Q::ExportKvarh
            | Q::PhaseExportKwh(_)
            | Q::PhaseExportKvarh(_)
            | Q::PhaseImportKvarh(_)
            | Q::PhaseKvarh(_)
            | Q::ExportDemandWatts
            | Q::MaxExportDemandWatts
            | Q::VoltsThd(_)
            | Q::AmpsThd(_)
            | Q::LineVoltsThd(_)
            | Q::MeanLineVoltsThd => 0.0,
        }
    }

    /// A demand value now, noted against its maximum `slot`.
    fn demand(&mut self, slot: usize, value: f64) -> f64 {
        if let Some(max) = self.max_demand.get_mut(slot) {
            *max = max.max(value);
        }
        value
    }
}

impl Plant for MeterPlant {
    type Quantity = Quantity;

    fn reading(&mut self, quantity: Quantity, now: Duration) -> Value {
        Value::Float(self.value(quantity, now.as_secs_f64()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(plant: &mut MeterPlant, q: Quantity, secs: f64) -> f64 {
        plant.value(q, secs)
    }

    #[test]
    #[expect(
        clippy::many_single_char_names,
        reason = "v, a, p, s, q: the quantities' own symbols"
    )]
    fn power_is_volts_times_amps_times_power_factor_on_every_phase() {
        for phases in [1, 3] {
            let mut plant = MeterPlant::new(phases, 3000.0, 100.0, 7);
            for secs in [0.0, 1234.5, 40_000.0, 86_000.0] {
                let mut total = 0.0;
                for i in 0..phases {
                    let v = at(&mut plant, Quantity::Volts(i), secs);
                    let a = at(&mut plant, Quantity::Amps(i), secs);
                    let pf = at(&mut plant, Quantity::PowerFactor(i), secs);
                    let p = at(&mut plant, Quantity::Watts(i), secs);
                    let s = at(&mut plant, Quantity::VoltAmps(i), secs);
                    let q = at(&mut plant, Quantity::Vars(i), secs);
                    assert!((207.0..=253.0).contains(&v), "{v}");
                    assert!((p - v * a * pf).abs() < 1e-6 * p, "{p} vs {}", v * a * pf);
                    assert!((s * s - p * p - q * q).abs() < 1e-6 * s * s);
                    let angle = at(&mut plant, Quantity::Angle(i), secs);
                    assert!((angle.to_radians().cos() - pf).abs() < 1e-9 && angle < 90.0);
                    total += p;
                }
                let sum = at(&mut plant, Quantity::TotalWatts, secs);
                assert!((sum - total).abs() < 1e-9 * total.max(1.0));
                let hz = at(&mut plant, Quantity::Hertz, secs);
                assert!((49.9..=50.1).contains(&hz));
            }
        }
    }

    #[test]
    fn import_energy_integrates_power_and_never_falls() {
        let mut plant = MeterPlant::new(3, 2000.0, 10.0, 1);
        assert!((at(&mut plant, Quantity::ImportKwh, 0.0) - 10.0).abs() < 1e-12);
        // Over a whole day the sine integrates to nothing: the mean load for 24 h.
        let day = at(&mut plant, Quantity::ImportKwh, DAY);
        assert!((day - 10.0 - 48.0).abs() < 1e-9, "{day}");
        // Over a short stretch, power times time.
        let (t0, t1) = (5000.0, 5010.0);
        let de = at(&mut plant, Quantity::ImportKwh, t1) - at(&mut plant, Quantity::ImportKwh, t0);
        let p = at(&mut plant, Quantity::TotalWatts, t0 + 5.0);
        assert!(
            (de * 3.6e6 / 10.0 - p).abs() < 0.01 * p,
            "{} vs {p}",
            de * 3.6e6 / 10.0
        );
        // A new setting bends the slope, never the counter.
        let before = at(&mut plant, Quantity::ImportKwh, 6000.0);
        plant.set_load(0.0, Duration::from_mins(100));
        assert!((at(&mut plant, Quantity::ImportKwh, 6000.0) - before).abs() < 1e-9);
        assert!((at(&mut plant, Quantity::ImportKwh, 9000.0) - before).abs() < 1e-9);
        plant.set_load(5000.0, Duration::from_mins(150));
        let mut last = 0.0;
        for t in (0..20).map(|k| 9000.0 + f64::from(k) * 100.0) {
            let e = at(&mut plant, Quantity::ImportKwh, t);
            assert!(e >= last);
            last = e;
        }
        assert!(last > before);
    }

    #[test]
    fn the_same_seed_gives_the_same_meter() {
        let mut a = MeterPlant::new(3, 1500.0, 0.0, 42);
        let mut b = MeterPlant::new(3, 1500.0, 0.0, 42);
        let mut c = MeterPlant::new(3, 1500.0, 0.0, 43);
        let q = Quantity::Amps(1);
        assert_eq!(
            at(&mut a, q, 777.0).to_bits(),
            at(&mut b, q, 777.0).to_bits()
        );
        assert_ne!(
            at(&mut a, q, 777.0).to_bits(),
            at(&mut c, q, 777.0).to_bits()
        );
    }

    #[test]
    fn a_balanced_view_of_the_neutral_and_the_lines() {
        let mut plant = MeterPlant::new(3, 3000.0, 0.0, 3);
        let l12 = at(&mut plant, Quantity::LineVolts(0), 100.0);
        assert!((390.0..=410.0).contains(&l12), "{l12}");
        let neutral = at(&mut plant, Quantity::NeutralAmps, 100.0);
        let sum = at(&mut plant, Quantity::SumAmps, 100.0);
        assert!(neutral < sum / 3.0, "{neutral} {sum}");
    }
}
