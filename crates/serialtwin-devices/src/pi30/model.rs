//! PI30's entry in the model registry: `[device.pi30]` to units, parallel groups, and the
//! link paths mppsolar misreads.

use serialtwin_core::{Device as _, Settable};

use super::{ConfigError, CrcVariant, Pi30, Pi30Config, clients, framing_for};
use crate::registry::{Build, BuildError, Built, Finding, Lint, Model, NamedFraming};

/// The `pi30` model.
pub static MODEL: Model = Model {
    name: "pi30",
    summary: "Voltronic PI30/PI30MAX solar inverter (Axpert, MPP-Solar, EASUN): 2400 baud, \
              CR + CRC frames, a simulated plant, parallel groups",
    table: "pi30",
    example: EXAMPLE,
    framings: &[
        NamedFraming {
            name: "pi30",
            summary: "CR-terminated frames; replies carry a CRC escaped as mppsolar checks it",
            make: mppsolar_crc,
            unknown_command: Some(super::NAK),
            describe: None,
            learn: None,
        },
        NamedFraming {
            name: "pi30-mppsolar",
            summary: "the same as pi30",
            make: mppsolar_crc,
            unknown_command: Some(super::NAK),
            describe: None,
            learn: None,
        },
        NamedFraming {
            name: "pi30-reference",
            summary: "CR-terminated frames; replies carry a CRC escaped as Voltronic's \
                      reference code does (NUT, ESPHome pipsolar)",
            make: reference_crc,
            unknown_command: Some(super::NAK),
            describe: None,
            learn: None,
        },
    ],
    groups: true,
    max_clock_speed: super::MAX_CLOCK_SPEED,
    settable,
    lint,
    build,
    units: &[],
};

const EXAMPLE: &str = r#"[[device]]
name = "inverter"
model = "pi30"
link = "/tmp/serialtwin/ttyUSB0"    # mppsolar needs `ttyUSB` or `serial` in the path
# count = 3 with link = ".../ttyUSB{n}" and parallel = true: one parallel group of 3 units

[device.pi30]                       # every key optional: a 5 kVA, 48 V MKS2-5000 by default
variant = "pi30"                    # or "pi30max" (longer QPIGS/QPIRI, energy counters, QLED...)
crc = "mppsolar"                    # the reply CRC's escapes: "mppsolar" or "reference"
unknown_command = "nak"             # or "echo", as some firmware does
serial = "92932004102453"
qpigs_fields = 21                   # 17 or 21 (pi30max: also 24), as firmware differs
battery = { nominal_voltage = 48, capacity_ah = 200.0, initial_soc = 0.8 }
plant = { pv_peak_w = 3000.0, base_load_w = 600.0, grid_present = true }
"#;

fn mppsolar_crc() -> serialtwin_core::Framing {
    framing_for(CrcVariant::Mppsolar)
}

fn reference_crc() -> serialtwin_core::Framing {
    framing_for(CrcVariant::Reference)
}

/// What a default unit takes.
fn settable() -> Vec<Settable> {
    Pi30::new(Pi30Config::default())
        .map(|unit| unit.settable())
        .unwrap_or_default()
}

/// mppsolar, PI30's usual client, picks its transport from the link's path.
fn lint(port: &Lint<'_>) -> Vec<Finding> {
    port.link
        .and_then(|link| clients::warning(&link.to_string_lossy()))
        .map(|message| Finding { message, at: None })
        .into_iter()
        .collect()
}

fn build(b: &Build<'_>) -> Result<Vec<Built>, BuildError> {
    Ok(units(b)?.into_iter().map(Built::new).collect())
}

