//! A Victron VE.Direct solar charger (`model = "ve-direct"`): a `SmartSolar` MPPT's text block
//! once a second, and its HEX protocol answered in between, for vedirect-m8, mppsolar's `ved`
//! protocol and anything else reading a VE.Direct port.
//!
//! # Protocol facts, and where they come from (instruments.md §4)
//! - The line is 19,200 baud 8N1 (`OpenDTU` `VeDirectFrameHandler::init`); output is paced at it.
//! - Text ([`framer`]): one block per second, `\r\n<LABEL>\t<VALUE>` fields, then
//!   `\r\nChecksum\t` and the byte that makes the block's sum 0 mod 256. The fields and their
//!   order are those of the verified `SmartSolar` block of §4.1 (19 fields: vedirect-m8 takes
//!   at most 19); units and codes from its table (mppsolar `protocols/ved.py`, `OpenDTU`
//!   `VeDirectData.cpp`).
//! - HEX (§4.2): `:`, command nibble, payload bytes in hex (little-endian values), checksum
//!   with the sum 0x55, `\n`. Ping (1) is answered with `:5` and the firmware version; get (7)
//!   and set (8) echo the register id and flags (`00` OK, `01` unknown id) and carry the value;
//!   a frame whose checksum fails gets `:4AAAA` (the error seen in a real charger's log);
//!   other commands (boot, app version, product id, restart) get the bare `:3` "unknown"
//!   response code (`OpenDTU` `VeDirectData.h`; its payload is not in our sources, so none).
//! - How text and HEX mix (§4.3): `pause_text_on_hex = false` is MPPT firmware ≥ 1.53, whose
//!   blocks keep flowing whatever HEX traffic there is; `true` is the older behaviour, where a
//!   valid HEX frame switches the product to HEX mode and text comes back after
//!   `hex_quiet_s` ("several seconds" in the VE.Direct Protocol document) without HEX
//!   traffic. `async_frames = true` sends newer firmware's unprompted `:A` frames (device
//!   state, charger voltage, charger temperature) when their value changes, just before a
//!   block, or with `async_in_block = true` between its fields (before `ERR`, where a real
//!   capture has them; the block's checksum skips them). vedirect-m8 loses the block after any HEX frame (§4.4), so async frames are off
//!   by default.
//!
//! The values come from a plant: the solar system of the `epever` model (a PV array under the
//! sun of the simulated day, a 12 V lead-acid battery, a DC load), followed over the simulated
//! clock, so V, I, VPV, PPV, CS, IL and the yields agree with each other and with the time.

pub mod framer;

use std::convert::Infallible;
use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use serde::Deserialize;
use serialtwin_core::{Context, Device, Framing, LineConfig, Replies, Settable};

use crate::epever::plant::{Period, Quantity, SolarPlant};
use crate::modbus::bound::Plant;
use crate::modbus::data::Value;
use crate::registry::{self, Build, BuildError, Built, Model, NamedFraming};

/// The `ve-direct` model.
pub static MODEL: Model = Model {
    name: "ve-direct",
    summary: "a Victron SmartSolar MPPT on VE.Direct: a checksummed text block every second and \
              HEX get/set/ping answered in between, values from a simulated solar day; 19200 8N1",
    table: "ve-direct",
    example: EXAMPLE,
    framings: &[NamedFraming {
        name: framer::NAME,
        summary: "VE.Direct: text blocks with a sum-to-zero byte, `:` HEX frames summing to 0x55",
        make: framer::framing,
        unknown_command: None,
        describe: None,
        learn: None,
    }],
    groups: false,
    // The plant bounds its integration steps per read at any speed.
    max_clock_speed: f64::INFINITY,
    settable,
    lint: registry::no_lint,
    build,
    units: &[],
};

const EXAMPLE: &str = r#"[[device]]
name = "mppt"
model = "ve-direct"
link = "/tmp/serialtwin/ttyUSB-mppt"  # mppsolar -P ved --porttype vserial -b 19200 -p <link>

