//! An Eastron SDM630 (three-phase) or SDM120 (single-phase) energy meter on Modbus RTU, as the
//! `sdm-modbus` client and any Modbus master read it (`model = "sdm"`).
//!
//! The meter is a unit of the generic slave ([`Slave`]) whose map is filled from the client's
//! own register tables (`map`) and whose input registers read a simulated circuit
//! (`plant`): a load following a daily profile over the fleet's simulated clock, so that its
//! power is its voltage times its current times its power factor on every phase and its
//! import energy is the integral of that power. `set <port>/<unit> load_w <W>` moves the load.
//!
//! What a real meter does that shapes the emulation:
//! - Eastron's protocol document lists function codes 03, 04 and 16 only: anything else gets
//!   exception 01.
//! - Every value is a float32, high word first (ABCD). Reads may span the gaps between
//!   values (sdm-modbus' `read_all` reads 80 registers from 0 in one request): gaps read 0.
//! - It leaves the factory at 9600 baud 8N1 (SDM630) or 2400 baud 8N1 (SDM120), unit 1, as
//!   Eastron's manuals and sdm-modbus' defaults agree.
//! - Holding registers that would move the line or the address if written (`meter_id`,
//!   `baud`, `network_parity_stop`) are read-only here, as are the rated values: a write
//!   answers 02 rather than changing a number the emulated line does not follow.

mod map;
mod plant;

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_spanned::Spanned;
use serialtwin_core::{BoxDevice, Bus, CharFormat, LineConfig, Route, Settable};

use crate::modbus::bound::{Reading, Shared};
use crate::modbus::data::{Encoding, Kind, Value};
use crate::modbus::rtu;
use crate::modbus::slave::{Knobs, MAX_ADDRESS, Slave, address_in_config, factory_line, route};
use crate::modbus::tcp::TcpGateway;
use crate::modbus::unit::{Access, Gaps, Settings, Unit};
use crate::registry::{self, Build, BuildError, Built, BusUnit, Model};

use self::map::Holding;
use self::plant::MeterPlant;

/// The registry's entry for Eastron meters.
pub static MODEL: Model = Model {
    name: "sdm",
    summary: "an Eastron SDM630 (three-phase) or SDM120 energy meter on Modbus RTU, as \
              sdm-modbus reads it: a seeded load over the simulated clock; 9600 or 2400 8N1",
    table: "sdm",
    example: EXAMPLE,
    framings: &[],
    groups: false,
    // Every value is in closed form of the time: any clock speed.
    max_clock_speed: f64::INFINITY,
    settable,
    lint: registry::no_lint,
    build,
    units: &[
        BusUnit {
            name: "sdm630",
            summary: "an Eastron SDM630 three-phase energy meter (9600 8N1)",
            line: || Meter::Sdm630.line(),
            build: |id, seed| {
                Meter::Sdm630.unit(id, &MeterConfig::defaults(Meter::Sdm630, seed), seed)
            },
        },
        BusUnit {
            name: "sdm120",
            summary: "an Eastron SDM120 single-phase energy meter (2400 8N1)",
            line: || Meter::Sdm120.line(),
            build: |id, seed| {
                Meter::Sdm120.unit(id, &MeterConfig::defaults(Meter::Sdm120, seed), seed)
            },
        },
    ],
};

const EXAMPLE: &str = r#"[[device]]
name = "meter"
model = "sdm"
link = "/tmp/serialtwin/ttyUSB-sdm630"  # python: sdm_modbus.SDM630(device=..., parity="N")

[device.sdm]              # every key optional
meter = "sdm630"          # or "sdm120" (single phase, 2400 baud)
unit = 1                  # its Modbus address, 1-247
load_w = 4000.0           # the load's mean active power (W); swings ±25 % over the day
import_kwh = 1520.25      # the import register when the clock starts (default: from the seed)
"#;

