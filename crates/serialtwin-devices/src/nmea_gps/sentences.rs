//! One cycle's sentences, field by field (instruments.md §3.2, from gpsd www/NMEA.adoc and
//! pynmea2's `types/talker.py`; ZDA from NMEA.adoc's "ZDA - Time & Date").
//!
//! A sentence is pushed with its `$` and without checksum: the framer adds `*hh` CR LF.

use std::fmt::Write as _;

use jiff::civil::Date;
use serde::Deserialize;

use super::track::Motion;

/// Knots per metre per second (1 kn = 1852 m/h).
const KNOTS_PER_MPS: f64 = 3600.0 / 1852.0;

/// The PRN slots of one GSA sentence.
pub const GSA_SLOTS: usize = 12;

/// The satellites a 2D fix uses, however many more a 3D one would: a receiver falls back to
/// 2D (altitude held) when it has three. gpsd 3.22 reads it so and no other way: GGA with
/// fewer than three used is no fix (`drivers/driver_nmea0183.c`, `processGGA`), and GLL makes
/// the mode 3D whenever the last GSA listed more than three (`processGLL`: "4 sats used means
/// 3D"), so a 2D fix of more satellites shows as 3D to gpsd whenever GLL is sent.
pub const TWO_D_SATELLITES: usize = 3;

/// A sentence type the receiver can send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
pub enum Kind {
    /// Fix data: time, position, quality, satellites used, HDOP, altitude.
    #[serde(rename = "GGA")]
    Gga,
    /// Recommended minimum: time, status, position, speed, course, date.
    #[serde(rename = "RMC")]
    Rmc,
    /// DOPs and the satellites used, with the fix type.
    #[serde(rename = "GSA")]
    Gsa,
    /// Satellites in view, four to a sentence.
    #[serde(rename = "GSV")]
    Gsv,
    /// Course and speed over ground.
    #[serde(rename = "VTG")]
    Vtg,
    /// Position and time.
    #[serde(rename = "GLL")]
    Gll,
    /// Time and date.
    #[serde(rename = "ZDA")]
    Zda,
}

/// The fix the receiver reports. Each state is written in every sentence at once (gpsd's mode
/// is sticky: a lost fix shows only when GGA, GSA and RMC all say so).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fix {
    /// Position and altitude: GGA quality 1 with altitude, GSA fix 3, RMC `A`.
    #[serde(rename = "3d")]
    ThreeD,
    /// Position without altitude: GSA fix 2, GGA's altitude empty, RMC `A`, from the
    /// [`TWO_D_SATELLITES`] highest satellites used.
    #[serde(rename = "2d")]
    TwoD,
    /// Nothing: empty position fields, GGA quality 0, GSA fix 1, RMC `V`.
    None,
}

impl Fix {
    /// `3d`, `2d` or `none`, as config and `ctl set` write it.
    #[must_use]
    pub fn parse(word: &str) -> Option<Self> {
        match word {
            "3d" => Some(Self::ThreeD),
            "2d" => Some(Self::TwoD),
            "none" => Some(Self::None),
            _ => None,
        }
    }

    /// `3d`, `2d` or `none`, as config and `ctl set` write it.
    #[must_use]
    pub fn word(self) -> &'static str {
        match self {
            Self::ThreeD => "3d",
            Self::TwoD => "2d",
            Self::None => "none",
        }
    }

    fn has_position(self) -> bool {
        self != Self::None
    }

    /// How many of `used` satellites (those a 3D fix uses) this fix uses.
    #[must_use]
    pub fn satellites(self, used: usize) -> usize {
        match self {
            Self::ThreeD => used,
            Self::TwoD => used.min(TWO_D_SATELLITES),
            Self::None => 0,
        }
    }

    /// The fewest satellites used this fix can be said with, as gpsd 3.22 reads it: 4 for
    /// 3D (GGA with an altitude and 3 is 2D), 3 for 2D (GGA with 2 is no fix).
    #[must_use]
    pub fn least_satellites(self) -> usize {
        match self {
            Self::ThreeD => 4,
            Self::TwoD => TWO_D_SATELLITES,
            Self::None => 0,
        }
    }
}

