//! An EPEVER Tracer AN MPPT solar charge controller on Modbus RTU, as the `epevermodbus`
//! client reads it (`model = "epever"`).
//!
//! The controller is a unit of the generic slave ([`Slave`]) whose map follows what
//! epevermodbus 0.0.18 reads (`epevermodbus/driver.py`) and EPEVER's register list, its
//! values read from a simulated solar system (`plant`): PV array, battery and load over the
//! fleet's simulated clock. `set <port>/<unit> irradiance|load_w|soc <value>` moves it.
//!
//! What the real controller does that shapes the emulation:
//! - Its protocol document lists function codes 01, 02, 03, 04, 05, 15 and 16: anything else
//!   (06 included: epevermodbus writes with 16) gets exception 01. It declares no coils, so
//!   01/05/15 answer 02.
//! - Readings are input registers (FC 4) holding hundredths; 32-bit values put the **low
//!   word first** (CDAB), the battery current signed. Settings are holding registers (FC 3,
//!   written with FC 16). The night flag and over-temperature are discrete inputs (FC 2).
//! - The real-time clock (holding 0x9013–0x9015: second + minute × 256, hour + day × 256,
//!   month + (year − 2000) × 256, as epevermodbus' `get_rtc`/`set_rtc` code it) shows the
//!   simulated clock; a client setting it moves it by the difference, as on the device.
//! - An address it does not have answers 02 (no gaps read as zero).
//! - It leaves the factory at 115,200 baud 8N1, unit 1 (epevermodbus' defaults).

pub(crate) mod plant;

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_spanned::Spanned;
use serialtwin_core::{BoxDevice, Bus, CharFormat, LineConfig, Route, Settable};

use crate::modbus::bound::{Reading, Shared};
use crate::modbus::data::{Encoding, Kind, Order, Value};
use crate::modbus::rtu;
use crate::modbus::slave::{Knobs, MAX_ADDRESS, Slave, address_in_config, factory_line, route};
use crate::modbus::tcp::TcpGateway;
use crate::modbus::unit::{Access, Gaps, Settings, Unit};
use crate::registry::{self, Build, BuildError, Built, BusUnit, Model};

use self::plant::{Civil, Period, Quantity, SolarPlant};

/// The registry's entry for EPEVER charge controllers.
pub static MODEL: Model = Model {
    name: "epever",
    summary: "an EPEVER Tracer AN MPPT solar charge controller on Modbus RTU, as epevermodbus \
              reads it: PV, battery and load over the simulated day; 115200 8N1",
    table: "epever",
    example: EXAMPLE,
    framings: &[],
    groups: false,
    // Integration costs at most `plant::MAX_STEPS` steps per read at any speed.
    max_clock_speed: f64::INFINITY,
    settable,
    lint: registry::no_lint,
    build,
    units: &[BusUnit {
        name: "tracer",
        summary: "an EPEVER Tracer AN MPPT charge controller (115200 8N1)",
        line,
        build: |id, seed| unit(id, &Config::defaults(seed), seed),
    }],
};

const EXAMPLE: &str = r#"[[device]]
name = "charger"
model = "epever"
link = "/tmp/serialtwin/ttyUSB-epever"  # epever --portname /tmp/serialtwin/ttyUSB-epever

[device.epever]           # every key optional
unit = 1                  # its Modbus address, 1-247
pv_w = 600.0              # the array's power at 1000 W/m² (W)
battery_ah = 200.0        # a 12 V lead-acid bank's capacity (Ah)
load_w = 40.0             # the DC load on the load terminals (W)
soc = 70.0                # the battery's charge when the clock starts (%; default: from the seed)
"#;

/// The factory line: 115,200 baud 8N1 (epevermodbus' default).
fn line() -> LineConfig {
    factory_line(115_200, CharFormat::N81)
}

/// `[device.epever]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    unit: Option<Spanned<u32>>,
    pv_w: Option<Spanned<f64>>,
    battery_ah: Option<Spanned<f64>>,
    load_w: Option<Spanned<f64>>,
    soc: Option<Spanned<f64>>,
}

/// A controller's system, as configured.
#[derive(Clone, Copy, Debug)]
struct Config {
    pv_w: f64,
    battery_ah: f64,
    load_w: f64,
    /// 0–1.
    soc: f64,
}

