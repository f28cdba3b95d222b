//! An NMEA 0183 GPS receiver (`model = "nmea-gps"`): a burst of sentences on every beat, for
//! gpsd, pynmea2, pynmeagps and anything else reading a GPS on a serial port.
//!
//! # Protocol facts, and where they come from
//! - Framing and checksum ([`framer`]): `$`, fields, `*`, the XOR of the bytes between, CR LF;
//!   at most 82 characters (gpsd www/NMEA.adoc, "NMEA Encoding Conventions").
//! - Sentences and their fields ([`sentences`]): GGA, RMC, GSA, GSV, VTG, GLL (NMEA.adoc,
//!   pynmea2 `types/talker.py`, instruments.md §3.2, whose burst was checked against gpsd and
//!   pynmea2) and ZDA (NMEA.adoc). NMEA 2.3's mode field ends RMC, VTG and GLL. The default
//!   order is a u-blox receiver's (RMC, VTG, GGA, GSA, GSV…, GLL), then ZDA.
//! - Talkers: `GP` (GPS alone) or `GN` (a combined solution: one GSA per constellation, in
//!   NMEA 4.0's fields without the 4.10 system id that gpsd 3.22 misreads, GSV under `GP` and
//!   `GL`, as a u-blox NEO-M8N sends them by default: gpsd test/daemon/neo-m8n.log).
//! - Fix states as gpsd 3.22 reads them (instruments.md §3.3, observed): 3D needs a GGA with a
//!   position, an altitude and at least 4 satellites used, or GSA fix 3; 2D is GSA fix 2 with
//!   GGA's altitude empty, from 3 satellites (as a receiver falls back to 2D when it has
//!   three: gpsd's `processGLL` makes any fix of more than three 3D, and `processGGA` fewer
//!   than three no fix); a lost fix must be said everywhere at once — empty position
//!   fields, GGA quality 0, GSA fix 1, RMC `V` — because gpsd's mode is sticky. RMC (and ZDA)
//!   carry the date, without which gpsd reports no time. From 3D, gpsd 3.22 holds the mode
//!   for one cycle more (`nmea_parse`: "don't downgrade mode if holding previous fix", while
//!   the last fix had an altitude): 2D shows from the second 2D cycle.
//! - GGA's count of satellites used is the number of PRNs in GSA, which are among those GSV
//!   lists.
//! - The line: 4800 baud 8N1 is the standard's, 9600 what most consumer receivers use; both
//!   (and faster ones) are settings, and output is paced at the chosen speed. At 4800 baud
//!   GSV goes out every fifth cycle only, as `SiRF` receivers thin their output at that speed.
//!   The speed is the line's: a `[device.line]` baud, when the config writes one, is the one
//!   GSV is thinned for and the one a cycle's bytes must fit within a period (`check` refuses
//!   a set it cannot carry, at that baud).
//! - Client writes are read and ignored: gpsd probes every vendor it knows when it opens a
//!   port without `-b` (`$PSRF100,0,38400,...` asks a `SiRF` chip to change to binary at 38400),
//!   and a receiver that does not speak that dialect goes on as it was, at its own speed.
//!
//! Time and place follow the fleet's simulated clock: each cycle's fix time is a whole number
//! of periods after the clock's start, and the position is the track's at that moment
//! ([`track`]), so what a client sees does not depend on when it opened the port.

pub mod framer;
pub mod log;
pub mod sentences;
pub mod track;

use std::convert::Infallible;
use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use serde::Deserialize;
use serialtwin_core::{Context, Device, Framing, LineConfig, Replies, Settable};

use self::log::{Log, LogPlayer};
use self::sentences::{Epoch, Fix, Kind, Sky};
use self::track::{Motion, Point, Track};
use crate::registry::{self, Build, BuildError, Built, Model, NamedFraming};

/// The `nmea-gps` model.
pub static MODEL: Model = Model {
    name: "nmea-gps",
    summary: "an NMEA 0183 GPS receiver (GGA, RMC, GSA, GSV, VTG, GLL, ZDA) at 1 Hz or as set, \
              following the simulated clock along a point, route or circle; 9600 or 4800 8N1",
    table: "nmea-gps",
    example: EXAMPLE,
    framings: &[NamedFraming {
        name: framer::NAME,
        summary: "NMEA 0183 sentences: `$...*hh` CR LF, XOR checksum",
        make: framer::framing,
        unknown_command: None,
        describe: None,
        learn: None,
    }],
    groups: false,
    max_clock_speed: f64::INFINITY,
    settable,
    lint: registry::no_lint,
    build,
    units: &[],
};

