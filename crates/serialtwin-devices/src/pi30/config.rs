//! What a PI30 unit is and how it starts: identity, variant, wire options, settings, plant.
//!
//! The CLI reuses [`Pi30Config`] as a TOML table, so every struct here denies unknown fields
//! (a typo is an error, not a silently ignored key) and defaults every field (a table only
//! names what differs from a 5 kVA, 48 V MKS2-5000 on mppsolar's CRC rule).

use serde::{Deserialize, Serialize};

use super::crc::CrcVariant;

/// Which protocol definition the unit follows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    /// mppsolar's `PI30`: HS/MS/MSX, PIP-GK/MK and similar.
    #[default]
    Pi30,
    /// mppsolar's `PI30MAX` (LV6048MAX and similar): more fields, energy counters, no QVFW2.
    Pi30max,
}

/// What an unknown command gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownPolicy {
    /// `(NAK` with a CRC.
    #[default]
    Nak,
    /// The request echoed back byte for byte, CRC and `\r` included (some firmware does this;
    /// mppsolar recognises it as "the inverter didn't recognise this command").
    Echo,
}

/// The battery bank.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatteryConfig {
    /// Nominal voltage: 12, 24 or 48. Setter ranges and default voltages scale with it.
    pub nominal_voltage: u8,
    /// Capacity in ampere-hours (the whole bank, shared by a parallel group).
    pub capacity_ah: f64,
    /// State of charge when the plant starts, 0.0 to 1.0.
    pub initial_soc: f64,
    /// Internal resistance in ohms: how far current pulls the voltage from its resting value.
    pub internal_resistance: f64,
}

impl Default for BatteryConfig {
    fn default() -> Self {
        Self {
            nominal_voltage: 48,
            capacity_ah: 200.0,
            initial_soc: 0.8,
            internal_resistance: 0.01,
        }
    }
}

/// The enable flags shown by QFLAG and set by `PE`/`PD`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "the protocol's flags are independent bools"
)]
pub struct Flags {
    /// `a`: buzzer.
    pub buzzer: bool,
    /// `b`: overload bypass.
    pub overload_bypass: bool,
    /// `j` (PI30 only): power saving.
    pub power_saving: bool,
    /// `k`: LCD returns to the default page after a minute.
    pub lcd_reset: bool,
    /// `u`: restart after an overload.
    pub overload_restart: bool,
    /// `v`: restart after over-temperature.
    pub over_temperature_restart: bool,
    /// `x`: LCD backlight.
    pub backlight: bool,
    /// `y`: alarm when the primary source is interrupted.
    pub primary_source_alarm: bool,
    /// `z`: record fault codes.
    pub record_fault_code: bool,
    /// `d` (PI30MAX only): feed surplus solar power to the grid.
    pub solar_feed_to_grid: bool,
}

impl Default for Flags {
    /// The flags of mppsolar's QDI example: buzzer, backlight, source alarm and LCD reset on.
    fn default() -> Self {
        Self {
            buzzer: true,
            overload_bypass: false,
            power_saving: false,
            lcd_reset: true,
            overload_restart: false,
            over_temperature_restart: false,
            backlight: true,
            primary_source_alarm: true,
            record_fault_code: false,
            solar_feed_to_grid: false,
        }
    }
}

/// The RGB LED strip of PI30MAX units (QLED, `PLED*`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Led {
    /// LEDs on.
    pub enabled: bool,
    /// 0 low, 1 medium, 2 fast.
    pub speed: u8,
    /// 0 breathing, 2 solid, 3 right scrolling.
    pub effect: u8,
    /// 1 to 9.
    pub brightness: u8,
    /// Number of colours in use, 1 to 3.
    pub colors: u8,
    /// The three colours (line mode, AVR mode, battery mode) as `[r, g, b]`.
    pub rgb: [[u8; 3]; 3],
}

impl Default for Led {
    /// mppsolar's QLED example: on, medium, solid, brightness 5, three colours.
    fn default() -> Self {
        Self {
            enabled: true,
            speed: 1,
            effect: 2,
            brightness: 5,
            colors: 3,
            rgb: [[148, 0, 211], [255, 255, 255], [0, 255, 255]],
        }
    }
}

