//! The `scpi` model through the real `serialtwin`, driven by pyvisa 1.16 with pyvisa-py 0.8
//! (pinned in a venv of their own) on the real pty as `ASRL<link>::INSTR`: a measurement
//! script against an instrument whose config is generated anew for each run (limits,
//! defaults, decimals, suffixes, queue depth), every property reached by short, long and
//! mixed-case forms. Also: `models` lists it and `check` points at a bad property.

mod common;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{leftovers, run_to_end, start_config, work_dir, write_config};
use nix::sys::signal::Signal;
use serde_json::{Value, json};

/// The whole pyvisa script's safety net (it takes seconds; the venv is made before).
const PYTHON_PATIENCE: Duration = Duration::from_mins(3);

/// A small deterministic generator (xorshift64*), seeded per run and printed on failure, so a
/// failing config can be made again.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A whole number in `lo..=hi`.
    fn int(&mut self, lo: i32, hi: i32) -> i32 {
        let span = u64::from((hi - lo + 1).unsigned_abs());
        lo + i32::try_from(self.next() % span).unwrap()
    }
}

/// This run's instrument: `[device.scpi]` as TOML, and the same as JSON for the script.
fn instrument(rng: &mut Rng) -> (String, Value) {
    let volts_max = rng.int(5, 60);
    let volts_min = -rng.int(0, 10);
    let amps_max = rng.int(1, 10);
    let props = json!([
        {
            "name": "voltage", "header": "[SOURce:]VOLTage[:LEVel]", "kind": "number",
            "min": f64::from(volts_min), "max": f64::from(volts_max),
            "default": f64::from(rng.int(0, volts_max * 4)) / 4.0,
            "unit": "V", "decimals": rng.int(2, 4),
        },
        {
            "name": "current", "header": "[SOURce:]CURRent[:LEVel][:IMMediate][:AMPLitude]",
            "kind": "number", "min": 0.0, "max": f64::from(amps_max),
            "default": f64::from(rng.int(0, amps_max * 10)) / 10.0,
            "unit": "A", "decimals": rng.int(1, 4),
        },
        {
            "name": "output", "header": "OUTPut#[:STATe]", "kind": "boolean",
            "suffixes": rng.int(2, 4), "default": false,
        },
        {
            "name": "function", "header": "[SOURce:]FUNCtion[:SHAPe]", "kind": "choice",
            "choices": ["SINusoid", "SQUare", "RAMP", "TRIangle"], "default": "SINusoid",
        },
        {
            "name": "temperature", "header": "MEASure:TEMPerature", "kind": "number",
            "read_only": true, "min": -40.0, "max": 125.0, "default": 25.0,
            "unit": "CEL", "decimals": 1,
        },
    ]);
    let idn = format!(
        "ACME,SRC-{},SN{:05},1.{}",
        rng.int(1, 9),
        rng.int(0, 99_999),
        rng.int(0, 9)
    );
    let depth = rng.int(5, 20);
    let mut toml = format!("idn = {idn:?}\nerror_queue = {depth}\n");
    for p in props.as_array().unwrap() {
        toml.push_str("\n[[device.scpi.property]]\n");
        for (key, value) in p.as_object().unwrap() {
            let value = match value {
                Value::Number(n) if n.is_f64() => format!("{:?}", n.as_f64().unwrap()),
                other => other.to_string(),
            };
            writeln!(toml, "{key} = {value}").unwrap();
        }
    }
    let spec = json!({"idn": idn, "error_queue": depth, "property": props});
    (toml, spec)
}

/// A config with one instrument at `dir/ttyUSB-scpi`.
fn config(dir: &Path, name: &str, table: &str) -> PathBuf {
    write_config(
        dir,
        name,
        &format!(
            "[[device]]\nname = \"inst\"\nmodel = \"scpi\"\nlink = \"{}/ttyUSB-scpi\"\n\n\
             [device.scpi]\n{table}",
            dir.display()
        ),
    )
}

