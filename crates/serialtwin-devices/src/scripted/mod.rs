//! A device described as a dialogue instead of Rust: "on this request, answer that".
//!
//! The dialogue is written in TOML ([`ScriptConfig`], the `[device.script]` table of a fleet
//! config), compiled once into a [`Script`] (regexes built, templates checked) and served by a
//! [`Scripted`] device per port, which keeps its own state.
//!
//! ```toml
//! default = "I dont understand"          # anything no rule matches; leave out for silence
//! state = { volts = "0.000" }            # named values, read in templates as {volts}
//! # match = "normalised"                 # compare requests as replay does (default: exact)
//!
//! [[rule]]
//! request = "QPGS"                       # the exact request (the framing's terminator removed)
//! reply = "correct result"
//!
//! [[rule]]
//! regex = 'VOLT (?<v>\d+\.\d{3})'        # matched against the whole request
//! set = { volts = "{v}" }                # a setter...
//! reply = "OK"
//!
//! [[rule]]
//! request = "VOLT?"
//! reply = "{volts}"                      # ...and its getter
//!
//! [[rule]]
//! request = "READ"
//! sequence = ["first", "second"]         # one answer per match; then the rule is used up
//!
//! [[rule]]
//! request = '*RST'
//! reply = [{ text = "resetting", delay_ms = 200 }, { hex = "06", raw = true }]
//! ```
//!
//! # Matching
//! Rules are tried in order and the first that matches and is not used up answers; anything
//! else gets `default` (or nothing). `request` is compared byte for byte; `regex` must match the
//! whole request (it is anchored at both ends; bytes that are not UTF-8 need `(?-u:\xFF)`).
//! A rule with `times = N` is used up after N matches; one with a `sequence` after its last
//! entry, unless `cycle = true`.
//!
//! `match = "normalised"` ([`MatchMode`]) compares `request`s the way
//! [replay](crate::replay) does, with the same code: a request matches a rule when it has the
//! rule's bytes, or the same *normalised form*: the checksum the port's framing verifies
//! removed ([`Framer::check`](serialtwin_core::Framer::check)), cut at the first byte that is
//! not printable ASCII, trimmed, upper-cased. So `request = 'QPIGS'` on a PI30 framing answers
//! `QPIGS` with either CRC escape rule, `qpigs` typed in a terminal without one, and
//! `QPIGS\xb7\xa9` written as recorded answers the same. A request whose normalised form is
//! empty (binary: `\x01\x03...`) matches only byte for byte, as in replay. `regex` rules
//! still see the request as it came, checksum included (they can say what they need). An
//! exact script's serving path is unchanged; a normalised one normalises each request once,
//! as a slice of it, without allocating.
//!
//! # Replies
//! A reply is a string, a table `{ text | hex, delay_ms, raw }`, or an array of those (several
//! frames; `[]` for silence). Text is a template: `{name}` is a named capture of the rule's
//! regex, then a state value; `{1}`, `{2}`... are numbered captures and `{0}` is the whole
//! request; `{{` and `}}` are braces. Escapes give any byte: `\r`, `\n`, `\t`, `\0`, `\e`,
//! `\\`, `\xNN` (TOML's basic strings know `\r`, `\n`, `\t` but not `\x`: use 'literal
//! strings' for the others). Replies go through the port's framing (which adds the terminator)
//! unless `raw = true`. A rule's `set` runs before its reply is rendered, so the reply sees the
//! new values.
//!
//! # Command errors
//! A request no rule matches is a command error: it gets `default`, and feeds the script's
//! [`ErrorModel`] (filled in by a compiler such as [`pyvisa_sim`](crate::pyvisa_sim), not
//! written in TOML): status registers get their bits set, error queues an entry. A request
//! naming a register answers its value and clears it; one naming a queue answers its oldest
//! entry, or the queue's empty reply.

mod channels;
mod config;
mod model;
pub mod python;
mod template;

use std::convert::Infallible;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use regex::bytes::{Captures, Regex};
use serialtwin_core::{BoxFramer, Context, Device, Framing, Replies, Reply, Settable};

pub use self::config::{
    ChannelGroup, ErrorModel, ErrorQueue, MatchMode, PythonRule, ReplyItem, ReplySpec, RuleConfig,
    ScriptConfig, StatusRegister,
};
pub use self::model::MODEL;
pub use self::template::escape_bytes;