/// Everything a client can change with setters (and `PF` restores from the defaults).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// AC output voltage, V.
    pub output_voltage: f64,
    /// AC output frequency, Hz (`F50`/`F60`).
    pub output_frequency: u8,
    /// Max utility (AC) charging current, A (`MUCHGC`).
    pub max_ac_charging_current: u16,
    /// Max total charging current, A (`MCHGC`/`MNCHGC`).
    pub max_charging_current: u16,
    /// Battery cut-off ("under") voltage, V (`PSDV`).
    pub battery_under_voltage: f64,
    /// Float charging voltage, V (`PBFT`).
    pub battery_float_voltage: f64,
    /// Bulk / constant-voltage charging voltage, V (`PCVV`).
    pub battery_bulk_voltage: f64,
    /// Voltage at which SBU priority goes back to the grid, V (`PBCV`).
    pub battery_recharge_voltage: f64,
    /// Voltage at which SBU priority returns to the battery, V; 0 means "when full" (`PBDV`).
    pub battery_redischarge_voltage: f64,
    /// 0 appliance, 1 UPS (`PGR`).
    pub input_voltage_range: u8,
    /// 0 utility first, 1 solar first, 2 SBU (`POP`).
    pub output_source_priority: u8,
    /// 0 utility first, 1 solar first, 2 solar + utility, 3 solar only (`PCP`, `PPCP`).
    pub charger_source_priority: u8,
    /// 0 AGM, 1 flooded, 2 user (`PBT`).
    pub battery_type: u8,
    /// 0 single, 1 parallel, 2..4 phase 1..3 of three-phase (`POPM`).
    pub output_mode: u8,
    /// PV OK condition for parallel systems (`PPVOKC`).
    pub pv_ok_condition: u8,
    /// Solar power balance (`PSPB`).
    pub pv_power_balance: u8,
    /// Max charging time at the CV stage, minutes (0: automatic).
    pub max_cv_charging_time: u16,
    /// 0 automatic, 1 online, 2 ECO (`POPLG`).
    pub operation_logic: u8,
    /// Max battery discharge current, A; 0 = no limit (`PBATMAXDISC`).
    pub max_discharging_current: u16,
    /// `PBATCD` a: the grid may charge the battery.
    pub grid_charging: bool,
    /// `PBATCD` b: the battery may discharge into the load.
    pub battery_discharge: bool,
    /// `PBATCD` c: surplus may be fed into the grid (with flag `d`).
    pub grid_feed: bool,
    /// Battery voltage reading calibration in 0.05 V steps, -9..=9 (`BTA`).
    pub battery_calibration: i8,
    /// QFLAG's enable flags (`PE`/`PD`).
    pub flags: Flags,
    /// PI30MAX LED strip (`PLED*`).
    pub led: Led,
}

impl Settings {
    /// Factory settings for a bank of `nominal` volts (12, 24 or 48): the 48 V values of
    /// mppsolar's QDI example, scaled.
    #[must_use]
    pub fn for_battery(nominal: u8) -> Self {
        let k = f64::from(nominal) / 48.0;
        Self {
            output_voltage: 230.0,
            output_frequency: 50,
            max_ac_charging_current: 30,
            max_charging_current: 60,
            battery_under_voltage: 42.0 * k,
            battery_float_voltage: 54.0 * k,
            battery_bulk_voltage: 56.4 * k,
            battery_recharge_voltage: 46.0 * k,
            battery_redischarge_voltage: 54.0 * k,
            input_voltage_range: 0,
            output_source_priority: 0,
            charger_source_priority: 2,
            battery_type: 0,
            output_mode: 0,
            pv_ok_condition: 0,
            pv_power_balance: 1,
            max_cv_charging_time: 0,
            operation_logic: 0,
            max_discharging_current: 0,
            grid_charging: true,
            battery_discharge: true,
            grid_feed: true,
            battery_calibration: 0,
            flags: Flags::default(),
            led: Led::default(),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self::for_battery(48)
    }
}

/// Battery equalisation parameters (PI30MAX QBEQI).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Equalization {
    /// Equalisation enabled.
    pub enabled: bool,
    /// Equalisation time, minutes.
    pub time_min: u16,
    /// Days between equalisations.
    pub period_days: u16,
    /// Max current, A.
    pub max_current: u16,
    /// Equalisation voltage, V.
    pub voltage: f64,
    /// Equalisation time-out, minutes.
    pub over_time_min: u16,
}

