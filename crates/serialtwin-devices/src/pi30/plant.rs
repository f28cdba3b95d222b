//! The plant behind the numbers: sun, load, grid and a battery bank, as a function of time.
//!
//! The plant's state (state of charge, the SBU and cut-off hysteresis, the energy counters)
//! is integrated in fixed steps from the plant's start: [`STEP_SECS`] simulated seconds, or
//! longer on a fast clock, so that at most [`STEPS_PER_REAL_SECOND`] steps are integrated for
//! each real second however fast the clock runs (the work behind a request never grows with
//! the clock's speed). Start and step are fixed together when the plant starts, from the
//! config and the clock, never from when it is asked.
//! Asking for time `t` first completes every whole step before `t`, then evaluates the
//! instantaneous flows at `t` itself from that state. Nothing depends on how often or when the
//! plant was asked before: the same instant gives the same numbers whatever the query history.
//! Variation (clouds, load) comes from a hash of the seed and a time index, never from call order.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use super::config::{BatteryConfig, PlantConfig, Settings, Variant};

/// Length of the shortest integration step, simulated seconds.
pub const STEP_SECS: i64 = 10;

/// The most integration steps a plant takes per real second: a fast clock lengthens the step.
pub const STEPS_PER_REAL_SECOND: f64 = 1000.0;

/// The longest step that still follows the sun and the load through a day, simulated seconds.
const MAX_STEP_SECS: i64 = 900;

/// The fastest clock the plant follows: [`STEPS_PER_REAL_SECOND`] steps of at most 15
/// minutes per real second. `check` refuses a faster `[clock] speed` for a PI30.
#[expect(clippy::cast_precision_loss, reason = "a small constant")]
pub const MAX_CLOCK_SPEED: f64 = MAX_STEP_SECS as f64 * STEPS_PER_REAL_SECOND;

/// The step for a clock running at `speed`: at least [`STEP_SECS`], long enough that one real
/// second needs at most [`STEPS_PER_REAL_SECOND`] of them.
fn step_for(speed: f64) -> i64 {
    let needed = (speed / STEPS_PER_REAL_SECOND).ceil();
    #[expect(clippy::cast_precision_loss, reason = "a small constant")]
    let shortest = STEP_SECS as f64;
    if needed > shortest {
        #[expect(
            clippy::cast_possible_truncation,
            reason = "saturates: a step beyond i64 is one that never ends"
        )]
        let step = needed as i64;
        step
    } else {
        STEP_SECS
    }
}

/// Seconds per day.
const DAY: i64 = 86_400;

/// Simulated Unix seconds of `t` (negative before 1970).
#[must_use]
pub(crate) fn unix_f64(t: SystemTime) -> f64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

/// A well-mixed 64-bit hash (splitmix64 finaliser).
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform number in `[0, 1)` from the seed, a stream id and a time index.
fn noise(seed: u64, stream: u64, index: i64) -> f64 {
    #[expect(
        clippy::cast_sign_loss,
        reason = "the bits of the index are what is hashed"
    )]
    let h = mix(seed ^ mix(stream ^ mix(index as u64)));
    #[expect(clippy::cast_precision_loss, reason = "53 bits are kept on purpose")]
    let x = (h >> 11) as f64 / (1u64 << 53) as f64;
    x
}

/// Floor of a float time to whole seconds.
#[expect(
    clippy::cast_possible_truncation,
    reason = "simulated times are far inside i64"
)]
fn floor_secs(t: f64) -> i64 {
    t.floor() as i64
}

/// Charging stage of the battery, as Q1 reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChargeStage {
    /// Not charging.
    None,
    /// Constant current.
    Bulk,
    /// Constant voltage.
    Absorb,
    /// Float.
    Float,
}

/// The state that is integrated over time.
#[derive(Clone, Copy, Debug, PartialEq)]
struct State {
    /// State of charge, 0..=1.
    soc: f64,
    /// SBU priority fell back to the grid (battery below the re-charge voltage).
    sbu_on_grid: bool,
    /// The battery reached the cut-off voltage; the inverter output stays off until the
    /// battery is back above the re-charge voltage.
    cutoff: bool,
}

