//! A SCPI instrument over RS-232 whose identity and properties the config declares: IEEE
//! 488.2 common commands, the status model and error queue, compound messages, short and
//! long forms, optional nodes, numeric suffixes, `MIN`/`MAX`/`DEF`, booleans, choices and
//! units, as pyvisa and other SCPI clients expect them.
//!
//! The SCPI machinery is shared code any SCPI model may use: [`header`] (messages, headers,
//! patterns, the relative-path rule, [`ScpiError`]), [`param`] (parameters), [`status`] (ESR,
//! ESE, STB, SRE, the error queue) and [`lines`] (LF, CR LF or CR in; LF or CR LF out).
//!
//! # Protocol facts, and where they come from (instruments.md §1)
//! - A message ends in LF, CR LF or CR; replies end in LF (IEEE 488.2 §8.5), or CR LF with
//!   `terminator = "crlf"`. Several queries in one message get one reply, their answers
//!   joined by `;`.
//! - `*IDN?` (4 fields, at most 72 characters), `*RST` (every setting back to its default;
//!   the enables, the error queue and read-only measurements kept), `*CLS`, `*OPC`, `*OPC?` (`1`: this instrument is
//!   synchronous), `*ESR?`, `*ESE`, `*ESE?`, `*STB?`, `*SRE`, `*SRE?`, `*TST?` (`0`), `*WAI`.
//! - `SYSTem:ERRor[:NEXT]?` (oldest error or `0,"No error"`), `SYSTem:ERRor:COUNt?`,
//!   `SYSTem:VERSion?` (`1999.0`, the SCPI version this follows).
//! - A unit in error answers nothing, queues its error and sets its ESR bit; the rest of the
//!   message is still carried out (scpi-parser `SCPI_Parse`).
//! - The model raises no query errors (-4xx): on RS-232 it cannot see whether the client read
//!   a reply (instruments.md §1.3); the status model maps them to QYE all the same.

pub mod header;
pub mod lines;
pub mod param;
pub mod status;

use std::collections::HashSet;
use std::convert::Infallible;
use std::ops::Range;

use serde::Deserialize;
use serde_spanned::Spanned;
use serialtwin_core::{Context, Device, Framing, LineConfig, Replies, Settable, Terminator};

use self::header::{Header, Mnemonic, Pattern, ScpiError, Word};
use self::param::Number;
use self::status::Status;
use crate::registry::{self, Build, BuildError, Built, Model, NamedFraming};

/// The `scpi` model.
pub static MODEL: Model = Model {
    name: "scpi",
    summary: "a SCPI instrument on RS-232 whose *IDN? and properties the config declares \
              (IEEE 488.2 common commands, status registers, error queue): 9600 baud, LF lines",
    table: "scpi",
    example: EXAMPLE,
    framings: &[
        NamedFraming {
            name: "scpi",
            summary: "SCPI messages ending in LF, CR LF or CR; replies end in LF",
            make: || lines::framing(Terminator::Lf),
            unknown_command: None,
            describe: None,
            learn: None,
        },
        NamedFraming {
            name: "scpi-crlf",
            summary: "SCPI messages ending in LF, CR LF or CR; replies end in CR LF",
            make: || lines::framing(Terminator::CrLf),
            unknown_command: None,
            describe: None,
            learn: None,
        },
    ],
    groups: false,
    max_clock_speed: f64::INFINITY,
    settable,
    lint: registry::no_lint,
    build,
    units: &[],
};

/// The `[[device]]` `serialtwin models scpi` prints: examples/scpi.toml, so the shipped example
/// is the one the registry's tests build.
const EXAMPLE: &str = include_str!("../../../../examples/scpi.toml");

/// `[device.scpi]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScpiConfig {
    /// The `*IDN?` answer.
    pub idn: Spanned<String>,
    /// What ends a reply.
    pub terminator: Ending,
    /// How many errors the queue holds.
    pub error_queue: Spanned<usize>,
    /// The properties, in the order headers are tried.
    pub property: Vec<Spanned<PropertyConfig>>,
}

impl Default for ScpiConfig {
    fn default() -> Self {
        Self {
            idn: Spanned::new(0..0, "ACME,SRC-2,SN002,2.0".into()),
            terminator: Ending::Lf,
            error_queue: Spanned::new(0..0, 20),
            property: Vec::new(),
        }
    }
}

