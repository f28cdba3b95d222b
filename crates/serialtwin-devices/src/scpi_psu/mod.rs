//! A single-output bench power supply speaking SCPI over RS-232, the way pyvisa and other
//! SCPI clients talk to one.
//!
//! # Protocol facts, and where they come from
//! - The line: 9600 baud, 8 data bits, no parity, 2 stop bits (the Agilent E3632A's factory
//!   setting; its stop bits are fixed at 2: E3632A User's Guide, "RS-232 Configuration
//!   Overview"). 9600 is also pyvisa's default. Replies are paced at that speed and reach
//!   the client as through a USB-serial adapter with 16 ms chunks (the core's default
//!   [`Adapter`](serialtwin_core::Adapter)).
//! - Messages end in LF; CR LF (pyvisa's default write termination) is accepted too; replies
//!   end in LF (IEEE 488.2 §8.5), or CR LF with `terminator = "crlf"`. A bare CR is not a
//!   terminator here.
//! - Keywords are case-insensitive, in short or long form (`VOLT`, `VOLTage`), `[NODE]`s
//!   optional, a leading `:` allowed; units separated by `;` give one reply, their answers
//!   joined by `;` (IEEE 488.2 ch. 8). Each unit is read from the root (the relative-path rule
//!   after `;` is not modelled).
//! - `*IDN?`: four comma-separated fields (maker, model, serial, firmware), no `,` or `;`
//!   inside one, at most 72 characters (IEEE 488.2 ch. 10). `*RST`: output off, voltage 0
//!   (the E3632A's `*RST` state), error queue kept. `*CLS`: the error queue cleared.
//! - `[SOURce:]VOLTage <v>`, `VOLTage?`: the programmed level, answered with three
//!   decimals (`12.500`, as instruments.md's PSU); outside 0..`max_volts` it is -222.
//!   `OUTPut[:STATe] ON|OFF|1|0`, `OUTPut?`: `1` or `0`. `MEASure[:VOLTage]?`: the voltage at
//!   the terminals (the level while the output is on, else 0); `MEASure:CURRent?`: that
//!   voltage over the load set at run time (0 with none).
//! - An erroneous unit answers nothing: it queues `<code>,"<text>"` (-113 undefined header,
//!   -104 data type, -108 parameter not allowed, -109 missing parameter, -222 out of range,
//!   -224 illegal value) for `SYSTem:ERRor[:NEXT]?`, which answers the oldest, or
//!   `0,"No error"`. The queue holds 20; when full its newest entry becomes -350 (queue
//!   overflow) and later errors are dropped (SCPI-99; instruments.md §1.3).

use std::convert::Infallible;

use serde::Deserialize;
use serialtwin_core::{
    CharFormat, Context, Device, Framing, LineConfig, Replies, Settable, Terminator,
};

use crate::registry::{self, Build, BuildError, Built, Model};
use crate::scpi::header::ScpiError;
use crate::scpi::status::Status;

/// The `scpi-psu` model.
pub static MODEL: Model = Model {
    name: "scpi-psu",
    summary: "a SCPI bench power supply on RS-232 (*IDN?, VOLT, OUTP, MEAS, an error queue): \
              9600 baud 8N2, LF lines",
    table: "scpi-psu",
    example: EXAMPLE,
    framings: &[],
    groups: false,
    max_clock_speed: f64::INFINITY,
    settable,
    lint: registry::no_lint,
    build,
    units: &[],
};

const EXAMPLE: &str = r#"[[device]]
name = "psu"
model = "scpi-psu"
link = "/tmp/serialtwin/ttyUSB-psu"  # pyvisa: ASRL/tmp/serialtwin/ttyUSB-psu::INSTR

[device.scpi-psu]                   # every key optional
idn = "ACME,PSU-1,SN001,1.0"        # *IDN?: maker, model, serial, firmware
max_volts = 30.0                    # VOLT above this is -222, "Data out of range"
terminator = "lf"                   # replies end in "lf" or "crlf"
load_ohms = 10.0                    # what the output drives (MEAS:CURR?); leave out: open
"#;