impl Config {
    fn defaults(seed: u64) -> Self {
        Self {
            pv_w: 600.0,
            battery_ah: 200.0,
            load_w: 40.0,
            soc: 0.4 + 0.5 * fastrand::Rng::with_seed(seed ^ 0xE9E7).f64(),
        }
    }
}

/// A value in hundredths in one register (`read_register(addr, 2, 4)`).
fn hundredths() -> Encoding {
    Encoding::new(Kind::U16)
        .scaled(0.01, 0.0)
        .unwrap_or(Encoding::new(Kind::U16))
}

/// A signed value in hundredths (temperatures).
fn signed_hundredths() -> Encoding {
    Encoding::new(Kind::I16)
        .scaled(0.01, 0.0)
        .unwrap_or(Encoding::new(Kind::I16))
}

/// A value in hundredths over two registers, low word first (`read_long(addr, 4, …,
/// BYTEORDER_LITTLE_SWAP) / 100`).
fn long_hundredths(kind: Kind) -> Encoding {
    Encoding::new(kind)
        .with_order(Order::Cdab)
        .scaled(0.01, 0.0)
        .unwrap_or(Encoding::new(kind))
}

/// The input registers read from the plant: address, encoding, quantity.
fn readings() -> Vec<(u16, Encoding, Quantity)> {
    use Quantity as Q;
    let h = hundredths();
    let l = long_hundredths(Kind::U32);
    let word = Encoding::new(Kind::U16);
    vec![
        (0x3100, h, Q::PvVolts),
        (0x3101, h, Q::PvAmps),
        (0x3102, l, Q::PvWatts),
        (0x3104, h, Q::BatteryVolts),
        (0x3105, h, Q::ChargeAmps),
        (0x3106, l, Q::ChargeWatts),
        (0x310C, h, Q::LoadVolts),
        (0x310D, h, Q::LoadAmps),
        (0x310E, l, Q::LoadWatts),
        (0x3110, signed_hundredths(), Q::BatteryCelsius),
        (0x3111, signed_hundredths(), Q::DeviceCelsius),
        (0x3112, signed_hundredths(), Q::DeviceCelsius),
        (0x311A, word, Q::Soc),
        (0x311B, signed_hundredths(), Q::BatteryCelsius),
        (0x3200, word, Q::BatteryStatus),
        (0x3201, word, Q::ChargingStatus),
        (0x3202, word, Q::DischargingStatus),
        (0x3300, h, Q::MaxPvVoltsToday),
        (0x3301, h, Q::MinPvVoltsToday),
        (0x3302, h, Q::MaxBatteryVoltsToday),
        (0x3303, h, Q::MinBatteryVoltsToday),
        (0x3304, l, Q::Consumed(Period::Day)),
        (0x3306, l, Q::Consumed(Period::Month)),
        (0x3308, l, Q::Consumed(Period::Year)),
        (0x330A, l, Q::Consumed(Period::Total)),
        (0x330C, l, Q::Generated(Period::Day)),
        (0x330E, l, Q::Generated(Period::Month)),
        (0x3310, l, Q::Generated(Period::Year)),
        (0x3312, l, Q::Generated(Period::Total)),
        (0x331A, h, Q::BatteryVolts),
        (0x331B, long_hundredths(Kind::I32), Q::BatteryAmps),
    ]
}

/// Rated values (FC 4, fixed): a Tracer 3210AN, 30 A on a 12 V battery.
const RATED: &[(u16, f64)] = &[
    (0x3000, 100.0),             // rated PV voltage
    (0x3001, plant::RATED_AMPS), // rated PV current
    (0x3004, 12.0),              // rated battery voltage
    (0x3005, plant::RATED_AMPS), // rated charging current
    (0x300E, plant::RATED_AMPS), // rated load current
    (0x311D, 12.0),              // battery's real rated voltage
];

/// The battery voltage set-points at 0x9003–0x900E (epevermodbus'
/// `battery_voltage_control_register_names`, in order): EPEVER's defaults for a sealed 12 V
/// battery, in volts.
const SET_POINTS: [f64; 12] = [
    16.0, // over-voltage disconnect
    15.0, // charging limit
    15.0, // over-voltage reconnect
    14.6, // equalize charging
    14.4, // boost charging
    13.8, // float charging
    13.2, // boost reconnect
    12.6, // low-voltage reconnect
    12.2, // under-voltage warning recover
    12.0, // under-voltage warning
    11.1, // low-voltage disconnect
    10.6, // discharging limit
];

