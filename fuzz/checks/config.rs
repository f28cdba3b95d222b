//! The `config` target: the fleet config parser, `serialtwin_cli::config::parse`, on any text.
//!
//! Invariants:
//!
//! - no panic;
//! - an error that names a position (`file:line:column: reason`) names a line of the input
//!   and a column inside that line (at most one past its last character: the end of input);
//!   so does every warning of a config that loads;
//! - a config that loads has at least one port, each with a name the control protocol takes,
//!   and a timeline whose steps name those ports.
//!
//! Configs can name files (`model = "replay"` reads `[device.replay] capture = "PATH"`).
//! Relative paths are read from a directory that does not exist, so the fuzzer reads nothing
//! of this machine's through them; absolute ones are read (that is what found the capture
//! reader reading `/dev/zero` until memory ran out: it now refuses anything but a regular file).

use std::path::Path;

use serialtwin_cli::config;
use serialtwin_core::check_port_name;
use serialtwin_core::control::{Command, Target};

/// What the config is called in messages: no `:` in it, so the position after it is plain.
const FILE: &str = "fuzz.toml";

/// The config's directory: one that does not exist, so no relative path reaches a file.
const BASE_DIR: &str = "/nonexistent/serialtwin-fuzz";

/// The `line:column` a message `FILE:line:column: ...` names, if it names one.
fn position(message: &str) -> Option<(usize, usize)> {
    let rest = message
        .strip_prefix(FILE)
        .and_then(|r| r.strip_prefix(':'))
        .unwrap_or_else(|| panic!("message without the file name first: {message:?}"));
    if rest.starts_with(' ') {
        return None;
    }
    let mut parts = rest.splitn(3, ':');
    let line = parts.next()?.parse().ok();
    let column = parts.next()?.parse().ok();
    let (Some(line), Some(column)) = (line, column) else {
        panic!("a position that is not line:column: {message:?}");
    };
    Some((line, column))
}

/// `message`'s position, if any, is inside `text`.
fn assert_inside(text: &str, message: &str) {
    let Some((line, column)) = position(message) else {
        return;
    };
    let lines: Vec<&str> = text.split('\n').collect();
    assert!(
        line >= 1 && line <= lines.len(),
        "line {line} of {} in {message:?}",
        lines.len()
    );
    let width = lines[line - 1].chars().count();
    assert!(
        column >= 1 && column <= width + 1,
        "column {column} of a {width}-character line in {message:?}"
    );
}

/// The check for one input.
pub(crate) fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match config::parse(FILE, text, Some(Path::new(BASE_DIR))) {
        Err(e) => assert_inside(text, &e.to_string()),
        Ok(plan) => {
            for warning in &plan.warnings {
                assert_inside(text, &warning.to_string());
            }
            assert!(!plan.ports.is_empty(), "a plan without ports");
            for port in &plan.ports {
                assert!(
                    check_port_name(&port.name).is_ok(),
                    "port name {:?}",
                    port.name
                );
            }
            for step in &plan.timeline {
                let (Command::Fault(Target::Port(port), _)
                | Command::Clear(Target::Port(port))
                | Command::Unplug(Target::Port(port), _)
                | Command::Set(Target::Port(port), ..)
                | Command::Send(port, _)) = &step.command
                else {
                    continue;
                };
                assert!(
                    plan.ports.iter().any(|p| &p.name == port),
                    "a timeline step for port {port:?}, which the plan does not have"
                );
            }
        }
    }
}