const EXAMPLE: &str = r#"[[device]]
name = "gps"
model = "nmea-gps"
link = "/tmp/serialtwin/ttyUSB-gps"  # gpsd -N -b /tmp/serialtwin/ttyUSB-gps

[device.nmea-gps]                   # every key optional
baud = 9600                         # the receiver's own speed (4800 thins GSV to every 5th cycle)
rate_hz = 1.0                       # cycles per second
talker = "GP"                       # "GP" (GPS) or "GN" (GPS + GLONASS)
sentences = ["RMC", "VTG", "GGA", "GSA", "GSV", "GLL", "ZDA"]  # one cycle, in order
fix = "3d"                          # "3d", "2d" or "none"; `ctl set gps fix none` at run time
satellites_used = 8                 # GGA's count and GSA's PRNs in 3d (4 or more); 2d uses 3
satellites_in_view = 12             # GSV's
altitude_m = 545.4                  # above mean sea level
geoid_separation_m = 47.0
hdop = 0.9
vdop = 1.6
# Where it is, one of (without any: a fixed point in Munich):
#   position = { lat = 48.1173, lon = 11.5167 }
#   circle = { lat = 48.1173, lon = 11.5167, radius_m = 100.0, speed_mps = 5.0 }
route = { waypoints = [[48.1173, 11.5167], [48.1263, 11.5167], [48.1263, 11.5302]], speed_mps = 10.0, repeat = true }
# Or play a recorded log instead (gpsfake's format, relative to this file): one cycle per beat,
# its `# Serial:` speed unless `baud` is written; of the keys above only baud and rate_hz apply
# (the others are refused beside `log`).
#   log = "drive.log"
#   log_repeat = true               # from the start again after the last cycle (false: silence)
"#;

/// The keys only a receiver synthesising its sentences reads: beside `log`, whose recording
/// says all of that itself, they are refused rather than silently ignored.
const SYNTHESIS_KEYS: [&str; 12] = [
    "talker",
    "sentences",
    "fix",
    "satellites_used",
    "satellites_in_view",
    "altitude_m",
    "geoid_separation_m",
    "hdop",
    "vdop",
    "position",
    "route",
    "circle",
];

/// How many cycles GSV skips at 4800 baud: sent on every fifth.
const THIN_EVERY: u64 = 5;

/// At this speed and below, GSV is thinned.
const THIN_AT_BAUD: u32 = 4800;

/// The speeds a receiver may be set to.
const BAUDS: [u32; 6] = [4800, 9600, 19_200, 38_400, 57_600, 115_200];

/// Bits per character on an 8N1 line.
const BITS_PER_CHAR: u32 = 10;

/// `[device.nmea-gps]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GpsConfig {
    /// The receiver's line speed.
    pub baud: u32,
    /// Cycles per second.
    pub rate_hz: f64,
    /// `GP` or `GN`.
    pub talker: String,
    /// The sentences of one cycle, in order.
    pub sentences: Vec<Kind>,
    /// The fix it starts with.
    pub fix: Fix,
    /// Satellites a 3D fix uses (a 2D fix uses the highest three of them).
    pub satellites_used: usize,
    /// Satellites in view.
    pub satellites_in_view: usize,
    /// Metres above mean sea level.
    pub altitude_m: f64,
    /// Geoid above the ellipsoid, metres.
    pub geoid_separation_m: f64,
    /// Horizontal dilution of precision.
    pub hdop: f64,
    /// Vertical dilution of precision.
    pub vdop: f64,
    /// A fixed position.
    pub position: Option<PositionConfig>,
    /// A route through waypoints.
    pub route: Option<RouteConfig>,
    /// A circle.
    pub circle: Option<CircleConfig>,
    /// A recorded log to play instead (gpsfake's format).
    pub log: Option<PathBuf>,
    /// Play the log again after its last cycle.
    pub log_repeat: bool,
}

/// `position = { lat, lon }`.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PositionConfig {
    /// Degrees north.
    pub lat: f64,
    /// Degrees east.
    pub lon: f64,
}