/// A constellation, by the talker of its own sentences and its NMEA ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum System {
    /// GPS: PRNs 1–32, talker GP.
    Gps,
    /// GLONASS: NMEA ids 65–96, talker GL.
    Glonass,
}

impl System {
    fn talker(self) -> &'static str {
        match self {
            Self::Gps => "GP",
            Self::Glonass => "GL",
        }
    }
}

/// One satellite in view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Satellite {
    /// Its constellation.
    pub system: System,
    /// Its number as NMEA writes it.
    pub prn: u8,
    /// Degrees above the horizon, 0–90.
    pub elevation: u8,
    /// Degrees true, 0–359.
    pub azimuth: u16,
    /// Signal to noise, dB-Hz.
    pub snr: u8,
    /// Whether the fix uses it.
    pub used: bool,
}

/// The satellites in view, highest first, of which the first `used` make the fix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sky(pub Vec<Satellite>);

impl Sky {
    /// `in_view` satellites (GPS alone, or GPS and GLONASS alternating), the `used` highest
    /// of them used, their places drawn from `seed`.
    #[must_use]
    pub fn new(in_view: usize, used: usize, both_systems: bool, seed: u64) -> Self {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut gps: Vec<u8> = (1..=32).collect();
        let mut glonass: Vec<u8> = (65..=88).collect();
        rng.shuffle(&mut gps);
        rng.shuffle(&mut glonass);
        let mut sats: Vec<Satellite> = (0..in_view)
            .map(|i| {
                let (system, prn) = if both_systems && i % 2 == 1 {
                    (System::Glonass, glonass[(i / 2) % glonass.len()])
                } else {
                    let n = if both_systems { i / 2 } else { i };
                    (System::Gps, gps[n % gps.len()])
                };
                let elevation = rng.u8(5..=85);
                Satellite {
                    system,
                    prn,
                    elevation,
                    azimuth: rng.u16(0..360),
                    snr: 20 + elevation / 4 + rng.u8(0..8),
                    used: false,
                }
            })
            .collect();
        sats.sort_by_key(|s| std::cmp::Reverse(s.elevation));
        for s in sats.iter_mut().take(used) {
            s.used = true;
        }
        Self(sats)
    }

    /// The satellites a 3D fix uses, highest first.
    fn used(&self) -> impl Iterator<Item = &Satellite> {
        self.0.iter().filter(|s| s.used)
    }
}

/// What a cycle reports, beyond the sentences it is made of.
#[derive(Clone, Copy, Debug)]
pub struct Epoch<'a> {
    /// Simulated Unix seconds of the fix.
    pub unix: f64,
    /// Where the receiver is.
    pub motion: Motion,
    /// The fix state.
    pub fix: Fix,
    /// The talker of the navigation sentences: `GP` or `GN`.
    pub talker: &'a str,
    /// Metres above mean sea level.
    pub altitude_m: f64,
    /// Geoid height above the WGS 84 ellipsoid, metres.
    pub geoid_separation_m: f64,
    /// Horizontal and vertical dilution of precision.
    pub hdop: f64,
    /// Vertical dilution of precision.
    pub vdop: f64,
    /// The satellites.
    pub sky: &'a Sky,
}

/// `hhmmss.ss`, and the date, of a Unix time rounded to the hundredth.
struct Stamp {
    time: String,
    date: Option<Date>,
}