/// What ends a reply.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ending {
    /// LF, as IEEE 488.2 answers.
    #[default]
    Lf,
    /// CR LF, as some instruments (and scpi-parser by default) do.
    Crlf,
}

/// What kind of value a property holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KindName {
    /// A number between `min` and `max`, maybe with a `unit`.
    Number,
    /// `ON`/`OFF`/`1`/`0`, answered `1` or `0`.
    Boolean,
    /// One of `choices`, answered in short form.
    Choice,
}

/// A property's `default`, as TOML writes it.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum DefaultValue {
    /// For a boolean.
    Bool(bool),
    /// For a number.
    Number(f64),
    /// For a choice.
    Text(String),
}

/// `[[device.scpi.property]]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PropertyConfig {
    /// What `ctl set` calls it.
    pub name: Spanned<String>,
    /// Its header pattern, `[SOURce:]VOLTage[:LEVel]`.
    pub header: Spanned<String>,
    /// What it holds.
    pub kind: KindName,
    /// Only its query exists (`ctl set` still moves it).
    #[serde(default)]
    pub read_only: bool,
    /// How many numeric suffixes the header's `#` keyword takes (1..=n).
    pub suffixes: Option<Spanned<u32>>,
    /// A number's lowest value.
    pub min: Option<Spanned<f64>>,
    /// A number's highest value.
    pub max: Option<Spanned<f64>>,
    /// The value at start and after `*RST`.
    pub default: Option<Spanned<DefaultValue>>,
    /// A number's unit (`V`, `A`, `HZ`, `OHM`, `CEL`).
    pub unit: Option<Spanned<String>>,
    /// A number's decimals in replies; left out: as few as tell the value.
    pub decimals: Option<Spanned<u8>>,
    /// A choice's mnemonics, `SINusoid`.
    pub choices: Option<Spanned<Vec<String>>>,
}

/// What a property holds, and its limits.
#[derive(Clone, Debug)]
enum Kind {
    Number {
        min: f64,
        max: f64,
        default: f64,
        unit: Option<String>,
        decimals: Option<usize>,
    },
    Boolean {
        default: bool,
    },
    Choice {
        choices: Vec<Mnemonic>,
        default: usize,
    },
}

/// A property's value.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Value {
    Number(f64),
    Bool(bool),
    Choice(usize),
}

/// One declared property.
#[derive(Clone, Debug)]
struct Property {
    name: String,
    pattern: Pattern,
    kind: Kind,
    read_only: bool,
    /// How many suffixes (channels) it has: one value each.
    suffixes: u32,
}

impl Property {
    fn default_value(&self) -> Value {
        match &self.kind {
            Kind::Number { default, .. } => Value::Number(*default),
            Kind::Boolean { default } => Value::Bool(*default),
            Kind::Choice { default, .. } => Value::Choice(*default),
        }
    }

    /// The value `text` (one parameter) sets, checked against the property's limits.
    fn parse(&self, text: &str) -> Result<Value, ScpiError> {
        match &self.kind {
            Kind::Number {
                min,
                max,
                default,
                unit,
                ..
            } => match param::number(text, unit.as_deref())? {
                Number::Value(v) if (*min..=*max).contains(&v) => Ok(Value::Number(v)),
                Number::Value(_) => Err(ScpiError::OUT_OF_RANGE),
                Number::Min => Ok(Value::Number(*min)),
                Number::Max => Ok(Value::Number(*max)),
                Number::Default => Ok(Value::Number(*default)),
            },
            Kind::Boolean { .. } => param::boolean(text).map(Value::Bool),
            Kind::Choice { choices, .. } => param::choice(text, choices).map(Value::Choice),
        }
    }

    fn format(&self, value: Value) -> String {
        match (&self.kind, value) {
            (
                Kind::Number {
                    decimals: Some(d), ..
                },
                Value::Number(v),
            ) => format!("{v:.d$}", d = *d),
            (_, Value::Number(v)) => format!("{v}"),
            (_, Value::Bool(b)) => u8::from(b).to_string(),
            (Kind::Choice { choices, .. }, Value::Choice(i)) => {
                choices[i].short().to_ascii_uppercase()
            }
            (_, Value::Choice(i)) => i.to_string(),
        }
    }
}

/// The headers every instrument of this model has besides its properties.
#[derive(Debug)]
struct Builtins {
    error_next: Pattern,
    error_count: Pattern,
    version: Pattern,
}