use self::template::{Piece, Template, unescape, unhex};
use crate::replay::normal_text_with;

/// Why a dialogue cannot be compiled.
#[derive(Debug, thiserror::Error)]
#[error("{kind}")]
pub struct ScriptError {
    /// Where in the TOML text the offending value is (a byte range), when known.
    pub span: Option<Range<usize>>,
    /// What is wrong.
    pub kind: ScriptErrorKind,
}

/// What is wrong with a dialogue.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScriptErrorKind {
    /// A rule has neither `request` nor `regex`.
    #[error("a rule needs `request` (exact) or `regex`")]
    NoPattern,
    /// A rule has both `request` and `regex`.
    #[error("a rule takes `request` or `regex`, not both")]
    TwoPatterns,
    /// A rule has both `reply` and `sequence`.
    #[error("a rule takes `reply` or `sequence`, not both")]
    ReplyAndSequence,
    /// A `sequence` with no entries.
    #[error("an empty `sequence` (use `reply = []` for silence)")]
    EmptySequence,
    /// A reply table without exactly one of `text` and `hex`.
    #[error("a reply table needs exactly one of `text` and `hex`")]
    TextOrHex,
    /// The regex does not compile.
    #[error("bad regex: {0}")]
    Regex(String),
    /// Bad escape, brace or hex digit.
    #[error("{0}")]
    Text(String),
    /// A placeholder names nothing.
    #[error("`{{{name}}}` is neither a capture of this rule's regex nor a state value")]
    UnknownName {
        /// The name in braces.
        name: String,
    },
    /// A numbered placeholder beyond the regex's groups.
    #[error("`{{{index}}}`: the pattern has only {groups} capture group(s)")]
    NoSuchGroup {
        /// The number in braces.
        index: usize,
        /// How many groups there are (not counting `{0}`).
        groups: usize,
    },
    /// A rule's Python side does not compile (a pattern stringparser refuses, a format
    /// Python would refuse every time, a property that is not declared).
    #[error("{0}")]
    Python(String),
    /// `set` names a value not declared in `state`.
    #[error("`{name}` is not a state value (declare it in `state`)")]
    UnknownState {
        /// The name.
        name: String,
    },
}

impl ScriptError {
    fn at(span: Range<usize>, kind: ScriptErrorKind) -> Self {
        Self {
            span: Some(span),
            kind,
        }
    }
}

/// A compiled dialogue, shared by every port that runs it.
#[derive(Debug)]
pub struct Script {
    rules: Vec<Rule>,
    /// How `request` rules match ([`Pattern::Exact`] or [`Pattern::Normalised`]).
    matching: MatchMode,
    default: Vec<ReplyTemplate>,
    state_names: Vec<String>,
    initial: Vec<Vec<u8>>,
    /// What a command error also feeds.
    errors: ErrorModel,
    /// Python-typed values ([`ScriptConfig::properties`]).
    properties: Vec<python::Property>,
    /// Channel groups ([`ScriptConfig::channels`]).
    channels: Vec<channels::Group>,
    /// The property `selected_channel`, which a group that does not select reads.
    selected_channel: Option<usize>,
}

/// The most entries an error queue keeps: later errors are dropped, so that a client
/// sending nothing but errors cannot make it grow without bound.
pub const MAX_ERROR_QUEUE: usize = 1024;

#[derive(Debug)]
struct Rule {
    pattern: Pattern,
    answer: Answer,
    /// `(state index, value)`.
    set: Vec<(usize, Template)>,
    times: Option<u64>,
}

#[derive(Debug)]
enum Pattern {
    Exact(Vec<u8>),
    /// The request as written; its normalised form depends on the port's framing (the
    /// checksum it verifies), so each [`Scripted`] keeps it ([`Normaliser`]).
    Normalised(Vec<u8>),
    Regex(Regex),
    /// A stringparser pattern, matched against the request as UTF-8.
    Parsed(python::parse::Pattern),
    /// Any request that is not UTF-8.
    NotUtf8,
}

