//! Where the receiver is at each moment of simulated time: a fixed point, a route through
//! waypoints, or a circle, with the speed and track that movement has.
//!
//! Positions are on a sphere of the mean Earth radius (IUGG, 6,371,008.8 m): routes follow
//! great circles between waypoints at a constant speed, a circle keeps a constant distance
//! from its centre. Over the distances a simulated drive covers the sphere and the WGS 84
//! ellipsoid differ by far less than a receiver's own noise, and clients only see
//! coordinates, so the simpler model is the honest one.

use std::f64::consts::PI;

/// Mean Earth radius in metres (IUGG).
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// A point: degrees north and east.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    /// Latitude, degrees, north positive.
    pub lat: f64,
    /// Longitude, degrees, east positive.
    pub lon: f64,
}

/// Where the receiver is, and how it moves there.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Motion {
    /// The position.
    pub at: Point,
    /// Speed over ground, metres per second.
    pub speed_mps: f64,
    /// Course over ground, degrees true (0 north, 90 east); `None` while standing still.
    pub track_deg: Option<f64>,
}

/// How the receiver moves.
#[derive(Clone, Debug, PartialEq)]
pub enum Track {
    /// It stays at one point.
    Fixed(Point),
    /// It drives from waypoint to waypoint at a constant speed, and stops at the last one or
    /// (`repeat`) goes on to the first and round again.
    Route {
        /// At least two points.
        waypoints: Vec<Point>,
        /// Metres per second, > 0.
        speed_mps: f64,
        /// Back to the first waypoint after the last, for ever.
        repeat: bool,
    },
    /// It drives clockwise round `centre`, starting due north of it.
    Circle {
        /// The centre.
        centre: Point,
        /// Metres, > 0.
        radius_m: f64,
        /// Metres per second, > 0.
        speed_mps: f64,
    },
}

/// A unit vector on the sphere.
type Vector = [f64; 3];

fn vector(p: Point) -> Vector {
    let (lat, lon) = (p.lat.to_radians(), p.lon.to_radians());
    [lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()]
}

fn point(v: Vector) -> Point {
    Point {
        lat: v[2].atan2(v[0].hypot(v[1])).to_degrees(),
        lon: v[1].atan2(v[0]).to_degrees(),
    }
}

/// The angle between `a` and `b` seen from the Earth's centre, radians (haversine form,
/// exact at small distances).
fn central_angle(a: Point, b: Point) -> f64 {
    let (la, lb) = (a.lat.to_radians(), b.lat.to_radians());
    let dlat = lb - la;
    let dlon = (b.lon - a.lon).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + la.cos() * lb.cos() * (dlon / 2.0).sin().powi(2);
    2.0 * h.sqrt().min(1.0).asin()
}

/// The distance from `a` to `b` over the sphere, metres.
#[must_use]
pub fn distance_m(a: Point, b: Point) -> f64 {
    central_angle(a, b) * EARTH_RADIUS_M
}

/// The initial bearing from `a` towards `b`, degrees true in `[0, 360)`.
#[must_use]
pub fn bearing_deg(a: Point, b: Point) -> f64 {
    let (la, lb) = (a.lat.to_radians(), b.lat.to_radians());
    let dlon = (b.lon - a.lon).to_radians();
    let y = dlon.sin() * lb.cos();
    let x = la.cos() * lb.sin() - la.sin() * lb.cos() * dlon.cos();
    y.atan2(x).to_degrees().rem_euclid(360.0)
}

/// The point `distance` metres from `from` on bearing `bearing_deg`.
#[must_use]
pub fn destination(from: Point, bearing_deg: f64, distance: f64) -> Point {
    let d = distance / EARTH_RADIUS_M;
    let (lat, lon) = (from.lat.to_radians(), from.lon.to_radians());
    let b = bearing_deg.to_radians();
    let lat2 = (lat.sin() * d.cos() + lat.cos() * d.sin() * b.cos()).asin();
    let lon2 = lon + (b.sin() * d.sin() * lat.cos()).atan2(d.cos() - lat.sin() * lat2.sin());
    Point {
        lat: lat2.to_degrees(),
        lon: (lon2.to_degrees() + 540.0).rem_euclid(360.0) - 180.0,
    }
}

/// The point a fraction `f` of the way from `a` to `b` along their great circle.
fn between(a: Point, b: Point, f: f64) -> Point {
    let angle = central_angle(a, b);
    if angle < 1e-15 {
        return a;
    }
    let (va, vb) = (vector(a), vector(b));
    let (wa, wb) = (
        ((1.0 - f) * angle).sin() / angle.sin(),
        (f * angle).sin() / angle.sin(),
    );
    point([0, 1, 2].map(|i| wa * va[i] + wb * vb[i]))
}

