//! The VE.Direct charger on a real pty as the Python clients read it (pinned in
//! `tests/python/requirements-ved.txt`, in a venv the test makes): vedirect-m8 1.3.4 (its own
//! port rule: a `ttyUSB<n>` in `$HOME`, so `HOME` is the test's directory and the link is
//! made there; async frames off, since it loses the block after any HEX frame) and mppsolar
//! 0.16.56 (`-P ved --porttype vserial -b 19200`) read text blocks; a raw reader checks every
//! block sums to 0 mod 256, and writes HEX frames whose answers it decodes itself and checks
//! with mppsolar's own `vedHexChecksum`, with async frames on (between blocks, and between a
//! block's fields; text keeps flowing) and with text paused while HEX flows.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{bin, output_within_for, python, python_checks, start_config, work_dir, write_config};

const SCRIPT: &str = include_str!("ved/clients.py");

/// A client's whole story, with room for a loaded machine.
const PATIENCE: Duration = Duration::from_mins(2);

fn clients(home: &Path, args: &[&str]) -> Output {
    let venv = python::venv_of("tests/python/requirements-ved.txt", "pyenv-ved");
    output_within_for(
        Command::new(venv.join("bin/python"))
            .env("HOME", home)
            .arg("-c")
            .arg(SCRIPT)
            .args(args)
            .stderr(Stdio::piped()),
        PATIENCE,
    )
}

#[test]
fn vedirect_m8_and_mppsolar_read_checksummed_blocks() {
    let venv = python::venv_of("tests/python/requirements-ved.txt", "pyenv-ved");
    let dir = work_dir("ve-direct-text");
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let link = home.join("ttyUSB0");
    let config = write_config(
        &dir,
        "ved.toml",
        &format!(
            "[clock]\nstart = 2026-06-21T10:00:00Z\n\n[[device]]\nname = \"mppt\"\n\
             model = \"ve-direct\"\nlink = \"{}\"\n",
            link.display()
        ),
    );
    let (running, _) = start_config(&dir, &config);
    let mppsolar = venv.join("bin/mppsolar");
    let out = clients(
        &home,
        &["text", link.to_str().unwrap(), mppsolar.to_str().unwrap()],
    );
    python_checks(&out, "vedirect-m8 and mppsolar", 8, &running.stderr());
}

#[test]
fn hex_is_answered_between_blocks_with_async_frames_or_paused_text() {
    let dir = work_dir("ve-direct-hex");
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let config = write_config(
        &dir,
        "ved.toml",
        &format!(
            "[clock]\nstart = 2026-06-21T10:00:00Z\n\n\
             [[device]]\nname = \"async\"\nmodel = \"ve-direct\"\nlink = \"{0}/ttyUSB1\"\n\
             [device.ve-direct]\nasync_frames = true\n\n\
             [[device]]\nname = \"pause\"\nmodel = \"ve-direct\"\nlink = \"{0}/ttyUSB2\"\n\
             [device.ve-direct]\npause_text_on_hex = true\nhex_quiet_s = 3.0\n\n\
             [[device]]\nname = \"inblock\"\nmodel = \"ve-direct\"\nlink = \"{0}/ttyUSB3\"\n\
             [device.ve-direct]\nasync_frames = true\nasync_in_block = true\n",
            home.display()
        ),
    );
    let (running, socket) = start_config(&dir, &config);
    let link = |n: u32| home.join(format!("ttyUSB{n}"));
    let with_async = |n: u32, mode: &str, name: &str| {
        clients(
            &home,
            &[
                "hex",
                link(n).to_str().unwrap(),
                mode,
                bin(),
                "ctl",
                "--socket",
                socket.to_str().unwrap(),
                "set",
                name,
            ],
        )
    };
    let (paused, in_block) = std::thread::scope(|s| {
        let paused = s.spawn(|| clients(&home, &["hex", link(2).to_str().unwrap(), "pause"]));
        let in_block = s.spawn(|| with_async(3, "inblock", "inblock"));
        let between = with_async(1, "async", "async");
        python_checks(&between, "HEX with async frames", 10, &running.stderr());
        (paused.join().unwrap(), in_block.join().unwrap())
    });
    python_checks(
        &in_block,
        "HEX with async frames inside blocks",
        10,
        &running.stderr(),
    );
    python_checks(&paused, "HEX with text paused", 8, &running.stderr());
}