impl Default for Equalization {
    /// mppsolar's QBEQI example, but disabled.
    fn default() -> Self {
        Self {
            enabled: false,
            time_min: 30,
            period_days: 30,
            max_current: 80,
            voltage: 55.4,
            over_time_min: 30,
        }
    }
}

/// The world around the inverter: sun, load, grid, and the start of simulated time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlantConfig {
    /// Unix seconds at which the plant starts (its state is integrated from here).
    /// `None`: when the simulated clock started (`[clock] start`, else when `run` started),
    /// so `initial_soc` is the state of charge at that moment.
    pub start_unix: Option<u64>,
    /// Seed of the load and cloud variation.
    pub seed: u64,
    /// Whether the grid is there when the plant starts.
    pub grid_present: bool,
    /// Local time minus UTC, minutes: where the sun is, and the device clock (QT).
    pub utc_offset_minutes: i32,
    /// Local hour of sunrise.
    pub sunrise_hour: f64,
    /// Local hour of sunset.
    pub sunset_hour: f64,
    /// Peak power of the PV1 string of each unit, W.
    pub pv_peak_w: f64,
    /// Peak power of the PV2 string of each unit (PI30MAX only), W.
    pub pv2_peak_w: f64,
    /// 0.0 (clear sky) to 1.0 (passing clouds can take all the sun away).
    pub cloudiness: f64,
    /// Average household load of the whole system, W (it follows a daily profile).
    pub base_load_w: f64,
    /// Relative load variation, 0.0 to 1.0.
    pub load_variation: f64,
    /// Power factor of the load (active / apparent power).
    pub load_power_factor: f64,
    /// Grid voltage, V.
    pub grid_voltage: f64,
    /// Grid frequency, Hz.
    pub grid_frequency: f64,
    /// Ambient temperature, °C.
    pub ambient_c: f64,
    /// PV energy counted before the plant started (QET), Wh.
    pub pv_energy_before_wh: u64,
    /// Load energy counted before the plant started (QLT), Wh.
    pub load_energy_before_wh: u64,
}

impl Default for PlantConfig {
    fn default() -> Self {
        Self {
            start_unix: None,
            seed: 0,
            grid_present: true,
            utc_offset_minutes: 0,
            sunrise_hour: 6.0,
            sunset_hour: 18.0,
            pv_peak_w: 3000.0,
            pv2_peak_w: 0.0,
            cloudiness: 0.3,
            base_load_w: 600.0,
            load_variation: 0.2,
            load_power_factor: 0.92,
            grid_voltage: 230.0,
            grid_frequency: 50.0,
            ambient_c: 25.0,
            pv_energy_before_wh: 0,
            load_energy_before_wh: 0,
        }
    }
}