/// The holding registers besides the set-points and the clock: address, raw word.
const SETTINGS: &[(u16, u16)] = &[
    (0x9000, 1),   // battery type: sealed
    (0x9002, 300), // temperature compensation, 3.00 mV/°C/2V
    (0x9067, 0),   // battery rated voltage: auto
    (0x906A, 1),   // default load state in manual mode: on
    (0x906B, 120), // equalize duration (min)
    (0x906C, 120), // boost duration (min)
    (0x906D, 30),  // discharge depth (%)
    (0x906E, 100), // charge (%)
    (0x9070, 0),   // charging mode: voltage compensation
];

/// The RTC's three registers.
const RTC: u16 = 0x9013;
/// The night flag (FC 2).
const NIGHT: u16 = 0x200C;
/// Over-temperature inside the device (FC 2).
const OVER_TEMPERATURE: u16 = 0x2000;

/// The controller at address `id`, its system as `config` says, its clouds from `seed`.
fn unit(id: u8, config: &Config, seed: u64) -> Slave {
    let plant = Shared::new(SolarPlant::new(
        config.pv_w,
        config.battery_ah,
        config.load_w,
        config.soc,
        seed,
        UNIX_EPOCH,
    ));
    let settings = Settings {
        gaps: Gaps::Exception,
        // EPEVER's protocol document: 01, 02, 03, 04, 05, 0F, 10.
        functions: Some(BTreeSet::from([0x01, 0x02, 0x03, 0x04, 0x05, 0x0F, 0x10])),
        server_id: b"Tracer AN".to_vec(),
        identification: [
            (0x00, b"EPEVER".to_vec()),
            (0x01, b"Tracer3210AN".to_vec()),
            (0x02, b"1.0".to_vec()),
        ]
        .into(),
        ..Settings::default()
    };
    let mut unit = Unit::new(settings).unwrap_or_default();
    // Declarations below are distinct and in range (the tests read every one), so none fails.
    for (address, encoding, quantity) in readings() {
        let _ = unit
            .input
            .set_provider(address, encoding, Reading::boxed(&plant, quantity));
    }
    for &(address, value) in RATED {
        let _ = unit.input.set_value(
            address,
            &hundredths(),
            &Value::Float(value),
            Access::ReadOnly,
        );
    }
    let _ = unit.input.set_value(
        0x3002,
        &long_hundredths(Kind::U32),
        &Value::Float(config.pv_w),
        Access::ReadOnly,
    );
    let capacity = config.battery_ah.round().clamp(1.0, 65_535.0);
    let _ = unit.holding.set_value(
        0x9001,
        &Encoding::new(Kind::U16),
        &Value::Float(capacity),
        Access::ReadWrite,
    );
    for &(address, word) in SETTINGS {
        let _ = unit.holding.set_words(address, &[word], Access::ReadWrite);
    }
    for (address, volts) in (0x9003..).zip(SET_POINTS) {
        let _ = unit.holding.set_value(
            address,
            &hundredths(),
            &Value::Float(volts),
            Access::ReadWrite,
        );
    }
    let _ = unit.holding.set_words(RTC, &[0, 0, 0], Access::ReadWrite);
    unit.discrete_inputs
        .set(OVER_TEMPERATURE, false, Access::ReadOnly);
    unit.discrete_inputs.set(NIGHT, false, Access::ReadOnly);
    let slave = Slave::new(id.clamp(1, MAX_ADDRESS), unit)
        .unwrap_or_else(|_| unreachable!("address clamped to 1-247"));
    slave.with_knobs(Box::new(ControllerKnobs {
        plant,
        rtc_offset: 0,
        rtc_shown: None,
    }))
}

/// The controller's run-time keys, and what it keeps in step with its plant and the clock.
#[derive(Debug)]
struct ControllerKnobs {
    plant: Shared<SolarPlant>,
    /// Seconds the RTC runs ahead of the simulated clock (a client set it).
    rtc_offset: i64,
    /// The RTC words last written by the controller, to tell a client's write.
    rtc_shown: Option<[u16; 3]>,
}

