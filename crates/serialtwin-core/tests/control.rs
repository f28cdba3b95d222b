//! The control protocol's commands ([`serialtwin_core::control`]), parsed from text.

use std::time::Duration;

use bytes::Bytes;
use serialtwin_core::control::{Command, Target, parse_duration};
use serialtwin_core::net::ModemLine;
use serialtwin_core::{DeviceLine, FaultKind, FaultRule};

#[test]
fn parses_every_command() {
    assert_eq!(Command::parse("list"), Ok(Command::List));
    assert_eq!(
        Command::parse("fault inv0 break-crc next=3 cmd=QPIGS"),
        Ok(Command::Fault(
            Target::Port("inv0".into()),
            FaultRule::next(FaultKind::BreakChecksum, 3).for_command(&b"QPIGS"[..])
        ))
    );
    assert_eq!(
        Command::parse("fault * drop p=0.25"),
        Ok(Command::Fault(
            Target::All,
            FaultRule::probability(FaultKind::Drop, 0.25)
        ))
    );
    assert_eq!(
        Command::parse("unplug inv0 2s"),
        Ok(Command::Unplug(
            Target::Port("inv0".into()),
            Duration::from_secs(2)
        ))
    );
    assert_eq!(
        Command::parse("set inv0 grid off"),
        Ok(Command::Set(
            Target::Port("inv0".into()),
            "grid".into(),
            "off".into()
        ))
    );
    assert_eq!(
        Command::parse(r"send m1 READING 1\x00\r"),
        Ok(Command::Send(
            "m1".into(),
            Bytes::from_static(b"READING 1\x00\r")
        ))
    );
    assert_eq!(
        Command::parse("line inv0 cd off"),
        Ok(Command::Line(
            Target::Port("inv0".into()),
            DeviceLine::Modem(ModemLine::Dcd),
            false
        ))
    );
    assert_eq!(
        Command::parse("line * break on"),
        Ok(Command::Line(Target::All, DeviceLine::Break, true))
    );
}

/// Found by the `control` fuzz target: with two spaces before the port, the frame was the
/// port and everything after it.
#[test]
fn send_takes_the_text_after_the_port_however_it_is_spaced() {
    let frame = |line: &str| match Command::parse(line) {
        Ok(Command::Send(port, frame)) => (port, frame),
        other => panic!("{line:?}: {other:?}"),
    };
    for line in [
        "send m1 HI",
        "send  m1 HI",
        "  send\tm1 HI  ",
        "send \t m1 HI",
    ] {
        assert_eq!(
            frame(line),
            ("m1".into(), Bytes::from_static(b"HI")),
            "{line:?}"
        );
    }
    // One separator after the port; the rest is the frame, spaces included.
    assert_eq!(
        frame("send m1  HI  THERE").1,
        Bytes::from_static(b" HI  THERE")
    );
    assert!(Command::parse("send  m1").is_err());
}

#[test]
fn rejects_with_a_reason() {
    for (line, needle) in [
        ("", "empty"),
        ("explode inv0", "unknown command"),
        ("fault inv0", "missing kind"),
        (
            "fault inv0 melt",
            "unknown fault \"melt\" (known: drop, corrupt, break-crc",
        ),
        ("fault inv0 drop p=2", "not in 0..=1"),
        ("fault inv0 drop when=now", "unknown option"),
        ("unplug inv0 soon", "bad duration"),
        ("set inv0 grid", "missing value"),
        ("set inv0 grid off now", "set: unexpected \"now\""),
        ("list all", "list: unexpected \"all\""),
        ("clear inv0 drop", "clear: unexpected \"drop\""),
        ("unplug inv0 5s later", "unplug: unexpected \"later\""),
        (r"send inv0 \q", "unknown escape"),
        (
            "line inv0 dtr on",
            "\"dtr\" is not a line the device drives (cts, dsr, ri, dcd, break)",
        ),
        ("line inv0 break maybe", "\"maybe\" is not on or off"),
        ("line inv0 break", "missing state"),
    ] {
        let err = Command::parse(line).unwrap_err().to_string();
        assert!(err.contains(needle), "{line:?}: {err}");
    }
}

#[test]
fn durations() {
    assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
    assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
    assert_eq!(parse_duration("2m"), Ok(Duration::from_mins(2)));
    assert_eq!(parse_duration("250"), Ok(Duration::from_millis(250)));
    assert!(parse_duration("-1s").is_err());
}
