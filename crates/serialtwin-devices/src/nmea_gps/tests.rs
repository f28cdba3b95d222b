//! The receiver through `talk` and `set` on a paused clock, through the serving loop on a
//! paced line, and its config through `build`.

use std::time::Duration;

use serialtwin_core::{Checksum, Framer, LineConfig, Mismatch, ServeConfig, SimClock, serve};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_util::sync::CancellationToken;

use super::framer::NmeaFramer;
use super::track::{destination, distance_m};
use super::*;
use crate::registry::Table;

/// 2024-03-15T12:35:19Z.
const START: u64 = 1_710_506_119;

fn gps(table: &str) -> NmeaGps {
    let config: GpsConfig = Table::parse(table)
        .unwrap()
        .deserialize()
        .unwrap()
        .unwrap_or_default();
    NmeaGps::new(config, 1).unwrap()
}

fn cycle(gps: &mut NmeaGps, ctx: &mut Context) -> Vec<String> {
    let mut replies = Replies::new();
    gps.talk(ctx, &mut replies);
    replies
        .drain()
        .map(|r| String::from_utf8(r.bytes.to_vec()).unwrap())
        .collect()
}

fn sentence<'a>(cycle: &'a [String], tag: &str) -> Vec<&'a str> {
    cycle
        .iter()
        .find(|s| s[3..].starts_with(tag))
        .unwrap_or_else(|| panic!("no {tag} in {cycle:#?}"))
        .split(',')
        .collect()
}

/// Degrees from `ddmm.mmmmm` and its hemisphere.
fn degrees(value: &str, hemisphere: &str) -> f64 {
    let dot = value.find('.').unwrap();
    let (d, m) = value.split_at(dot - 2);
    let x = d.parse::<f64>().unwrap() + m.parse::<f64>().unwrap() / 60.0;
    if matches!(hemisphere, "S" | "W") {
        -x
    } else {
        x
    }
}

const ROUTE: &str = "route = { waypoints = [[48.0, 11.0], [48.01, 11.01]], speed_mps = 10.0 }\n";

/// Each cycle's time is a whole second after the clock's start however late the beat, and
/// the position is the route's at that second; speed and course agree with the positions.
#[tokio::test(start_paused = true)]
async fn a_route_follows_the_clock_second_by_second() {
    let mut gps = gps(ROUTE);
    let mut ctx = Context::for_test(SimClock::at_unix(START, 1.0));
    let start = Point {
        lat: 48.0,
        lon: 11.0,
    };
    let bearing = track::bearing_deg(
        start,
        Point {
            lat: 48.01,
            lon: 11.01,
        },
    );
    let mut last = None;
    for n in 1..=30u32 {
        // A beat a few milliseconds late (a loaded machine) still reports its second.
        tokio::time::advance(Duration::from_millis(if n == 1 { 1_004 } else { 1_000 })).await;
        let out = cycle(&mut gps, &mut ctx);
        let rmc = sentence(&out, "RMC");
        let t = START + u64::from(n);
        let hms = format!(
            "{:02}{:02}{:02}.00",
            t % 86_400 / 3600,
            t % 3600 / 60,
            t % 60
        );
        assert_eq!((rmc[1], rmc[2], rmc[9]), (hms.as_str(), "A", "150324"));
        let here = Point {
            lat: degrees(rmc[3], rmc[4]),
            lon: degrees(rmc[5], rmc[6]),
        };
        let expected = destination(start, bearing, 10.0 * f64::from(n));
        assert!(
            distance_m(here, expected) < 0.05,
            "{n}: {here:?} {expected:?}"
        );
        let knots: f64 = rmc[7].parse().unwrap();
        assert!((knots - 10.0 * 3600.0 / 1852.0).abs() < 0.001);
        let course: f64 = rmc[8].parse().unwrap();
        if let Some(before) = last {
            assert!((distance_m(before, here) - 10.0).abs() < 0.1);
            assert!((track::bearing_deg(before, here) - course).abs() < 0.1);
        }
        last = Some(here);
    }
}