#[derive(Debug)]
enum Answer {
    Always(Vec<ReplyTemplate>),
    Sequence {
        steps: Vec<Vec<ReplyTemplate>>,
        cycle: bool,
    },
    /// A property's value, formatted.
    Get {
        property: usize,
        format: Getter,
    },
    /// Random values.
    Random(python::random::RandomReply),
    /// Set a property from the pattern's value.
    Set {
        property: usize,
        reply: Option<Bytes>,
        invalid: Option<Bytes>,
    },
    /// Raise: no reply, and the rest of the message is not answered.
    Raise(String),
}

/// How a getter writes its property.
#[derive(Debug)]
enum Getter {
    Format(python::PyFormat),
    Random(python::random::RandomReply),
    /// Every use raises this.
    Raise(String),
}

impl Getter {
    /// A getter's reply `format` as pyvisa-sim reads it on each use: `RANDOM` values, a
    /// Python format of the value, or (none, or a format Python refuses) a raise.
    fn new(format: Option<&str>) -> Self {
        match format {
            None => Self::Raise(
                "TypeError: a getter without `r`: argument of type 'Responses' is not iterable"
                    .into(),
            ),
            Some(text) if python::random::is_random(text) => {
                Self::Random(python::random::RandomReply::new(text))
            }
            Some(text) => match python::PyFormat::parse(text) {
                Ok(format) => Self::Format(format),
                Err(why) => Self::Raise(why),
            },
        }
    }

    /// The reply for `value`.
    fn render(&self, value: &python::PyValue, out: &mut String) -> Result<(), String> {
        match self {
            Self::Format(format) => format.render(value, out),
            Self::Random(random) => random.render(out),
            Self::Raise(why) => Err(why.clone()),
        }
    }
}

/// What a Python-defined dialogue raises to its caller where a request meets a broken
/// entry (a format that does not fit the value, a `RANDOM` directive it cannot read): the
/// request gets no reply, and the rest of its message is not answered, as in pyvisa-sim.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Raised(pub String);

#[derive(Debug)]
struct ReplyTemplate {
    template: Template,
    /// The reply, rendered once, when the template has no placeholder: a reference count
    /// per reply instead of a new buffer.
    fixed: Option<Bytes>,
    delay: Duration,
    raw: bool,
}

impl Script {
    /// Compile `config`: build the regexes, parse the templates and resolve their names.
    ///
    /// # Errors
    /// The first [`ScriptError`], with the span of the offending value.
    pub fn compile(config: &ScriptConfig) -> Result<Self, ScriptError> {
        let state_names: Vec<String> = config.state.keys().cloned().collect();
        let initial = config
            .state
            .values()
            .map(|v| unescape(v.get_ref()).map_err(|e| text_error(v.span(), e)))
            .collect::<Result<_, _>>()?;
        let scope = Scope {
            state: &state_names,
            regex: None,
        };
        let default = match &config.default {
            Some(spec) => replies(spec, &scope)?,
            None => Vec::new(),
        };
        let rules = config
            .rules
            .iter()
            .map(|rule| compile_rule(rule, &state_names, config.matching, &config.properties))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            rules,
            matching: config.matching,
            default,
            state_names,
            initial,
            errors: config.errors.clone(),
            properties: config.properties.clone(),
            channels: config
                .channels
                .iter()
                .map(channels::compile)
                .collect::<Result<_, _>>()?,
            selected_channel: config
                .properties
                .iter()
                .position(|p| p.name == "selected_channel"),
        })
    }

    /// Names of the state values, in the order [`Scripted::state`] reports them.
    #[must_use]
    pub fn state_names(&self) -> &[String] {
        &self.state_names
    }

    /// Number of rules.
    #[must_use]
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// No rules (everything gets the default).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// How its `request` rules match.
    #[must_use]
    pub fn matching(&self) -> MatchMode {
        self.matching
    }
}

/// What names a template may use.
struct Scope<'a> {
    state: &'a [String],
    regex: Option<&'a Regex>,
}