[device.ve-direct]                  # every key optional
serial = "HQ2133ABCDE"              # SER#
firmware = 159                      # FW (1.59); the HEX ping reply says 0x4159
pv_w = 200.0                        # the array at 1000 W/m²
battery_ah = 100.0                  # 12 V lead-acid; HEX register 0x1000 reads it
load_w = 4.0                        # on the load output (LOAD, IL)
soc = 60.0                          # % charge when the clock starts
async_frames = false                # `:A` frames when a value changes (vedirect-m8 loses a block on each)
async_in_block = false              # true: those frames go between a block's fields (before ERR), not before it
pause_text_on_hex = false           # true: text stops while HEX flows (firmware before 1.53)
hex_quiet_s = 5.0                   # then: seconds without HEX before text comes back
"#;

/// The product id of a `SmartSolar` MPPT 75/15 (instruments.md §4.1's table).
const PID: &str = "0xA053";

/// HEX commands a host sends, and response codes (instruments.md §4.2).
mod code {
    pub(super) const PING: u8 = 0x1;
    pub(super) const GET: u8 = 0x7;
    pub(super) const SET: u8 = 0x8;
    pub(super) const UNKNOWN: u8 = 0x3;
    pub(super) const ERROR: u8 = 0x4;
    pub(super) const PING_REPLY: u8 = 0x5;
    pub(super) const ASYNC: u8 = 0xA;
}

/// Reply flags.
const FLAG_OK: u8 = 0x00;
const FLAG_UNKNOWN_ID: u8 = 0x01;

/// The registers this charger answers (instruments.md §4.2's table).
mod register {
    /// Device state, one byte: the text block's CS.
    pub(super) const DEVICE_STATE: u16 = 0x0201;
    /// Battery capacity, Ah, two bytes (mppsolar's `batteryCapacity`).
    pub(super) const BATTERY_CAPACITY: u16 = 0x1000;
    /// Charger voltage, 0.01 V, two bytes.
    pub(super) const CHARGER_VOLTAGE: u16 = 0xEDD5;
    /// Charger temperature, 0.01 °C, two bytes, signed.
    pub(super) const CHARGER_TEMPERATURE: u16 = 0xEDDB;
}

/// The registers `:A` frames report, in the order they go out.
const ASYNC_REGISTERS: [u16; 3] = [
    register::DEVICE_STATE,
    register::CHARGER_VOLTAGE,
    register::CHARGER_TEMPERATURE,
];

/// `[device.ve-direct]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VeDirectConfig {
    /// `SER#`.
    pub serial: String,
    /// `FW`: three digits, `159` for 1.59.
    pub firmware: u16,
    /// The array's power at 1000 W/m² (W).
    pub pv_w: f64,
    /// The battery's capacity (Ah).
    pub battery_ah: f64,
    /// The load output's power (W).
    pub load_w: f64,
    /// The battery's charge when the clock starts (%).
    pub soc: f64,
    /// Send `:A` frames when a value changes.
    pub async_frames: bool,
    /// Send them between a block's fields (before `ERR`, as in a real capture) instead of
    /// before the block.
    pub async_in_block: bool,
    /// Text stops while HEX flows.
    pub pause_text_on_hex: bool,
    /// Seconds without HEX before paused text comes back.
    pub hex_quiet_s: f64,
}

impl Default for VeDirectConfig {
    fn default() -> Self {
        Self {
            serial: "HQ2133ABCDE".into(),
            firmware: 159,
            pv_w: 200.0,
            battery_ah: 100.0,
            load_w: 4.0,
            soc: 60.0,
            async_frames: false,
            async_in_block: false,
            pause_text_on_hex: false,
            hex_quiet_s: 5.0,
        }
    }
}