/// `route = { waypoints, speed_mps, repeat }`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// `[lat, lon]` pairs, at least two.
    pub waypoints: Vec<[f64; 2]>,
    /// Metres per second.
    pub speed_mps: f64,
    /// Round again after the last waypoint.
    #[serde(default)]
    pub repeat: bool,
}

/// `circle = { lat, lon, radius_m, speed_mps }`.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CircleConfig {
    /// The centre, degrees north.
    pub lat: f64,
    /// The centre, degrees east.
    pub lon: f64,
    /// Metres.
    pub radius_m: f64,
    /// Metres per second.
    pub speed_mps: f64,
}

impl Default for GpsConfig {
    fn default() -> Self {
        Self {
            baud: 9600,
            rate_hz: 1.0,
            talker: "GP".into(),
            sentences: vec![
                Kind::Rmc,
                Kind::Vtg,
                Kind::Gga,
                Kind::Gsa,
                Kind::Gsv,
                Kind::Gll,
                Kind::Zda,
            ],
            fix: Fix::ThreeD,
            satellites_used: 8,
            satellites_in_view: 12,
            altitude_m: 545.4,
            geoid_separation_m: 47.0,
            hdop: 0.9,
            vdop: 1.6,
            position: None,
            route: None,
            circle: None,
            log: None,
            log_repeat: true,
        }
    }
}

/// The receiver.
#[derive(Debug)]
pub struct NmeaGps {
    config: GpsConfig,
    track: Track,
    sky: Sky,
    fix: Fix,
    /// The line's real speed: `[device.line]`'s baud when written, else `baud`. GSV thinning
    /// follows it, as a receiver thins for the speed it is at.
    wire_baud: u32,
}

/// A config value that cannot be: the key it is at, and why.
type Refusal = (Vec<&'static str>, String);

fn refuse(path: &[&'static str], why: impl Into<String>) -> Refusal {
    (path.to_vec(), why.into())
}

fn valid_point(lat: f64, lon: f64) -> bool {
    (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon)
}

fn positive(x: f64) -> bool {
    x.is_finite() && x > 0.0
}

impl NmeaGps {
    /// A receiver as `config` describes it, on a line at its own `baud`; `seed` places its
    /// satellites.
    ///
    /// # Errors
    /// The path of the first value that cannot be, and why (a cycle the baud cannot carry in
    /// one period, at `sentences`).
    pub fn new(config: GpsConfig, seed: u64) -> Result<Self, Refusal> {
        let gps = Self::on_line(config, seed, None)?;
        fits(
            gps.largest_cycle_bytes(),
            gps.wire_baud,
            gps.config.rate_hz,
            &["sentences"],
        )?;
        Ok(gps)
    }

    /// [`NmeaGps::new`] on a line at `line_baud` (`[device.line]`'s) when given, without the
    /// check that a cycle fits the line: the caller makes it, as only it knows where the speed
    /// is written.
    fn on_line(config: GpsConfig, seed: u64, line_baud: Option<u32>) -> Result<Self, Refusal> {
        line_checks(config.baud, config.rate_hz)?;
        if !matches!(config.talker.as_str(), "GP" | "GN") {
            return Err(refuse(&["talker"], "`talker` must be \"GP\" or \"GN\""));
        }
        if config.sentences.is_empty() {
            return Err(refuse(&["sentences"], "`sentences` must name at least one"));
        }
        let (used, in_view) = (config.satellites_used, config.satellites_in_view);
        if used > sentences::GSA_SLOTS {
            return Err(refuse(
                &["satellites_used"],
                "`satellites_used` must be at most 12 (GSA's slots)",
            ));
        }
        let most_in_view = if config.talker == "GN" { 48 } else { 32 };
        if in_view < used || in_view > most_in_view {
            return Err(refuse(
                &["satellites_in_view"],
                format!("`satellites_in_view` must be {used} (those used) to {most_in_view}"),
            ));
        }
        let least = config.fix.least_satellites();
        if used < least {
            return Err(refuse(
                &["satellites_used"],
                format!(
                    "a {} fix needs `satellites_used` of {least} or more",
                    config.fix.word()
                ),
            ));
        }
        for (key, value, range) in [
            ("altitude_m", config.altitude_m, -500.0..=20_000.0),
            (
                "geoid_separation_m",
                config.geoid_separation_m,
                -150.0..=150.0,
            ),
            ("hdop", config.hdop, 0.1..=99.0),
            ("vdop", config.vdop, 0.1..=99.0),
        ] {
            if !range.contains(&value) {
                return Err(refuse(
                    &[key],
                    format!("`{key}` must be {} to {}", range.start(), range.end()),
                ));
            }
        }
        let track = track_of(&config)?;
        let sky = Sky::new(in_view, used, config.talker == "GN", seed);
        Ok(Self {
            fix: config.fix,
            wire_baud: line_baud.unwrap_or(config.baud),
            config,
            track,
            sky,
        })
    }

    fn period(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.config.rate_hz)
    }

    /// Whether cycle `n` sends GSV.
    fn sends_gsv(&self, cycle: u64) -> bool {
        self.wire_baud > THIN_AT_BAUD || cycle.is_multiple_of(THIN_EVERY)
    }

    /// The sentences of cycle `cycle` at `epoch`.
    fn cycle(&self, epoch: &Epoch<'_>, cycle: u64) -> Vec<String> {
        let mut out = Vec::new();
        for &kind in &self.config.sentences {
            if kind != Kind::Gsv || self.sends_gsv(cycle) {
                sentences::render(kind, epoch, &mut out);
            }
        }
        out
    }

    fn epoch(&self, unix: f64, motion: Motion, fix: Fix) -> Epoch<'_> {
        Epoch {
            unix,
            motion,
            fix,
            talker: &self.config.talker,
            altitude_m: self.config.altitude_m,
            geoid_separation_m: self.config.geoid_separation_m,
            hdop: self.config.hdop,
            vdop: self.config.vdop,
            sky: &self.sky,
        }
    }

    /// The bytes of the largest cycle this receiver can send, as encoded on the wire: a 3D
    /// fix with GSV, at its top speed on a course of three digits, in a month and hour of two.
    fn largest_cycle_bytes(&self) -> usize {
        let motion = Motion {
            at: Point {
                lat: -89.0,
                lon: -179.0,
            },
            speed_mps: self.track.top_speed_mps().max(1.0),
            track_deg: Some(359.99),
        };
        let late = 1_702_598_399.99; // 2023-12-14T23:59:59.99Z
        let epoch = self.epoch(late, motion, Fix::ThreeD);
        self.cycle(&epoch, 0)
            .iter()
            .map(|s| s.len() + "*hh\r\n".len())
            .sum()
    }
}