impl Scope<'_> {
    fn resolve(
        &self,
        mut template: Template,
        span: &Range<usize>,
    ) -> Result<Template, ScriptError> {
        let groups = self.regex.map_or(0, |r| r.captures_len() - 1);
        for piece in &mut template.pieces {
            match piece {
                Piece::Group(index) if *index > groups => {
                    return Err(ScriptError::at(
                        span.clone(),
                        ScriptErrorKind::NoSuchGroup {
                            index: *index,
                            groups,
                        },
                    ));
                }
                Piece::Name(name) => {
                    let group = self
                        .regex
                        .and_then(|r| r.capture_names().position(|n| n == Some(name.as_str())));
                    *piece = if let Some(i) = group {
                        Piece::Group(i)
                    } else if let Some(i) = self.state.iter().position(|s| s == name) {
                        Piece::State(i)
                    } else {
                        return Err(ScriptError::at(
                            span.clone(),
                            ScriptErrorKind::UnknownName {
                                name: std::mem::take(name),
                            },
                        ));
                    };
                }
                _ => {}
            }
        }
        Ok(template)
    }

    fn template(&self, text: &str, span: &Range<usize>) -> Result<Template, ScriptError> {
        let parsed = Template::parse(text).map_err(|e| text_error(span.clone(), e))?;
        self.resolve(parsed, span)
    }
}

fn text_error(span: Range<usize>, reason: String) -> ScriptError {
    ScriptError::at(span, ScriptErrorKind::Text(reason))
}

fn compile_rule(
    rule: &serde_spanned::Spanned<RuleConfig>,
    state: &[String],
    matching: MatchMode,
    properties: &[python::Property],
) -> Result<Rule, ScriptError> {
    let span = rule.span();
    let rule = rule.get_ref();
    if let Some(python) = &rule.python {
        return compile_python(rule, python, span, properties);
    }
    let pattern = match (&rule.request, &rule.regex) {
        (None, None) => return Err(ScriptError::at(span, ScriptErrorKind::NoPattern)),
        (Some(_), Some(r)) => return Err(ScriptError::at(r.span(), ScriptErrorKind::TwoPatterns)),
        (Some(request), None) => {
            let bytes = unescape(request.get_ref()).map_err(|e| text_error(request.span(), e))?;
            match matching {
                MatchMode::Exact => Pattern::Exact(bytes),
                MatchMode::Normalised => Pattern::Normalised(bytes),
            }
        }
        (None, Some(re)) => Pattern::Regex(
            Regex::new(&format!(r"\A(?:{})\z", re.get_ref())).map_err(|e| {
                ScriptError::at(re.span(), ScriptErrorKind::Regex(regex_reason(&e)))
            })?,
        ),
    };
    let scope = Scope {
        state,
        regex: match &pattern {
            Pattern::Regex(r) => Some(r),
            Pattern::Exact(_) | Pattern::Normalised(_) | Pattern::Parsed(_) | Pattern::NotUtf8 => {
                None
            }
        },
    };
    let answer = match (&rule.reply, &rule.sequence) {
        (Some(_), Some(seq)) => {
            return Err(ScriptError::at(
                seq.span(),
                ScriptErrorKind::ReplyAndSequence,
            ));
        }
        (reply, None) => Answer::Always(match reply {
            Some(spec) => replies(spec, &scope)?,
            None => Vec::new(),
        }),
        (None, Some(seq)) if seq.get_ref().is_empty() => {
            return Err(ScriptError::at(seq.span(), ScriptErrorKind::EmptySequence));
        }
        (None, Some(seq)) => Answer::Sequence {
            steps: seq
                .get_ref()
                .iter()
                .map(|spec| replies(spec, &scope))
                .collect::<Result<_, _>>()?,
            cycle: rule.cycle,
        },
    };
    let set = rule
        .set
        .iter()
        .map(|(name, value)| {
            let index = state.iter().position(|s| s == name).ok_or_else(|| {
                ScriptError::at(
                    value.span(),
                    ScriptErrorKind::UnknownState { name: name.clone() },
                )
            })?;
            Ok((index, scope.template(value.get_ref(), &value.span())?))
        })
        .collect::<Result<_, ScriptError>>()?;
    Ok(Rule {
        pattern,
        answer,
        set,
        times: rule.times,
    })
}