/// A config value that cannot be: the key it is at, and why.
type Refusal = (&'static str, String);

/// What the charger keeps of the days: the text block's history fields.
#[derive(Clone, Copy, Debug, Default)]
struct Days {
    /// The calendar day (year, month, day) the "today" fields are for; `None` before the
    /// first block.
    today: Option<(i64, u32, u32)>,
    /// Days since the clock started, for HSDS.
    sequence: u32,
    /// The highest PV power reported today (W): H21.
    max_power_today: u32,
    /// Yesterday's yield (0.01 kWh) and highest power (W): H22, H23.
    yesterday: (u32, u32),
    /// The day's yield at the last block: yesterday's once the day turns (the plant's own
    /// counter restarts at midnight).
    last_yield_today: u32,
}

/// The charger.
#[derive(Debug)]
pub struct VeDirect {
    config: VeDirectConfig,
    plant: SolarPlant,
    days: Days,
    /// What HEX register 0x1000 holds (a host may set it).
    battery_capacity: u16,
    /// The values the last `:A` frames reported.
    reported: [Option<Vec<u8>>; ASYNC_REGISTERS.len()],
    /// Simulated Unix time of the last valid HEX frame.
    last_hex: Option<f64>,
}

/// The plant's reading of `quantity` at `now`.
fn read(plant: &mut SolarPlant, quantity: Quantity, now: Duration) -> f64 {
    match plant.reading(quantity, now) {
        Value::Float(x) => x,
        #[expect(clippy::cast_precision_loss, reason = "the plant reads floats")]
        Value::Int(i) => i as f64,
        _ => 0.0,
    }
}

/// `x` rounded to a whole number in `T` (saturating: a plant never leaves i32).
fn whole(x: f64) -> i64 {
    #[expect(
        clippy::cast_possible_truncation,
        reason = "rounded, and far inside i64 for any plant value"
    )]
    let n = x.round() as i64;
    n
}

/// A non-negative whole number as u32.
fn unsigned(x: f64) -> u32 {
    u32::try_from(whole(x).max(0)).unwrap_or(u32::MAX)
}

/// One moment of the charger, read from the plant.
#[derive(Clone, Copy, Debug)]
struct Reading {
    battery_mv: i64,
    battery_ma: i64,
    pv_mv: i64,
    pv_w: u32,
    state: u8,
    tracker: u8,
    load_on: bool,
    load_ma: i64,
    total_yield: u32,
    yield_today: u32,
    charger_celsius: f64,
}

impl VeDirect {
    /// A charger as `config` describes it, its clouds from `seed`.
    ///
    /// # Errors
    /// The key of the first value that cannot be, and why.
    pub fn new(config: VeDirectConfig, seed: u64) -> Result<Self, Refusal> {
        let serial_ok = !config.serial.is_empty()
            && config.serial.len() <= 16
            && config.serial.bytes().all(|b| b.is_ascii_alphanumeric());
        if !serial_ok {
            return Err((
                "serial",
                "`serial` must be 1 to 16 letters and digits".into(),
            ));
        }
        if !(100..=999).contains(&config.firmware) {
            return Err((
                "firmware",
                "`firmware` must be three digits, 100 to 999 (159 is 1.59)".into(),
            ));
        }
        for (key, value, min, max) in [
            ("pv_w", config.pv_w, 0.0, 2_000.0),
            ("battery_ah", config.battery_ah, 1.0, 65_535.0),
            ("load_w", config.load_w, 0.0, 200.0),
            ("soc", config.soc, 0.0, 100.0),
            ("hex_quiet_s", config.hex_quiet_s, 0.5, 60.0),
        ] {
            if !(value.is_finite() && (min..=max).contains(&value)) {
                return Err((
                    key,
                    format!("`{key}` must be from {min} to {max}, not {value}"),
                ));
            }
        }
        let plant = SolarPlant::new(
            config.pv_w,
            config.battery_ah,
            config.load_w,
            config.soc / 100.0,
            seed,
            UNIX_EPOCH,
        );
        Ok(Self {
            battery_capacity: u16::try_from(whole(config.battery_ah)).unwrap_or(u16::MAX),
            config,
            plant,
            days: Days::default(),
            reported: Default::default(),
            last_hex: None,
        })
    }

