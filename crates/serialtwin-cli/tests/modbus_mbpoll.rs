//! mbpoll (libmodbus's command-line master), run as a user runs it, against a Modbus bus served
//! by `serialtwin run`: floats in both word orders, a holding register read, written (FC06) and
//! read back, a silent unit and an exception. mbpoll is installed from Debian if missing.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{output_within, start, work_dir, write_config};

/// What one mbpoll run did: its exit status, its `[reference]: value` lines, and all it printed.
struct Poll {
    ok: bool,
    values: Vec<(u32, String)>,
    stdout: String,
    stderr: String,
}

/// Run `mbpoll -m rtu -b 19200 -P <parity> -o 1 <args> <link> <writes>`: a 1 s reply timeout,
/// and the tests' safety net around the process.
fn mbpoll(mbpoll: &Path, link: &Path, parity: &str, args: &[&str], writes: &[&str]) -> Poll {
    let out = output_within(
        Command::new(mbpoll)
            .args(["-m", "rtu", "-b", "19200", "-P", parity, "-o", "1"])
            .args(args)
            .arg(link)
            .args(writes),
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    // mbpoll prints each value as `[<1-based reference>]: \t<value>`.
    let values = stdout
        .lines()
        .filter_map(|line| {
            let (reference, value) = line.strip_prefix('[')?.split_once("]:")?;
            Some((reference.parse().ok()?, value.trim().to_owned()))
        })
        .collect();
    Poll {
        ok: out.status.success(),
        values,
        stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A bus of units 1 and 7 behind one link, as `examples/modbus.toml` declares its meter.
fn bus(dir: &Path) -> PathBuf {
    write_config(
        dir,
        "modbus.toml",
        &format!(
            r#"
[[device]]
name = "bus"
model = "modbus"
link = "{dir}/ttyUSB-modbus"

[[device.modbus.unit]]
id = 1
[[device.modbus.unit.input]]
address = 0
type = "f32"
value = 230.5
[[device.modbus.unit.holding]]
address = 20
value = 1

[[device.modbus.unit]]
id = 7
[[device.modbus.unit.holding]]
address = 0
value = 5
"#,
            dir = dir.display()
        ),
    )
}

/// One user's session with mbpoll at 19,200 baud and `parity` (`even` or `none`: parity cannot
/// be seen on a pty, so both work).
fn session(tag: &str, parity: &str, settings: &str) {
    let mbpoll_bin = common::debian::ensure("mbpoll", "mbpoll");
    let dir = work_dir(tag);
    let config = bus(&dir);
    let run = start(&dir, &[config.to_str().unwrap()]);
    let link = run.links().remove(0);
    let poll = |args: &[&str], writes: &[&str]| {
        // Poll once (`-1`); a write is done once anyway.
        let once: &[&str] = if writes.is_empty() { &["-1"] } else { &[] };
        mbpoll(&mbpoll_bin, &link, parity, &[once, args].concat(), writes)
    };
    let read = |args: &[&str]| {
        let p = poll(args, &[]);
        assert!(
            p.ok,
            "mbpoll {args:?} failed:\n{}\n{}\nserialtwin:\n{}",
            p.stdout,
            p.stderr,
            run.stderr()
        );
        assert!(
            p.stdout.contains(settings),
            "mbpoll says it runs at {settings}:\n{}",
            p.stdout
        );
        p.values
    };
    let value = |reference: u32, v: &str| vec![(reference, v.to_owned())];

    // Input registers 1-2 (PDU 0-1) as one float, high word first (-B): 0x4366 0x8000.
    assert_eq!(
        read(&["-a", "1", "-t", "3:float", "-B", "-r", "1", "-c", "1"]),
        value(1, "230.5")
    );
    // Without -B mbpoll takes the low word first: 0x8000 0x4366, a denormal.
    assert_eq!(
        read(&["-a", "1", "-t", "3:float", "-r", "1", "-c", "1"]),
        value(1, "-2.4178e-41")
    );
    // Holding register 21 is PDU address 20 (-r is 1-based).
    assert_eq!(
        read(&["-a", "1", "-t", "4", "-r", "21", "-c", "1"]),
        value(21, "1")
    );
    // One value after the port: written with FC06, then read back.
    let write = poll(&["-a", "1", "-t", "4", "-r", "21"], &["4711"]);
    assert!(
        write.ok && write.stdout.contains("Written 1 references."),
        "write:\n{}\n{}",
        write.stdout,
        write.stderr
    );
    assert_eq!(
        read(&["-a", "1", "-t", "4", "-r", "21", "-c", "1"]),
        value(21, "4711")
    );
    // Unit 7 on the same line answers for itself.
    assert_eq!(
        read(&["-a", "7", "-t", "4", "-r", "1", "-c", "1"]),
        value(1, "5")
    );

    // No unit 9 on the bus: silence, so mbpoll times out and fails.
    let absent = poll(&["-a", "9", "-t", "4", "-r", "21", "-c", "1"], &[]);
    assert!(!absent.ok, "unit 9 answered:\n{}", absent.stdout);
    assert!(
        absent.values.is_empty()
            && absent
                .stderr
                .contains("Read output (holding) register failed: Connection timed out"),
        "unit 9:\n{}\n{}",
        absent.stdout,
        absent.stderr
    );
    // Reading past the table (PDU 20-21; 21 is not declared): exception 02.
    let past = poll(&["-a", "1", "-t", "4", "-r", "21", "-c", "2"], &[]);
    assert!(
        !past.ok,
        "a read past the table succeeded:\n{}",
        past.stdout
    );
    assert!(
        past.values.is_empty()
            && past
                .stderr
                .contains("Read output (holding) register failed: Illegal data address"),
        "past the table:\n{}\n{}",
        past.stdout,
        past.stderr
    );
}

#[test]
fn mbpoll_at_19200_8e1_reads_writes_and_sees_silence_and_exceptions() {
    session("mbpolleven", "even", "19200-8E1");
}

#[test]
fn mbpoll_at_19200_8n1_works_too_as_parity_is_invisible_on_a_pty() {
    session("mbpollnone", "none", "19200-8N1");
}
