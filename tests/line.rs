//! The line as clients see it: settings, session hygiene for reopening clients, pacing.

mod common;

use common::{Counter, PATIENCE, open_client, wait_for};
use serialtwin::{Fleet, LineEvent, PortSpec, Seen};
use tokio_serial::SerialPort;

/// Run a Python snippet with the pinned venv; `argv[1]` is the port path.
fn python(script: &str, port: &std::path::Path) -> String {
    common::python::run_script(script, &[port])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyserial_parity_even_reopens_20_times() {
    let fleet = Fleet::new();
    let port = fleet
        .spawn(PortSpec::new("8e1"), Counter::default())
        .unwrap();
    let path = port.pty().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        python(
            r#"
import sys, serial
for i in range(int(sys.argv[2]) if len(sys.argv) > 2 else 20):
    try:
        s = serial.Serial(sys.argv[1], 2400, parity=serial.PARITY_EVEN, timeout=5)
    except Exception as e:
        import os, termios
        fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY)
        a = termios.tcgetattr(fd)
        raise SystemExit(f"open {i + 1} failed: {e}; lflag={oct(a[3])} cflag={oct(a[2])}")
    s.write(b"INC\r\n")
    line = s.readline()
    assert line == f"{i + 1}\r\n".encode(), (i, line)
    s.close()
print("reopened 20 times")
"#,
            &path,
        )
    })
    .await
    .unwrap();
    assert!(out.contains("reopened 20 times"), "{out}");
    fleet.shutdown().await;
}

/// A client that changes a setting between requests (`ser.timeout = 1` on a port opened with
/// `parity=EVEN`) asks once more for the even parity a pty drops, and Debian's glibc fails that
/// `tcsetattr` unless something else changes: the canary must be set again once the client's
/// request has been read, before it is answered. On a lane-served port and on one served by its
/// own task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyserial_parity_even_changes_settings_between_requests() {
    let fleet = Fleet::new();
    let lent = fleet
        .spawn(PortSpec::new("8e1-lane"), Counter::default())
        .unwrap();
    let tasks = Fleet::without_lanes();
    let own = tasks
        .spawn(PortSpec::new("8e1-task"), Counter::default())
        .unwrap();
    let paths = [lent.pty().to_owned(), own.pty().to_owned()];
    let out = tokio::task::spawn_blocking(move || {
        common::python::run_script(
            r#"
import sys, termios, serial
for path in sys.argv[1:]:
    s = serial.Serial(path, 19200, parity=serial.PARITY_EVEN, timeout=5)
    for i, (setting, value) in enumerate([("timeout", 4), ("inter_byte_timeout", 0.002), ("write_timeout", 2), ("baudrate", 19200), ("timeout", 5)] * 4):
        s.write(b"INC\r\n")
        line = s.readline()
        assert line == f"{i + 1}\r\n".encode(), (i, line)
        try:
            setattr(s, setting, value)
        except termios.error as e:
            raise SystemExit(f"{path}: setting {setting} after request {i + 1}: {e}")
    s.close()
print("changed a setting after each of 20 requests per port")
"#,
            &paths,
        )
    })
    .await
    .unwrap();
    assert!(out.contains("after each of 20 requests per port"), "{out}");
    fleet.shutdown().await;
    tasks.shutdown().await;
}

#[tokio::test]
async fn settings_changes_are_seen_and_shown() {
    let fleet = Fleet::new();
    let port = fleet
        .spawn(PortSpec::new("settings"), Counter::default())
        .unwrap();
    let mut seen = port.observations();
    let mut client = open_client(port.pty());
    wait_for(&mut seen, |s| *s == Seen::Event(LineEvent::Opened)).await;
    client.set_baud_rate(19200).unwrap();
    client.set_stop_bits(tokio_serial::StopBits::Two).unwrap();
    wait_for(
        &mut seen,
        |s| matches!(s, Seen::Event(LineEvent::Settings(st)) if st.to_string() == "19200 8N2"),
    )
    .await;
    // A non-standard rate (serialport sets every rate through BOTHER).
    client.set_baud_rate(12_345).unwrap();
    wait_for(
        &mut seen,
        |s| matches!(s, Seen::Event(LineEvent::Settings(st)) if st.baud == 12_345),
    )
    .await;
    assert_eq!(port.probe().unwrap().settings().unwrap().baud, 12_345);
    drop(client);
    tokio::time::timeout(
        PATIENCE,
        wait_for(&mut seen, |s| *s == Seen::Event(LineEvent::Closed)),
    )
    .await
    .unwrap();
    fleet.shutdown().await;
}

/// Tells the client what the device itself has seen: its context's settings and session, and
/// the line events handed to `on_event`.
#[derive(Default)]
struct Witness {
    events: Vec<String>,
}

impl serialtwin::Device for Witness {
    type Error = std::convert::Infallible;

    fn handle(
        &mut self,
        req: &[u8],
        ctx: &mut serialtwin::Context,
        out: &mut serialtwin::Replies,
    ) -> Result<(), Self::Error> {
        match req {
            b"HOW" => {
                let session = ctx.session();
                out.push(format!(
                    "{} open={:?} sessions={}",
                    ctx.settings(),
                    session.open,
                    session.count
                ));
            }
            b"EVENTS" => out.push(self.events.join(",")),
            _ => {}
        }
        Ok(())
    }

    fn on_event(&mut self, event: &LineEvent, _ctx: &mut serialtwin::Context) {
        self.events.push(event.to_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_device_sees_settings_sessions_flow_control_and_flushes() {
    let fleet = Fleet::new();
    let port = fleet
        .spawn(PortSpec::new("witness"), Witness::default())
        .unwrap();
    let mut seen = port.observations();
    let mut first = open_client(port.pty());
    assert_eq!(
        common::ask(&mut first, b"HOW\r\n").await,
        b"2400 8N1 open=Some(true) sessions=1\r\n"
    );
    drop(first);
    wait_for(&mut seen, |s| *s == Seen::Event(LineEvent::Closed)).await;

    let mut client = tokio_serial::SerialPortBuilderExt::open_native_async(
        tokio_serial::new(port.pty().to_str().unwrap(), 9600)
            .flow_control(tokio_serial::FlowControl::Hardware),
    )
    .unwrap();
    assert_eq!(
        common::ask(&mut client, b"HOW\r\n").await,
        b"9600 8N1 rtscts open=Some(true) sessions=2\r\n"
    );
    // A client's tcflush(TCIOFLUSH) reaches the device as a line event.
    client.clear(tokio_serial::ClearBuffer::All).unwrap();
    wait_for(&mut seen, |s| {
        matches!(s, Seen::Event(LineEvent::Flush { .. }))
    })
    .await;
    let events = String::from_utf8(common::ask(&mut client, b"EVENTS\r\n").await).unwrap();
    let events: Vec<&str> = events.trim_end().split(',').collect();
    assert_eq!(
        events[..3],
        ["open", "settings 2400 8N1", "close"],
        "{events:?}"
    );
    assert!(events[3..].contains(&"open"), "{events:?}");
    assert!(
        events[3..].contains(&"settings 9600 8N1 rtscts"),
        "{events:?}"
    );
    assert_eq!(events.last(), Some(&"flush both"), "{events:?}");
    drop(client);
    fleet.shutdown().await;
}