impl Track {
    /// Where the receiver is `seconds` after the clock started (a negative time is the start).
    #[must_use]
    pub fn at(&self, seconds: f64) -> Motion {
        let seconds = if seconds.is_finite() {
            seconds.max(0.0)
        } else {
            0.0
        };
        match self {
            Self::Fixed(p) => still(*p),
            Self::Route {
                waypoints,
                speed_mps,
                repeat,
            } => route_at(waypoints, *speed_mps, *repeat, seconds),
            Self::Circle {
                centre,
                radius_m,
                speed_mps,
            } => {
                let turns = speed_mps * seconds / (2.0 * PI * radius_m);
                let from_centre = 360.0 * turns.fract();
                Motion {
                    at: destination(*centre, from_centre, *radius_m),
                    speed_mps: *speed_mps,
                    track_deg: Some((from_centre + 90.0).rem_euclid(360.0)),
                }
            }
        }
    }

    /// The fastest this track moves, metres per second.
    #[must_use]
    pub fn top_speed_mps(&self) -> f64 {
        match self {
            Self::Fixed(_) => 0.0,
            Self::Route { speed_mps, .. } | Self::Circle { speed_mps, .. } => *speed_mps,
        }
    }
}

fn still(at: Point) -> Motion {
    Motion {
        at,
        speed_mps: 0.0,
        track_deg: None,
    }
}

fn route_at(waypoints: &[Point], speed_mps: f64, repeat: bool, seconds: f64) -> Motion {
    let legs: Vec<(Point, Point)> = waypoints
        .windows(2)
        .map(|w| (w[0], w[1]))
        .chain(repeat.then(|| (waypoints[waypoints.len() - 1], waypoints[0])))
        .filter(|(a, b)| distance_m(*a, *b) > 0.0)
        .collect();
    let total: f64 = legs.iter().map(|(a, b)| distance_m(*a, *b)).sum();
    let Some(&(_, last)) = legs.last() else {
        return still(
            waypoints
                .first()
                .copied()
                .unwrap_or(Point { lat: 0.0, lon: 0.0 }),
        );
    };
    let mut along = speed_mps * seconds;
    if repeat {
        along = along.rem_euclid(total);
    } else if along >= total {
        return still(last);
    }
    for (a, b) in legs {
        let length = distance_m(a, b);
        if along < length {
            let here = between(a, b, along / length);
            return Motion {
                at: here,
                speed_mps,
                track_deg: Some(bearing_deg(here, b)),
            };
        }
        along -= length;
    }
    still(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MUNICH: Point = Point {
        lat: 48.1173,
        lon: 11.5167,
    };

    #[test]
    fn a_route_moves_at_its_speed_along_its_legs_and_stops_at_the_end() {
        let north = destination(MUNICH, 0.0, 1000.0);
        let east = destination(north, 90.0, 500.0);
        let route = Track::Route {
            waypoints: vec![MUNICH, north, east],
            speed_mps: 10.0,
            repeat: false,
        };
        let m = route.at(30.0);
        assert!(distance_m(m.at, destination(MUNICH, 0.0, 300.0)) < 1e-6);
        assert!(m.track_deg.unwrap().abs() < 1e-6);
        let m = route.at(120.0);
        assert!((distance_m(north, m.at) - 200.0).abs() < 1e-3);
        assert!((m.track_deg.unwrap() - 90.0).abs() < 0.01);
        let end = route.at(1_000.0);
        assert_eq!((end.speed_mps, end.track_deg), (0.0, None));
        assert!(distance_m(end.at, east) < 1e-6);
        // Speed and track agree with successive positions.
        for t in [5.0, 50.0, 130.0] {
            let (a, b) = (route.at(t).at, route.at(t + 1.0).at);
            assert!((distance_m(a, b) - 10.0).abs() < 1e-6);
        }
    }

    #[test]
    fn a_repeating_route_and_a_circle_go_round() {
        let north = destination(MUNICH, 0.0, 100.0);
        let round = Track::Route {
            waypoints: vec![MUNICH, north],
            speed_mps: 5.0,
            repeat: true,
        };
        assert!(distance_m(round.at(40.0).at, MUNICH) < 1e-6);
        assert!((round.at(30.0).track_deg.unwrap() - 180.0).abs() < 1e-6);
        let circle = Track::Circle {
            centre: MUNICH,
            radius_m: 100.0,
            speed_mps: 2.0 * PI,
        };
        for t in [0.0, 12.5, 25.0, 37.5, 99.0] {
            let m = circle.at(t);
            assert!((distance_m(MUNICH, m.at) - 100.0).abs() < 1e-6);
            let from_centre = bearing_deg(MUNICH, m.at);
            let expected = (from_centre + 90.0).rem_euclid(360.0);
            let diff = (m.track_deg.unwrap() - expected + 540.0).rem_euclid(360.0) - 180.0;
            assert!(diff.abs() < 0.01, "{t}: {m:?}");
        }
        assert!((bearing_deg(MUNICH, circle.at(25.0).at) - 90.0).abs() < 1e-6);
        let fixed = Track::Fixed(MUNICH);
        assert_eq!(fixed.at(f64::NAN).at, MUNICH);
    }
}