/// A rule with a [`PythonRule`]: its `request` (exact) or its own pattern, and its answer.
fn compile_python(
    rule: &RuleConfig,
    python: &PythonRule,
    span: Range<usize>,
    properties: &[python::Property],
) -> Result<Rule, ScriptError> {
    let fail = |why: String| ScriptError::at(span.clone(), ScriptErrorKind::Python(why));
    let property = |name: &str| {
        properties
            .iter()
            .position(|p| p.name == name)
            .ok_or_else(|| fail(format!("no property {name:?}")))
    };
    let exact = || match &rule.request {
        Some(request) => unescape(request.get_ref())
            .map(Pattern::Exact)
            .map_err(|e| text_error(request.span(), e)),
        None => Err(ScriptError::at(span.clone(), ScriptErrorKind::NoPattern)),
    };
    let (pattern, answer) = match python {
        PythonRule::Get {
            property: name,
            format,
        } => {
            let format = Getter::new(format.as_deref());
            (
                exact()?,
                Answer::Get {
                    property: property(name)?,
                    format,
                },
            )
        }
        PythonRule::Random(text) => (
            exact()?,
            Answer::Random(python::random::RandomReply::new(text)),
        ),
        PythonRule::Set {
            pattern,
            property: name,
            reply,
            invalid,
        } => (
            Pattern::Parsed(
                python::parse::Pattern::new(pattern)
                    .map_err(|why| fail(format!("setter pattern {pattern:?}: {why}")))?,
            ),
            Answer::Set {
                property: property(name)?,
                reply: reply.clone().map(Bytes::from),
                invalid: invalid.clone().map(Bytes::from),
            },
        ),
        PythonRule::RaiseIfNotUtf8 => (
            Pattern::NotUtf8,
            Answer::Raise(
                "UnicodeDecodeError: a request that is not UTF-8 reached the setters".into(),
            ),
        ),
    };
    Ok(Rule {
        pattern,
        answer,
        set: Vec::new(),
        times: None,
    })
}

fn replies(spec: &ReplySpec, scope: &Scope<'_>) -> Result<Vec<ReplyTemplate>, ScriptError> {
    spec.items
        .iter()
        .map(|item| {
            let template = match (&item.text, &item.hex) {
                (Some(text), None) => scope.template(text, &spec.span)?,
                (None, Some(hex)) => Template {
                    pieces: vec![Piece::Literal(
                        unhex(hex).map_err(|e| text_error(spec.span.clone(), e))?,
                    )],
                },
                _ => {
                    return Err(ScriptError::at(
                        spec.span.clone(),
                        ScriptErrorKind::TextOrHex,
                    ));
                }
            };
            let fixed = template
                .pieces
                .iter()
                .all(|piece| matches!(piece, Piece::Literal(_)))
                .then(|| {
                    let mut bytes = Vec::new();
                    template.render(|_| &[], &[], &mut bytes);
                    Bytes::from(bytes)
                });
            Ok(ReplyTemplate {
                template,
                fixed,
                delay: Duration::from_millis(item.delay_ms),
                raw: item.raw,
            })
        })
        .collect()
}

/// The one-line reason of a regex error (the crate's message spans several lines).
fn regex_reason(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .find_map(|l| l.strip_prefix("error: "))
        .unwrap_or_else(|| text.lines().last().unwrap_or("invalid"))
        .to_owned()
}

/// A port running a [`Script`], with its own state and sequence positions.
#[derive(Debug)]
pub struct Scripted {
    script: Arc<Script>,
    framing: Framing,
    /// `match = "normalised"`: what normalises requests for this port's framing. `None` for
    /// an exact script, whose serving path stays a byte comparison per rule.
    normaliser: Option<Normaliser>,
    state: Vec<Vec<u8>>,
    /// Matches so far, per rule.
    matched: Vec<u64>,
    /// The status registers' values ([`ErrorModel::registers`]).
    registers: Vec<u64>,
    /// The error queues' entries ([`ErrorModel::queues`]).
    queues: Vec<std::collections::VecDeque<Bytes>>,
    /// The properties' values ([`ScriptConfig::properties`]).
    values: Vec<python::PyValue>,
    /// The channel groups' states ([`ScriptConfig::channels`]).
    channel_states: Vec<channels::GroupState>,
}

/// A normalised script's matching, for one framing: the port's own framer for
/// [`Framer::check`](serialtwin_core::Framer::check) (so that a request is normalised without
/// building one, or allocating), and each rule's normalised `request` (upper-cased; empty for a
/// rule that is not [`Pattern::Normalised`], or whose request has no printable text: matched
/// byte for byte only).
struct Normaliser {
    framer: BoxFramer,
    keys: Vec<Vec<u8>>,
}