fn stamp(unix: f64) -> Stamp {
    #[expect(
        clippy::cast_possible_truncation,
        reason = "the clock keeps simulated time between 1970 and 9999: far inside i64"
    )]
    let centis = (unix * 100.0).round() as i64;
    let secs = centis.div_euclid(100);
    let day_secs = secs.rem_euclid(86_400);
    let date = jiff::Span::new()
        .try_days(secs.div_euclid(86_400))
        .ok()
        .and_then(|days| Date::new(1970, 1, 1).ok()?.checked_add(days).ok());
    Stamp {
        time: format!(
            "{:02}{:02}{:02}.{:02}",
            day_secs / 3600,
            day_secs % 3600 / 60,
            day_secs % 60,
            centis.rem_euclid(100)
        ),
        date,
    }
}

/// `ddmm.mmmmm,N` or `dddmm.mmmmm,E`: degrees and minutes to 1e-5 minute (about 2 cm).
fn angle(value: f64, degree_digits: usize, hemispheres: [char; 2]) -> String {
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "|value| is at most 180 degrees: 1.08e9 hundred-thousandths of a minute"
    )]
    let units = (value.abs() * 60.0 * 1e5).round() as u64;
    let (degrees, minutes) = (units / 6_000_000, units % 6_000_000);
    format!(
        "{degrees:0degree_digits$}{:02}.{:05},{}",
        minutes / 100_000,
        minutes % 100_000,
        hemispheres[usize::from(value < 0.0)]
    )
}

/// Latitude and longitude fields, or four empty ones.
fn position(e: &Epoch<'_>) -> String {
    if e.fix.has_position() {
        format!(
            "{},{}",
            angle(e.motion.at.lat, 2, ['N', 'S']),
            angle(e.motion.at.lon, 3, ['E', 'W'])
        )
    } else {
        ",,,".into()
    }
}

/// The FAA mode indicator of NMEA 2.3: `A` autonomous, `N` not valid.
fn mode(e: &Epoch<'_>) -> char {
    if e.fix.has_position() { 'A' } else { 'N' }
}

/// Course and speed in knots, empty without a fix; the course empty while standing still.
fn course_and_knots(e: &Epoch<'_>) -> (String, String) {
    if !e.fix.has_position() {
        return (String::new(), String::new());
    }
    let course = e
        .motion
        .track_deg
        .map(|c| format!("{:.2}", (c * 100.0).round() / 100.0 % 360.0))
        .unwrap_or_default();
    (course, format!("{:.3}", e.motion.speed_mps * KNOTS_PER_MPS))
}

/// The satellites the fix uses, highest first (of `system`, or all): all those used for 3D,
/// the highest [`TWO_D_SATELLITES`] for 2D, none without a fix.
fn in_fix<'a>(e: &Epoch<'a>, system: Option<System>) -> impl Iterator<Item = &'a Satellite> {
    let sky = e.sky;
    let n = e.fix.satellites(sky.used().count());
    sky.used()
        .take(n)
        .filter(move |s| system.is_none_or(|sys| s.system == sys))
}

/// How many satellites the fix uses (none without one).
fn used_count(e: &Epoch<'_>) -> usize {
    in_fix(e, None).count()
}

