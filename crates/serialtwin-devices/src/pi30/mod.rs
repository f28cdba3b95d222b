//! An emulated Voltronic PI30 inverter (Axpert, MPP-Solar, EASUN...), as mppsolar, `ESPHome`,
//! NUT and friends talk to it.
//!
//! # Layout
//! - [`crc`]: CRC-16/XMODEM with the two escape rules.
//! - [`framer`]: `\r`-terminated frames; NUL padding between frames skipped.
//! - [`config`]: identity, variant, wire options, settings, plant (serde).
//! - `plant`: sun, load, grid and battery, integrated over simulated time.
//! - `commands`: the command table, query layouts and setter validation.
//! - `shared`: the state a parallel group shares, and [`Pi30Handle`].
//! - [`clients`]: how mppsolar reads a port's path (the link paths it misreads).
//! - `model`: the registry entry ([`MODEL`]): `[device.pi30]`, groups, lints.
//!
//! # How a request is answered
//! The framer hands over the frame without its `\r`. If its last two bytes are a valid
//! checksum of the rest under either escape rule, the rest is the command. Otherwise:
//! - a frame that is all printable ASCII and is, as a whole, a command of the variant is
//!   answered as a command sent **without** a CRC (a person typing `QPIGS` in a terminal);
//! - a frame whose bytes before the last two form a known command has a bad CRC: `(NAK`;
//! - any other printable frame is an unknown command (the [`UnknownPolicy`]);
//! - a frame with non-printable bytes that does not verify has a bad CRC: `(NAK`.
//!
//! # The line
//! 2400 baud 8N1, paced: a 110-byte `QPIGS` answer takes 0.46 s, as on the wire. Paced output
//! reaches the client as through a USB-serial adapter with an untuned FTDI's 16 ms chunk
//! interval (the usual way a host reaches the inverter's RS-232 port): about 29 chunks for
//! `QPIGS`. `[device.line]` changes any of it (`chunk_ms`, `adapter = "native"`, `pace`).
//!
//! A verified (or CRC-less) command the variant does not know gets the [`UnknownPolicy`]:
//! `(NAK`, or the request echoed byte for byte. Setters answer `(ACK` or `(NAK`; a `(NAK`
//! leaves every setting as it was.

pub mod clients;
pub mod config;
pub mod crc;
pub mod framer;

mod commands;
mod model;
mod plant;
mod shared;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use serialtwin_core::{Context, Device, Framing, LineConfig, Replies, Settable, SimClock};

pub use self::commands::command_names;
pub use self::config::{
    BatteryConfig, ConfigError, Equalization, Flags, Led, Pi30Config, PlantConfig, Settings,
    UnknownPolicy, Variant,
};
pub use self::crc::CrcVariant;
pub use self::framer::Pi30Framer;
pub use self::model::MODEL;
pub use self::plant::{
    ChargeStage, DayEnergy, MAX_CLOCK_SPEED, STEP_SECS, STEPS_PER_REAL_SECOND, Snapshot, UnitFlows,
};
pub use self::shared::Pi30Handle;

use self::commands::query::{self, View};
use self::commands::{parse, setter};
use self::plant::unix_f64;
use self::shared::{System, lock};

/// Payload of a positive setter reply.
const ACK: &[u8] = b"(ACK";
/// Payload of a negative reply.
const NAK: &[u8] = b"(NAK";

/// The framing called `name`: `pi30` (mppsolar's reply CRC) or `pi30-reference` (the
/// Voltronic reference CRC); `pi30-mppsolar` is an alias of `pi30`.
#[must_use]
pub fn framing(name: &str) -> Option<Framing> {
    let variant = match name {
        "pi30" | "pi30-mppsolar" => CrcVariant::Mppsolar,
        "pi30-reference" => CrcVariant::Reference,
        _ => return None,
    };
    Some(framing_for(variant))
}

/// The PI30 framing whose replies carry `variant` checksums.
#[must_use]
pub fn framing_for(variant: CrcVariant) -> Framing {
    let name = match variant {
        CrcVariant::Mppsolar => "pi30",
        CrcVariant::Reference => "pi30-reference",
    };
    Framing::new(name, move || Pi30Framer::new(variant))
}

/// One emulated PI30 unit, possibly one of a parallel group sharing a plant.
#[derive(Debug)]
pub struct Pi30 {
    /// The configuration (shared by the group).
    config: Arc<Pi30Config>,
    /// Which unit of the group this port is.
    unit: usize,
    /// Plant and settings, shared by the group.
    shared: Arc<Mutex<System>>,
}

impl Pi30 {
    /// A single unit.
    ///
    /// # Errors
    /// A [`ConfigError`] if `config` cannot describe a unit.
    pub fn new(config: Pi30Config) -> Result<Self, ConfigError> {
        Ok(Self::group(config, 1)?.remove(0))
    }