/// GGA's used count is GSA's PRNs, which GSV lists; a fix state is said in every sentence at
/// once, from the next cycle after `set`.
#[tokio::test(start_paused = true)]
async fn fix_states_are_said_everywhere_at_once() {
    for talker in ["GP", "GN"] {
        let mut gps = gps(&format!("talker = '{talker}'\nsatellites_used = 7\n"));
        let mut ctx = Context::for_test(SimClock::at_unix(START, 1.0));
        tokio::time::advance(Duration::from_secs(1)).await;
        let out = cycle(&mut gps, &mut ctx);
        let gga = sentence(&out, "GGA");
        assert_eq!((gga[6], gga[7], gga[9]), ("1", "07", "545.4"));
        let in_gsa: Vec<&str> = out
            .iter()
            .filter(|s| s[3..].starts_with("GSA"))
            .flat_map(|s| s.split(',').skip(3).take(12).filter(|f| !f.is_empty()))
            .collect();
        let listed_in_gsv: Vec<&str> = out
            .iter()
            .filter(|s| s[3..].starts_with("GSV"))
            .flat_map(|s| s.split(',').skip(4).step_by(4))
            .collect();
        assert_eq!(in_gsa.len(), 7, "{out:#?}");
        assert_eq!(listed_in_gsv.len(), 12, "{out:#?}");
        assert!(in_gsa.iter().all(|p| listed_in_gsv.contains(p)), "{out:#?}");

        gps.set("fix", "none", &mut ctx).unwrap();
        let out = cycle(&mut gps, &mut ctx);
        let (rmc, gga, gsa) = (
            sentence(&out, "RMC"),
            sentence(&out, "GGA"),
            sentence(&out, "GSA"),
        );
        assert_eq!((rmc[2], &rmc[3..7]), ("V", &["", "", "", ""][..]));
        assert_eq!(
            (gga[6], gga[7], &gga[2..6]),
            ("0", "00", &["", "", "", ""][..])
        );
        assert_eq!(gsa[2], "1");
        assert!(gsa[3..15].iter().all(|f| f.is_empty()));

        gps.set("fix", "2d", &mut ctx).unwrap();
        let out = cycle(&mut gps, &mut ctx);
        let (gga, gsa) = (sentence(&out, "GGA"), sentence(&out, "GSA"));
        assert_eq!((gga[6], gga[7], gga[9], gsa[2]), ("1", "03", "", "2"));
        let in_2d_gsa: Vec<&str> = out
            .iter()
            .filter(|s| s[3..].starts_with("GSA"))
            .flat_map(|s| s.split(',').skip(3).take(12).filter(|f| !f.is_empty()))
            .collect();
        assert_eq!(in_2d_gsa.len(), 3, "{out:#?}");
        assert!(in_2d_gsa.iter().all(|p| in_gsa.contains(p)), "{out:#?}");
        assert!(gps.set("fix", "4d", &mut ctx).is_err());
        let mut two = self::gps("fix = 'none'\nsatellites_used = 2\nsatellites_in_view = 4\n");
        let e = two.set("fix", "2d", &mut ctx).unwrap_err();
        assert!(
            e.contains("a 2d fix needs 3 satellites used or more"),
            "{e}"
        );
        assert!(two.set("fix", "3d", &mut ctx).is_err());
        assert!(gps.set("speed", "1", &mut ctx).is_err());
    }
}

/// At 4800 baud GSV goes out every fifth cycle; faster, every cycle.
#[tokio::test(start_paused = true)]
async fn at_4800_baud_gsv_is_thinned() {
    for (baud, every) in [(4800, 5), (9600, 1)] {
        let mut gps = gps(&format!(
            "baud = {baud}\nsentences = ['RMC', 'GGA', 'GSA', 'GSV']\n"
        ));
        let mut ctx = Context::for_test(SimClock::at_unix(START, 1.0));
        let mut with_gsv = Vec::new();
        for n in 1..=10 {
            tokio::time::advance(Duration::from_secs(1)).await;
            if cycle(&mut gps, &mut ctx).iter().any(|s| s.contains("GSV")) {
                with_gsv.push(n);
            }
        }
        let expected: Vec<i32> = (1..=10).filter(|n| n % every == 0).collect();
        assert_eq!(with_gsv, expected, "{baud}");
    }
}