/// The meters this model emulates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Meter {
    /// Three phases, 9600 baud.
    #[default]
    Sdm630,
    /// One phase, 2400 baud.
    Sdm120,
}

impl Meter {
    fn name(self) -> &'static str {
        match self {
            Meter::Sdm630 => "SDM630",
            Meter::Sdm120 => "SDM120",
        }
    }

    fn phases(self) -> usize {
        match self {
            Meter::Sdm630 => 3,
            Meter::Sdm120 => 1,
        }
    }

    /// The factory line (Eastron's manuals; sdm-modbus' `baud` defaults agree).
    fn line(self) -> LineConfig {
        match self {
            Meter::Sdm630 => factory_line(9600, CharFormat::N81),
            Meter::Sdm120 => factory_line(2400, CharFormat::N81),
        }
    }

    /// The factory baud rate as the `baud` holding register codes it (sdm-modbus' lists).
    fn baud_code(self) -> f64 {
        match self {
            Meter::Sdm630 => 2.0, // [2400, 4800, 9600, 19200, 38400]
            Meter::Sdm120 => 0.0, // [2400, 4800, 9600, -1, -1, 1200]
        }
    }

    fn input(self) -> &'static [(u16, &'static str, plant::Quantity)] {
        match self {
            Meter::Sdm630 => map::SDM630_INPUT,
            Meter::Sdm120 => map::SDM120_INPUT,
        }
    }

    fn holding(self) -> &'static [(u16, &'static str, Holding)] {
        match self {
            Meter::Sdm630 => map::SDM630_HOLDING,
            Meter::Sdm120 => map::SDM120_HOLDING,
        }
    }

    /// The meter at address `id`, its circuit as `config` says and drawn from `seed`.
    fn unit(self, id: u8, config: &MeterConfig, seed: u64) -> Slave {
        let plant = Shared::new(MeterPlant::new(
            self.phases(),
            config.load_w,
            config.import_kwh,
            seed,
        ));
        let settings = Settings {
            gaps: Gaps::Zero,
            // Eastron's protocol document: 03, 04 and 16.
            functions: Some(BTreeSet::from([0x03, 0x04, 0x10])),
            server_id: self.name().as_bytes().to_vec(),
            identification: [
                (0x00, b"Eastron".to_vec()),
                (0x01, self.name().as_bytes().to_vec()),
                (0x02, b"1.0".to_vec()),
            ]
            .into(),
            ..Settings::default()
        };
        let mut unit = Unit::new(settings).unwrap_or_default();
        let float = Encoding::new(Kind::F32);
        let mut last_input = 0;
        for &(address, _, quantity) in self.input() {
            // The tables hold distinct, non-overlapping addresses (a unit test checks), so a
            // declaration cannot fail.
            let _ = unit
                .input
                .set_provider(address, float, Reading::boxed(&plant, quantity));
            last_input = last_input.max(address + 1);
        }
        unit.input.set_extent(0..=last_input);
        let mut last_holding = 0;
        for &(address, name, holding) in self.holding() {
            let (value, access) = self.holding_value(name, id, seed);
            let encoding = match holding {
                Holding::F32 => float,
                Holding::U32 => Encoding::new(Kind::U32),
            };
            let _ = unit.holding.set_value(address, &encoding, &value, access);
            last_holding = last_holding.max(address + 1);
        }
        unit.holding.set_extent(0..=last_holding);
        let slave = Slave::new(id.clamp(1, MAX_ADDRESS), unit)
            .unwrap_or_else(|_| unreachable!("address clamped to 1-247"));
        slave.with_knobs(Box::new(MeterKnobs { plant }))
    }

    /// A holding register's factory value, and whether a client may change it.
    fn holding_value(self, name: &str, id: u8, seed: u64) -> (Value, Access) {
        use Access::{ReadOnly, ReadWrite};
        let f = Value::Float;
        match name {
            "demand_period" => (f(60.0), ReadWrite),
            "system_voltage" => (f(plant::NOMINAL_VOLTS), ReadOnly),
            "system_current" => (f(100.0), ReadOnly),
            "system_type" => (f(3.0), ReadWrite), // 3P4W
            "relay_pulse_width" => (f(100.0), ReadWrite),
            "meter_id" => (f(f64::from(id)), ReadOnly),
            "baud" => (f(self.baud_code()), ReadOnly),
            "system_power" => (f(3.0 * plant::NOMINAL_VOLTS * 100.0), ReadOnly),
            // P1 output: import energy; measurement: total imported.
            "p1_output_mode" | "measurement_mode" => (f(1.0), ReadWrite),
            "display_scroll_timing" => (f(5.0), ReadWrite),
            "serial_number" => (
                Value::Int(i128::from(20_000_000 + seed % 1_000_000)),
                ReadOnly,
            ),
            "software_version" => (f(1.0), ReadOnly),
            // Parity N-1, the P1 divisor, the indicator mode and the demand time start at 0;
            // only the first cannot be written (it would move the line).
            "network_parity_stop" => (f(0.0), ReadOnly),
            _ => (f(0.0), ReadWrite),
        }
    }
}