/// How many errors the queue holds (Agilent's power supplies: 20).
const QUEUE: usize = 20;

/// `[device.scpi-psu]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PsuConfig {
    /// The `*IDN?` answer.
    pub idn: String,
    /// The highest voltage `VOLT` takes.
    pub max_volts: f64,
    /// What ends a reply.
    pub terminator: Ending,
    /// The load on the output, in ohms; `None`: open.
    pub load_ohms: Option<f64>,
}

/// What ends a reply.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ending {
    /// LF, as IEEE 488.2 answers.
    #[default]
    Lf,
    /// CR LF, as some instruments do on RS-232.
    Crlf,
}

impl Default for PsuConfig {
    fn default() -> Self {
        Self {
            idn: "ACME,PSU-1,SN001,1.0".into(),
            max_volts: 30.0,
            terminator: Ending::Lf,
            load_ohms: None,
        }
    }
}

/// The power supply.
#[derive(Debug)]
pub struct ScpiPsu {
    config: PsuConfig,
    volts: f64,
    output: bool,
    /// The error queue (the `scpi` model's status model; this supply reads only its queue).
    status: Status,
}

impl ScpiPsu {
    /// A supply as `config` describes it, output off at 0 V.
    ///
    /// # Errors
    /// The key of the first value that cannot be, and why.
    pub fn new(config: PsuConfig) -> Result<Self, (&'static str, String)> {
        let idn = &config.idn;
        if idn.split(',').count() != 4 || idn.len() > 72 || idn.contains(';') {
            return Err((
                "idn",
                "`idn` must be 4 fields split by `,` (no `;`), at most 72 characters".into(),
            ));
        }
        if !(config.max_volts.is_finite() && config.max_volts > 0.0) {
            return Err(("max_volts", "`max_volts` must be a positive number".into()));
        }
        if config
            .load_ohms
            .is_some_and(|r| !(r.is_finite() && r > 0.0))
        {
            return Err(("load_ohms", "`load_ohms` must be a positive number".into()));
        }
        Ok(Self {
            config,
            volts: 0.0,
            output: false,
            status: Status::new(QUEUE),
        })
    }

    fn error(&mut self, code: i16, text: &'static str) {
        self.status.push(ScpiError::new(code, text));
    }

    fn measured(&self) -> f64 {
        if self.output { self.volts } else { 0.0 }
    }

    /// One unit of a message: its answer, if it is a query that succeeds.
    fn unit(&mut self, unit: &str) -> Option<String> {
        let (header, arg) = unit.split_once(char::is_whitespace).unwrap_or((unit, ""));
        let (header, arg) = (header.trim_start_matches(':'), arg.trim());
        if header.ends_with('?') && !arg.is_empty() {
            self.error(-108, "Parameter not allowed");
            return None;
        }
        let is = |pattern| matches(header, pattern);
        if is("*IDN?") {
            return Some(self.config.idn.clone());
        } else if is("*RST") {
            (self.volts, self.output) = (0.0, false);
        } else if is("*CLS") {
            self.status.clear();
        } else if is("[SOURce]:VOLTage") {
            match arg.parse::<f64>() {
                _ if arg.is_empty() => self.error(-109, "Missing parameter"),
                Ok(v) if (0.0..=self.config.max_volts).contains(&v) => self.volts = v,
                Ok(_) => self.error(-222, "Data out of range"),
                Err(_) => self.error(-104, "Data type error"),
            }
        } else if is("[SOURce]:VOLTage?") {
            return Some(format!("{:.3}", self.volts));
        } else if is("OUTPut:[STATe]") {
            match arg.to_ascii_uppercase().as_str() {
                "ON" | "1" => self.output = true,
                "OFF" | "0" => self.output = false,
                "" => self.error(-109, "Missing parameter"),
                _ => self.error(-224, "Illegal parameter value"),
            }
        } else if is("OUTPut:[STATe]?") {
            return Some(if self.output { "1" } else { "0" }.into());
        } else if is("MEASure:[VOLTage]?") {
            return Some(format!("{:.3}", self.measured()));
        } else if is("MEASure:CURRent?") {
            let amps = self.config.load_ohms.map_or(0.0, |r| self.measured() / r);
            return Some(format!("{amps:.3}"));
        } else if is("SYSTem:ERRor:[NEXT]?") {
            return Some(self.status.next_error());
        } else {
            self.error(-113, "Undefined header");
        }
        None
    }
}