/// Served on a paced 4800-baud line, each cycle is on the wire within its second, checksums
/// verify, and a client's probes change nothing: nothing piles up.
#[tokio::test(start_paused = true)]
async fn paced_at_4800_every_cycle_fits_its_second_whatever_the_client_writes() {
    let device = gps("baud = 4800\nsentences = ['RMC', 'GGA', 'GSA', 'GSV']\n");
    let mut config = ServeConfig::new("gps");
    config.clock = SimClock::at_unix(START, 1.0);
    // A duplex pipe has no client speed; the device's own speed paces it.
    config.line = Some(LineConfig {
        mismatch: Mismatch::Ignore,
        ..device.line()
    });
    let (client, server) = tokio::io::duplex(1 << 16);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(serve(device, server, config, cancel.clone()));
    let t0 = tokio::time::Instant::now();
    let mut client = BufReader::new(client);
    let framer = NmeaFramer::new();
    let mut rmc_at = Vec::new();
    while rmc_at.len() < 20 {
        if rmc_at.len() == 3 {
            client
                .get_mut()
                .write_all(b"$PSRF100,0,38400,8,1,0*3C\r\n\xb5b\x06\x04\x00\x00\n$PASHQ,RID*28\r\n")
                .await
                .unwrap();
        }
        let mut line = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), client.read_until(b'\n', &mut line))
            .await
            .expect("a sentence (safety net)")
            .unwrap();
        let frame = line.strip_suffix(b"\r\n").unwrap();
        assert!(
            matches!(framer.check(frame), Checksum::Valid { .. }),
            "{}",
            String::from_utf8_lossy(&line)
        );
        if frame.starts_with(b"$GPRMC") {
            rmc_at.push(t0.elapsed());
        }
        if frame.starts_with(b"$GPGSA") {
            // The cycle's last sentence (or GSV follows): it left the wire in its second.
            let n = u32::try_from(rmc_at.len()).unwrap();
            assert!(t0.elapsed() < Duration::from_secs(u64::from(n) + 1));
        }
    }
    for (n, at) in (1u64..).zip(&rmc_at) {
        assert!(
            *at > Duration::from_secs(n) && *at < Duration::from_secs(n + 1),
            "{rmc_at:?}"
        );
    }
    cancel.cancel();
    task.await.unwrap().unwrap();
}

/// The example builds; `check` refuses a set the baud cannot carry, at `sentences`, and a bad
/// value where it is.
#[test]
fn the_example_builds_and_bad_configs_are_pointed_at() {
    let doc = toml::de::DeTable::parse(EXAMPLE).unwrap().into_inner();
    let device = doc["device"].get_ref().as_array().unwrap()[0].get_ref();
    let built = build(&Build::new(Table::new(
        device.get("nmea-gps").unwrap().clone(),
    )))
    .unwrap();
    assert_eq!(built[0].line.baud, Some(9600));
    assert_eq!(built[0].framing.name(), "nmea");

    let text = "baud = 4800\nsentences = ['RMC', 'VTG', 'GGA', 'GSA', 'GSV', 'GLL', 'ZDA']\n";
    let e = build(&Build::new(Table::parse(text).unwrap())).unwrap_err();
    assert_eq!(e.at, Some(24..73), "{e}");
    assert!(e.reason.contains("480 in each 1 s cycle"), "{e}");
    let fast = "rate_hz = 10.0\nbaud = 115200\n";
    assert!(build(&Build::new(Table::parse(fast).unwrap())).is_ok());
    let too_fast = "rate_hz = 10.0\n";
    assert!(build(&Build::new(Table::parse(too_fast).unwrap())).is_err());

    for (text, at) in [
        ("baud = 1200\n", "1200"),
        ("talker = 'GL'\n", "'GL'"),
        ("fix = '3d'\nsatellites_used = 3\n", "3"),
        ("fix = '2d'\nsatellites_used = 2\n", "2"),
        (
            "route = { waypoints = [[95.0, 1.0], [1.0, 1.0]], speed_mps = 1.0 }\n",
            "[[95.0, 1.0], [1.0, 1.0]]",
        ),
        (
            "circle = { lat = 1.0, lon = 1.0, radius_m = 0.0, speed_mps = 1.0 }\n",
            "0.0",
        ),
        ("satellites_in_view = 40\n", "40"),
        ("sentences = ['GGA', 'XYZ']\n", "'XYZ'"),
    ] {
        let e = build(&Build::new(Table::parse(text).unwrap())).unwrap_err();
        let span = e.at.clone().unwrap();
        assert_eq!(&text[span], at, "{text}: {e}");
    }
}