impl Normaliser {
    fn new(script: &Script, framing: &Framing) -> Option<Self> {
        if script.matching == MatchMode::Exact {
            return None;
        }
        let framer = framing.build();
        let keys = script
            .rules
            .iter()
            .map(|rule| match &rule.pattern {
                Pattern::Normalised(request) => {
                    normal_text_with(&*framer, request).to_ascii_uppercase()
                }
                Pattern::Exact(_) | Pattern::Regex(_) | Pattern::Parsed(_) | Pattern::NotUtf8 => {
                    Vec::new()
                }
            })
            .collect();
        Some(Self { framer, keys })
    }
}

impl std::fmt::Debug for Normaliser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Normaliser")
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

impl Scripted {
    /// A device running `script`, framed as CRLF lines.
    #[must_use]
    pub fn new(script: Arc<Script>) -> Self {
        let framing = Framing::default();
        Self {
            state: script.initial.clone(),
            matched: vec![0; script.rules.len()],
            registers: vec![0; script.errors.registers.len()],
            queues: vec![std::collections::VecDeque::new(); script.errors.queues.len()],
            values: script
                .properties
                .iter()
                .map(|p| p.initial.clone())
                .collect(),
            channel_states: script.channels.iter().map(channels::Group::state).collect(),
            normaliser: Normaliser::new(&script, &framing),
            script,
            framing,
        }
    }

    /// The same device framed by `framing` (whose checksum a normalised script removes
    /// before comparing).
    #[must_use]
    pub fn with_framing(mut self, framing: Framing) -> Self {
        self.normaliser = Normaliser::new(&self.script, &framing);
        self.framing = framing;
        self
    }

    /// A state value right now.
    #[must_use]
    pub fn state(&self, name: &str) -> Option<&[u8]> {
        let i = self.script.state_names.iter().position(|n| n == name)?;
        Some(&self.state[i])
    }

    /// A property's value right now.
    #[must_use]
    pub fn property(&self, name: &str) -> Option<&python::PyValue> {
        let i = self.script.properties.iter().position(|p| p.name == name)?;
        self.values.get(i)
    }

    /// The replies to `request` (updating state and sequence positions).
    ///
    /// # Errors
    /// [`Raised`] where a Python-defined rule raises: nothing more is answered for it (the
    /// replies pushed before stay).
    pub fn answer(&mut self, request: &[u8], replies: &mut Replies) -> Result<(), Raised> {
        let script = Arc::clone(&self.script);
        // Normalised once per request, as a slice of it.
        let normal = self
            .normaliser
            .as_ref()
            .map(|n| (normal_text_with(&*n.framer, request), &n.keys));
        let errors_at = script.errors.before_rule.unwrap_or(script.rules.len());
        for (i, rule) in script.rules.iter().enumerate() {
            if i == errors_at
                && Self::read_errors(
                    &script.errors,
                    &mut self.registers,
                    &mut self.queues,
                    request,
                    replies,
                )
            {
                return Ok(());
            }
            let used = self.matched[i];
            if rule.times.is_some_and(|n| used >= n) {
                continue;
            }
            let step = match &rule.answer {
                Answer::Always(r) => r.as_slice(),
                Answer::Sequence { steps, cycle } => {
                    let k = usize::try_from(used).unwrap_or(usize::MAX);
                    match steps.get(if *cycle { k % steps.len() } else { k }) {
                        Some(step) => step,
                        None => continue,
                    }
                }
                Answer::Get { .. } | Answer::Random(_) | Answer::Set { .. } | Answer::Raise(_) => {
                    match Self::python_rule(&mut self.values, &script, rule, request, replies) {
                        Some(done) => {
                            self.matched[i] = used + 1;
                            return done;
                        }
                        None => continue,
                    }
                }
            };
            let captures = match &rule.pattern {
                Pattern::Exact(bytes) if bytes == request => None,
                Pattern::Normalised(bytes)
                    if bytes == request
                        || normal.is_some_and(|(text, keys)| {
                            !keys[i].is_empty() && text.eq_ignore_ascii_case(&keys[i])
                        }) =>
                {
                    None
                }
                Pattern::Regex(re) => match re.captures(request) {
                    Some(c) => Some(c),
                    None => continue,
                },
                Pattern::Exact(_)
                | Pattern::Normalised(_)
                | Pattern::Parsed(_)
                | Pattern::NotUtf8 => continue,
            };
            self.matched[i] = used + 1;
            let group = group_fn(request, captures.as_ref());
            let new: Vec<(usize, Vec<u8>)> = rule
                .set
                .iter()
                .map(|(index, value)| {
                    let mut out = Vec::new();
                    value.render(&group, &self.state, &mut out);
                    (*index, out)
                })
                .collect();
            for (index, value) in new {
                self.state[index] = value;
            }
            render(step, &group, &self.state, replies);
            return Ok(());
        }
        if errors_at >= script.rules.len()
            && Self::read_errors(
                &script.errors,
                &mut self.registers,
                &mut self.queues,
                request,
                replies,
            )
        {
            return Ok(());
        }
        if !script.channels.is_empty() && self.answer_channels(&script, request, replies)? {
            return Ok(());
        }
        self.command_error(&script, request, replies);
        Ok(())
    }