/// One PI30 unit (or, with [`Pi30::group`](super::Pi30::group), each unit of a parallel group).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Pi30Config {
    /// Command set and field layouts.
    pub variant: Variant,
    /// Checksum escape rule of replies (requests are accepted under either).
    pub crc: CrcVariant,
    /// What unknown commands get.
    pub unknown_command: UnknownPolicy,
    /// QPI answer.
    pub protocol_id: String,
    /// Serial number (QID, QSID, `QPGSn`); 14 digits on real units.
    pub serial: String,
    /// Serial numbers of units 1.. of a parallel group; missing ones count up from `serial`.
    pub parallel_serials: Vec<String>,
    /// Main CPU firmware, after `VERFW:` (QVFW).
    pub firmware_main: String,
    /// Secondary CPU firmware, after `VERFW2:` (QVFW2, PI30 only).
    pub firmware_secondary: String,
    /// Remote (SCC2) CPU firmware, after `VERFW3:` (QVFW3, PI30MAX only).
    pub firmware_remote: String,
    /// Bluetooth module version, after `VERFW:` (VERFW, PI30MAX only).
    pub firmware_bluetooth: String,
    /// QMN answer.
    pub model_name: String,
    /// QGMN answer.
    pub general_model: String,
    /// Rated apparent power, VA.
    pub rated_power_va: u32,
    /// Rated active power, W.
    pub rated_power_w: u32,
    /// Rated AC input voltage, V.
    pub ac_input_voltage: f64,
    /// Rated AC input current, A.
    pub ac_input_current: f64,
    /// QPIRI "max parallel units".
    pub max_parallel_units: u8,
    /// QPIRI machine type: `00` grid tie, `01` off grid, `10` hybrid.
    pub machine_type: String,
    /// QPIRI topology: 0 transformerless, 1 transformer.
    pub topology: u8,
    /// QBOOT: the DSP has a bootstrap loader.
    pub dsp_bootstrap: bool,
    /// QPIGS field count: 17 (old firmware) or 21; PI30MAX also 24. `None`: 21 / 24.
    pub qpigs_fields: Option<usize>,
    /// QPIRI field count: 25 or 27; PI30MAX also 28. `None`: 27 / 28.
    pub qpiri_fields: Option<usize>,
    /// QPIGS "battery voltage offset for fans on", 10 mV.
    pub fan_voltage_offset: u8,
    /// QPIGS "EEPROM version".
    pub eeprom_version: u8,
    /// PI30MAX QPIGS country code (`00` India, `01` Germany, `02` South America).
    pub country: u8,
    /// QMCHGCR: the max charging currents `MCHGC` accepts, A.
    pub charging_current_options: Vec<u16>,
    /// QMUCHGCR: the max utility charging currents `MUCHGC` accepts, A.
    pub utility_charging_current_options: Vec<u16>,
    /// The battery bank.
    pub battery: BatteryConfig,
    /// Factory settings (QDI; `PF` restores them). `None`: [`Settings::for_battery`].
    pub defaults: Option<Settings>,
    /// Settings at start. `None`: the factory settings.
    pub settings: Option<Settings>,
    /// Battery equalisation (QBEQI).
    pub equalization: Equalization,
    /// Sun, load and grid.
    pub plant: PlantConfig,
}

impl Default for Pi30Config {
    fn default() -> Self {
        Self {
            variant: Variant::Pi30,
            crc: CrcVariant::Mppsolar,
            unknown_command: UnknownPolicy::Nak,
            protocol_id: "PI30".into(),
            serial: "92932004102453".into(),
            parallel_serials: Vec::new(),
            firmware_main: "00072.70".into(),
            firmware_secondary: "00000.00".into(),
            firmware_remote: "00000.31".into(),
            firmware_bluetooth: "00001.00".into(),
            model_name: "MKS2-5000".into(),
            general_model: "044".into(),
            rated_power_va: 5000,
            rated_power_w: 5000,
            ac_input_voltage: 230.0,
            ac_input_current: 21.7,
            max_parallel_units: 9,
            machine_type: "01".into(),
            topology: 0,
            dsp_bootstrap: false,
            qpigs_fields: None,
            qpiri_fields: None,
            fan_voltage_offset: 0,
            eeprom_version: 0,
            country: 0,
            charging_current_options: (1..=12).map(|i| i * 10).collect(),
            utility_charging_current_options: std::iter::once(2)
                .chain((1..=12).map(|i| i * 10))
                .collect(),
            battery: BatteryConfig::default(),
            defaults: None,
            settings: None,
            equalization: Equalization::default(),
            plant: PlantConfig::default(),
        }
    }
}

/// A configuration that cannot describe a unit.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// The battery's nominal voltage is not 12, 24 or 48.
    #[error("battery nominal voltage must be 12, 24 or 48, not {0}")]
    BatteryVoltage(u8),
    /// A QPIGS/QPIRI field count the variant does not have.
    #[error("{command} has no {fields}-field layout in this variant")]
    FieldCount {
        /// QPIGS or QPIRI.
        command: &'static str,
        /// The configured count.
        fields: usize,
    },
    /// A parallel group of zero units, or more than the protocol can address.
    #[error("a parallel group has 1 to {max} units, not {n}")]
    GroupSize {
        /// Requested size.
        n: usize,
        /// `max_parallel_units`.
        max: u8,
    },
    /// A text field that would break the frame (non-printable, or a space where fields split).
    #[error("{0} must be printable ASCII without spaces")]
    Text(&'static str),
    /// A number outside what it can mean (a state of charge of 1.5, a NaN capacity, an
    /// infinite PV peak): refused, never clamped behind the user's back.
    #[error("`{path}` must be {expected}, not {value}")]
    Number {
        /// Where it is, as a dotted key path under the model's table (`battery.initial_soc`).
        path: &'static str,
        /// What it may be.
        expected: String,
        /// What it is, as written back.
        value: String,
    },
}