/// Energy counted in one local day, per unit.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DayEnergy {
    /// PV energy, Wh.
    pub pv_wh: f64,
    /// Load (output) energy, Wh.
    pub load_wh: f64,
}

/// What one unit is doing at an instant.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct UnitFlows {
    /// PV1 power used, W.
    pub pv1_w: f64,
    /// PV1 string voltage, V.
    pub pv1_v: f64,
    /// PV2 power used, W.
    pub pv2_w: f64,
    /// PV2 string voltage, V.
    pub pv2_v: f64,
    /// Active output power, W.
    pub load_w: f64,
    /// The AC output is on.
    pub output_on: bool,
    /// The load is carried by the grid (line mode).
    pub line: bool,
    /// Grid power into the load, W.
    pub grid_to_load_w: f64,
    /// Grid power into the battery, W.
    pub ac_charge_w: f64,
    /// PV power into the battery, W.
    pub pv_charge_w: f64,
    /// Battery power into the load, W.
    pub discharge_w: f64,
    /// PV power fed into the grid, W.
    pub feed_w: f64,
    /// Battery charging current from this unit, A.
    pub charge_a: f64,
    /// Battery discharge current into this unit, A.
    pub discharge_a: f64,
}

/// Everything the plant knows at an instant.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// Simulated Unix seconds.
    pub t: f64,
    /// Grid present.
    pub grid_present: bool,
    /// Grid voltage now (0 without grid), V.
    pub grid_v: f64,
    /// Grid frequency now (0 without grid), Hz.
    pub grid_hz: f64,
    /// Battery terminal voltage, V (before the `BTA` calibration of the reading).
    pub battery_v: f64,
    /// State of charge, 0..=1.
    pub soc: f64,
    /// The battery is at cut-off.
    pub cutoff: bool,
    /// Charging stage.
    pub stage: ChargeStage,
    /// Relative irradiance, 0..=1.
    pub irradiance: f64,
    /// Each unit's flows.
    pub units: Vec<UnitFlows>,
}

impl Snapshot {
    /// Net battery current of the whole bank (positive: charging), A.
    #[must_use]
    pub fn net_current(&self) -> f64 {
        self.units.iter().map(|u| u.charge_a - u.discharge_a).sum()
    }
}

/// The plant: a battery bank shared by `units` inverters, their PV strings and their load.
#[derive(Clone, Debug)]
pub(crate) struct Plant {
    /// Sun, load and grid.
    cfg: PlantConfig,
    /// The bank.
    battery: BatteryConfig,
    /// PI30MAX units have a second PV input.
    variant: Variant,
    /// Number of units sharing the plant.
    units: usize,
    /// Unix second at which step 0 starts: configured, else the clock's start (see
    /// [`Plant::start_at`]), else the first instant the plant is asked about.
    start: Option<i64>,
    /// Length of a step, simulated seconds: fixed with the start (see [`Plant::start_on`]).
    step: Option<i64>,
    /// Whole steps integrated so far.
    steps: i64,
    /// The integrated state after `steps` steps.
    state: State,
    /// Grid present (a run-time input).
    grid_present: bool,
    /// Energy per local day number (days since 1970-01-01, local time), per unit.
    ledger: BTreeMap<i64, Vec<DayEnergy>>,
}

impl Plant {
    /// A plant for `units` inverters.
    #[must_use]
    pub(crate) fn new(
        cfg: PlantConfig,
        battery: BatteryConfig,
        variant: Variant,
        units: usize,
    ) -> Self {
        #[expect(clippy::cast_possible_wrap, reason = "start times are far inside i64")]
        let start = cfg.start_unix.map(|s| s as i64);
        let state = State {
            soc: battery.initial_soc.clamp(0.0, 1.0),
            sbu_on_grid: false,
            cutoff: false,
        };
        let grid_present = cfg.grid_present;
        Self {
            cfg,
            battery,
            variant,
            units: units.max(1),
            start,
            step: None,
            steps: 0,
            state,
            grid_present,
            ledger: BTreeMap::new(),
        }
    }