    /// The channel groups' answer to `request`: `true` when one answered it.
    fn answer_channels(
        &mut self,
        script: &Script,
        request: &[u8],
        replies: &mut Replies,
    ) -> Result<bool, Raised> {
        let selected = script.selected_channel.map(|i| &self.values[i]);
        match channels::answer(
            &script.channels,
            &mut self.channel_states,
            selected,
            request,
        )? {
            Some(channels::Answer::Reply(bytes)) => {
                replies.push(bytes);
                Ok(true)
            }
            Some(channels::Answer::Silence) => Ok(true),
            Some(channels::Answer::CommandError) | None => Ok(false),
        }
    }

    /// A command error: the registers' bits set, the queues' entries added, the default
    /// reply.
    fn command_error(&mut self, script: &Script, request: &[u8], replies: &mut Replies) {
        for (value, register) in self.registers.iter_mut().zip(&script.errors.registers) {
            *value |= register.command_error;
        }
        for (queue, config) in self.queues.iter_mut().zip(&script.errors.queues) {
            if let Some(entry) = &config.command_error
                && queue.len() < MAX_ERROR_QUEUE
            {
                queue.push_back(Bytes::from(entry.clone()));
            }
        }
        let group = group_fn(request, None);
        render(&script.default, &group, &self.state, replies);
    }

    /// A [`Pattern::Parsed`] rule's setter on `request`: `None` when it does not apply
    /// (no match, or a refused value with no reply for it: the next rule's turn).
    fn set_property(
        values: &mut [python::PyValue],
        script: &Script,
        pattern: &python::parse::Pattern,
        rule: &Rule,
        request: &[u8],
        replies: &mut Replies,
    ) -> Option<Result<(), Raised>> {
        let Answer::Set {
            property,
            reply,
            invalid,
        } = &rule.answer
        else {
            return None;
        };
        let value = pattern.parse(std::str::from_utf8(request).ok()?)?;
        match script.properties[*property].validate(&value) {
            Ok(value) => {
                values[*property] = value;
                if let Some(reply) = reply {
                    replies.push(reply.clone());
                }
                Some(Ok(()))
            }
            Err(python::PyError::Value(_)) => {
                replies.push(invalid.clone()?);
                Some(Ok(()))
            }
            Err(python::PyError::Other(why)) => Some(Err(Raised(why))),
        }
    }

    /// A rule whose answer is Python's (a getter, a setter, random values, a raise) on
    /// `request`: `None` when it does not match. Kept out of the loop that answers the
    /// other rules, whose path stays as it was.
    #[inline(never)]
    fn python_rule(
        values: &mut [python::PyValue],
        script: &Script,
        rule: &Rule,
        request: &[u8],
        replies: &mut Replies,
    ) -> Option<Result<(), Raised>> {
        let matched = match &rule.pattern {
            Pattern::Exact(bytes) => bytes == request,
            Pattern::NotUtf8 => std::str::from_utf8(request).is_err(),
            Pattern::Parsed(pattern) => {
                return Self::set_property(values, script, pattern, rule, request, replies);
            }
            Pattern::Normalised(_) | Pattern::Regex(_) => false,
        };
        if !matched {
            return None;
        }
        Self::python_reply(values, &rule.answer, replies)
    }