impl Builtins {
    fn new() -> Self {
        let p = |text| Pattern::parse(text).expect("a valid built-in pattern");
        Self {
            error_next: p("SYSTem:ERRor[:NEXT]"),
            error_count: p("SYSTem:ERRor:COUNt"),
            version: p("SYSTem:VERSion"),
        }
    }
}

/// The instrument.
#[derive(Debug)]
pub struct Scpi {
    idn: String,
    terminator: Terminator,
    properties: Vec<Property>,
    /// Each property's values, one per suffix.
    values: Vec<Vec<Value>>,
    status: Status,
    builtins: Builtins,
}

impl Scpi {
    fn new(idn: String, terminator: Terminator, depth: usize, properties: Vec<Property>) -> Self {
        let values = properties
            .iter()
            .map(|p| vec![p.default_value(); p.suffixes as usize])
            .collect();
        Self {
            idn,
            terminator,
            properties,
            values,
            status: Status::new(depth),
            builtins: Builtins::new(),
        }
    }

    /// `*RST`: every setting back to its default (a read-only property is a measurement, not
    /// a setting: it stays).
    fn reset(&mut self) {
        for (p, values) in self.properties.iter().zip(&mut self.values) {
            if !p.read_only {
                values.fill(p.default_value());
            }
        }
    }

    /// One unit: its answer if it is a query that succeeds. `output_waiting`: an earlier
    /// unit's answer waits in this message's reply (MAV).
    fn unit(
        &mut self,
        header: &Header,
        params: &[&str],
        output_waiting: bool,
    ) -> Result<Option<String>, ScpiError> {
        match header {
            Header::Common { name, query } => self.common(name, *query, params, output_waiting),
            Header::Path { words, query } => self.path(words, *query, params),
        }
    }

    fn common(
        &mut self,
        name: &str,
        query: bool,
        params: &[&str],
        output_waiting: bool,
    ) -> Result<Option<String>, ScpiError> {
        let takes_mask = !query && (name == "ESE" || name == "SRE");
        if !takes_mask && !params.is_empty() {
            return Err(ScpiError::PARAMETER_NOT_ALLOWED);
        }
        let answer = |v: u8| Ok(Some(v.to_string()));
        match (name, query) {
            ("IDN", true) => Ok(Some(self.idn.clone())),
            ("RST", false) => {
                self.reset();
                Ok(None)
            }
            ("CLS", false) => {
                self.status.clear();
                Ok(None)
            }
            ("OPC", false) => {
                self.status.operation_complete();
                Ok(None)
            }
            ("OPC", true) => Ok(Some("1".into())),
            ("ESR", true) => answer(self.status.read_esr()),
            ("ESE", true) => answer(self.status.ese()),
            ("SRE", true) => answer(self.status.sre()),
            ("STB", true) => answer(self.status.stb(output_waiting)),
            ("ESE", false) => {
                let mask = mask(params)?;
                self.status.set_ese(mask);
                Ok(None)
            }
            ("SRE", false) => {
                let mask = mask(params)?;
                self.status.set_sre(mask);
                Ok(None)
            }
            ("TST", true) => Ok(Some("0".into())),
            ("WAI", false) => Ok(None),
            _ => Err(ScpiError::UNDEFINED_HEADER),
        }
    }

    fn path(
        &mut self,
        words: &[Word],
        query: bool,
        params: &[&str],
    ) -> Result<Option<String>, ScpiError> {
        let builtin = [
            &self.builtins.error_next,
            &self.builtins.error_count,
            &self.builtins.version,
        ]
        .iter()
        .position(|p| p.matches(words) == Some(1) && !words.iter().any(|w| w.suffix.is_some()));
        if let Some(which) = builtin {
            if !query {
                return Err(ScpiError::UNDEFINED_HEADER);
            }
            if !params.is_empty() {
                return Err(ScpiError::PARAMETER_NOT_ALLOWED);
            }
            return Ok(Some(match which {
                0 => self.status.next_error(),
                1 => self.status.error_count().to_string(),
                _ => "1999.0".into(),
            }));
        }
        let (index, suffix) = self
            .properties
            .iter()
            .enumerate()
            .find_map(|(i, p)| p.pattern.matches(words).map(|s| (i, s)))
            .ok_or(ScpiError::UNDEFINED_HEADER)?;
        let property = &self.properties[index];
        if suffix > property.suffixes {
            return Err(ScpiError::SUFFIX_OUT_OF_RANGE);
        }
        let slot = (suffix - 1) as usize;
        if query {
            let value = match (params, &property.kind) {
                ([], _) => self.values[index][slot],
                ([limit], Kind::Number { .. }) => match param::number(limit, None) {
                    Ok(Number::Value(_)) | Err(_) => {
                        return Err(ScpiError::PARAMETER_NOT_ALLOWED);
                    }
                    Ok(_) => property.parse(limit)?,
                },
                _ => return Err(ScpiError::PARAMETER_NOT_ALLOWED),
            };
            return Ok(Some(property.format(value)));
        }
        if property.read_only {
            return Err(ScpiError::UNDEFINED_HEADER);
        }
        let value = match params {
            [] => return Err(ScpiError::MISSING_PARAMETER),
            [one] => property.parse(one)?,
            _ => return Err(ScpiError::PARAMETER_NOT_ALLOWED),
        };
        self.values[index][slot] = value;
        Ok(None)
    }
}