/// Whether `header` spells `pattern`: nodes split by `:`, each in short form (its upper-case
/// letters) or long form, any case; a `[NODE]` may be left out; a query ends in `?`.
fn matches(header: &str, pattern: &str) -> bool {
    fn fits(words: &[&str], nodes: &[&str]) -> bool {
        match (words, nodes) {
            ([], []) => true,
            (_, [n, rest @ ..]) if n.starts_with('[') && fits(words, rest) => true,
            ([w, ws @ ..], [n, ns @ ..]) => node(w, n.trim_matches(['[', ']'])) && fits(ws, ns),
            _ => false,
        }
    }
    let words: Vec<&str> = header.trim_end_matches('?').split(':').collect();
    let nodes: Vec<&str> = pattern.trim_end_matches('?').split(':').collect();
    header.ends_with('?') == pattern.ends_with('?') && fits(&words, &nodes)
}

/// Whether `word` is `mnemonic` in its short form (the upper-case part) or its long form.
fn node(word: &str, mnemonic: &str) -> bool {
    let short: String = mnemonic
        .chars()
        .take_while(|c| !c.is_ascii_lowercase())
        .collect();
    word.eq_ignore_ascii_case(&short) || word.eq_ignore_ascii_case(mnemonic)
}

impl Device for ScpiPsu {
    type Error = Infallible;

    /// LF lines either way (a CR before the LF of a request is dropped in `handle`); replies
    /// end as configured.
    fn framing(&self) -> Framing {
        let ending = match self.config.terminator {
            Ending::Lf => Terminator::Lf,
            Ending::Crlf => Terminator::CrLf,
        };
        Framing::lines(ending, 256)
    }

    fn line(&self) -> LineConfig {
        let n82 = CharFormat {
            stop_bits: serialtwin_core::StopBits::Two,
            ..CharFormat::N81
        };
        LineConfig {
            format: Some(n82),
            ..LineConfig::uart(9600)
        }
    }

    fn handle(
        &mut self,
        request: &[u8],
        _: &mut Context,
        replies: &mut Replies,
    ) -> Result<(), Self::Error> {
        let text = String::from_utf8_lossy(request);
        let answers: Vec<String> = text
            .trim_end_matches('\r')
            .split(';')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .filter_map(|u| self.unit(u))
            .collect();
        if !answers.is_empty() {
            replies.push(answers.join(";"));
        }
        Ok(())
    }

    /// `load` and `output`, as someone at the bench changes them.
    fn set(&mut self, key: &str, value: &str, _: &mut Context) -> Result<(), String> {
        match (key, value) {
            ("load", "open") => self.config.load_ohms = None,
            ("load", ohms) => match ohms.parse::<f64>() {
                Ok(r) if r.is_finite() && r > 0.0 => self.config.load_ohms = Some(r),
                _ => return Err(format!("load must be ohms (> 0) or open, not {ohms:?}")),
            },
            ("output", "on") => self.output = true,
            ("output", "off") => self.output = false,
            ("output", other) => return Err(format!("output must be on or off, not {other:?}")),
            _ => {
                return Err(format!(
                    "the scpi-psu model has no settable value {key:?} (try load, output)"
                ));
            }
        }
        Ok(())
    }

    fn settable(&self) -> Vec<Settable> {
        vec![
            Settable::new(
                "load",
                "<ohms>|open: what the output drives (MEASure:CURRent?)",
            ),
            Settable::new("output", "on|off: the front panel's Output key"),
        ]
    }
}