    /// Whether the grid is present (as of the last integrated step).
    #[must_use]
    pub(crate) fn grid_present(&self) -> bool {
        self.grid_present
    }

    /// Change grid presence at `t` (integrates up to `t` first, with the old value).
    pub(crate) fn set_grid_present(&mut self, present: bool, t: f64, settings: &[Settings]) {
        self.advance(t, settings);
        self.grid_present = present;
    }

    /// Set the state of charge at `t` (integrates up to `t` first).
    pub(crate) fn set_soc(&mut self, soc: f64, t: f64, settings: &[Settings]) {
        self.advance(t, settings);
        self.state.soc = soc.clamp(0.0, 1.0);
        self.state.cutoff = false;
    }

    /// Start the plant on a clock that started at `t` and runs at `speed`: at `t` (where
    /// `initial_soc` holds) unless its start is configured, with the step that speed needs
    /// ([`STEPS_PER_REAL_SECOND`]). Whatever is fixed already stays. The device calls this
    /// with its clock before each observation, so neither depends on when the plant is first
    /// asked.
    pub(crate) fn start_on(&mut self, t: f64, speed: f64) {
        self.start.get_or_insert(floor_secs(t));
        self.step.get_or_insert(step_for(speed));
    }

    /// The Unix second at which the plant started, if it has.
    #[must_use]
    pub(crate) fn start(&self) -> Option<i64> {
        self.start
    }

    /// The start second, fixing it at `t` if nothing fixed it before.
    fn start_for(&mut self, t: f64) -> i64 {
        *self.start.get_or_insert_with(|| floor_secs(t))
    }

    /// Integrate every whole step that ends at or before `t`. `settings[i]` is unit `i`'s.
    pub(crate) fn advance(&mut self, t: f64, settings: &[Settings]) {
        let start = self.start_for(t);
        let step = *self.step.get_or_insert(STEP_SECS);
        let target = floor_secs(t).saturating_sub(start).div_euclid(step);
        while self.steps < target {
            #[expect(clippy::cast_precision_loss, reason = "step times are far below 2^53")]
            let t0 = start.saturating_add(self.steps.saturating_mul(step)) as f64;
            self.integrate(t0, step, settings);
            self.steps += 1;
        }
    }

    /// Steps integrated so far (for tests of the work a request costs).
    #[cfg(test)]
    pub(crate) fn steps(&self) -> i64 {
        self.steps
    }