/// The units of one `[[device]]`: independent copies, or one parallel group.
fn units(b: &Build<'_>) -> Result<Vec<Pi30>, BuildError> {
    let config: Pi30Config = b.table.deserialize()?.unwrap_or_default();
    // At the value the unit rejects when it is written, else at the table.
    let at = |e: &ConfigError| {
        let path: Vec<&str>;
        let key: &[&str] = match e {
            ConfigError::BatteryVoltage(_) => &["battery", "nominal_voltage"],
            ConfigError::FieldCount {
                command: "QPIGS", ..
            } => &["qpigs_fields"],
            ConfigError::FieldCount { .. } => &["qpiri_fields"],
            ConfigError::Text(name) => &[name],
            ConfigError::Number { path: dotted, .. } => {
                path = dotted.split('.').collect();
                &path
            }
            ConfigError::GroupSize { .. } => &[],
        };
        b.error(key, e.to_string())
    };
    if let Some(parallel) = b.parallel.as_ref().filter(|p| *p.get_ref()) {
        // One plant for the group: it gets the first copy's seed.
        let mut config = config;
        config.plant.seed = config.plant.seed.wrapping_add(b.port_seed(0));
        return Pi30::group(config, b.count).map_err(|e| match e {
            ConfigError::GroupSize { .. } => BuildError::at(parallel.span(), e.to_string()),
            e => at(&e),
        });
    }
    // Each copy's plant gets the port's seed on top of the configured one, so copies (and
    // ports given their own `seed`) do not share one load and cloud pattern.
    (0..b.count)
        .map(|i| {
            let mut config = config.clone();
            config.plant.seed = config.plant.seed.wrapping_add(b.port_seed(i));
            Pi30::new(config).map_err(|e| at(&e))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_spanned::Spanned;

    use super::*;
    use crate::registry::Table;

    fn seeds(units: &[Pi30], b: &Build<'_>) -> Vec<(u64, u64)> {
        units
            .iter()
            .enumerate()
            .map(|(i, u)| (b.port_seed(i), u.config().plant.seed))
            .collect()
    }

    #[test]
    fn copies_get_their_own_seed_and_their_own_plant() {
        let mut b = Build::new(Table::parse("[plant]\nseed = 100\n").unwrap());
        b.count = 3;
        b.seed = 10;
        assert_eq!(
            seeds(&units(&b).unwrap(), &b),
            [(10, 110), (11, 111), (12, 112)]
        );
        // A parallel group shares one plant: it gets the first copy's seed.
        let mut b = Build::new(Table::absent());
        b.count = 2;
        b.parallel = Some(Spanned::new(0..4, true));
        assert_eq!(seeds(&units(&b).unwrap(), &b), [(0, 0), (1, 0)]);
        b.count = 11;
        assert_eq!(units(&b).unwrap_err().at, Some(0..4), "at `parallel`");
    }

    #[test]
    fn a_rejected_value_is_pointed_at() {
        let text = "serial = 'a b'\nbattery = { nominal_voltage = 36 }\n";
        let b = Build::new(Table::parse(text).unwrap());
        let e = units(&b).unwrap_err();
        assert_eq!(e.at, Some(45..47), "{e}");
        assert_eq!(
            e.reason,
            "battery nominal voltage must be 12, 24 or 48, not 36"
        );
        let b = Build::new(Table::parse("serial = 'a b'\n").unwrap());
        assert_eq!(units(&b).unwrap_err().at, Some(9..14));
    }

    #[test]
    fn the_example_builds_and_lints_its_link() {
        let doc = toml::de::DeTable::parse(EXAMPLE).unwrap().into_inner();
        let device = doc["device"].get_ref().as_array().unwrap()[0].get_ref();
        let table = Table::new(device.get("pi30").unwrap().clone());
        let built = build(&Build::new(table.clone())).unwrap();
        assert_eq!(built[0].framing.name(), "pi30");
        assert_eq!(built[0].line.baud, Some(2400));
        let lint_of = |path: &str| {
            lint(&Lint {
                link: Some(std::path::Path::new(path)),
                table: &table,
            })
        };
        assert!(lint_of("/tmp/serialtwin/ttyUSB0").is_empty());
        assert!(lint_of("/dev/hidraw0")[0].message.contains("`hidraw`"));
        let keys: Vec<_> = settable().into_iter().map(|s| s.key).collect();
        assert_eq!(keys, ["grid", "soc"]);
    }
}
