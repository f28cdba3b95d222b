//! The `pyvisa-sim` model's registry entry: a pyvisa-sim file and the resource to serve.

use std::sync::Arc;

use serde::Deserialize;
use serialtwin_core::Settable;
use serde_spanned::Spanned;

use super::{SimDevice, eom, load};
use crate::registry::{self, Build, BuildError, Built, Model};
use crate::scripted::{Script, Scripted};

/// The `pyvisa-sim` model.
pub static MODEL: Model = Model {
    name: "pyvisa-sim",
    summary: "the device behind a resource of a pyvisa-sim 0.7.1 YAML file (spec 1.0/1.1): its \
              dialogues, properties (getters, setters, specs), RANDOM replies, error response, \
              status registers, error queues and eom, compiled to a script",
    table: "pyvisa-sim",
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
name = "lsg"
model = "pyvisa-sim"
link = "/tmp/serialtwin/ttyUSB-lsg"

[device.pyvisa-sim]
file = "pyvisa-sim.yaml"            # a pyvisa-sim device file (relative to this config)
resource = "ASRL1::INSTR"           # the resource whose device this port serves
"#;

/// A device's keys are its file's properties.
fn settable() -> Vec<Settable> {
    vec![Settable::new(
        "<property>",
        "a property of the device in the file (converted and checked by its specs)",
    )]
}

/// `[device.pyvisa-sim]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SimConfig {
    /// The pyvisa-sim file, relative to the config file.
    file: Spanned<String>,
    /// The resource (`ASRL1::INSTR`) whose device to serve.
    resource: Spanned<String>,
}

/// The longest device file read: far more than a device takes, and a bound on what a path
/// that keeps giving can make it hold.
const MAX_FILE: u64 = 4 << 20;

fn build(b: &Build<'_>) -> Result<Vec<Built>, BuildError> {
    let Some(config) = b.table.deserialize::<SimConfig>()? else {
        return Err(b.device_error(
            "model `pyvisa-sim` needs `file` and `resource` in a [device.pyvisa-sim] table",
        ));
    };
    if b.framing.is_some() {
        return Err(
            b.device_error("a pyvisa-sim device's eom sets the framing: no `framing` beside it")
        );
    }
    let path = b.resolve(std::path::Path::new(config.file.get_ref()));
    let at_file =
        |why: String| BuildError::at(config.file.span(), format!("{}:{why}", path.display()));
    let bytes = serialtwin_core::input_file::read_regular(&path, MAX_FILE, "a pyvisa-sim file")
        .map_err(|e| at_file(format!(" {e}")))?;
    let text = String::from_utf8(bytes).map_err(|e| at_file(format!(" {e}")))?;
    let loaded = load(&text, config.resource.get_ref()).map_err(|e| at_file(e.to_string()))?;
    let script = Script::compile(&loaded.script)
        .map_err(|e| at_file(format!(" device {:?}: {e}", loaded.device)))?;
    let script = Arc::new(script);
    let framing = eom::framing(&loaded.query_eom, &loaded.reply_eom);
    Ok((0..b.count)
        .map(|_| {
            Built::new(SimDevice::new(
                Scripted::new(Arc::clone(&script)),
                framing.clone(),
                loaded.delimiter.clone(),
            ))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Table;

    fn examples() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
    }

    #[test]
    fn a_resource_of_the_example_file_is_served() {
        let dir = examples();
        let table = Table::parse("file = 'pyvisa-sim.yaml'\nresource = 'ASRL1::INSTR'\n").unwrap();
        let mut b = Build::new(table);
        b.base_dir = Some(&dir);
        b.count = 2;
        let built = build(&b).unwrap();
        assert_eq!(built.len(), 2);
        // The device's `ASRL INSTR` eom frames the port: CR LF in, LF out.
        let framing = built[1].framing.clone();
        assert_eq!(framing.name(), "pyvisa-sim");
        let mut framer = framing.build();
        let mut wire = bytes::BytesMut::from(&b"?IDN\n!CAL\r\n"[..]);
        let request = framer.decode(&mut wire).unwrap().unwrap();
        assert_eq!(&request[..], b"?IDN\n!CAL");
        let mut out = bytes::BytesMut::new();
        framer.encode(b"OK", &mut out).unwrap();
        assert_eq!(&out[..], b"OK\n");
    }

    #[test]
    fn errors_name_the_file_line_and_column() {
        let dir = examples();
        let text = "file = 'pyvisa-sim.yaml'\nresource = 'ASRL9::INSTR'\n";
        let mut b = Build::new(Table::parse(text).unwrap());
        b.base_dir = Some(&dir);
        let e = build(&b).unwrap_err();
        assert_eq!(e.at, Some(7..24), "{e}");
        assert!(
            e.reason.ends_with("pyvisa-sim.yaml:63:3: no resource \"ASRL9::INSTR\" (the file has: ASRL7::INSTR, ASRL1::INSTR, ASRL2::INSTR)"),
            "{e}"
        );
        let text = "file = 'nothing.yaml'\nresource = 'ASRL1::INSTR'\n";
        let mut b = Build::new(Table::parse(text).unwrap());
        b.base_dir = Some(&dir);
        assert!(build(&b).unwrap_err().reason.contains("nothing.yaml"));
        let e = build(&Build::new(Table::absent())).unwrap_err();
        assert!(e.reason.contains("needs `file` and `resource`"), "{e}");
        let mut b = Build::new(Table::parse("file = 'x'\nresource = 'y'\n").unwrap());
        b.framing = crate::framing_by_name("lf");
        assert!(
            build(&b)
                .unwrap_err()
                .reason
                .contains("eom sets the framing")
        );
    }
}
