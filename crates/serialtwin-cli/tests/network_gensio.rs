//! gensio, the library ser2net speaks Telnet with, as a second RFC 2217 client independent of
//! pyserial (which never sends SET-MODEMSTATE-MASK or SET-LINESTATE-MASK): Debian's
//! `python3-gensio` against a PI30 port's `rfc2217` endpoint of the real `serialtwin run`
//! (`network/gensio_rfc2217.py`). It checks the modem-state notifications gensio reports (the
//! first one, the delta bits, the mask filtering them), a device break (`ctl line <port> break
//! on`) as NOTIFY-LINESTATE break-detect under the line-state mask, and the answer to client
//! code 7; and, from the trace, that gensio's DTR, RTS, break and line settings reached the
//! device.
#![allow(missing_docs)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{start, work_dir, write_config};
use nix::sys::signal::Signal;

const SCRIPT: &str = include_str!("network/gensio_rfc2217.py");

/// Debian's Python, the one `python3-gensio` installs its module for.
const DEBIAN_PYTHON: &str = "/usr/bin/python3";

/// Safety net for the Python process, never a timing assertion.
const PYTHON_PATIENCE: Duration = Duration::from_mins(3);

#[test]
fn gensio_sees_modem_and_line_state_and_drives_the_line() {
    // gensio-bin brings libgensio; python3-gensio its Python module.
    common::debian::ensure("gensio-bin", "gensiot");
    common::debian::ensure_installed(
        "python3-gensio",
        Path::new("/usr/lib/python3/dist-packages/gensio.py"),
    );
    let dir = work_dir("gensio");
    let socket = dir.join("run/control.sock");
    let config = write_config(
        &dir,
        "gensio.toml",
        &format!(
            r#"
[[device]]
name = "inv"
model = "pi30"
link = "{dir}/ttyUSB-inv"

[device.network]
rfc2217 = "127.0.0.1:0"
"#,
            dir = dir.display()
        ),
    );
    let run = start(
        &dir,
        &[
            config.to_str().unwrap(),
            "--trace",
            "--control",
            socket.to_str().unwrap(),
        ],
    );
    let endpoint = run.ports[0]["rfc2217"]
        .as_str()
        .unwrap_or_else(|| panic!("no rfc2217 endpoint: {:?}", run.ports[0]))
        .to_owned();
    assert!(endpoint.starts_with("127.0.0.1:"), "{endpoint}");

    let out = common::output_within_for(
        Command::new(DEBIAN_PYTHON)
            .arg("-c")
            .arg(SCRIPT)
            .args([common::bin(), socket.to_str().unwrap(), &endpoint, "inv"])
            .stderr(Stdio::piped()),
        PYTHON_PATIENCE,
    );
    common::python_checks(&out, "gensio_rfc2217.py", 8, &run.stderr());

    // What the device heard from gensio, in order: its DTR, RTS and break, then the line it
    // set (one settings event per change, parity and data bits included), then the device's
    // own line back.
    let trace = run.stderr();
    let events: Vec<&str> = trace
        .lines()
        .filter_map(|l| l.split(" inv -- ").nth(1))
        .collect();
    let wanted = [
        "dtr on",
        "rts on",
        "dtr off",
        "rts off",
        "break on",
        "break off",
        "rts on",
        "dtr on",
        "settings 9600 8N1",
        "settings 9600 7N1",
        "settings 9600 7E1",
        "settings 9600 7E2",
        "settings 2400 7E2",
        "settings 2400 8N1",
    ];
    let mut from = 0;
    for want in wanted {
        match events[from..].iter().position(|e| *e == want) {
            Some(i) => from += i + 1,
            None => panic!("the device did not hear {want:?} in order; it heard {events:#?}"),
        }
    }
    let (status, _) = run.stop_with(Signal::SIGTERM);
    assert!(status.success());
}
