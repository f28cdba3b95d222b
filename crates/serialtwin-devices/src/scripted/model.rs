//! The scripted model's registry entry: `[device.script]` compiled once, one device per copy.

use std::sync::Arc;

use serialtwin_core::Settable;

use super::{Script, ScriptConfig, Scripted};
use crate::registry::{self, Build, BuildError, Built, Model};

/// The `scripted` model.
pub static MODEL: Model = Model {
    name: "scripted",
    summary: "a dialogue written in the config: exact, normalised (as replay) or regex requests, \
              reply templates, state, sequences, delays, raw bytes (CRLF lines unless `framing` says otherwise)",
    table: "script",
    example: EXAMPLE,
    framings: &[],
    groups: false,
    max_clock_speed: f64::INFINITY,
    settable,
    lint: registry::no_lint,
    build,
    units: &[],
};

const EXAMPLE: &str = r#"[[device]]
name = "meter"
model = "scripted"
link = "/tmp/serialtwin/ttyUSB-meter"
framing = "crlf"                    # any framing by name (default: CRLF lines)

[device.script]
default = "ERR"                     # anything no rule matches (leave out for silence)
match = "exact"                     # or "normalised": requests compared as replay does
state = { volts = "0.000" }         # named values: {volts} in templates, `set` at run time

[[device.script.rule]]
request = "*IDN?"                   # the exact request, without the framing's terminator
reply = "ACME,METER-1,12345,1.0"

[[device.script.rule]]
regex = 'VOLT (?<v>\d+\.\d{3})'     # the whole request; captures are {1} or {name}
set = { volts = "{v}" }
reply = "OK"

[[device.script.rule]]
request = "VOLT?"
reply = "{volts}"
"#;

/// A script's keys are its state values, whatever the config declares.
fn settable() -> Vec<Settable> {
    vec![Settable::new(
        "<state>",
        "a state value the script declares in `state` (escapes allowed)",
    )]
}

fn build(b: &Build<'_>) -> Result<Vec<Built>, BuildError> {
    let Some(config) = b.table.deserialize::<ScriptConfig>()? else {
        return Err(
            b.device_error("model `scripted` needs its dialogue in a [device.script] table")
        );
    };
    let script = Script::compile(&config).map_err(|e| match e.span.clone() {
        Some(at) => BuildError::at(at, e.to_string()),
        None => b.error(&[], e.to_string()),
    })?;
    let script = Arc::new(script);
    Ok((0..b.count)
        .map(|_| {
            let device = Scripted::new(Arc::clone(&script));
            Built::new(match &b.framing {
                Some(framing) => device.with_framing(framing.clone()),
                None => device,
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Table;

    #[test]
    fn the_example_builds() {
        let doc = toml::de::DeTable::parse(EXAMPLE).unwrap().into_inner();
        let device = doc["device"].get_ref().as_array().unwrap()[0].get_ref();
        let table = Table::new(device.get("script").unwrap().clone());
        let mut b = Build::new(table);
        b.count = 2;
        b.framing = crate::framing_by_name("lf");
        let built = build(&b).unwrap();
        assert_eq!(built.len(), 2);
        assert_eq!(built[1].framing.name(), "lf");
    }

    #[test]
    fn errors_point_at_the_value() {
        let e = build(&Build::new(Table::absent())).unwrap_err();
        assert!(e.reason.contains("needs its dialogue"), "{e}");
        let text = "rule = [{ request = 'A', reply = 'hi {name}' }]\n";
        let e = build(&Build::new(Table::parse(text).unwrap())).unwrap_err();
        assert_eq!(e.at, Some(33..44), "{e}");
        // A `match` nobody knows: at its value, naming the ones there are.
        let text = "default = 'x'\nmatch = 'fuzzy'\n";
        let e = build(&Build::new(Table::parse(text).unwrap())).unwrap_err();
        assert_eq!(e.at, Some(22..29), "{e}");
        assert!(e.reason.contains("expected `exact` or `normalised`"), "{e}");
    }
}