    /// One integration step of `step` seconds starting at `t0`.
    fn integrate(&mut self, t0: f64, step: i64, settings: &[Settings]) {
        #[expect(
            clippy::cast_precision_loss,
            reason = "steps are far below 2^53 seconds"
        )]
        let dt_h = step as f64 / 3600.0;
        let snap = self.flows(t0, settings);
        let net = snap.net_current();
        let s0 = &settings[0];
        let st = &mut self.state;
        st.soc = (st.soc + net * dt_h / self.battery.capacity_ah.max(1.0)).clamp(0.0, 1.0);
        let v = terminal_voltage(&self.battery, s0, st.soc, net);
        if !st.cutoff && net < 0.0 && v < s0.battery_under_voltage {
            st.cutoff = true;
        } else if st.cutoff && v >= s0.battery_recharge_voltage {
            st.cutoff = false;
        }
        let redischarge = s0.battery_redischarge_voltage;
        if !st.sbu_on_grid && v < s0.battery_recharge_voltage {
            st.sbu_on_grid = true;
        } else if st.sbu_on_grid
            && ((redischarge > 0.0 && v >= redischarge) || (redischarge <= 0.0 && st.soc >= 0.99))
        {
            st.sbu_on_grid = false;
        }
        let day = self.local_day(t0);
        let entry = self
            .ledger
            .entry(day)
            .or_insert_with(|| vec![DayEnergy::default(); self.units]);
        for (e, u) in entry.iter_mut().zip(&snap.units) {
            e.pv_wh += (u.pv1_w + u.pv2_w) * dt_h;
            e.load_wh += u.load_w * dt_h;
        }
    }

    /// Local day number (days since 1970-01-01 in local time) of `t`.
    #[must_use]
    pub(crate) fn local_day(&self, t: f64) -> i64 {
        (floor_secs(t) + i64::from(self.cfg.utc_offset_minutes) * 60).div_euclid(DAY)
    }

    /// Energy of unit `unit` summed over local days `first..=last`.
    #[must_use]
    pub(crate) fn energy(&self, unit: usize, first: i64, last: i64) -> DayEnergy {
        let mut sum = DayEnergy::default();
        for days in self.ledger.range(first..=last).map(|(_, v)| v) {
            if let Some(e) = days.get(unit) {
                sum.pv_wh += e.pv_wh;
                sum.load_wh += e.load_wh;
            }
        }
        sum
    }

    /// Energy of unit `unit` since the plant started.
    #[must_use]
    pub(crate) fn energy_total(&self, unit: usize) -> DayEnergy {
        self.energy(unit, i64::MIN, i64::MAX)
    }

    /// Relative irradiance at `t`: a daylight arc times passing clouds.
    fn irradiance(&self, t: f64) -> f64 {
        let c = &self.cfg;
        let local = t + f64::from(c.utc_offset_minutes) * 60.0;
        let hour = local.rem_euclid(86_400.0) / 3600.0;
        let span = (c.sunset_hour - c.sunrise_hour).max(0.1);
        let x = (hour - c.sunrise_hour) / span;
        if !(0.0..=1.0).contains(&x) {
            return 0.0;
        }
        let arc = (std::f64::consts::PI * x).sin().max(0.0).powf(1.5);
        // Clouds: one random factor per quarter hour, interpolated in between.
        let quarter = t / 900.0;
        let index = floor_secs(quarter);
        #[expect(clippy::cast_precision_loss, reason = "a quarter-hour index is small")]
        let frac = quarter - index as f64;
        let cloud = |i| 1.0 - c.cloudiness.clamp(0.0, 1.0) * noise(c.seed, 1, i);
        arc * (cloud(index) * (1.0 - frac) + cloud(index + 1) * frac)
    }

    /// Household load of the whole system at `t`: a daily profile with morning and evening
    /// peaks, varied per minute.
    fn load_total(&self, t: f64) -> f64 {
        let c = &self.cfg;
        let local = t + f64::from(c.utc_offset_minutes) * 60.0;
        let h = local.rem_euclid(86_400.0) / 3600.0;
        let bump = |centre: f64, width: f64| (-((h - centre) / width).powi(2)).exp();
        let profile = 0.6 + 0.5 * bump(7.5, 1.2) + 0.9 * bump(19.5, 1.8);
        let minute = floor_secs(t / 60.0);
        let vary = 1.0 + c.load_variation.clamp(0.0, 1.0) * (2.0 * noise(c.seed, 2, minute) - 1.0);
        (c.base_load_w * profile * vary / 1.1).max(0.0)
    }

    /// Observe the plant at `t`: integrate up to `t`, then evaluate the flows at `t`.
    pub(crate) fn observe(&mut self, t: f64, settings: &[Settings]) -> Snapshot {
        self.advance(t, settings);
        self.flows(t, settings)
    }

    /// The flows at `t` from the integrated state: each unit's energy balance, then the bank.
    fn flows(&self, t: f64, settings: &[Settings]) -> Snapshot {
        let st = self.state;
        #[expect(clippy::cast_precision_loss, reason = "a handful of units")]
        let n = self.units as f64;
        let now = Conditions {
            state: st,
            s0: &settings[0],
            v_rest: open_circuit_voltage(&self.battery, st.soc),
            grid: self.grid_present,
            irr: self.irradiance(t),
            load: self.load_total(t) / n,
            taper: if st.soc < 0.9 {
                1.0
            } else {
                ((1.0 - st.soc) / 0.1).max(0.01)
            },
        };
        let units = settings
            .iter()
            .enumerate()
            .take(self.units)
            .map(|(i, su)| self.unit_flows(i, su, &now))
            .collect();
        self.snapshot(t, &now, units)
    }

    /// One unit's flows: its PV, where its load comes from, what charges the bank.
    fn unit_flows(&self, i: usize, su: &Settings, now: &Conditions<'_>) -> UnitFlows {
        // Each unit's strings see the same sun, a little differently oriented.
        #[expect(clippy::cast_precision_loss, reason = "a handful of units")]
        let orient = 1.0 - 0.04 * i as f64;
        let pv1 = self.cfg.pv_peak_w * now.irr * orient;
        let pv2 = if self.variant == Variant::Pi30max {
            self.cfg.pv2_peak_w * now.irr * orient
        } else {
            0.0
        };
        let pv = pv1 + pv2;
        let (mut f, pv_to_load) = carry_load(pv, su, now);
        self.charge(&mut f, pv, pv_to_load, su, now);
        let used = pv_to_load + f.pv_charge_w + f.feed_w;
        let share = if pv > 0.0 { used / pv } else { 0.0 };
        f.pv1_w = pv1 * share;
        f.pv2_w = pv2 * share;
        // An MPPT string sits near its maximum-power voltage while the sun is up.
        let string_v = |p: f64| {
            if p > 0.0 || now.irr > 0.0 {
                300.0 + 60.0 * now.irr.sqrt()
            } else {
                0.0
            }
        };
        f.pv1_v = if self.cfg.pv_peak_w > 0.0 {
            string_v(pv1)
        } else {
            0.0
        };
        f.pv2_v = if pv2 > 0.0 || (self.cfg.pv2_peak_w > 0.0 && now.irr > 0.0) {
            string_v(pv2)
        } else {
            0.0
        };
        f.charge_a = (f.pv_charge_w + f.ac_charge_w) / now.v_rest;
        f.discharge_a = f.discharge_w / now.v_rest;
        f
    }

    /// What charges the bank from one unit (by its charger priority), and what it feeds to
    /// the grid, from the PV left after the load.
    fn charge(
        &self,
        f: &mut UnitFlows,
        pv: f64,
        pv_to_load: f64,
        su: &Settings,
        now: &Conditions<'_>,
    ) {
        let s0 = now.s0;
        let accept_w = f64::from(su.max_charging_current) * now.taper * now.v_rest;
        let surplus = pv - pv_to_load;
        let ac_limit_w = if f.line && s0.grid_charging {
            f64::from(su.max_ac_charging_current) * now.v_rest
        } else {
            0.0
        };
        match su.charger_source_priority {
            0 => {
                f.ac_charge_w = accept_w.min(ac_limit_w);
                f.pv_charge_w = surplus.min(accept_w - f.ac_charge_w);
            }
            1 => {
                f.pv_charge_w = surplus.min(accept_w);
                if pv <= 0.0 {
                    f.ac_charge_w = (accept_w - f.pv_charge_w).min(ac_limit_w);
                }
            }
            2 => {
                f.pv_charge_w = surplus.min(accept_w);
                f.ac_charge_w = (accept_w - f.pv_charge_w).min(ac_limit_w);
            }
            _ => f.pv_charge_w = surplus.min(accept_w),
        }
        if now.grid
            && s0.grid_feed
            && s0.flags.solar_feed_to_grid
            && self.variant == Variant::Pi30max
        {
            f.feed_w = surplus - f.pv_charge_w;
        }
    }

    /// The bank and the grid at `t`, around the units' flows.
    fn snapshot(&self, t: f64, now: &Conditions<'_>, units: Vec<UnitFlows>) -> Snapshot {
        let st = now.state;
        let mut snap = Snapshot {
            t,
            grid_present: now.grid,
            grid_v: 0.0,
            grid_hz: 0.0,
            battery_v: 0.0,
            soc: st.soc,
            cutoff: st.cutoff,
            stage: ChargeStage::None,
            irradiance: now.irr,
            units,
        };
        let net = snap.net_current();
        snap.battery_v = terminal_voltage(&self.battery, now.s0, st.soc, net);
        snap.stage = if net <= 0.0 {
            ChargeStage::None
        } else if st.soc < 0.85 {
            ChargeStage::Bulk
        } else if st.soc < 0.99 {
            ChargeStage::Absorb
        } else {
            ChargeStage::Float
        };
        if now.grid {
            let minute = floor_secs(t / 60.0);
            snap.grid_v =
                self.cfg.grid_voltage + 4.0 * (2.0 * noise(self.cfg.seed, 3, minute) - 1.0);
            snap.grid_hz =
                self.cfg.grid_frequency + 0.05 * (2.0 * noise(self.cfg.seed, 4, minute) - 1.0);
        }
        snap
    }
}