#[test]
fn pyvisa_runs_a_measurement_script_against_a_generated_instrument() {
    let python =
        common::python::venv_of("tests/python/pyvisa.txt", "pyenv-pyvisa").join("bin/python");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let seed = (now.as_secs() ^ (u64::from(now.subsec_nanos()) << 32)) | 1;
    let mut rng = Rng(seed);
    let (table, spec) = instrument(&mut rng);
    let dir = work_dir("scpi");

    // `models` lists it.
    let out = run_to_end(&dir, &["models", "scpi"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("[device.scpi]"), "{stdout}");

    let good = config(&dir, "scpi.toml", &table);
    let out = run_to_end(&dir, &["check", good.to_str().unwrap()]);
    assert!(out.status.success(), "seed {seed}: {out:?}\n{table}");

    let (run, socket) = start_config(&dir, &good);
    assert_eq!(run.ports[0]["model"], "scpi");
    let link = run.links()[0].clone();
    let out = common::output_within_for(
        Command::new(&python)
            .arg("-c")
            .arg(include_str!("scpi/measure.py"))
            .arg(&link)
            .arg(spec.to_string())
            .arg(seed.to_string())
            .arg(common::bin())
            .arg(&socket)
            .stderr(Stdio::piped()),
        PYTHON_PATIENCE,
    );
    let stderr = run.stderr();
    let (status, extra) = run.stop_with(Signal::SIGTERM);
    common::python_checks(&out, &format!("pyvisa (seed {seed})\n{table}"), 11, &stderr);
    assert!(status.success() && extra.is_empty(), "{status:?} {extra:?}");
    assert!(std::fs::symlink_metadata(&link).is_err(), "link removed");
    assert_eq!(leftovers(&dir), Vec::<PathBuf>::new());
}

#[test]
fn check_points_at_a_bad_property() {
    let dir = work_dir("scpi-check");
    for (i, (table, line, col, reason)) in [
        (
            "[[device.scpi.property]]\nname = 'v'\nheader = 'VOLTage[:LEV'\nkind = 'number'\nmin = 0\nmax = 1\n",
            9,
            10,
            "unbalanced",
        ),
        (
            "[[device.scpi.property]]\nname = 'v'\nheader = 'VOLT'\nkind = 'number'\nmin = 0\nmax = 1\ndefault = 5\n",
            13,
            11,
            "`default` must be a number between",
        ),
        (
            "[[device.scpi.property]]\nname = 'o'\nheader = 'OUTP'\nkind = 'switch'\n",
            10,
            8,
            "unknown variant `switch`",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let bad = config(&dir, &format!("bad{i}.toml"), table);
        let bad = bad.to_str().unwrap();
        let out = run_to_end(&dir, &["check", bad]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        let prefix = format!("error: {bad}:{line}:{col}: ");
        assert!(
            stderr.starts_with(&prefix) && stderr.contains(reason),
            "want {prefix:?} and {reason:?}: {stderr}"
        );
    }
    assert_eq!(leftovers(&dir), Vec::<PathBuf>::new());
}

/// The line of `text` that starts with `prefix`, without it.
fn line_after<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no line starting {prefix:?} in:\n{text}"))
}

#[test]
fn the_shipped_example_answers_the_readme_command() {
    let python =
        common::python::venv_of("tests/python/pyvisa.txt", "pyenv-pyvisa").join("bin/python");
    let dir = work_dir("scpi-example");
    let example = std::fs::read_to_string(common::workspace().join("examples/scpi.toml")).unwrap();
    // The client command the example and the README give, and what it prints.
    let command = line_after(&example, "#   python3 -c '")
        .strip_suffix('\'')
        .unwrap();
    let prints = line_after(&example, "# which prints ");
    let readme = std::fs::read_to_string(common::workspace().join("README.md")).unwrap();
    assert!(
        readme.contains(command),
        "README gives the example's command"
    );
    let link = dir.join("ttyUSB-scpi");
    let text = example.replace("/tmp/serialtwin/ttyUSB-scpi", link.to_str().unwrap());
    let config = write_config(&dir, "scpi.toml", &text);
    let (run, _) = start_config(&dir, &config);
    let script = command.replace("/tmp/serialtwin/ttyUSB-scpi", link.to_str().unwrap());
    let out = common::output_within_for(
        Command::new(&python)
            .arg("-c")
            .arg(&script)
            .stderr(Stdio::piped()),
        PYTHON_PATIENCE,
    );
    let stderr = run.stderr();
    let (status, extra) = run.stop_with(Signal::SIGTERM);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim_end(),
        prints,
        "{}\n{stderr}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(status.success() && extra.is_empty(), "{status:?} {extra:?}");
    assert_eq!(leftovers(&dir), Vec::<PathBuf>::new());
}