/// The RTC registers for a wall time (epevermodbus `set_rtc`'s coding).
fn rtc_words(c: Civil) -> [u16; 3] {
    let byte = |x: u32| u16::try_from(x.min(255)).unwrap_or(0);
    let year = u16::try_from((c.year - 2000).clamp(0, 255)).unwrap_or(0);
    [
        byte(c.second) | byte(c.minute) << 8,
        byte(c.hour) | byte(c.day) << 8,
        byte(c.month) | year << 8,
    ]
}

/// The wall time RTC registers show (`get_rtc`'s decoding); `None` if not a date.
fn rtc_time(words: [u16; 3]) -> Option<i64> {
    let [ms, hd, my] = words.map(|w| (u32::from(w & 0xFF), u32::from(w >> 8)));
    let c = Civil {
        second: ms.0,
        minute: ms.1,
        hour: hd.0,
        day: hd.1,
        month: my.0,
        year: 2000 + i64::from(my.1),
    };
    let valid = (1..=12).contains(&c.month)
        && (1..=31).contains(&c.day)
        && c.hour < 24
        && c.minute < 60
        && c.second < 60;
    // A date past its month's end (31 April) is refused as Python's datetime does.
    (valid && Civil::from_unix(c.to_unix()) == c).then(|| c.to_unix())
}

impl Knobs for ControllerKnobs {
    fn set(
        &mut self,
        key: &str,
        value: &str,
        epoch: SystemTime,
        now: Duration,
    ) -> Result<(), String> {
        let number = |max: f64| {
            value
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && (0.0..=max).contains(x))
                .ok_or_else(|| format!("{key} is a number from 0 to {max}, not {value:?}"))
        };
        let mut plant = self.plant.lock();
        plant.set_epoch(epoch);
        match key {
            "irradiance" if value == "sun" => plant.pin_irradiance(None, now),
            "irradiance" => plant.pin_irradiance(Some(number(1500.0)?), now),
            "load_w" => plant.set_load(number(MAX_LOAD_W)?, now),
            "soc" => plant.set_soc(number(100.0)? / 100.0, now),
            _ => {
                return Err(format!(
                    "a charge controller has no {key:?}: its keys are irradiance, load_w and soc"
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
            Settable::new("load_w", "<W>: the DC load on the load terminals"),
            Settable::new("soc", "<%>: the battery's charge, now"),
        ]
    }

    fn refresh(&mut self, unit: &mut Unit, epoch: SystemTime, now: Duration) {
        let mut plant = self.plant.lock();
        plant.set_epoch(epoch);
        let night = plant.is_night(now);
        unit.discrete_inputs.set(NIGHT, night, Access::ReadOnly);
        let clock = plant.civil(now.as_secs_f64()).to_unix();
        let stored = [0, 1, 2].map(|i| unit.holding.word(RTC + i).unwrap_or(0));
        if self.rtc_shown.is_some_and(|shown| shown != stored)
            && let Some(written) = rtc_time(stored)
        {
            // A client set the clock: from now on it runs from what was written.
            self.rtc_offset = written - clock;
        }
        let words = rtc_words(Civil::from_unix(clock + self.rtc_offset));
        let _ = unit.holding.set_words(RTC, &words, Access::ReadWrite);
        self.rtc_shown = Some(words);
    }
}

/// The largest DC load a setting takes (W).
const MAX_LOAD_W: f64 = 10_000.0;

/// The unit's keys, as a port (a bus of one unit) takes them: `set <port>/<unit> <key>`.
fn settable() -> Vec<Settable> {
    ControllerKnobs {
        plant: Shared::new(SolarPlant::new(0.0, 1.0, 0.0, 0.0, 0, UNIX_EPOCH)),
        rtc_offset: 0,
        rtc_shown: None,
    }
    .settable()
    .into_iter()
    .map(|s| Settable::new(format!("<unit>.{}", s.key), s.help))
    .collect()
}

fn build(b: &Build<'_>) -> Result<Vec<Built>, BuildError> {
    let raw: RawConfig = b.table.deserialize()?.unwrap_or_default();
    let id = match &raw.unit {
        None => 1,
        Some(unit) => address_in_config(unit, "`unit`")?,
    };
    let check = |value: &Option<Spanned<f64>>, what: &str, min: f64, max: f64| {
        value
            .as_ref()
            .map(|v| {
                let x = *v.get_ref();
                if x.is_finite() && (min..=max).contains(&x) {
                    Ok(x)
                } else {
                    Err(BuildError::at(
                        v.span(),
                        format!("`{what}` must be from {min} to {max}, not {x}"),
                    ))
                }
            })
            .transpose()
    };
    let pv_w = check(&raw.pv_w, "pv_w", 0.0, 100_000.0)?;
    let battery_ah = check(&raw.battery_ah, "battery_ah", 1.0, 65_535.0)?;
    let load_w = check(&raw.load_w, "load_w", 0.0, MAX_LOAD_W)?;
    let soc = check(&raw.soc, "soc", 0.0, 100.0)?;
    let framing = b.framing.clone().unwrap_or_else(rtu::framing);
    let line = line();
    Ok((0..b.count)
        .map(|copy| {
            let seed = b.port_seed(copy);
            let defaults = Config::defaults(seed);
            let config = Config {
                pv_w: pv_w.unwrap_or(defaults.pv_w),
                battery_ah: battery_ah.unwrap_or(defaults.battery_ah),
                load_w: load_w.unwrap_or(defaults.load_w),
                soc: soc.map_or(defaults.soc, |s| s / 100.0),
            };
            let router: fn(&[u8]) -> Route = route;
            let bus = Bus::new(router, framing.clone(), line)
                .with(u32::from(id), unit(id, &config, seed));
            Built {
                device: BoxDevice::new(bus),
                gateway: TcpGateway::for_line(&framing, &[id]),
                listen: None,
                framing: framing.clone(),
                line,
            }
        })
        .collect())
}

#[cfg(test)]
#[expect(
    clippy::decimal_bitwise_operands,
    reason = "dates: hour 12, day 21 read as the RTC's bytes"
)]
mod tests {
    use serialtwin_core::{Context, Device, SimClock};