/// Whether `baud` and `rate_hz` are a receiver's.
fn line_checks(baud: u32, rate_hz: f64) -> Result<(), Refusal> {
    if !BAUDS.contains(&baud) {
        return Err(refuse(
            &["baud"],
            format!("`baud` must be one of {BAUDS:?}"),
        ));
    }
    if !(rate_hz.is_finite() && (0.1..=20.0).contains(&rate_hz)) {
        return Err(refuse(&["rate_hz"], "`rate_hz` must be 0.1 to 20"));
    }
    Ok(())
}

/// Whether a cycle of `largest` bytes goes out within one period at `baud`: a cycle that does
/// not would make the next beat find it still waiting, and be skipped.
fn fits(largest: usize, baud: u32, rate_hz: f64, at: &[&'static str]) -> Result<(), Refusal> {
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "at most 400,000 bytes a second over at least 0.05 s: small and positive"
    )]
    let carried = (f64::from(baud / BITS_PER_CHAR) / rate_hz).floor() as usize;
    if largest > carried {
        return Err(refuse(
            at,
            format!(
                "a cycle of these sentences takes up to {largest} bytes, and {baud} baud carries \
                 {carried} in each {} s cycle: send fewer sentences, less often, or faster",
                1.0 / rate_hz
            ),
        ));
    }
    Ok(())
}