/// The sentences of `kind` for this epoch, pushed onto `out`.
pub fn render(kind: Kind, e: &Epoch<'_>, out: &mut Vec<String>) {
    let Stamp { time, date } = stamp(e.unix);
    let t = e.talker;
    let fixed = e.fix.has_position();
    match kind {
        Kind::Rmc => {
            let (course, knots) = course_and_knots(e);
            let ddmmyy = date
                .map(|d| format!("{:02}{:02}{:02}", d.day(), d.month(), d.year() % 100))
                .unwrap_or_default();
            let status = if fixed { 'A' } else { 'V' };
            out.push(format!(
                "${t}RMC,{time},{status},{},{knots},{course},{ddmmyy},,,{}",
                position(e),
                mode(e)
            ));
        }
        Kind::Vtg => {
            let (course, knots) = course_and_knots(e);
            let kmh = if fixed {
                format!("{:.3}", e.motion.speed_mps * 3.6)
            } else {
                String::new()
            };
            out.push(format!(
                "${t}VTG,{course},T,,M,{knots},N,{kmh},K,{}",
                mode(e)
            ));
        }
        Kind::Gga => {
            let quality = u8::from(fixed);
            let used = used_count(e);
            let (hdop, sep) = if fixed {
                (
                    format!("{:.2}", e.hdop),
                    format!("{:.1},M", e.geoid_separation_m),
                )
            } else {
                ("99.99".into(), ",".into())
            };
            let altitude = if e.fix == Fix::ThreeD {
                format!("{:.1},M", e.altitude_m)
            } else {
                ",".into()
            };
            out.push(format!(
                "${t}GGA,{time},{},{quality},{used:02},{hdop},{altitude},{sep},,",
                position(e)
            ));
        }
        Kind::Gsa => gsa(e, out),
        Kind::Gsv => gsv(e, out),
        Kind::Gll => {
            let status = if fixed { 'A' } else { 'V' };
            out.push(format!(
                "${t}GLL,{},{time},{status},{}",
                position(e),
                mode(e)
            ));
        }
        Kind::Zda => {
            let (day, month, year) = date.map_or((0, 0, 0), |d| (d.day(), d.month(), d.year()));
            out.push(format!(
                "${t}ZDA,{time},{day:02},{month:02},{year:04},00,00"
            ));
        }
    }
}

/// GSA: one for GP; for GN, one per constellation, GPS then GLONASS, told apart by their
/// NMEA ids, in NMEA 4.0's 17 fields, as a u-blox NEO-M8N sends them by default (gpsd
/// test/daemon/neo-m8n.log). Not NMEA 4.10's with a system id after VDOP: gpsd 3.22 reads
/// every field from the 3rd to the 5th last as a PRN (`processGSA`'s "magic 6", written for
/// 12 slots), so with an 18th field it takes PDOP for one more PRN (`1.84` as PRN 1): its used
/// count grows by one per GSA, which made a GN 2D fix read as 3D and can mark GPS 1 used in
/// SKY.
fn gsa(e: &Epoch<'_>, out: &mut Vec<String>) {
    let fix = match e.fix {
        Fix::ThreeD => 3,
        Fix::TwoD => 2,
        Fix::None => 1,
    };
    let dops = if e.fix.has_position() {
        let pdop = e.hdop.hypot(e.vdop);
        format!("{pdop:.2},{:.2},{:.2}", e.hdop, e.vdop)
    } else {
        "99.99,99.99,99.99".into()
    };
    let systems: &[Option<System>] = if e.talker == "GN" {
        &[Some(System::Gps), Some(System::Glonass)]
    } else {
        &[None]
    };
    for system in systems {
        let mut line = format!("${}GSA,A,{fix}", e.talker);
        let prns: Vec<u8> = in_fix(e, *system).map(|s| s.prn).take(GSA_SLOTS).collect();
        for slot in 0..GSA_SLOTS {
            line.push(',');
            if let Some(prn) = prns.get(slot) {
                let _ = write!(line, "{prn:02}");
            }
        }
        let _ = write!(line, ",{dops}");
        out.push(line);
    }
}