    /// The reply of a rule whose answer is Python's (a getter, random values, a raise);
    /// `None` for the others.
    fn python_reply(
        values: &[python::PyValue],
        answer: &Answer,
        replies: &mut Replies,
    ) -> Option<Result<(), Raised>> {
        let mut out = String::new();
        let rendered = match answer {
            Answer::Always(_) | Answer::Sequence { .. } | Answer::Set { .. } => return None,
            Answer::Get { property, format } => format.render(&values[*property], &mut out),
            Answer::Random(random) => random.render(&mut out),
            Answer::Raise(why) => Err(why.clone()),
        };
        Some(rendered.map(|()| replies.push(out)).map_err(Raised))
    }

    /// A request reading a status register (its value, cleared) or an error queue (its
    /// oldest entry, or its `empty` reply): answered, and `true`.
    fn read_errors(
        errors: &ErrorModel,
        registers: &mut [u64],
        queues: &mut [std::collections::VecDeque<Bytes>],
        request: &[u8],
        replies: &mut Replies,
    ) -> bool {
        if let Some(i) = errors.registers.iter().rposition(|r| r.request == request) {
            replies.push(std::mem::take(&mut registers[i]).to_string());
            return true;
        }
        if let Some(i) = errors.queues.iter().rposition(|q| q.request == request) {
            match queues[i].pop_front() {
                Some(entry) => replies.push(entry),
                None => replies.push(errors.queues[i].empty.clone()),
            }
            return true;
        }
        false
    }
}

/// Say why a request got no reply: out of line, so that the answering path stays small.
#[cold]
#[inline(never)]
fn log_raised(raised: &Raised) {
    tracing::warn!(%raised, "a request met a broken entry of the dialogue: no reply");
}

/// Capture `i` of the match (`0`: the whole request); a group that did not take part is empty.
fn group_fn<'a>(
    request: &'a [u8],
    captures: Option<&'a Captures<'a>>,
) -> impl Fn(usize) -> &'a [u8] {
    move |i| match captures {
        Some(c) => c.get(i).map_or(&[][..], |m| m.as_bytes()),
        None if i == 0 => request,
        None => &[],
    }
}

fn render<'a>(
    step: &[ReplyTemplate],
    group: &impl Fn(usize) -> &'a [u8],
    state: &[Vec<u8>],
    replies: &mut Replies,
) {
    for reply in step {
        let bytes = if let Some(fixed) = &reply.fixed {
            fixed.clone()
        } else {
            let mut bytes = Vec::new();
            reply.template.render(group, state, &mut bytes);
            Bytes::from(bytes)
        };
        replies.push_reply(Reply {
            delay: reply.delay,
            bytes,
            raw: reply.raw,
        });
    }
}

impl Device for Scripted {
    type Error = Infallible;

    fn framing(&self) -> Framing {
        self.framing.clone()
    }

    /// A dialogue never waits: delays are data on the replies.
    fn handle(
        &mut self,
        request: &[u8],
        _ctx: &mut Context,
        replies: &mut Replies,
    ) -> Result<(), Self::Error> {
        if let Err(raised) = self.answer(request, replies) {
            log_raised(&raised);
        }
        Ok(())
    }

    /// Set the state value `key` (escapes allowed in `value`), or the property `key` (the
    /// value converted and checked by its specs, as its setter would).
    fn set(&mut self, key: &str, value: &str, _ctx: &mut Context) -> Result<(), String> {
        if let Some(i) = self.script.properties.iter().position(|p| p.name == key) {
            self.values[i] = self.script.properties[i]
                .validate(&python::PyValue::Str(value.to_owned()))
                .map_err(|e| format!("{key}: {e}"))?;
            return Ok(());
        }
        let i = self
            .script
            .state_names
            .iter()
            .position(|n| n == key)
            .ok_or_else(|| {
                let names: Vec<&str> = self
                    .script
                    .state_names
                    .iter()
                    .chain(self.script.properties.iter().map(|p| &p.name))
                    .map(String::as_str)
                    .collect();
                format!(
                    "no state value or property {key:?} (this script has: {})",
                    names.join(", ")
                )
            })?;
        self.state[i] = unescape(value)?;
        Ok(())
    }

    fn settable(&self) -> Vec<Settable> {
        let state = self.script.state_names.iter().map(|name| {
            Settable::new(
                name.clone(),
                "a state value of the script (escapes allowed)",
            )
        });
        let properties = self.script.properties.iter().map(|p| {
            Settable::new(
                p.name.clone(),
                "a property (converted and checked by its specs, as its setter does)",
            )
        });
        state.chain(properties).collect()
    }
}