    use super::*;
    use crate::modbus::unit::{Delivery, ExceptionCode, Outcome};
    use crate::registry::Table;

    /// 2026-06-21T12:00:00Z.
    const NOON: u64 = 1_782_043_200;

    fn controller() -> Slave {
        let config = Config {
            pv_w: 600.0,
            battery_ah: 200.0,
            load_w: 40.0,
            soc: 0.5,
        };
        unit(1, &config, 3)
    }

    /// Ask `slave` with `pdu` (as the RTU framer hands it over, address first) through
    /// [`Device::handle`], the clock at noon: the reply PDU, without the address.
    fn ask(slave: &mut Slave, pdu: &[u8]) -> Vec<u8> {
        let mut ctx = Context::for_test(SimClock::at_unix(NOON, 0.0));
        let mut replies = serialtwin_core::Replies::new();
        let mut request = vec![1];
        request.extend_from_slice(pdu);
        slave.handle(&request, &mut ctx, &mut replies).unwrap();
        replies
            .frames()
            .first()
            .map(|r| r[1..].to_vec())
            .unwrap_or_default()
    }

    fn word(reply: &[u8], i: usize) -> u16 {
        u16::from_be_bytes([reply[2 + 2 * i], reply[3 + 2 * i]])
    }

    #[test]
    fn pv_watts_are_volts_times_amps_low_word_first() {
        let mut slave = controller();
        let volts = f64::from(word(&ask(&mut slave, &[0x04, 0x31, 0x00, 0x00, 0x01]), 0)) / 100.0;
        let amps = f64::from(word(&ask(&mut slave, &[0x04, 0x31, 0x01, 0x00, 0x01]), 0)) / 100.0;
        let reply = ask(&mut slave, &[0x04, 0x31, 0x02, 0x00, 0x02]);
        let watts =
            f64::from(u32::from(word(&reply, 1)) << 16 | u32::from(word(&reply, 0))) / 100.0;
        assert!(watts > 100.0, "{watts}");
        assert!(
            (watts - volts * amps).abs() <= 0.02 * watts,
            "{watts} {volts} {amps}"
        );
    }