/// The one parameter of `*ESE`/`*SRE`: a number 0..=255, rounded.
fn mask(params: &[&str]) -> Result<u8, ScpiError> {
    match params {
        [] => Err(ScpiError::MISSING_PARAMETER),
        [one] => match param::number(one, None)? {
            Number::Value(v) if (-0.5..255.5).contains(&v) =>
            {
                #[expect(
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss,
                    reason = "rounded, and checked to be within 0..=255 first"
                )]
                Ok(v.round() as u8)
            }
            Number::Value(_) => Err(ScpiError::OUT_OF_RANGE),
            _ => Err(ScpiError::DATA_TYPE),
        },
        _ => Err(ScpiError::PARAMETER_NOT_ALLOWED),
    }
}

impl Device for Scpi {
    type Error = Infallible;

    /// LF, CR LF or CR in; replies as configured.
    fn framing(&self) -> Framing {
        lines::framing(self.terminator)
    }

    /// pyvisa's default line: 9600 8N1.
    fn line(&self) -> LineConfig {
        LineConfig::uart(9600)
    }

    fn handle(
        &mut self,
        request: &[u8],
        _: &mut Context,
        replies: &mut Replies,
    ) -> Result<(), Self::Error> {
        if request == lines::OVERRUN {
            self.status.push(ScpiError::INPUT_BUFFER_OVERRUN);
            return Ok(());
        }
        let text = String::from_utf8_lossy(request);
        let mut answers: Vec<String> = Vec::new();
        let mut previous: Option<String> = None;
        for unit in header::units(&text) {
            let result = header::split_unit(unit).and_then(|(head, params)| {
                let composed = header::compose(previous.as_deref(), head);
                let parsed = Header::parse(&composed)?;
                if matches!(parsed, Header::Path { .. }) {
                    previous = Some(composed);
                }
                self.unit(&parsed, &params, !answers.is_empty())
            });
            match result {
                Ok(Some(answer)) => answers.push(answer),
                Ok(None) => {}
                Err(error) => {
                    tracing::debug!(unit, %error, "SCPI error queued");
                    self.status.push(error);
                }
            }
        }
        if !answers.is_empty() {
            replies.push(answers.join(";"));
        }
        Ok(())
    }