/// `[device.sdm]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    meter: Meter,
    unit: Option<Spanned<u32>>,
    load_w: Option<Spanned<f64>>,
    import_kwh: Option<Spanned<f64>>,
}

/// A meter's circuit, as configured.
#[derive(Clone, Copy, Debug)]
struct MeterConfig {
    load_w: f64,
    import_kwh: f64,
}

impl MeterConfig {
    /// The circuit a meter gets when the config says nothing: a household's mean load, and an
    /// import register a meter in service for a few years shows (from `seed`).
    fn defaults(meter: Meter, seed: u64) -> Self {
        let years = fastrand::Rng::with_seed(seed ^ 0x5D4D).f64();
        Self {
            load_w: match meter {
                Meter::Sdm630 => 4000.0,
                Meter::Sdm120 => 800.0,
            },
            import_kwh: (500.0 + 9000.0 * years).round(),
        }
    }
}

/// The largest load a setting takes (W): well past any meter's rating, short of nonsense.
const MAX_LOAD_W: f64 = 1.0e6;

fn load(x: f64) -> Result<f64, String> {
    if x.is_finite() && (0.0..=MAX_LOAD_W).contains(&x) {
        Ok(x)
    } else {
        Err(format!("a load is from 0 to {MAX_LOAD_W} W, not {x}"))
    }
}