/// A directory of the test's own, removed when it ends.
struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `log = "..."` plays a file next to the config at its `# Serial:` speed unless `baud` is
/// written; a log the line cannot carry, or that is not text NMEA, is refused at `log`.
#[test]
fn a_log_is_played_at_its_serial_speed_and_refused_at_log() {
    let dir = Scratch(std::env::temp_dir().join(format!("nmea-gps-log-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let cycle = "$GPRMC,123519.00,A,4807.0380,N,01131.0000,E,0.13,309.6,150324,,,A*6E\r\n";
    std::fs::write(
        dir.0.join("ok.log"),
        format!("# Serial: 4800 8N1\n{cycle}{cycle}"),
    )
    .unwrap();
    // One cycle (from a GGA to the next) of ten sentences: 556 bytes, more than 4800 baud
    // carries in a second.
    let long = "$GPGLL,12345678901234567890123456789012345678901234567890\r\n";
    let big = format!("# Serial: 4800 8N1\n$GPGGA,1\r\n{}", long.repeat(9));
    std::fs::write(dir.0.join("big.log"), big).unwrap();
    std::fs::write(dir.0.join("binary.log"), b"$GPGGA,1\n\xb5b\x01\x02\n").unwrap();
    let build_with = |text: &str| {
        let mut b = Build::new(Table::parse(text).unwrap());
        b.base_dir = Some(&dir.0);
        build(&b)
    };
    let built = build_with("log = 'ok.log'\n").unwrap();
    assert_eq!(built[0].line.baud, Some(4800));
    let built = build_with("baud = 9600\nlog = 'ok.log'\n").unwrap();
    assert_eq!(built[0].line.baud, Some(9600));
    for (text, why) in [
        ("log = 'big.log'\n", "4800 baud carries 480"),
        ("log = 'binary.log'\n", "binary.log:2: not an NMEA sentence"),
        ("log = 'none.log'\n", "cannot read"),
        ("log = '/dev/zero'\n", "not a regular file"),
        ("log = '.'\n", "not a regular file"),
    ] {
        let e = build_with(text).unwrap_err();
        assert_eq!(e.at, Some(6..text.len() - 1), "{text}: {e}");
        assert!(e.reason.contains(why), "{text}: {e}");
    }
}

/// The receiver talks on a beat of its own (one cycle per period) rather than through
/// `unprompted`: the serving loop calls `talk` on the same timers as paced output — a lane's
/// timer heap when the port is lent — so it does not claim `sends_unprompted`, which would keep
/// its port off the fleet's lane for nothing. A log player likewise.
#[test]
fn it_talks_on_its_beat_and_claims_no_unprompted_stream() {
    let gps = gps("rate_hz = 10.0\nbaud = 115200\n");
    assert_eq!(gps.talks_every(), Some(Duration::from_millis(100)));
    assert!(!gps.sends_unprompted());
    let log = Log::parse(b"$GPGGA,1\n").unwrap();
    let player = LogPlayer::new(log, 9600, Duration::from_millis(200), true);
    assert_eq!(player.talks_every(), Some(Duration::from_millis(200)));
    assert!(!player.sends_unprompted());
}

/// A build of `text` whose `[device.line]` writes `baud`, at bytes 100..106 of the config.
fn on_line_of(
    text: &str,
    baud: u32,
    base_dir: Option<&std::path::Path>,
) -> Result<Vec<Built>, BuildError> {
    let mut b = Build::new(Table::parse(text).unwrap());
    b.line_baud = Some(serde_spanned::Spanned::new(100..106, baud));
    b.base_dir = base_dir;
    build(&b)
}

/// `check` sums a cycle's bytes against the line that will really be there: `[device.line]`'s
/// baud when written, refused at that baud; a set the model's own speed carries is refused on
/// a slower line, one it does not is accepted on a faster one.
#[test]
fn a_cycle_must_fit_the_line_device_line_sets() {
    let fast = "rate_hz = 10.0\nbaud = 115200\n";
    assert!(build(&Build::new(Table::parse(fast).unwrap())).is_ok());
    let e = on_line_of(fast, 9600, None).unwrap_err();
    assert_eq!(e.at, Some(100..106), "{e}");
    assert!(
        e.reason
            .starts_with("`[device.line]` sets the line to 9600 baud: a cycle of these")
            && e.reason
                .contains("9600 baud carries 96 in each 0.1 s cycle"),
        "{e}"
    );
    assert!(on_line_of(fast, 230_400, None).is_ok());

    let slow = "baud = 4800\n";
    assert!(build(&Build::new(Table::parse(slow).unwrap())).is_err());
    let built = on_line_of(slow, 9600, None).unwrap();
    assert_eq!(
        built[0].line.baud,
        Some(4800),
        "the config lays the line over it"
    );
}

/// A played log, too, must fit the line `[device.line]` sets: one its `# Serial:` 4800 baud
/// cannot carry is accepted on a line of 9600, and one that fits at 9600 is refused, at the
/// `[device.line]` baud, on a line of 300.
#[test]
fn a_log_must_fit_the_line_device_line_sets() {
    let dir = Scratch(std::env::temp_dir().join(format!("nmea-gps-line-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    // One cycle of 556 bytes: more than its `# Serial:` 4800 baud carries, not 9600.
    let long = "$GPGLL,12345678901234567890123456789012345678901234567890\r\n";
    let big = format!("# Serial: 4800 8N1\n$GPGGA,1\r\n{}", long.repeat(9));
    std::fs::write(dir.0.join("big.log"), big).unwrap();
    let mut b = Build::new(Table::parse("log = 'big.log'\n").unwrap());
    b.base_dir = Some(&dir.0);
    assert!(build(&b).is_err());
    assert!(on_line_of("log = 'big.log'\n", 9600, Some(&dir.0)).is_ok());
    let e = on_line_of("log = 'big.log'\nbaud = 9600\n", 300, Some(&dir.0)).unwrap_err();
    assert_eq!(e.at, Some(100..106), "{e}");
    assert!(e.reason.contains("300 baud carries 30"), "{e}");
}

/// At a `[device.line]` speed of 4800 GSV is thinned, whatever the model's own `baud`: the
/// receiver is at the line's speed.
#[test]
fn gsv_thinning_follows_the_line_device_line_sets() {
    let config = GpsConfig::default();
    assert_eq!(config.baud, 9600);
    let gps = NmeaGps::on_line(config.clone(), 1, Some(4800)).unwrap();
    assert_eq!(
        (0..6).map(|n| gps.sends_gsv(n)).collect::<Vec<_>>(),
        [true, false, false, false, false, true]
    );
    assert!(NmeaGps::on_line(config, 1, None).unwrap().sends_gsv(1));
}

/// Beside `log`, every key only synthesis reads is refused at its value; `baud`, `rate_hz`
/// and `log_repeat` are the log's. `log_repeat` without `log` is refused too.
#[test]
fn a_log_takes_only_the_keys_it_uses() {
    let dir = Scratch(std::env::temp_dir().join(format!("nmea-gps-keys-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let cycle = "$GPRMC,123519.00,A,4807.0380,N,01131.0000,E,0.13,309.6,150324,,,A*6E\r\n";
    std::fs::write(dir.0.join("ok.log"), format!("# Serial: 4800 8N1\n{cycle}")).unwrap();
    let build_with = |text: &str| {
        let mut b = Build::new(Table::parse(text).unwrap());
        b.base_dir = Some(&dir.0);
        build(&b)
    };
    let text = "log = 'ok.log'\nbaud = 9600\nrate_hz = 2.0\nlog_repeat = false\n";
    assert!(build_with(text).is_ok());
    for (key, value) in [
        ("talker", "'GN'"),
        ("sentences", "['GGA']"),
        ("fix", "'none'"),
        ("satellites_used", "5"),
        ("satellites_in_view", "14"),
        ("altitude_m", "10.0"),
        ("geoid_separation_m", "1.0"),
        ("hdop", "1.2"),
        ("vdop", "1.3"),
        ("position", "{ lat = 1.0, lon = 2.0 }"),
        (
            "route",
            "{ waypoints = [[1.0, 2.0], [1.1, 2.0]], speed_mps = 3.0 }",
        ),
        (
            "circle",
            "{ lat = 1.0, lon = 2.0, radius_m = 5.0, speed_mps = 1.0 }",
        ),
    ] {
        let text = format!("log = 'ok.log'\n{key} = {value}\n");
        let e = build_with(&text).unwrap_err();
        let at = e.at.clone().unwrap();
        assert_eq!(&text[at], value, "{key}: {e}");
        assert!(
            e.reason
                .starts_with(&format!("`{key}` does not apply with `log`")),
            "{e}"
        );
    }
    let text = "log_repeat = false\n";
    let e = build_with(text).unwrap_err();
    assert_eq!(e.at, Some(13..18), "{e}");
    assert!(e.reason.contains("only with `log`"), "{e}");
}
