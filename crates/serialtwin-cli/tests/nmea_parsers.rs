//! The NMEA GPS model as Python's NMEA parsers read it: pynmea2 1.19.0 and pynmeagps 1.1.8
//! (pinned in `tests/python/requirements-nmea.txt`, in a venv the test makes) parse 600
//! sentences sent at 10 Hz on a 115,200-baud line, every checksum valid.

mod common;

use std::process::Command;

use common::{output_within, python, python_checks, start_config, work_dir, write_config};

const SCRIPT: &str = include_str!("nmea/parsers.py");

#[test]
fn pynmea2_and_pynmeagps_parse_600_sentences_at_10_hz() {
    let venv = python::venv_of("tests/python/requirements-nmea.txt", "pyenv-nmea");
    let dir = work_dir("nmea-parsers");
    let config = write_config(
        &dir,
        "gps.toml",
        &format!(
            "[[device]]\nname = \"gps\"\nmodel = \"nmea-gps\"\nlink = \"{}/ttyUSB-gps\"\n\n\
             [device.nmea-gps]\nbaud = 115200\nrate_hz = 10.0\ntalker = \"GN\"\n\
             circle = {{ lat = -33.86, lon = 151.21, radius_m = 50.0, speed_mps = 3.0 }}\n",
            dir.display()
        ),
    );
    let (running, _) = start_config(&dir, &config);
    let link = running.links()[0].clone();
    let out = output_within(
        Command::new(venv.join("bin/python"))
            .arg("-c")
            .arg(SCRIPT)
            .arg(&link)
            .args(["115200", "600", "10"]),
    );
    python_checks(&out, "pynmea2 and pynmeagps", 4, &running.stderr());
}