/// What a number of the config may be.
#[derive(Clone, Copy)]
enum Range {
    /// Between the two, inclusive.
    Within(f64, f64),
    /// More than 0, finite.
    Positive,
    /// 0 or more, finite.
    NotNegative,
}

impl Range {
    fn holds(self, v: f64) -> bool {
        match self {
            Self::Within(lo, hi) => (lo..=hi).contains(&v),
            Self::Positive => v.is_finite() && v > 0.0,
            Self::NotNegative => v.is_finite() && v >= 0.0,
        }
    }

    fn expected(self) -> String {
        match self {
            Self::Within(lo, hi) => format!("between {lo} and {hi}"),
            Self::Positive => "a positive number".into(),
            Self::NotNegative => "0 or a positive number".into(),
        }
    }
}

/// Fail with the first of `checks` whose value is outside its range.
fn check_numbers(checks: &[(&'static str, f64, Range)]) -> Result<(), ConfigError> {
    match checks.iter().find(|(_, v, range)| !range.holds(*v)) {
        Some(&(path, value, range)) => Err(ConfigError::Number {
            path,
            expected: range.expected(),
            value: value.to_string(),
        }),
        None => Ok(()),
    }
}

impl Settings {
    /// The settings' numbers, named under `table` (`settings` or `defaults`).
    fn check_numbers(&self, table: Table) -> Result<(), ConfigError> {
        use Range::NotNegative;
        let names = table.paths();
        check_numbers(&[
            (names[0], self.output_voltage, NotNegative),
            (names[1], self.battery_under_voltage, NotNegative),
            (names[2], self.battery_float_voltage, NotNegative),
            (names[3], self.battery_bulk_voltage, NotNegative),
            (names[4], self.battery_recharge_voltage, NotNegative),
            (names[5], self.battery_redischarge_voltage, NotNegative),
        ])
    }
}

/// Which settings table.
#[derive(Clone, Copy)]
enum Table {
    Settings,
    Defaults,
}

impl Table {
    /// The dotted paths of [`Settings::check_numbers`]'s values, in its order.
    fn paths(self) -> [&'static str; 6] {
        match self {
            Self::Settings => [
                "settings.output_voltage",
                "settings.battery_under_voltage",
                "settings.battery_float_voltage",
                "settings.battery_bulk_voltage",
                "settings.battery_recharge_voltage",
                "settings.battery_redischarge_voltage",
            ],
            Self::Defaults => [
                "defaults.output_voltage",
                "defaults.battery_under_voltage",
                "defaults.battery_float_voltage",
                "defaults.battery_bulk_voltage",
                "defaults.battery_recharge_voltage",
                "defaults.battery_redischarge_voltage",
            ],
        }
    }
}

impl Pi30Config {
    /// The factory settings in effect.
    #[must_use]
    pub fn factory_settings(&self) -> Settings {
        self.defaults
            .clone()
            .unwrap_or_else(|| Settings::for_battery(self.battery.nominal_voltage))
    }

    /// QPIGS field count in effect.
    #[must_use]
    pub fn qpigs_len(&self) -> usize {
        self.qpigs_fields.unwrap_or(match self.variant {
            Variant::Pi30 => 21,
            Variant::Pi30max => 24,
        })
    }

    /// QPIRI field count in effect.
    #[must_use]
    pub fn qpiri_len(&self) -> usize {
        self.qpiri_fields.unwrap_or(match self.variant {
            Variant::Pi30 => 27,
            Variant::Pi30max => 28,
        })
    }

    /// Check that the configuration describes a unit.
    ///
    /// # Errors
    /// The first [`ConfigError`] found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if ![12, 24, 48].contains(&self.battery.nominal_voltage) {
            return Err(ConfigError::BatteryVoltage(self.battery.nominal_voltage));
        }
        let max = self.variant == Variant::Pi30max;
        let qpigs = self.qpigs_len();
        if !(qpigs == 17 || qpigs == 21 || (max && qpigs == 24)) {
            return Err(ConfigError::FieldCount {
                command: "QPIGS",
                fields: qpigs,
            });
        }
        let qpiri = self.qpiri_len();
        if !(qpiri == 25 || qpiri == 27 || (max && qpiri == 28)) {
            return Err(ConfigError::FieldCount {
                command: "QPIRI",
                fields: qpiri,
            });
        }
        let texts: [(&'static str, &str); 9] = [
            ("protocol_id", &self.protocol_id),
            ("serial", &self.serial),
            ("firmware_main", &self.firmware_main),
            ("firmware_secondary", &self.firmware_secondary),
            ("firmware_remote", &self.firmware_remote),
            ("firmware_bluetooth", &self.firmware_bluetooth),
            ("model_name", &self.model_name),
            ("general_model", &self.general_model),
            ("machine_type", &self.machine_type),
        ];
        let printable = |s: &str| s.bytes().all(|b| b.is_ascii_graphic());
        for (name, text) in texts {
            if !printable(text) {
                return Err(ConfigError::Text(name));
            }
        }
        if !self.parallel_serials.iter().all(|s| printable(s)) {
            return Err(ConfigError::Text("parallel_serials"));
        }
        self.check_numbers()
    }

    /// Every number the plant and the answers compute with: finite, and inside what it means.
    fn check_numbers(&self) -> Result<(), ConfigError> {
        use Range::{NotNegative, Positive, Within};
        let (b, p) = (&self.battery, &self.plant);
        check_numbers(&[
            ("battery.capacity_ah", b.capacity_ah, Positive),
            ("battery.initial_soc", b.initial_soc, Within(0.0, 1.0)),
            (
                "battery.internal_resistance",
                b.internal_resistance,
                NotNegative,
            ),
            ("plant.sunrise_hour", p.sunrise_hour, NotNegative),
            ("plant.sunset_hour", p.sunset_hour, NotNegative),
            ("plant.pv_peak_w", p.pv_peak_w, NotNegative),
            ("plant.pv2_peak_w", p.pv2_peak_w, NotNegative),
            ("plant.cloudiness", p.cloudiness, Within(0.0, 1.0)),
            ("plant.base_load_w", p.base_load_w, NotNegative),
            ("plant.load_variation", p.load_variation, Within(0.0, 1.0)),
            ("plant.load_power_factor", p.load_power_factor, Positive),
            ("plant.grid_voltage", p.grid_voltage, Positive),
            ("plant.grid_frequency", p.grid_frequency, Positive),
            ("plant.ambient_c", p.ambient_c, Within(-100.0, 150.0)),
            (
                "equalization.voltage",
                self.equalization.voltage,
                NotNegative,
            ),
            ("ac_input_voltage", self.ac_input_voltage, NotNegative),
            ("ac_input_current", self.ac_input_current, NotNegative),
        ])?;
        if !(p.sunrise_hour < p.sunset_hour && p.sunset_hour <= 24.0) {
            return Err(ConfigError::Number {
                path: "plant.sunset_hour",
                expected: "later than sunrise_hour and at most 24".into(),
                value: p.sunset_hour.to_string(),
            });
        }
        if p.load_power_factor > 1.0 {
            return Err(ConfigError::Number {
                path: "plant.load_power_factor",
                expected: "more than 0 and at most 1".into(),
                value: p.load_power_factor.to_string(),
            });
        }
        if let Some(s) = &self.settings {
            s.check_numbers(Table::Settings)?;
        }
        if let Some(s) = &self.defaults {
            s.check_numbers(Table::Defaults)?;
        }
        Ok(())
    }

    /// The serial number of unit `index` of a group.
    #[must_use]
    pub fn unit_serial(&self, index: usize) -> String {
        if index == 0 {
            return self.serial.clone();
        }
        if let Some(s) = self.parallel_serials.get(index - 1) {
            return s.clone();
        }
        // Count up in the trailing digits, keeping the width.
        let digits = self
            .serial
            .bytes()
            .rev()
            .take_while(u8::is_ascii_digit)
            .count();
        let digits = digits.min(18);
        let (head, tail) = self.serial.split_at(self.serial.len() - digits);
        let n: u64 = tail.parse().unwrap_or(0);
        let next = n.wrapping_add(index as u64) % 10u64.pow(u32::try_from(digits).unwrap_or(0));
        format!("{head}{next:0digits$}")
    }
}