    /// The time since the clock began, with the plant told when that was.
    fn now(&mut self, ctx: &Context) -> Duration {
        let clock = ctx.clock();
        self.plant.set_epoch(clock.epoch());
        clock
            .now()
            .duration_since(clock.epoch())
            .unwrap_or_default()
    }

    fn reading(&mut self, now: Duration) -> Reading {
        let p = &mut self.plant;
        let status = unsigned(read(p, Quantity::ChargingStatus, now));
        let no_input = status & 1 << 14 != 0;
        // D3-D2 of EPEVER's charging status: 1 float, 2 boost; CS 5 float, 3 bulk, 0 off.
        let (state, tracker) = match (no_input, status >> 2 & 3) {
            (false, 1) => (5, 1),
            (false, 2) => (3, 2),
            _ => (0, 0),
        };
        let load_on = unsigned(read(p, Quantity::DischargingStatus, now)) & 1 != 0;
        Reading {
            battery_mv: whole(read(p, Quantity::BatteryVolts, now) * 1000.0),
            battery_ma: whole(read(p, Quantity::BatteryAmps, now) * 1000.0),
            pv_mv: whole(read(p, Quantity::PvVolts, now) * 1000.0),
            pv_w: unsigned(read(p, Quantity::PvWatts, now)),
            state,
            tracker,
            load_on,
            load_ma: whole(read(p, Quantity::LoadAmps, now) * 1000.0),
            total_yield: unsigned(read(p, Quantity::Generated(Period::Total), now) * 100.0),
            yield_today: unsigned(read(p, Quantity::Generated(Period::Day), now) * 100.0),
            charger_celsius: read(p, Quantity::DeviceCelsius, now),
        }
    }

    /// Keep the history fields in step with the calendar: at a new day, today's become
    /// yesterday's and the day sequence moves on.
    fn follow_days(&mut self, now: Duration, r: &Reading) {
        let c = self.plant.civil(now.as_secs_f64());
        let day = (c.year, c.month, c.day);
        if self.days.today != Some(day) {
            if self.days.today.is_some() {
                self.days.yesterday = (self.days.last_yield_today, self.days.max_power_today);
                self.days.sequence = (self.days.sequence + 1) % 365;
            }
            self.days.max_power_today = 0;
            self.days.today = Some(day);
        }
        self.days.max_power_today = self.days.max_power_today.max(r.pv_w);
        self.days.last_yield_today = r.yield_today;
    }
}

/// A text block without its checksum byte: the fields of §4.1's `SmartSolar` block, in order.
fn text_block(config: &VeDirectConfig, r: &Reading, days: &Days) -> String {
    let fields: [(&str, String); 19] = [
        ("PID", PID.into()),
        ("FW", config.firmware.to_string()),
        ("SER#", config.serial.clone()),
        ("V", r.battery_mv.to_string()),
        ("I", r.battery_ma.to_string()),
        ("VPV", r.pv_mv.to_string()),
        ("PPV", r.pv_w.to_string()),
        ("CS", r.state.to_string()),
        ("MPPT", r.tracker.to_string()),
        ("OR", "0x00000000".into()),
        ("ERR", "0".into()),
        ("LOAD", if r.load_on { "ON" } else { "OFF" }.into()),
        ("IL", r.load_ma.to_string()),
        ("H19", r.total_yield.to_string()),
        ("H20", r.yield_today.to_string()),
        ("H21", days.max_power_today.to_string()),
        ("H22", days.yesterday.0.to_string()),
        ("H23", days.yesterday.1.to_string()),
        ("HSDS", days.sequence.to_string()),
    ];
    let mut block = String::with_capacity(200);
    for (label, value) in fields {
        let _ = write!(block, "\r\n{label}\t{value}");
    }
    block.push_str("\r\nChecksum\t");
    block
}