/// What every unit's balance at one instant starts from.
struct Conditions<'a> {
    /// The integrated state.
    state: State,
    /// Unit 0's settings: output and charger priorities, grid charging and feeding are the
    /// group's.
    s0: &'a Settings,
    /// The bank's resting voltage.
    v_rest: f64,
    /// The grid is there.
    grid: bool,
    /// Relative irradiance, 0..=1.
    irr: f64,
    /// Each unit's share of the load, W.
    load: f64,
    /// How much of its charging current a nearly full bank still takes, 0..=1.
    taper: f64,
}

/// Where one unit's load comes from — the grid (line mode), its PV and the bank (battery
/// mode), or nowhere (output off at cut-off) — and the PV power that goes to it.
fn carry_load(pv: f64, su: &Settings, now: &Conditions<'_>) -> (UnitFlows, f64) {
    let (s0, st, load) = (now.s0, now.state, now.load);
    let line = now.grid
        && match s0.output_source_priority {
            0 => true,
            1 => pv < load,
            _ => st.sbu_on_grid || st.cutoff || (!s0.battery_discharge && pv < load),
        };
    let output_on = line || !st.cutoff;
    let mut f = UnitFlows {
        output_on,
        line,
        ..UnitFlows::default()
    };
    let pv_to_load;
    if line {
        pv_to_load = if s0.output_source_priority == 0 {
            0.0
        } else {
            pv.min(load)
        };
        f.grid_to_load_w = load - pv_to_load;
        f.load_w = load;
    } else if output_on {
        pv_to_load = pv.min(load);
        let deficit = load - pv_to_load;
        let limit = if su.max_discharging_current > 0 {
            f64::from(su.max_discharging_current) * now.v_rest
        } else {
            f64::INFINITY
        };
        f.discharge_w = if s0.battery_discharge {
            deficit.min(limit)
        } else {
            0.0
        };
        let unserved = deficit - f.discharge_w;
        if now.grid {
            f.grid_to_load_w = unserved;
            f.load_w = load;
        } else {
            f.load_w = load - unserved;
        }
    } else {
        pv_to_load = 0.0;
    }
    (f, pv_to_load)
}