/// Whether a cycle of `largest` bytes fits the line that will really be there: at
/// `[device.line]`'s baud when the config writes one (refused there), else at the model's own
/// `baud` (refused at `at`).
fn fits_line(
    b: &Build<'_>,
    largest: usize,
    own_baud: u32,
    rate_hz: f64,
    at: &[&'static str],
) -> Result<(), BuildError> {
    match &b.line_baud {
        Some(baud) => fits(largest, *baud.get_ref(), rate_hz, &[]).map_err(|(_, why)| {
            BuildError::at(
                baud.span(),
                format!(
                    "`[device.line]` sets the line to {} baud: {why}",
                    baud.get_ref()
                ),
            )
        }),
        None => fits(largest, own_baud, rate_hz, at).map_err(|(path, why)| b.error(&path, why)),
    }
}

/// A player of the log `path`, at the table's `baud` if written, else the log's `# Serial:`
/// speed, else the default (`[device.line]`'s baud, when written, is the line's over them all).
fn player(
    b: &Build<'_>,
    config: &GpsConfig,
    path: &std::path::Path,
) -> Result<LogPlayer, BuildError> {
    let refused = |(at, why): Refusal| b.error(&at, why);
    let file = b.resolve(path);
    let text = log::read(&file)
        .map_err(|e| refuse(&["log"], format!("cannot read {}: {e}", file.display())))
        .map_err(refused)?;
    let log = Log::parse(&text)
        .map_err(|(line, why)| refuse(&["log"], format!("{}:{line}: {why}", file.display())))
        .map_err(refused)?;
    let baud = match log.serial_baud {
        Some(baud) if b.table.span_of(&["baud"]).is_none() => baud,
        _ => config.baud,
    };
    line_checks(baud, config.rate_hz)
        .map_err(|(at, why)| {
            if b.table.span_of(&["baud"]).is_none() && at == ["baud"] {
                refuse(&["log"], format!("the log's `# Serial:` speed: {why}"))
            } else {
                (at, why)
            }
        })
        .map_err(refused)?;
    fits_line(b, log.largest_cycle_bytes(), baud, config.rate_hz, &["log"])?;
    Ok(LogPlayer::new(
        log,
        baud,
        Duration::from_secs_f64(1.0 / config.rate_hz),
        config.log_repeat,
    ))
}

fn track_of(config: &GpsConfig) -> Result<Track, Refusal> {
    let given = [
        config.position.is_some(),
        config.route.is_some(),
        config.circle.is_some(),
    ];
    if given.iter().filter(|g| **g).count() > 1 {
        return Err(refuse(
            &[],
            "give one of `position`, `route` and `circle`, not several",
        ));
    }
    if let Some(p) = config.position {
        if !valid_point(p.lat, p.lon) {
            return Err(refuse(
                &["position"],
                "lat must be -90 to 90, lon -180 to 180",
            ));
        }
        return Ok(Track::Fixed(Point {
            lat: p.lat,
            lon: p.lon,
        }));
    }
    if let Some(r) = &config.route {
        if r.waypoints.len() < 2 || !r.waypoints.iter().all(|[lat, lon]| valid_point(*lat, *lon)) {
            return Err(refuse(
                &["route", "waypoints"],
                "`waypoints` must be at least two [lat, lon] pairs, lat -90 to 90, lon -180 to 180",
            ));
        }
        if !(positive(r.speed_mps) && r.speed_mps <= 500.0) {
            return Err(refuse(
                &["route", "speed_mps"],
                "`speed_mps` must be above 0, at most 500",
            ));
        }
        return Ok(Track::Route {
            waypoints: r
                .waypoints
                .iter()
                .map(|[lat, lon]| Point {
                    lat: *lat,
                    lon: *lon,
                })
                .collect(),
            speed_mps: r.speed_mps,
            repeat: r.repeat,
        });
    }
    if let Some(c) = config.circle {
        if !valid_point(c.lat, c.lon) || c.lat.abs() > 89.0 {
            return Err(refuse(
                &["circle"],
                "the centre's lat must be -89 to 89, lon -180 to 180",
            ));
        }
        if !(positive(c.radius_m) && c.radius_m <= 100_000.0) {
            return Err(refuse(
                &["circle", "radius_m"],
                "`radius_m` must be above 0, at most 100000",
            ));
        }
        if !(positive(c.speed_mps) && c.speed_mps <= 500.0) {
            return Err(refuse(
                &["circle", "speed_mps"],
                "`speed_mps` must be above 0, at most 500",
            ));
        }
        return Ok(Track::Circle {
            centre: Point {
                lat: c.lat,
                lon: c.lon,
            },
            radius_m: c.radius_m,
            speed_mps: c.speed_mps,
        });
    }
    Ok(Track::Fixed(Point {
        lat: 48.1173,
        lon: 11.5167,
    }))
}

impl Device for NmeaGps {
    type Error = Infallible;

    fn framing(&self) -> Framing {
        framer::framing()
    }

    /// A UART at the receiver's speed, 8N1, paced; a client at another speed hears garbage
    /// (gpsd hunts until it finds the speed).
    fn line(&self) -> LineConfig {
        LineConfig::uart(self.config.baud)
    }

    /// Client writes (gpsd's probes, `$PSRF100` asking for binary at another speed) are
    /// heard and not obeyed: this receiver knows no command.
    fn handle(
        &mut self,
        request: &[u8],
        _: &mut Context,
        _: &mut Replies,
    ) -> Result<(), Infallible> {
        tracing::debug!(
            request = %String::from_utf8_lossy(request),
            "a client wrote to the GPS: ignored"
        );
        Ok(())
    }

    fn talks_every(&self) -> Option<Duration> {
        Some(self.period())
    }

    /// One cycle, at the whole number of periods after the clock's start nearest to now.
    fn talk(&mut self, ctx: &mut Context, replies: &mut Replies) {
        let clock = ctx.clock();
        let start = clock
            .epoch()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let since = (clock.unix_seconds_f64() - start).max(0.0);
        let step = self.period().as_secs_f64() * clock.speed();
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "a non-negative count of cycles, saturating far beyond year 9999"
        )]
        let cycle = if step > 0.0 {
            (since / step).round() as u64
        } else {
            0
        };
        #[expect(
            clippy::cast_precision_loss,
            reason = "cycles up to 2^52 are exact, far beyond year 9999 at 20 Hz"
        )]
        let elapsed = cycle as f64 * step;
        let motion = self.track.at(elapsed);
        let epoch = self.epoch(start + elapsed, motion, self.fix);
        for sentence in self.cycle(&epoch, cycle) {
            replies.push(sentence);
        }
    }

    fn set(&mut self, key: &str, value: &str, _: &mut Context) -> Result<(), String> {
        match key {
            "fix" => {
                let fix = Fix::parse(value)
                    .ok_or_else(|| format!("fix must be 3d, 2d or none, not {value:?}"))?;
                let least = fix.least_satellites();
                if self.config.satellites_used < least {
                    return Err(format!(
                        "a {value} fix needs {least} satellites used or more (satellites_used \
                         is {})",
                        self.config.satellites_used
                    ));
                }
                self.fix = fix;
                Ok(())
            }
            _ => Err(format!(
                "the nmea-gps model has no settable value {key:?} (try fix)"
            )),
        }
    }

    fn settable(&self) -> Vec<Settable> {
        vec![Settable::new(
            "fix",
            "3d|2d|none: the fix every sentence reports from the next cycle on (2d from 3 \
             satellites)",
        )]
    }
}