fn settable() -> Vec<Settable> {
    ScpiPsu::new(PsuConfig::default())
        .map(|psu| psu.settable())
        .unwrap_or_default()
}

fn build(b: &Build<'_>) -> Result<Vec<Built>, BuildError> {
    let config: PsuConfig = b.table.deserialize()?.unwrap_or_default();
    (0..b.count)
        .map(|_| {
            ScpiPsu::new(config.clone())
                .map(Built::new)
                .map_err(|(key, why)| b.error(&[key], why))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serialtwin_core::SimClock;

    use super::*;
    use crate::registry::Table;

    fn ask(psu: &mut ScpiPsu, request: &str) -> Vec<String> {
        let mut ctx = Context::for_test(SimClock::at_unix(0, 1.0));
        let mut replies = Replies::new();
        psu.handle(request.as_bytes(), &mut ctx, &mut replies)
            .unwrap();
        replies
            .drain()
            .map(|r| String::from_utf8(r.bytes.to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn a_session_as_pyvisa_would_have_it() {
        let mut psu = ScpiPsu::new(PsuConfig {
            load_ohms: Some(10.0),
            ..PsuConfig::default()
        })
        .unwrap();
        assert_eq!(ask(&mut psu, "*IDN?\r"), ["ACME,PSU-1,SN001,1.0"]);
        assert!(ask(&mut psu, "sour:volt 12.5").is_empty());
        assert_eq!(ask(&mut psu, ":VOLTage?;MEAS?"), ["12.500;0.000"]);
        assert!(ask(&mut psu, "OUTP ON").is_empty());
        assert_eq!(
            ask(&mut psu, "MEAS:VOLT?;MEAS:CURR?;OUTP:STAT?"),
            ["12.500;1.250;1"]
        );
        // Errors answer nothing and wait in the queue, oldest first.
        assert!(ask(&mut psu, "VOLT 31;VOLTA 1;VOLT x;OUTP maybe").is_empty());
        let errors = [
            "-222,\"Data out of range\"",
            "-113,\"Undefined header\"",
            "-104,\"Data type error\"",
            "-224,\"Illegal parameter value\"",
            "0,\"No error\"",
        ];
        for e in errors {
            assert_eq!(ask(&mut psu, "SYST:ERR?"), [e]);
        }
        assert!(ask(&mut psu, "*RST").is_empty());
        assert_eq!(ask(&mut psu, "VOLT?;OUTP?"), ["0.000;0"]);
        for _ in 0..25 {
            ask(&mut psu, "NOPE");
        }
        assert_eq!(psu.status.error_count(), QUEUE);
        for _ in 1..QUEUE {
            assert_eq!(ask(&mut psu, "SYST:ERR?"), ["-113,\"Undefined header\""]);
        }
        assert_eq!(ask(&mut psu, "SYST:ERR?"), ["-350,\"Queue overflow\""]);
        for _ in 0..3 {
            ask(&mut psu, "NOPE");
        }
        ask(&mut psu, "*CLS");
        assert_eq!(ask(&mut psu, "SYSTEM:ERROR:NEXT?"), ["0,\"No error\""]);
        let mut ctx = Context::for_test(SimClock::at_unix(0, 1.0));
        psu.set("output", "on", &mut ctx).unwrap();
        assert!(psu.set("load", "-1", &mut ctx).is_err());
    }

    #[test]
    fn the_example_builds_and_a_bad_value_is_pointed_at() {
        let doc = toml::de::DeTable::parse(EXAMPLE).unwrap().into_inner();
        let device = doc["device"].get_ref().as_array().unwrap()[0].get_ref();
        let built = build(&Build::new(Table::new(
            device.get("scpi-psu").unwrap().clone(),
        )))
        .unwrap();
        assert_eq!(built[0].line.baud, Some(9600));
        let text = "max_volts = 30.0\nidn = 'ACME;PSU'\n";
        let e = build(&Build::new(Table::parse(text).unwrap())).unwrap_err();
        assert_eq!(e.at, Some(23..33), "{e}");
    }
}