/// GSV: four satellites to a sentence, per constellation under its own talker.
fn gsv(e: &Epoch<'_>, out: &mut Vec<String>) {
    let systems: &[System] = if e.talker == "GN" {
        &[System::Gps, System::Glonass]
    } else {
        &[System::Gps]
    };
    for &system in systems {
        let sats: Vec<&Satellite> = e.sky.0.iter().filter(|s| s.system == system).collect();
        let talker = if e.talker == "GN" {
            system.talker()
        } else {
            e.talker
        };
        let count = sats.len().div_ceil(4).max(1);
        for (i, group) in (1..=count).zip(sats.chunks(4).map(Some).chain([None])) {
            let mut line = format!("${talker}GSV,{count},{i},{:02}", sats.len());
            for s in group.unwrap_or_default() {
                let _ = write!(
                    line,
                    ",{:02},{:02},{:03},{:02}",
                    s.prn, s.elevation, s.azimuth, s.snr
                );
            }
            out.push(line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::track::Point;
    use super::*;

    fn epoch(sky: &Sky, fix: Fix) -> Epoch<'_> {
        Epoch {
            // 2024-03-15T12:35:19Z, instruments.md's burst.
            unix: 1_710_506_119.0,
            motion: Motion {
                at: Point {
                    lat: 48.1173,
                    lon: 11.516_666_666_666_667,
                },
                speed_mps: 0.13 / KNOTS_PER_MPS,
                track_deg: Some(309.6),
            },
            fix,
            talker: "GP",
            altitude_m: 545.4,
            geoid_separation_m: 47.0,
            hdop: 0.9,
            vdop: 1.6,
            sky,
        }
    }

    fn all(e: &Epoch<'_>) -> Vec<String> {
        let mut out = Vec::new();
        for kind in [
            Kind::Rmc,
            Kind::Vtg,
            Kind::Gga,
            Kind::Gsa,
            Kind::Gsv,
            Kind::Gll,
            Kind::Zda,
        ] {
            render(kind, e, &mut out);
        }
        out
    }

    /// The fields of instruments.md's verified burst, at this model's precision (5 decimals
    /// of a minute, 3 of a knot, 2 of a degree).
    #[test]
    fn a_3d_burst_has_the_verified_layout() {
        let sky = Sky::new(10, 8, false, 7);
        let out = all(&epoch(&sky, Fix::ThreeD));
        let used: Vec<String> = sky
            .0
            .iter()
            .filter(|s| s.used)
            .map(|s| format!("{:02}", s.prn))
            .collect();
        assert_eq!(
            out[..3],
            [
                "$GPRMC,123519.00,A,4807.03800,N,01131.00000,E,0.130,309.60,150324,,,A",
                "$GPVTG,309.60,T,,M,0.130,N,0.241,K,A",
                "$GPGGA,123519.00,4807.03800,N,01131.00000,E,1,08,0.90,545.4,M,47.0,M,,",
            ]
        );
        assert_eq!(
            out[3],
            format!("$GPGSA,A,3,{},,,,,1.84,0.90,1.60", used.join(","))
        );
        assert!(out[4].starts_with("$GPGSV,3,1,10,"), "{}", out[4]);
        assert!(out[6].starts_with("$GPGSV,3,3,10,"), "{}", out[6]);
        assert_eq!(out[6].split(',').count(), 4 + 2 * 4);
        assert_eq!(
            out[7..],
            [
                "$GPGLL,4807.03800,N,01131.00000,E,123519.00,A,A",
                "$GPZDA,123519.00,15,03,2024,00,00",
            ]
        );
        assert!(out.iter().all(|s| s.len() + 5 <= 82), "{out:#?}");
    }

    #[test]
    fn no_fix_and_2d_say_so_everywhere() {
        let sky = Sky::new(10, 8, false, 7);
        let out = all(&epoch(&sky, Fix::None));
        assert_eq!(
            out[..4],
            [
                "$GPRMC,123519.00,V,,,,,,,150324,,,N",
                "$GPVTG,,T,,M,,N,,K,N",
                "$GPGGA,123519.00,,,,,0,00,99.99,,,,,,",
                "$GPGSA,A,1,,,,,,,,,,,,,99.99,99.99,99.99",
            ]
        );
        assert_eq!(out[7], "$GPGLL,,,,,123519.00,V,N");
        let out = all(&epoch(&sky, Fix::TwoD));
        assert!(out[2].ends_with(",1,03,0.90,,,47.0,M,,"), "{}", out[2]);
        let highest: Vec<String> = sky.0[..3].iter().map(|s| format!("{:02}", s.prn)).collect();
        assert_eq!(
            out[3],
            format!("$GPGSA,A,2,{},,,,,,,,,,1.84,0.90,1.60", highest.join(","))
        );
    }

    /// gpsd 3.22 reads a fix of more than three satellites as 3D when GLL follows GSA
    /// (`processGLL`), and a GGA of fewer than three as no fix (`processGGA`): a 2D fix is
    /// said with three, the highest of those used, under GP and GN alike.
    #[test]
    fn a_2d_fix_uses_three_satellites() {
        for (talker, seed) in [("GP", 7), ("GN", 3), ("GN", 11)] {
            let sky = Sky::new(12, 9, talker == "GN", seed);
            let mut e = epoch(&sky, Fix::TwoD);
            e.talker = talker;
            let mut out = Vec::new();
            render(Kind::Gga, &e, &mut out);
            render(Kind::Gsa, &e, &mut out);
            assert!(out[0].contains(",1,03,0.90,,,"), "{out:#?}");
            let mut in_gsa: Vec<&str> = out[1..]
                .iter()
                .flat_map(|s| s.split(',').skip(3).take(GSA_SLOTS))
                .filter(|f| !f.is_empty())
                .collect();
            let mut highest: Vec<String> =
                sky.0[..3].iter().map(|s| format!("{:02}", s.prn)).collect();
            in_gsa.sort_unstable();
            highest.sort_unstable();
            assert_eq!(in_gsa, highest, "{out:#?}");
            assert!(
                out[1..]
                    .iter()
                    .all(|s| s.starts_with(&format!("${talker}GSA,A,2,")))
            );
        }
        assert_eq!(Fix::TwoD.satellites(9), 3);
        assert_eq!(Fix::ThreeD.satellites(9), 9);
        assert_eq!(Fix::None.satellites(9), 0);
    }

    #[test]
    fn gn_reports_each_constellation() {
        let sky = Sky::new(12, 9, true, 3);
        let mut e = epoch(&sky, Fix::ThreeD);
        e.talker = "GN";
        let mut out = Vec::new();
        render(Kind::Gsa, &e, &mut out);
        render(Kind::Gsv, &e, &mut out);
        render(Kind::Gga, &e, &mut out);
        let in_gsa: usize = out[..2]
            .iter()
            .map(|s| {
                s.split(',')
                    .skip(3)
                    .take(12)
                    .filter(|f| !f.is_empty())
                    .count()
            })
            .sum();
        assert_eq!(in_gsa, 9);
        // NMEA 4.0's 17 fields (gpsd 3.22 takes an 18th's PDOP for a PRN), GPS then GLONASS.
        let prns = |s: &str| -> Vec<u8> {
            s.split(',')
                .skip(3)
                .take(12)
                .filter_map(|f| f.parse().ok())
                .collect()
        };
        for (gsa, ids) in out[..2].iter().zip([1..=32u8, 65..=96]) {
            assert_eq!(gsa.split(',').count(), 18, "{gsa}");
            assert!(gsa.ends_with(",1.84,0.90,1.60"), "{gsa}");
            assert!(!prns(gsa).is_empty(), "{gsa}");
            assert!(prns(gsa).iter().all(|p| ids.contains(p)), "{gsa}");
        }
        assert!(out[2].starts_with("$GPGSV,2,1,06,") && out[4].starts_with("$GLGSV,2,1,06,"));
        assert!(
            out.last().unwrap().starts_with("$GNGGA,") && out.last().unwrap().contains(",1,09,")
        );
    }

    #[test]
    fn the_date_and_time_roll_over_correctly() {
        let s = stamp(951_782_399.996); // 2000-02-28T23:59:59.996Z
        assert_eq!(s.time, "000000.00");
        assert_eq!(s.date, Some(Date::new(2000, 2, 29).unwrap()));
        assert_eq!(angle(-0.999_999_999, 2, ['N', 'S']), "0100.00000,S");
        assert_eq!(angle(-179.5, 3, ['E', 'W']), "17930.00000,W");
    }
}