fn settable() -> Vec<Settable> {
    NmeaGps::new(GpsConfig::default(), 0)
        .map(|gps| gps.settable())
        .unwrap_or_default()
}

fn build(b: &Build<'_>) -> Result<Vec<Built>, BuildError> {
    let config: GpsConfig = b.table.deserialize()?.unwrap_or_default();
    if let Some(path) = &config.log {
        if let Some(key) = SYNTHESIS_KEYS
            .into_iter()
            .find(|key| b.table.span_of(&[key]).is_some())
        {
            return Err(b.error(
                &[key],
                format!(
                    "`{key}` does not apply with `log`: a played log sends its sentences as \
                     recorded (beside it: `baud`, `rate_hz` and `log_repeat`)"
                ),
            ));
        }
        let player = player(b, &config, path)?;
        return Ok((0..b.count).map(|_| Built::new(player.clone())).collect());
    }
    if b.table.span_of(&["log_repeat"]).is_some() {
        return Err(b.error(
            &["log_repeat"],
            "`log_repeat` applies only with `log` (a log to play)",
        ));
    }
    let line_baud = b.line_baud.as_ref().map(|baud| *baud.get_ref());
    (0..b.count)
        .map(|i| {
            let gps = NmeaGps::on_line(config.clone(), b.port_seed(i), line_baud)
                .map_err(|(path, why)| b.error(&path, why))?;
            fits_line(
                b,
                gps.largest_cycle_bytes(),
                gps.config.baud,
                gps.config.rate_hz,
                &["sentences"],
            )?;
            Ok(Built::new(gps))
        })
        .collect()
}

#[cfg(test)]
mod tests;