/// Resting voltage of the bank at `soc` (a lead-acid curve, scaled to the nominal voltage).
#[must_use]
pub(crate) fn open_circuit_voltage(battery: &BatteryConfig, soc: f64) -> f64 {
    const CURVE: [(f64, f64); 6] = [
        (0.0, 40.0),
        (0.1, 45.0),
        (0.2, 46.5),
        (0.5, 48.5),
        (0.9, 50.5),
        (1.0, 51.5),
    ];
    let soc = soc.clamp(0.0, 1.0);
    let k = f64::from(battery.nominal_voltage) / 48.0;
    for w in CURVE.windows(2) {
        let ((s0, v0), (s1, v1)) = (w[0], w[1]);
        if soc <= s1 {
            return k * (v0 + (v1 - v0) * (soc - s0) / (s1 - s0));
        }
    }
    k * CURVE[5].1
}

/// Terminal voltage with `current` flowing (positive: charging): resting voltage plus the
/// internal drop, pulled towards the bulk voltage near full and held at float when full.
fn terminal_voltage(battery: &BatteryConfig, s: &Settings, soc: f64, current: f64) -> f64 {
    let v = open_circuit_voltage(battery, soc) + current * battery.internal_resistance;
    if current <= 0.0 {
        return v.max(0.0);
    }
    if soc >= 0.99 {
        return s.battery_float_voltage;
    }
    let pull = ((soc - 0.85) / 0.14).clamp(0.0, 1.0);
    (v + (s.battery_bulk_voltage - v) * pull).min(s.battery_bulk_voltage)
}