/// A HEX frame without its checksum: `:`, the command nibble, the payload in hex.
fn hex_frame(command: u8, payload: &[u8]) -> String {
    let mut frame = format!(":{command:X}");
    for b in payload {
        let _ = write!(frame, "{b:02X}");
    }
    frame
}

impl VeDirect {
    /// Register `id`'s value, little-endian, or `None` for a register this charger lacks.
    fn register(&mut self, id: u16, now: Duration) -> Option<Vec<u8>> {
        match id {
            register::DEVICE_STATE => Some(vec![self.reading(now).state]),
            register::BATTERY_CAPACITY => Some(self.battery_capacity.to_le_bytes().to_vec()),
            register::CHARGER_VOLTAGE => {
                let centivolts = self.reading(now).battery_mv / 10;
                Some(
                    u16::try_from(centivolts)
                        .unwrap_or(0)
                        .to_le_bytes()
                        .to_vec(),
                )
            }
            register::CHARGER_TEMPERATURE => {
                let centidegrees = whole(self.reading(now).charger_celsius * 100.0);
                let clamped = i16::try_from(centidegrees).unwrap_or(i16::MAX);
                Some(clamped.to_le_bytes().to_vec())
            }
            _ => None,
        }
    }

    /// The firmware version as a ping reply carries it: `0x4159` for 159 (§4.2's example).
    fn version(&self) -> u16 {
        let digits = self.config.firmware.to_string();
        0x4000 | u16::from_str_radix(&digits, 16).unwrap_or(0)
    }

    /// The answer to one HEX frame (its text after `:`, `\n` and any `\r` gone).
    fn answer_hex(&mut self, after_colon: &[u8], now: Duration) -> Option<String> {
        let valid = framer::hex_bytes(after_colon).filter(|(command, bytes)| {
            !bytes.is_empty() && framer::hex_checksum(*command, bytes) == 0
        });
        let Some((command, mut bytes)) = valid else {
            return Some(hex_frame(code::ERROR, &[0xAA, 0xAA]));
        };
        bytes.pop(); // the checksum
        self.last_hex = Some(now.as_secs_f64());
        let id =
            |bytes: &[u8]| (bytes.len() >= 3).then(|| u16::from_le_bytes([bytes[0], bytes[1]]));
        match command {
            code::PING => Some(hex_frame(code::PING_REPLY, &self.version().to_le_bytes())),
            code::GET => {
                let id = id(&bytes)?;
                let mut payload = id.to_le_bytes().to_vec();
                match self.register(id, now) {
                    Some(value) => {
                        payload.push(FLAG_OK);
                        payload.extend(value);
                    }
                    None => payload.push(FLAG_UNKNOWN_ID),
                }
                Some(hex_frame(code::GET, &payload))
            }
            code::SET => {
                let id = id(&bytes)?;
                let mut payload = id.to_le_bytes().to_vec();
                let value = &bytes[3..];
                if id == register::BATTERY_CAPACITY && value.len() == 2 {
                    self.battery_capacity = u16::from_le_bytes([value[0], value[1]]);
                    payload.push(FLAG_OK);
                    payload.extend(value);
                } else {
                    payload.push(FLAG_UNKNOWN_ID);
                }
                Some(hex_frame(code::SET, &payload))
            }
            _ => Some(hex_frame(code::UNKNOWN, &[])),
        }
    }

    /// Whether text is paused at `now` (simulated seconds since the clock began).
    fn text_paused(&self, now: Duration) -> bool {
        self.config.pause_text_on_hex
            && self
                .last_hex
                .is_some_and(|at| now.as_secs_f64() - at < self.config.hex_quiet_s)
    }
}

impl Device for VeDirect {
    type Error = Infallible;

    fn framing(&self) -> Framing {
        framer::framing()
    }

    /// A UART at 19,200 baud 8N1, paced: a block of about 195 bytes takes about 0.1 s.
    fn line(&self) -> LineConfig {
        LineConfig::uart(19_200)
    }