    /// A parallel group of `n` units, one device per port, sharing one plant and battery.
    /// Unit `i` answers QPGS for every unit, and QID with its own serial number
    /// ([`Pi30Config::unit_serial`]).
    ///
    /// # Errors
    /// A [`ConfigError`] if `config` cannot describe a unit, or `n` is 0 or more than
    /// `max_parallel_units` (or 10, the most one digit can address).
    pub fn group(config: Pi30Config, n: usize) -> Result<Vec<Self>, ConfigError> {
        config.validate()?;
        let max = config.max_parallel_units.min(10);
        if n == 0 || n > usize::from(max.max(1)) {
            return Err(ConfigError::GroupSize { n, max });
        }
        let config = Arc::new(config);
        let shared = Arc::new(Mutex::new(System::new(Arc::clone(&config), n)));
        Ok((0..n)
            .map(|unit| Self {
                config: Arc::clone(&config),
                unit,
                shared: Arc::clone(&shared),
            })
            .collect())
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &Pi30Config {
        &self.config
    }

    /// This unit's index in its group.
    #[must_use]
    pub fn unit(&self) -> usize {
        self.unit
    }

    /// A handle for changing the plant's inputs at run time (shared by the whole group).
    #[must_use]
    pub fn control(&self) -> Pi30Handle {
        Pi30Handle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// The reply to `frame` (a request without its `\r`) on `clock`, now.
    fn respond(&self, frame: &[u8], clock: &SimClock) -> Response {
        let t = unix_f64(clock.now());
        let variant = self.config.variant;
        let printable = |b: &[u8]| b.iter().all(u8::is_ascii_graphic);
        let command = if let Some(body) = crc::strip_valid(frame) {
            body
        } else if printable(frame) && parse(frame, variant).is_some() {
            frame
        } else if frame.len() > 2 && parse(&frame[..frame.len() - 2], variant).is_some() {
            return Response::Frame(NAK.to_vec());
        } else if printable(frame) {
            return Response::Unknown;
        } else {
            return Response::Frame(NAK.to_vec());
        };
        let Some(cmd) = parse(command, variant) else {
            return Response::Unknown;
        };
        let mut sys = lock(&self.shared);
        sys.plant.start_on(unix_f64(clock.epoch()), clock.speed());
        let snap = sys.observe(t);
        if cmd.setter {
            #[expect(clippy::cast_possible_truncation, reason = "simulated times fit i64")]
            let now = t.floor() as i64;
            let ok = setter::apply(&mut sys, self.unit, cmd.name, cmd.arg, now);
            return Response::Frame(if ok { ACK } else { NAK }.to_vec());
        }
        let view = View {
            cfg: &self.config,
            sys: &sys,
            unit: self.unit,
            snap: &snap,
        };
        match query::answer(cmd.name, cmd.arg, &view) {
            Some(payload) => {
                let mut out = Vec::with_capacity(payload.len() + 1);
                out.push(b'(');
                out.extend_from_slice(payload.as_bytes());
                Response::Frame(out)
            }
            None => Response::Frame(NAK.to_vec()),
        }
    }

    /// Answer `request` (a frame without its `\r`) at the context's simulated time.
    fn serve(&self, request: &[u8], ctx: &Context, replies: &mut Replies) {
        match self.respond(request, ctx.clock()) {
            Response::Frame(payload) => replies.push(payload),
            Response::Unknown => match self.config.unknown_command {
                UnknownPolicy::Nak => replies.push(NAK),
                UnknownPolicy::Echo => {
                    let mut echo = BytesMut::with_capacity(request.len() + 1);
                    echo.extend_from_slice(request);
                    echo.extend_from_slice(b"\r");
                    replies.push_raw(echo.freeze());
                }
            },
        }
    }
}

/// What a request gets.
enum Response {
    /// A payload for the framer to checksum and terminate.
    Frame(Vec<u8>),
    /// An unknown command: the [`UnknownPolicy`] decides.
    Unknown,
}

impl Device for Pi30 {
    type Error = Infallible;

    fn framing(&self) -> Framing {
        framing_for(self.config.crc)
    }

    /// See "The line" above.
    fn line(&self) -> LineConfig {
        LineConfig::uart(2400)
    }

    fn handle(
        &mut self,
        request: &[u8],
        ctx: &mut Context,
        replies: &mut Replies,
    ) -> Result<(), Self::Error> {
        self.serve(request, ctx, replies);
        Ok(())
    }

    /// Plant inputs a test or a scenario can change while the inverter runs:
    /// `grid` = `on`/`off`, `soc` = battery state of charge in percent (0-100).
    fn set(&mut self, key: &str, value: &str, ctx: &mut Context) -> Result<(), String> {
        let at = ctx.clock().now();
        self.control().start_on(ctx.clock());
        match key {
            "grid" => {
                let present = match value {
                    "on" | "true" | "1" | "present" => true,
                    "off" | "false" | "0" | "lost" => false,
                    _ => return Err(format!("grid must be on or off, not {value:?}")),
                };
                self.control().set_grid_present(present, at);
                Ok(())
            }
            "soc" => {
                let percent: f64 = value
                    .trim_end_matches('%')
                    .parse()
                    .map_err(|_| format!("soc must be a percentage, not {value:?}"))?;
                if !(0.0..=100.0).contains(&percent) {
                    return Err(format!("soc must be between 0 and 100, not {percent}"));
                }
                self.control().set_soc(percent / 100.0, at);
                Ok(())
            }
            _ => Err(format!(
                "the pi30 model has no settable value {key:?} (try grid, soc)"
            )),
        }
    }

    fn settable(&self) -> Vec<Settable> {
        vec![
            Settable::new("grid", "on|off: the grid is there, or lost"),
            Settable::new("soc", "0-100: the battery's state of charge, in percent"),
        ]
    }
}

#[cfg(test)]
mod tests {
    use serialtwin_core::SimClock;

    use super::*;

    /// 2025-03-05 12:00:00 UTC, on a clock that stands still (speed 0).
    const NOON: u64 = 1_741_176_000;

    fn unit(unknown_command: UnknownPolicy) -> Pi30 {
        Pi30::new(Pi30Config {
            unknown_command,
            plant: PlantConfig {
                start_unix: Some(NOON - 12 * 3600),
                seed: 7,
                ..PlantConfig::default()
            },
            ..Pi30Config::default()
        })
        .unwrap()
    }

    /// `cmd` with its CRC, as mppsolar sends it (without the `\r` the framer strips).
    fn with_crc(cmd: &[u8]) -> Vec<u8> {
        let mut frame = cmd.to_vec();
        frame.extend_from_slice(&CrcVariant::Mppsolar.checksum(cmd));
        frame
    }

    #[test]
    fn answers_real_commands_and_echoes_unknown_ones() {
        let mut dev = unit(UnknownPolicy::Echo);
        let mut ctx = Context::for_test(SimClock::at_unix(NOON, 0.0));
        let mut ask = |request: &[u8]| {
            let mut replies = Replies::new();
            assert_eq!(dev.handle(request, &mut ctx, &mut replies), Ok(()));
            replies
        };
        assert_eq!(ask(&with_crc(b"QPI")).frames(), [b"(PI30"]);
        assert_eq!(ask(&with_crc(b"POP02")).frames(), [ACK]);
        let echo = ask(b"HELLO");
        assert_eq!(echo.frames(), [b"HELLO\r"]);
        assert!(echo.as_slice()[0].raw);
    }

    /// Ask `dev` for QPIGS on `ctx`: the reply's bytes.
    fn qpigs(dev: &mut Pi30, ctx: &mut Context) -> Vec<u8> {
        let mut replies = Replies::new();
        assert_eq!(dev.handle(&with_crc(b"QPIGS"), ctx, &mut replies), Ok(()));
        replies.as_slice()[0].bytes.to_vec()
    }

    /// However fast the clock, a request after a gap integrates at most
    /// `STEPS_PER_REAL_SECOND` steps per real second of it: the step grows, not the work.
    #[tokio::test(start_paused = true)]
    async fn a_fast_clock_lengthens_the_step_not_the_work() {
        for speed in [1e4, 1e7, 1e18, 1e308] {
            let mut dev = unit(UnknownPolicy::Nak);
            let mut ctx = Context::for_test(SimClock::at_unix(NOON, speed));
            qpigs(&mut dev, &mut ctx);
            tokio::time::advance(std::time::Duration::from_secs(5)).await;
            qpigs(&mut dev, &mut ctx);
            let steps = lock(&dev.shared).plant.steps();
            // The 12 hours from the plant's start to the clock's, then the 5 s gap.
            #[expect(clippy::cast_possible_truncation, reason = "small test numbers")]
            let bound = (5.0 * STEPS_PER_REAL_SECOND) as i64 + 12 * 3600 / STEP_SECS;
            assert!(steps <= bound, "speed {speed}: {steps} steps");
        }
    }

    /// On a fast clock too, the same instant gives the same bytes whether the plant was asked
    /// a hundred times on the way or never.
    #[tokio::test(start_paused = true)]
    async fn a_fast_clock_keeps_the_same_bytes_whatever_the_history() {
        let clock = SimClock::at_unix(NOON, 50_000.0);
        let (mut busy, mut idle) = (unit(UnknownPolicy::Nak), unit(UnknownPolicy::Nak));
        let mut ctx = Context::for_test(clock);
        for _ in 0..100 {
            qpigs(&mut busy, &mut ctx);
            tokio::time::advance(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(qpigs(&mut busy, &mut ctx), qpigs(&mut idle, &mut ctx));
    }
}
