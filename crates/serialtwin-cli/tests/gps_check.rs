//! `serialtwin check` on NMEA GPS configs: a cycle of sentences must fit the line that will
//! really be there (`[device.line]`'s baud when written, the model's own `baud` otherwise),
//! and a played log refuses the keys only synthesis reads — each refusal at the value, with
//! its reason, exit status 2.

mod common;

use common::{run_to_end, work_dir, write_config};

/// `check` on `text` (`{dir}` for the test's directory): `Ok` with stdout, or `Err` with the
/// first error line's `line:col` and reason.
fn check(tag: &str, text: &str) -> Result<String, (String, String)> {
    let dir = work_dir(tag);
    std::fs::write(
        dir.join("drive.log"),
        "# Serial: 4800 8N1\n\
         $GPRMC,123519.00,A,4807.0380,N,01131.0000,E,0.13,309.6,150324,,,A*6E\r\n",
    )
    .unwrap();
    let config = write_config(
        &dir,
        "gps.toml",
        &text.replace("{dir}", dir.to_str().unwrap()),
    );
    let config = config.to_str().unwrap();
    let out = run_to_end(&dir, &["check", config]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let line = stderr
        .lines()
        .find_map(|l| l.strip_prefix(&format!("error: {config}:")))
        .unwrap_or_else(|| panic!("no error line: {stderr}"));
    let (at, reason) = line.split_once(": ").unwrap();
    Err((at.to_owned(), reason.to_owned()))
}

const GPS: &str = "[[device]]\nname = 'gps'\nmodel = 'nmea-gps'\nlink = '{dir}/ttyUSB-gps'\n";

/// At 10 Hz the default seven sentences need more than 9600 baud carries (96 bytes a cycle):
/// the model's own 115200 would carry them, but `[device.line]` sets 9600, and `check` refuses
/// at that baud. At 230400 it accepts; and a set too big for the model's own 4800 is accepted
/// on a `[device.line]` of 9600.
#[test]
fn check_sums_a_cycle_against_the_baud_device_line_sets() {
    let text = format!(
        "{GPS}[device.nmea-gps]\nbaud = 115200\nrate_hz = 10.0\n[device.line]\nbaud = 9600\n"
    );
    let (at, reason) = check("gps-line-slow", &text).unwrap_err();
    assert_eq!(at, "9:8", "{reason}");
    assert!(
        reason.starts_with("`[device.line]` sets the line to 9600 baud: a cycle of these")
            && reason.contains("9600 baud carries 96 in each 0.1 s cycle"),
        "{reason}"
    );

    let text = text.replace("baud = 9600", "baud = 230400");
    let out = check("gps-line-fast", &text).unwrap();
    assert!(out.contains("1 port(s)"), "{out}");

    let slow = format!("{GPS}[device.nmea-gps]\nbaud = 4800\n");
    let (at, reason) = check("gps-own-slow", &slow).unwrap_err();
    assert_eq!(at, "5:1", "the table: sentences are not written; {reason}");
    assert!(reason.contains("4800 baud carries 480"), "{reason}");
    check(
        "gps-own-slow-line",
        &format!("{slow}[device.line]\nbaud = 9600\n"),
    )
    .unwrap();
}

/// Beside `log`, `route` (or any key only synthesis reads) is refused at its value; `baud`,
/// `rate_hz` and `log_repeat` are accepted; `log_repeat` without a log is refused.
#[test]
fn check_refuses_synthesis_keys_beside_a_log() {
    let text = format!(
        "{GPS}[device.nmea-gps]\nlog = 'drive.log'\n\
         route = {{ waypoints = [[48.0, 11.0], [48.1, 11.0]], speed_mps = 10.0 }}\n"
    );
    let (at, reason) = check("gps-log-route", &text).unwrap_err();
    assert_eq!(at, "7:9", "{reason}");
    assert!(
        reason.starts_with("`route` does not apply with `log`"),
        "{reason}"
    );
    let text = format!("{GPS}[device.nmea-gps]\nlog = 'drive.log'\ntalker = 'GN'\n");
    let (at, reason) = check("gps-log-talker", &text).unwrap_err();
    assert_eq!(at, "7:10", "{reason}");
    assert!(reason.contains("`talker` does not apply with `log`"));

    let text = format!(
        "{GPS}[device.nmea-gps]\nlog = 'drive.log'\nbaud = 9600\nrate_hz = 2.0\n\
         log_repeat = false\n"
    );
    check("gps-log-ok", &text).unwrap();
    let text = format!("{GPS}[device.nmea-gps]\nlog_repeat = false\n");
    let (at, reason) = check("gps-repeat-alone", &text).unwrap_err();
    assert_eq!(at, "6:14", "{reason}");
    assert!(reason.contains("only with `log`"), "{reason}");
}