    /// A HEX frame is answered at once, between blocks; anything else (a client's stray
    /// bytes) is ignored, as the text protocol's device ignores it.
    fn handle(
        &mut self,
        request: &[u8],
        ctx: &mut Context,
        replies: &mut Replies,
    ) -> Result<(), Infallible> {
        let line = request.trim_ascii_end();
        let Some(start) = line.iter().position(|b| *b == b':') else {
            return Ok(());
        };
        let now = self.now(ctx);
        if let Some(answer) = self.answer_hex(&line[start + 1..], now) {
            replies.push(answer);
        }
        Ok(())
    }

    fn talks_every(&self) -> Option<Duration> {
        Some(Duration::from_secs(1))
    }

    /// The `:A` frames of values that changed (if on), and the block (unless paused): the
    /// frames before it, or between its fields.
    fn talk(&mut self, ctx: &mut Context, replies: &mut Replies) {
        let now = self.now(ctx);
        let mut frames = Vec::new();
        if self.config.async_frames {
            for (i, id) in ASYNC_REGISTERS.into_iter().enumerate() {
                let value = self.register(id, now);
                if value.is_some() && value != self.reported[i] {
                    let mut payload = id.to_le_bytes().to_vec();
                    payload.push(FLAG_OK);
                    payload.extend(value.iter().flatten());
                    frames.push(hex_frame(code::ASYNC, &payload));
                    self.reported[i] = value;
                }
            }
        }
        let reading = self.reading(now);
        self.follow_days(now, &reading);
        if self.text_paused(now) {
            for f in frames {
                replies.push(f);
            }
            return;
        }
        let block = text_block(&self.config, &reading, &self.days);
        let split = block
            .find("\r\nERR\t")
            .filter(|_| self.config.async_in_block);
        match split {
            Some(at) if !frames.is_empty() => {
                replies.push(block[..at].to_owned());
                for f in frames {
                    replies.push(f);
                }
                replies.push(block[at..].to_owned());
            }
            _ => {
                for f in frames {
                    replies.push(f);
                }
                replies.push(block);
            }
        }
    }

    fn set(&mut self, key: &str, value: &str, ctx: &mut Context) -> Result<(), String> {
        let now = self.now(ctx);
        let number = |max: f64| {
            value
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && (0.0..=max).contains(x))
                .ok_or_else(|| format!("{key} is a number from 0 to {max}, not {value:?}"))
        };
        match key {
            "irradiance" if value == "sun" => self.plant.pin_irradiance(None, now),
            "irradiance" => self.plant.pin_irradiance(Some(number(1500.0)?), now),
            "load_w" => self.plant.set_load(number(200.0)?, now),
            "soc" => self.plant.set_soc(number(100.0)? / 100.0, now),
            _ => {
                return Err(format!(
                    "the ve-direct model has no settable value {key:?} (try irradiance, load_w, soc)"
                ));
            }
        }
        Ok(())
    }

    fn settable(&self) -> Vec<Settable> {
        vec![
            Settable::new(
                "irradiance",
                "<W/m²>|sun: the sunlight on the array, pinned (0-1500), or the simulated day's",
            ),
            Settable::new("load_w", "<W>: the DC load on the load output (0-200)"),
            Settable::new("soc", "<%>: the battery's charge, now"),
        ]
    }
}

fn settable() -> Vec<Settable> {
    VeDirect::new(VeDirectConfig::default(), 0)
        .map(|d| d.settable())
        .unwrap_or_default()
}

fn build(b: &Build<'_>) -> Result<Vec<Built>, BuildError> {
    let config: VeDirectConfig = b.table.deserialize()?.unwrap_or_default();
    (0..b.count)
        .map(|i| {
            VeDirect::new(config.clone(), b.port_seed(i))
                .map(Built::new)
                .map_err(|(key, why)| b.error(&[key], why))
        })
        .collect()
}

#[cfg(test)]
mod tests;
