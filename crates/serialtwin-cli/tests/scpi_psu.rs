//! A model added as one folder and one registry line (`scpi-psu`), seen by the real
//! `serialtwin` with no change to it: `models` lists it, `check` accepts a config using it and
//! points at a bad value, `run` serves it on a pty to pyserial (writing and reading the way
//! pyvisa does), and `ctl set` changes what it measures.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{leftovers, run_to_end, start_config, work_dir, write_config};
use nix::sys::signal::Signal;

/// A config with one power supply at `dir/ttyUSB-psu`, its table's body being `table`.
fn config(dir: &Path, name: &str, table: &str) -> PathBuf {
    write_config(
        dir,
        name,
        &format!(
            "[[device]]\nname = \"psu\"\nmodel = \"scpi-psu\"\nlink = \"{}/ttyUSB-psu\"\n\n\
             [device.scpi-psu]\n{table}",
            dir.display()
        ),
    )
}

/// pyserial at the supply's 9600 baud: each request written with pyvisa's `\r\n`, one reply
/// line read back per query (`?`), printed as Python bytes.
const CLIENT: &str = r"
import sys
from serial import Serial
s = Serial(sys.argv[1], 9600, timeout=10)
for request in sys.argv[2:]:
    s.write(request.encode() + b'\r\n')
    if request.endswith('?'):
        print(repr(s.readline()))
s.close()
";

fn ask(link: &Path, requests: &[&str]) -> String {
    let mut args = vec![link.to_str().unwrap()];
    args.extend_from_slice(requests);
    common::python(CLIENT, &args)
}

fn ctl(socket: &Path, args: &[&str]) -> std::process::Output {
    common::output_within(
        Command::new(common::bin())
            .arg("ctl")
            .arg("--socket")
            .arg(socket)
            .args(args),
    )
}

#[test]
fn a_model_from_the_registry_is_listed_checked_and_served() {
    let dir = work_dir("psu");

    // `serialtwin models` lists it, and describes it from its registry entry.
    let out = run_to_end(&dir, &["models"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.lines().any(|l| l.starts_with("scpi-psu ")),
        "{stdout}"
    );
    let out = run_to_end(&dir, &["models", "scpi-psu"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("[device.scpi-psu]") && stdout.contains("load "),
        "{stdout}"
    );

    // `check` accepts a config using it...
    let good = config(
        &dir,
        "psu.toml",
        "idn = \"ACME,PSU-1,SN001,1.0\"\nmax_volts = 30.0\nload_ohms = 10.0\n",
    );
    let out = run_to_end(&dir, &["check", good.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout.contains("psu              scpi-psu"), "{stdout}");

    // ...and rejects a bad value inside its table at that value's line and column, whether
    // the model or serde refuses it.
    for (i, (table, col, reason)) in [
        ("idn = \"ACME;PSU-1\"\n", 7, "`idn` must be 4 fields"),
        (
            "max_volts = \"thirty\"\n",
            13,
            "invalid type: string \"thirty\"",
        ),
        ("terminator = \"cr\"\n", 14, "unknown variant `cr`"),
    ]
    .into_iter()
    .enumerate()
    {
        let bad = config(&dir, &format!("bad{i}.toml"), table);
        let bad = bad.to_str().unwrap();
        let out = run_to_end(&dir, &["check", bad]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        let prefix = format!("error: {bad}:7:{col}: ");
        assert!(
            stderr.starts_with(&prefix) && stderr.contains(reason),
            "want {prefix:?} and {reason:?}: {stderr}"
        );
    }

    // `run` serves it on a pty; pyserial gets the supply's answers.
    let (run, socket) = start_config(&dir, &good);
    assert_eq!(run.ports[0]["model"], "scpi-psu");
    let link = run.links()[0].clone();
    let answers = ask(
        &link,
        &[
            "*IDN?",
            "VOLT 12.5",
            "OUTP ON",
            "MEAS:VOLT?;MEAS:CURR?",
            "VOLT 99",
            "SYST:ERR?",
            "SYST:ERR?",
        ],
    );
    assert_eq!(
        answers,
        "b'ACME,PSU-1,SN001,1.0\\n'\nb'12.500;1.250\\n'\n\
         b'-222,\"Data out of range\"\\n'\nb'0,\"No error\"\\n'\n",
        "{}",
        run.stderr()
    );

    // Its run-time values, through the control socket: a smaller load draws more current.
    let out = ctl(&socket, &["set", "psu", "load", "5"]);
    assert!(out.status.success(), "{out:?}");
    let out = ctl(&socket, &["set", "psu", "load", "none"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("load must be ohms"),
        "{out:?}"
    );
    assert_eq!(ask(&link, &["MEAS:CURR?"]), "b'2.500\\n'\n");

    let (status, extra) = run.stop_with(Signal::SIGTERM);
    assert!(status.success() && extra.is_empty(), "{status:?} {extra:?}");
    assert!(std::fs::symlink_metadata(&link).is_err(), "link removed");
    assert_eq!(leftovers(&dir), Vec::<PathBuf>::new());
}