    /// A property by its name (`name:2` for suffix 2), to any value its setter takes, in
    /// range: read-only ones too (a measured value moves).
    fn set(&mut self, key: &str, value: &str, _: &mut Context) -> Result<(), String> {
        let (name, suffix) = match key.split_once(':') {
            Some((name, n)) => (
                name,
                n.parse::<u32>()
                    .map_err(|_| format!("{n:?} is no suffix number"))?,
            ),
            None => (key, 1),
        };
        let names = || {
            self.properties
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let Some(index) = self.properties.iter().position(|p| p.name == name) else {
            return Err(format!(
                "this scpi instrument has no property {name:?} (try {})",
                names()
            ));
        };
        let property = &self.properties[index];
        if suffix == 0 || suffix > property.suffixes {
            return Err(format!(
                "{name} has suffixes 1..={}, not {suffix}",
                property.suffixes
            ));
        }
        let v = property
            .parse(value.trim())
            .map_err(|e| format!("{name} {value}: {}", e.text))?;
        self.values[index][(suffix - 1) as usize] = v;
        Ok(())
    }

    fn settable(&self) -> Vec<Settable> {
        self.properties
            .iter()
            .map(|p| {
                let what = match &p.kind {
                    Kind::Number { min, max, unit, .. } => {
                        format!("<{min}..{max}{}>", unit.as_deref().unwrap_or(""))
                    }
                    Kind::Boolean { .. } => "ON|OFF".into(),
                    Kind::Choice { choices, .. } => choices
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("|"),
                };
                let key = if p.suffixes > 1 {
                    format!("{}[:1..{}]", p.name, p.suffixes)
                } else {
                    p.name.clone()
                };
                Settable::new(key, format!("{what}: {}", p.pattern))
            })
            .collect()
    }
}

fn settable() -> Vec<Settable> {
    vec![Settable::new(
        "<property>[:<suffix>]",
        "<value>: a property the config declares, by its name, as its setter takes it \
         (read-only ones too)",
    )]
}

/// The most keywords a header pattern may have (matching backtracks over optional ones).
const MAX_NODES: usize = 12;

/// One property from its config; an error points at the value it is about.
fn property(p: &Spanned<PropertyConfig>) -> Result<Property, BuildError> {
    let whole = p.span();
    let p = p.get_ref();
    let name = p.name.get_ref();
    if name.is_empty()
        || !name.starts_with(|c: char| c.is_ascii_alphabetic())
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(BuildError::at(
            p.name.span(),
            "a property's `name` is letters, digits, `_` and `-`, starting with a letter",
        ));
    }
    if p.header.get_ref().matches(':').count() >= MAX_NODES {
        return Err(BuildError::at(
            p.header.span(),
            format!("a header pattern has at most {MAX_NODES} keywords"),
        ));
    }
    let pattern = Pattern::parse(p.header.get_ref())
        .map_err(|e| BuildError::at(p.header.span(), e.to_string()))?;
    let suffixes = match (&p.suffixes, pattern.has_suffix()) {
        (Some(s), true) if (1..=1000).contains(s.get_ref()) => *s.get_ref(),
        (Some(s), true) => return Err(BuildError::at(s.span(), "`suffixes` must be 1..=1000")),
        (Some(s), false) => {
            return Err(BuildError::at(
                s.span(),
                "`suffixes` needs a `#` keyword in `header` (`OUTPut#`)",
            ));
        }
        (None, _) => 1,
    };
    let kind = match p.kind {
        KindName::Number => {
            unexpected(&[("choices", p.choices.as_ref().map(Spanned::span))])?;
            number_kind(p, whole)?
        }
        KindName::Boolean => {
            unexpected(&[
                ("min", p.min.as_ref().map(Spanned::span)),
                ("max", p.max.as_ref().map(Spanned::span)),
                ("unit", p.unit.as_ref().map(Spanned::span)),
                ("decimals", p.decimals.as_ref().map(Spanned::span)),
                ("choices", p.choices.as_ref().map(Spanned::span)),
            ])?;
            let default = match p.default.as_ref().map(Spanned::get_ref) {
                None => false,
                Some(DefaultValue::Bool(b)) => *b,
                Some(_) => return Err(wrong_default(p, whole, "true or false")),
            };
            Kind::Boolean { default }
        }
        KindName::Choice => {
            unexpected(&[
                ("min", p.min.as_ref().map(Spanned::span)),
                ("max", p.max.as_ref().map(Spanned::span)),
                ("unit", p.unit.as_ref().map(Spanned::span)),
                ("decimals", p.decimals.as_ref().map(Spanned::span)),
            ])?;
            choice_kind(p, whole)?
        }
    };
    Ok(Property {
        name: name.clone(),
        pattern,
        kind,
        read_only: p.read_only,
        suffixes,
    })
}

/// An error at the first of `keys` the property gives (its span), which its kind has no use for.
fn unexpected(keys: &[(&str, Option<Range<usize>>)]) -> Result<(), BuildError> {
    match keys
        .iter()
        .find_map(|(key, span)| Some((key, span.clone()?)))
    {
        Some((key, span)) => Err(BuildError::at(
            span,
            format!("`{key}` has no meaning for a property of this kind"),
        )),
        None => Ok(()),
    }
}

/// An error at the property's `default` (or the property, without one).
fn wrong_default(p: &PropertyConfig, whole: Range<usize>, what: &str) -> BuildError {
    BuildError::at(
        p.default.as_ref().map_or(whole, Spanned::span),
        format!("`default` must be {what}"),
    )
}