    #[test]
    fn the_rtc_shows_the_simulated_clock_and_a_client_can_set_it() {
        let mut slave = controller();
        let reply = ask(&mut slave, &[0x03, 0x90, 0x13, 0x00, 0x03]);
        // 2026-06-21 12:00:00: second 0 + minute 0, hour 12 + day 21, month 6 + year 26.
        assert_eq!(
            [word(&reply, 0), word(&reply, 1), word(&reply, 2)],
            [0, 12 | 21 << 8, 6 | 26 << 8]
        );
        // set_rtc(2030-01-02 03:04:05) with FC 16.
        let [a, b, c] = [5 | 4 << 8, 3 | 2 << 8, 1 | 30 << 8u16];
        let mut write = vec![0x10, 0x90, 0x13, 0x00, 0x03, 0x06];
        for w in [a, b, c] {
            write.extend_from_slice(&u16::to_be_bytes(w));
        }
        assert_eq!(ask(&mut slave, &write), [0x10, 0x90, 0x13, 0x00, 0x03]);
        let reply = ask(&mut slave, &[0x03, 0x90, 0x13, 0x00, 0x03]);
        assert_eq!(
            [word(&reply, 0), word(&reply, 1), word(&reply, 2)],
            [a, b, c]
        );
    }

    #[test]
    fn codes_outside_the_document_answer_01_and_unknown_addresses_02() {
        let mut slave = controller();
        assert_eq!(
            ask(&mut slave, &[0x06, 0x90, 0x01, 0x00, 0x64]),
            [0x86, ExceptionCode::IllegalFunction.code()]
        );
        assert_eq!(
            ask(&mut slave, &[0x04, 0x31, 0x03, 0x00, 0x02])[0],
            0x04,
            "inside PV power"
        );
        assert_eq!(
            ask(&mut slave, &[0x04, 0x31, 0x08, 0x00, 0x01]),
            [0x84, 0x02]
        );
        assert_eq!(
            ask(&mut slave, &[0x02, 0x20, 0x0C, 0x00, 0x01]),
            [0x02, 0x01, 0x00],
            "day"
        );
        let mut out = Vec::new();
        let outcome = slave.unit_mut().answer(
            &[0x2B, 0x0E, 0x01, 0x00],
            Delivery::Addressed,
            Duration::ZERO,
            &mut out,
        );
        assert_eq!(outcome, Outcome::Exception(ExceptionCode::IllegalFunction));
    }

    #[test]
    fn set_points_take_an_fc16_write_of_twelve() {
        let mut slave = controller();
        let mut write = vec![0x10, 0x90, 0x03, 0x00, 0x0C, 24];
        for k in 0..12u16 {
            write.extend_from_slice(&(1500 - 40 * k).to_be_bytes());
        }
        assert_eq!(ask(&mut slave, &write), [0x10, 0x90, 0x03, 0x00, 0x0C]);
        let reply = ask(&mut slave, &[0x03, 0x90, 0x03, 0x00, 0x0C]);
        for k in 0..12 {
            assert_eq!(word(&reply, k), 1500 - 40 * u16::try_from(k).unwrap());
        }
    }

    #[test]
    fn keys_move_the_plant() {
        let mut slave = controller();
        let mut ctx = Context::for_test(SimClock::at_unix(NOON, 0.0));
        slave.set("irradiance", "0", &mut ctx).unwrap();
        assert_eq!(
            word(&ask(&mut slave, &[0x04, 0x31, 0x01, 0x00, 0x01]), 0),
            0
        );
        assert_eq!(
            ask(&mut slave, &[0x02, 0x20, 0x0C, 0x00, 0x01]),
            [0x02, 0x01, 0x01],
            "night"
        );
        slave.set("soc", "12", &mut ctx).unwrap();
        assert_eq!(
            word(&ask(&mut slave, &[0x04, 0x31, 0x1A, 0x00, 0x01]), 0),
            12
        );
        assert!(slave.set("soc", "120", &mut ctx).is_err());
        assert!(
            slave
                .set("volts", "1", &mut ctx)
                .unwrap_err()
                .contains("irradiance")
        );
    }

    #[test]
    fn the_example_builds_and_bad_settings_are_placed() {
        let table = EXAMPLE.split_once("[device.epever]").unwrap().1;
        let built = build(&Build::new(Table::parse(table).unwrap())).unwrap();
        assert_eq!(built[0].line.baud, Some(115_200));
        let e = build(&Build::new(Table::parse("soc = 101.0\n").unwrap())).unwrap_err();
        assert_eq!(e.at, Some(6..11));
        assert!(e.reason.contains("`soc` must be from 0 to 100"), "{e}");
    }
}
