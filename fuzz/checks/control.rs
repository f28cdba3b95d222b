//! The `control` target: the control protocol's parsers (`serialtwin_core::control`) on any
//! line: [`Command::parse`], [`parse_duration`] and the fault syntax ([`FaultKind::parse`]).
//!
//! Invariants:
//!
//! - no panic;
//! - a duration, parsed alone or inside a command, is at most [`MAX_DURATION`];
//! - a parsed command written back in the protocol's syntax (each word as the parser reads it,
//!   bytes escaped) parses to the same command (durations to within a microsecond: they are
//!   read as decimal numbers);
//! - `send <port> <text>`: the port is the line's second word, and the frame is the rest of
//!   the line after it and one separating space, unescaped.

use std::fmt::Write as _;
use std::time::Duration;

use serialtwin_core::control::{Command, MAX_DURATION, Target, parse_duration};
use serialtwin_core::escape::{escape, unescape};
use serialtwin_core::{FaultKind, FaultRule, When};

/// Bytes as one word of the protocol: escaped, spaces as `\x20`.
fn word(bytes: &[u8]) -> String {
    escape(bytes).replace(' ', "\\x20")
}

fn target(t: &Target) -> &str {
    match t {
        Target::All => "*",
        Target::Port(p) => p,
    }
}

fn duration(d: Duration) -> String {
    format!("{}.{:09}s", d.as_secs(), d.subsec_nanos())
}

fn kind(k: FaultKind) -> String {
    match k {
        FaultKind::Drop => "drop".into(),
        FaultKind::Corrupt => "corrupt".into(),
        FaultKind::BreakChecksum => "break-crc".into(),
        FaultKind::Truncate => "truncate".into(),
        FaultKind::Noise => "noise".into(),
        FaultKind::Duplicate => "duplicate".into(),
        FaultKind::Delay(d) => format!("delay:{}", d.as_millis()),
        FaultKind::Unplug(d) => format!("unplug:{}", d.as_millis()),
    }
}

/// `command` in the protocol's syntax.
fn render(command: &Command) -> String {
    match command {
        Command::List => "list".into(),
        Command::Clear(t) => format!("clear {}", target(t)),
        Command::Unplug(t, d) => format!("unplug {} {}", target(t), duration(*d)),
        Command::Set(t, key, value) => format!("set {} {key} {value}", target(t)),
        Command::Send(port, frame) => format!("send {port} {}", word(frame)),
        Command::Line(t, line, on) => {
            format!(
                "line {} {} {}",
                target(t),
                line.name(),
                if *on { "on" } else { "off" }
            )
        }
        Command::Fault(t, rule) => {
            let mut line = format!("fault {} {}", target(t), kind(rule.kind));
            match rule.when {
                When::Next(n) => write!(line, " next={n}"),
                When::Probability(p) => write!(line, " p={p}"),
            }
            .expect("a String takes it");
            if let Some(c) = &rule.command {
                write!(line, " cmd={}", word(c)).expect("a String takes it");
            }
            line
        }
    }
}

fn close(a: Duration, b: Duration) -> bool {
    a.abs_diff(b) <= Duration::from_micros(1)
}

fn same_fault(a: &FaultRule, b: &FaultRule) -> bool {
    let kinds = match (a.kind, b.kind) {
        (FaultKind::Delay(x), FaultKind::Delay(y))
        | (FaultKind::Unplug(x), FaultKind::Unplug(y)) => x == y,
        (x, y) => x == y,
    };
    kinds && a.when == b.when && a.command == b.command
}

fn same(read: &Command, back: &Command) -> bool {
    match (read, back) {
        (Command::Unplug(t, d), Command::Unplug(target, duration)) => {
            t == target && close(*d, *duration)
        }
        (Command::Fault(t, r), Command::Fault(target, rule)) => t == target && same_fault(r, rule),
        _ => read == back,
    }
}

fn kind_duration(k: FaultKind) -> Option<Duration> {
    match k {
        FaultKind::Delay(d) | FaultKind::Unplug(d) => Some(d),
        _ => None,
    }
}

/// `send`'s frame as the syntax says: after the verb, the port, and one separator.
fn send_text(line: &str, port: &str) -> String {
    let rest = line.trim().strip_prefix("send").expect("a send line");
    let rest = rest
        .trim_start()
        .strip_prefix(port)
        .expect("the port is the second word");
    let mut chars = rest.chars();
    assert!(
        chars.next().is_some_and(char::is_whitespace),
        "no separator after the port in {line:?}"
    );
    chars.as_str().to_owned()
}

/// The check for one input.
pub(crate) fn check(data: &[u8]) {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(d) = parse_duration(line) {
        assert!(d <= MAX_DURATION, "{line:?} is {d:?}");
    }
    if let Ok(k) = FaultKind::parse(line) {
        assert!(kind_duration(k).is_none_or(|d| d <= MAX_DURATION), "{k:?}");
        assert_eq!(FaultKind::parse(&kind(k)), Ok(k), "{line:?}");
    }
    let Ok(command) = Command::parse(line) else {
        return;
    };
    match &command {
        Command::Unplug(_, d) => assert!(*d <= MAX_DURATION, "{command:?}"),
        Command::Fault(_, rule) => {
            assert!(kind_duration(rule.kind).is_none_or(|d| d <= MAX_DURATION));
            if let When::Probability(p) = rule.when {
                assert!((0.0..=1.0).contains(&p), "{command:?}");
            }
        }
        Command::Send(port, frame) => {
            let text = send_text(line, port);
            assert_eq!(
                unescape(&text).ok().as_deref(),
                Some(&frame[..]),
                "{line:?}: the frame is the text after the port"
            );
        }
        _ => {}
    }
    let written = render(&command);
    let back = Command::parse(&written)
        .unwrap_or_else(|e| panic!("{command:?} written as {written:?} does not parse: {e}"));
    assert!(
        same(&command, &back),
        "{line:?} is {command:?}, written as {written:?}, read back as {back:?}"
    );
}