/// The unit's keys, as a port (a bus of one unit) takes them: `set <port>/<unit> <key>`.
fn settable() -> Vec<Settable> {
    MeterKnobs {
        plant: Shared::new(MeterPlant::new(1, 0.0, 0.0, 0)),
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
    let check = |value: &Option<Spanned<f64>>, what: &str, max: f64| {
        value
            .as_ref()
            .map(|v| {
                let x = *v.get_ref();
                if x.is_finite() && (0.0..=max).contains(&x) {
                    Ok(x)
                } else {
                    Err(BuildError::at(
                        v.span(),
                        format!("`{what}` must be from 0 to {max}, not {x}"),
                    ))
                }
            })
            .transpose()
    };
    let load_w = check(&raw.load_w, "load_w", MAX_LOAD_W)?;
    // float32 keeps about 7 digits: past 10 GWh an energy counter no longer moves by the Wh.
    let import_kwh = check(&raw.import_kwh, "import_kwh", 1.0e7)?;
    let framing = b.framing.clone().unwrap_or_else(rtu::framing);
    let line = raw.meter.line();
    Ok((0..b.count)
        .map(|copy| {
            let seed = b.port_seed(copy);
            let defaults = MeterConfig::defaults(raw.meter, seed);
            let config = MeterConfig {
                load_w: load_w.unwrap_or(defaults.load_w),
                import_kwh: import_kwh.unwrap_or(defaults.import_kwh),
            };
            let router: fn(&[u8]) -> Route = route;
            let bus = Bus::new(router, framing.clone(), line)
                .with(u32::from(id), raw.meter.unit(id, &config, seed));
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

/// The meter's run-time keys: its load.
#[derive(Debug)]
struct MeterKnobs {
    plant: Shared<MeterPlant>,
}

impl Knobs for MeterKnobs {
    fn set(
        &mut self,
        key: &str,
        value: &str,
        _epoch: std::time::SystemTime,
        now: std::time::Duration,
    ) -> Result<(), String> {
        match key {
            "load_w" => {
                let x = value
                    .parse::<f64>()
                    .map_err(|_| format!("load_w is a number of watts, not {value:?}"))?;
                self.plant.lock().set_load(load(x)?, now);
                Ok(())
            }
            _ => Err(format!("a meter has no {key:?}: its key is load_w")),
        }
    }

    fn settable(&self) -> Vec<Settable> {
        vec![Settable::new(
            "load_w",
            "<W>: the load's mean active power from now on (it still swings ±25 % over the \
             day); the energy registers integrate it",
        )]
    }
}

#[cfg(test)]
#[expect(
    clippy::float_cmp,
    reason = "exact values: zeros, and floats that encode exactly"
)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use serialtwin_core::{Context, Device};

    use super::*;
    use crate::modbus::unit::{Delivery, Outcome};
    use crate::registry::Table;

    fn read(slave: &mut Slave, pdu: &[u8], secs: u64) -> (Outcome, Vec<u8>) {
        let mut out = Vec::new();
        let outcome = slave.unit_mut().answer(
            pdu,
            Delivery::Addressed,
            Duration::from_secs(secs),
            &mut out,
        );
        (outcome, out)
    }

    fn float_at(reply: &[u8], register: usize) -> f32 {
        let at = 2 + 2 * register;
        f32::from_be_bytes([reply[at], reply[at + 1], reply[at + 2], reply[at + 3]])
    }

    #[test]
    fn the_maps_hold_distinct_addresses_two_registers_apart() {
        for meter in [Meter::Sdm630, Meter::Sdm120] {
            let mut seen = BTreeSet::new();
            for &(address, name, _) in meter.input() {
                assert!(seen.insert(address) && seen.insert(address + 1), "{name}");
            }
            let mut seen = BTreeSet::new();
            for &(address, name, _) in meter.holding() {
                assert!(seen.insert(address) && seen.insert(address + 1), "{name}");
            }
        }
        assert_eq!(map::SDM630_INPUT.len(), 90);
        assert_eq!(map::SDM120_INPUT.len(), 22);
    }

    #[test]
    fn reads_span_gaps_and_floats_are_high_word_first() {
        let config = MeterConfig::defaults(Meter::Sdm630, 5);
        let mut slave = Meter::Sdm630.unit(1, &config, 5);
        // read_all's first batch: 80 registers from 0, across the gaps at 0x2C and 0x32.
        let (outcome, reply) = read(&mut slave, &[0x04, 0x00, 0x00, 0x00, 0x50], 60);
        assert_eq!(outcome, Outcome::Normal);
        assert_eq!(reply[1], 160);
        let volts = float_at(&reply, 0);
        assert!((207.0..=253.0).contains(&volts), "{volts}");
        // 0x2C (between L-N voltage and current) is a gap: zero.
        assert_eq!(float_at(&reply, 0x2C), 0.0);
        let (p, v, i, pf) = (
            float_at(&reply, 0x0C),
            float_at(&reply, 0x00),
            float_at(&reply, 0x06),
            float_at(&reply, 0x1E),
        );
        assert!((p - v * i * pf).abs() <= 0.001 * p, "{p} {v} {i} {pf}");
        // Past the map: 02.
        let (outcome, _) = read(&mut slave, &[0x04, 0x01, 0x7C, 0x00, 0x04], 60);
        assert_eq!(
            outcome,
            Outcome::Exception(crate::modbus::unit::ExceptionCode::IllegalDataAddress)
        );
    }

    #[test]
    fn function_codes_eastron_does_not_list_answer_01() {
        let config = MeterConfig::defaults(Meter::Sdm120, 0);
        let mut slave = Meter::Sdm120.unit(1, &config, 0);
        for pdu in [
            &[0x01, 0x00, 0x00, 0x00, 0x01][..],
            &[0x06, 0x00, 0x02, 0x00, 0x1E],
            &[0x08, 0x00, 0x00, 0x12, 0x34],
            &[0x2B, 0x0E, 0x01, 0x00],
        ] {
            let (outcome, reply) = read(&mut slave, pdu, 0);
            assert_eq!(
                outcome,
                Outcome::Exception(crate::modbus::unit::ExceptionCode::IllegalFunction),
                "{pdu:02x?}"
            );
            assert_eq!(reply, [pdu[0] | 0x80, 0x01]);
        }
        // FC 16 to the demand period (writable), then FC 3 reads it back.
        let (outcome, _) = read(
            &mut slave,
            &[0x10, 0x00, 0x02, 0x00, 0x02, 0x04, 0x41, 0xF0, 0x00, 0x00],
            0,
        );
        assert_eq!(outcome, Outcome::Normal);
        let (_, reply) = read(&mut slave, &[0x03, 0x00, 0x02, 0x00, 0x02], 0);
        assert_eq!(float_at(&reply, 0), 30.0);
        // The meter id cannot be written: it would move the address.
        let (outcome, _) = read(
            &mut slave,
            &[0x10, 0x00, 0x14, 0x00, 0x02, 0x04, 0x40, 0x00, 0x00, 0x00],
            0,
        );
        assert_eq!(
            outcome,
            Outcome::Exception(crate::modbus::unit::ExceptionCode::IllegalDataAddress)
        );
    }

    #[test]
    fn the_load_key_moves_the_meter() {
        let built = build(&Build::new(
            Table::parse("meter = 'sdm120'\nload_w = 1000.0\n").unwrap(),
        ))
        .unwrap();
        assert_eq!(built[0].line.baud, Some(2400));
        let config = MeterConfig {
            load_w: 1000.0,
            import_kwh: 5.0,
        };
        let mut slave = Meter::Sdm120.unit(1, &config, 0);
        let mut ctx = Context::for_test(serialtwin_core::SimClock::at_unix(0, 0.0));
        slave.set("load_w", "0", &mut ctx).unwrap();
        assert!(
            slave
                .set("load_w", "-3", &mut ctx)
                .unwrap_err()
                .contains("from 0")
        );
        assert!(
            slave
                .set("volts", "3", &mut ctx)
                .unwrap_err()
                .contains("load_w")
        );
        let (_, reply) = read(&mut slave, &[0x04, 0x00, 0x0C, 0x00, 0x02], 100);
        assert_eq!(float_at(&reply, 0), 0.0);
    }

    #[test]
    fn bad_settings_are_refused_where_they_are() {
        for (text, expected, at) in [
            ("unit = 0\n", "from 1 to 247, not 0", 7..8),
            ("load_w = -1.0\n", "`load_w` must be from 0", 9..13),
            ("meter = 'sdm72'\n", "unknown variant", 8..15),
            ("colour = 1\n", "unknown field", 0..6),
        ] {
            let e = build(&Build::new(Table::parse(text).unwrap())).unwrap_err();
            assert!(e.reason.contains(expected), "{text}: {e}");
            assert_eq!(e.at, Some(at), "{text}");
        }
    }

    #[test]
    fn the_example_builds() {
        let table = EXAMPLE.split_once("[device.sdm]").unwrap().1;
        let built = build(&Build::new(Table::parse(table).unwrap())).unwrap();
        assert_eq!(built[0].line.baud, Some(9600));
        assert_eq!(built[0].line.format, Some(CharFormat::N81));
    }
}