/// A number's limits, default, unit and decimals.
fn number_kind(p: &PropertyConfig, whole: Range<usize>) -> Result<Kind, BuildError> {
    let (Some(min), Some(max)) = (&p.min, &p.max) else {
        return Err(BuildError::at(whole, "a number needs `min` and `max`"));
    };
    let (lo, hi) = (*min.get_ref(), *max.get_ref());
    if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
        return Err(BuildError::at(
            max.span(),
            "`min` and `max` must be numbers, min <= max",
        ));
    }
    let default = match p.default.as_ref().map(Spanned::get_ref) {
        None => lo.max(0.0).min(hi),
        Some(DefaultValue::Number(v)) if (lo..=hi).contains(v) => *v,
        Some(_) => return Err(wrong_default(p, whole, "a number between `min` and `max`")),
    };
    let unit = match &p.unit {
        Some(u)
            if !u.get_ref().is_empty()
                && u.get_ref().len() <= 12
                && u.get_ref().bytes().all(|b| b.is_ascii_alphabetic()) =>
        {
            Some(u.get_ref().clone())
        }
        Some(u) => return Err(BuildError::at(u.span(), "`unit` is letters (`V`, `HZ`)")),
        None => None,
    };
    let decimals = match &p.decimals {
        Some(d) if *d.get_ref() <= 15 => Some(usize::from(*d.get_ref())),
        Some(d) => return Err(BuildError::at(d.span(), "`decimals` must be 0..=15")),
        None => None,
    };
    Ok(Kind::Number {
        min: lo,
        max: hi,
        default,
        unit,
        decimals,
    })
}

/// A choice's mnemonics and default.
fn choice_kind(p: &PropertyConfig, whole: Range<usize>) -> Result<Kind, BuildError> {
    let Some(list) = &p.choices else {
        return Err(BuildError::at(whole, "a choice needs `choices`"));
    };
    let choices = list
        .get_ref()
        .iter()
        .map(|c| Mnemonic::parse(c))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| BuildError::at(list.span(), e.to_string()))?;
    let mut seen = HashSet::new();
    if choices.is_empty()
        || !choices
            .iter()
            .all(|c| seen.insert(c.short().to_ascii_uppercase()))
    {
        return Err(BuildError::at(
            list.span(),
            "`choices` must be one or more mnemonics with different short forms",
        ));
    }
    let default = match p.default.as_ref().map(Spanned::get_ref) {
        None => 0,
        Some(DefaultValue::Text(t)) => match choices.iter().position(|c| c.is(t)) {
            Some(i) => i,
            None => return Err(wrong_default(p, whole, "one of `choices`")),
        },
        Some(_) => return Err(wrong_default(p, whole, "one of `choices`")),
    };
    Ok(Kind::Choice { choices, default })
}

/// One instrument per copy (`count`); an error points at the value it is about.
fn build(b: &Build<'_>) -> Result<Vec<Built>, BuildError> {
    let config: ScpiConfig = b.table.deserialize()?.unwrap_or_default();
    let idn = config.idn.get_ref();
    let idn_at = || {
        b.error(
            &["idn"],
            "`idn` must be 4 fields split by `,` (no `;`), at most 72 characters",
        )
    };
    if idn.split(',').count() != 4 || idn.len() > 72 || idn.contains([';', '\n', '\r']) {
        return Err(idn_at());
    }
    let depth = *config.error_queue.get_ref();
    if !(1..=1000).contains(&depth) {
        return Err(b.error(&["error_queue"], "`error_queue` must be 1..=1000"));
    }
    let mut names = HashSet::new();
    let mut properties = Vec::new();
    for p in &config.property {
        let property = property(p)?;
        if !names.insert(property.name.clone()) {
            return Err(BuildError::at(
                p.get_ref().name.span(),
                format!("two properties are called {:?}", property.name),
            ));
        }
        properties.push(property);
    }
    let terminator = match config.terminator {
        Ending::Lf => Terminator::Lf,
        Ending::Crlf => Terminator::CrLf,
    };
    Ok((0..b.count)
        .map(|_| {
            Built::new(Scpi::new(
                idn.clone(),
                terminator,
                depth,
                properties.clone(),
            ))
        })
        .collect())
}

#[cfg(test)]
mod tests;
