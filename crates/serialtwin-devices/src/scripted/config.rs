//! The dialogue as written in TOML (serde), before it is compiled into a [`Script`](super::Script).
//!
//! Values that can be wrong in ways serde cannot see (a regex, a template naming an unknown
//! capture) keep their position in the file ([`Spanned`]), so that an error names the line and
//! column of the offending value. That makes these types TOML-only: other serde formats cannot
//! produce spans.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_spanned::Spanned;

use super::python;

/// A scripted device's dialogue (`[device.script]` in a fleet config).
///
/// ```toml
/// default = "I dont understand"     # anything no rule matches; leave out for silence
///
/// [[rule]]
/// request = "QPGS"                  # the exact request (without the framing's terminator)
/// reply = "correct result"
/// ```
///
/// It serialises back to the same TOML (`toml::to_string`), which is how a generator such as
/// `learn` can write one.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptConfig {
    /// Named state values and their starting values; templates read them as `{name}`, rules
    /// change them with `set`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub state: BTreeMap<String, Spanned<String>>,
    /// How the rules' `request`s are compared with a request (`match` in TOML): exactly (the
    /// default), or as replay does.
    #[serde(default, rename = "match", skip_serializing_if = "MatchMode::is_exact")]
    pub matching: MatchMode,
    /// The reply to anything no rule matches. `None`: silence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<ReplySpec>,
    /// The rules, tried in order; the first that matches (and is not used up) answers.
    #[serde(default, rename = "rule", skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Spanned<RuleConfig>>,
    /// What a command error (a request no rule matches) also does, besides the `default`
    /// reply: the status registers and error queues it feeds, each read by a request of its
    /// own. Not written in TOML: a compiler of another dialogue format fills it in
    /// ([`pyvisa_sim`](crate::pyvisa_sim)'s `error`).
    #[serde(skip)]
    pub errors: ErrorModel,
    /// Python-typed values ([`python::Property`]) that rules with a [`PythonRule`] read
    /// and set. Not written in TOML: a compiler of a Python-defined dialogue fills them in
    /// ([`pyvisa_sim`](crate::pyvisa_sim)'s `properties`).
    #[serde(skip)]
    pub properties: Vec<python::Property>,
    /// Groups of channels, tried after every rule, before a request counts as a command
    /// error. Not written in TOML ([`pyvisa_sim`](crate::pyvisa_sim)'s `channels`).
    #[serde(skip)]
    pub channels: Vec<ChannelGroup>,
}

/// A group of channels (pyvisa-sim's `channels.<name>`): the same dialogues, getters and
/// setters for each of its ids, each channel with its own property values.
///
/// With `can_select`, a request names its channel: `{ch_id}` in a dialogue's or getter's
/// request is each id in turn, and a setter's pattern may read it. Without, the channel is
/// the device property `selected_channel`, and requests are matched as written.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChannelGroup {
    /// Its name (for messages).
    pub name: String,
    /// Its channels' ids, as text.
    pub ids: Vec<String>,
    /// Whether a request names its channel.
    pub can_select: bool,
    /// Its properties: each channel starts with `initial`.
    pub properties: Vec<python::Property>,
    /// `(request, reply)`: the request with escapes already applied, as a Python format of
    /// `ch_id` where the group selects; `None`: silence. A reply saying `RANDOM` gives random
    /// values.
    pub dialogues: Vec<(String, Option<Vec<u8>>)>,
    /// `(request, property, format)`, as [`PythonRule::Get`].
    pub getters: Vec<(String, String, Option<String>)>,
    /// Its setters, in order ([`PythonRule::Set`]'s fields, the pattern a channel's).
    pub setters: Vec<PythonRule>,
}

/// Status registers and error queues a command error feeds ([`ScriptConfig::errors`]).
///
/// A request that no rule matches is looked up here, registers first, byte for byte, before
/// it counts as a command error.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ErrorModel {
    /// The status registers.
    pub registers: Vec<StatusRegister>,
    /// The error queues.
    pub queues: Vec<ErrorQueue>,
    /// The rule before which registers and queues are looked up (none: after every rule).
    /// pyvisa-sim looks them up after its exact dialogues and getters, before its setters.
    pub before_rule: Option<usize>,
}

/// A status register: its request answers its value in decimal and clears it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatusRegister {
    /// The request that reads (and clears) it.
    pub request: Vec<u8>,
    /// The bits a command error sets.
    pub command_error: u64,
}

/// An error queue: its request answers (and removes) the oldest entry, or `empty`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ErrorQueue {
    /// The request that reads it.
    pub request: Vec<u8>,
    /// The reply when it is empty.
    pub empty: Vec<u8>,
    /// The entry a command error adds (none: it adds nothing).
    pub command_error: Option<Vec<u8>>,
}

/// How a script compares a rule's `request` with a request (`match = "..."`).
///
/// Only `request` rules: a `regex` always sees the request as it came (checksum included), so
/// that it can look at every byte.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MatchMode {
    /// Byte for byte: `request` is the whole frame the framer hands over (a PI30 request with
    /// its CRC).
    #[default]
    Exact,
    /// As replay matches ([`normalise_for`](crate::replay::normalise_for)): the same bytes,
    /// or the same normalised form (the checksum the framing verifies removed, cut at the
    /// first byte that is not printable ASCII, trimmed, case-folded) when that is not empty.
    /// `qpigs` typed in a terminal finds `request = 'QPIGS'`, and so do both CRC escape
    /// variants of it; a binary request (empty normalised form) still matches only exactly.
    Normalised,
}

impl MatchMode {
    /// Whether this is [`MatchMode::Exact`] (the default, left out when serialised; by
    /// reference, as serde's `skip_serializing_if` asks).
    #[must_use]
    pub fn is_exact(&self) -> bool {
        *self == Self::Exact
    }
}

/// One rule: a request pattern and what it does.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// The request, with escapes (`\r`, `\x00`, ...): compared as the script's
    /// [`MatchMode`] says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<Spanned<String>>,
    /// A regular expression the whole request must match; its captures are `{1}`, `{name}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regex: Option<Spanned<String>>,
    /// State values to set when the rule matches (templates, evaluated before the reply).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, Spanned<String>>,
    /// The reply (or replies) every time the rule matches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply: Option<ReplySpec>,
    /// Replies for the first match, the second, ...; after the last the rule is used up
    /// (unless `cycle`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequence: Option<Spanned<Vec<ReplySpec>>>,
    /// Start the sequence over after its last entry instead of using the rule up.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cycle: bool,
    /// The rule matches at most this many times, then is used up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub times: Option<u64>,
    /// What the rule does with Python-typed values instead of `reply`/`set` (with `request`
    /// as its pattern, or a pattern of its own). Not written in TOML.
    #[serde(skip)]
    pub python: Option<PythonRule>,
}

/// A rule's Python side, as a compiler of a Python-defined dialogue writes it
/// ([`RuleConfig::python`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PythonRule {
    /// Its `request` answers a property's value formatted by Python's `str.format` (a
    /// pyvisa-sim getter). A format saying `RANDOM` is a random reply instead; `None` is a
    /// getter without a reply, which raises on every use.
    Get {
        /// The property's name.
        property: String,
        /// The format, as written.
        format: Option<String>,
    },
    /// Its `request` answers `RANDOM(min, max, n)` values (a pyvisa-sim dialogue).
    Random(String),
    /// A request matching a stringparser pattern sets a property: the value converted and
    /// checked by the property's specs, then `reply` (none: silence). A value the specs
    /// refuse gets `invalid`, or, with none, the request goes on to the next rule.
    Set {
        /// The stringparser pattern (`VOLT {:f}`).
        pattern: String,
        /// The property's name.
        property: String,
        /// The reply once set.
        reply: Option<Vec<u8>>,
        /// The reply to a value the specs refuse.
        invalid: Option<Vec<u8>>,
    },
    /// A request that is not UTF-8 raises here (pyvisa-sim decodes a request before trying
    /// its setters, and the decoding error escapes to its caller).
    RaiseIfNotUtf8,
}

/// Zero or more reply frames, and where they were written.
///
/// In TOML: a string (one frame), a table (one frame with options) or an array of either
/// (several frames; `[]` is silence). A table has exactly one of `text` (a template with
/// escapes) or `hex` (bytes), and optionally `delay_ms` (wait before sending, after the request
/// or the previous reply) and `raw` (send the bytes as they are, bypassing the framing).
#[derive(Clone, Debug, Default)]
pub struct ReplySpec {
    /// The frames, in order.
    pub items: Vec<ReplyItem>,
    /// Where the value was written.
    pub span: Range<usize>,
}

/// One reply frame.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReplyItem {
    /// A template with escapes and `{name}` placeholders.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Bytes in hex (`"00 1f ff"`), instead of `text`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hex: Option<String>,
    /// Milliseconds to wait before sending (after the request, or the previous reply).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub delay_ms: u64,
    /// Send exactly these bytes, bypassing the framing (no terminator, checksum...).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub raw: bool,
}

#[expect(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde's skip_serializing_if passes a reference"
)]
fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl ReplyItem {
    /// Whether this is plain text with no options (written as a bare string).
    fn is_plain(&self) -> bool {
        self.text.is_some() && self.hex.is_none() && self.delay_ms == 0 && !self.raw
    }

    /// A plain text reply.
    #[must_use]
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            text: Some(text.into()),
            ..Self::default()
        }
    }
}

impl ReplySpec {
    /// Replies from items (for a generator; the span is empty).
    #[must_use]
    pub fn new(items: Vec<ReplyItem>) -> Self {
        Self { items, span: 0..0 }
    }
}

impl Serialize for ReplySpec {
    /// The shortest form: a bare string for one plain text reply, else an array of strings
    /// and tables.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        match self.items.as_slice() {
            [one] if one.is_plain() => serializer.serialize_str(one.text.as_deref().unwrap_or("")),
            items => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    if item.is_plain() {
                        seq.serialize_element(item.text.as_deref().unwrap_or(""))?;
                    } else {
                        seq.serialize_element(item)?;
                    }
                }
                seq.end()
            }
        }
    }
}

/// The reply list without its span.
struct ReplyList(Vec<ReplyItem>);

/// What a reply may be written as, for serde's messages.
const EXPECTING: &str = "a reply: a string, a table {text|hex, delay_ms, raw}, or an array of them";

impl<'de> Deserialize<'de> for ReplySpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<ReplyList>::deserialize(deserializer)?;
        let span = spanned.span();
        Ok(Self {
            items: spanned.into_inner().0,
            span,
        })
    }
}

impl<'de> Deserialize<'de> for ReplyList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ListVisitor)
    }
}

/// One item (a string or a table), as an element of a reply array.
struct OneItem(ReplyItem);

impl<'de> Deserialize<'de> for OneItem {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ItemVisitor).map(OneItem)
    }
}

struct ListVisitor;

impl<'de> Visitor<'de> for ListVisitor {
    type Value = ReplyList;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXPECTING)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(ReplyList(vec![ReplyItem::text(v)]))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        ItemVisitor.visit_map(map).map(|item| ReplyList(vec![item]))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(OneItem(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(ReplyList(items))
    }
}

struct ItemVisitor;

impl<'de> Visitor<'de> for ItemVisitor {
    type Value = ReplyItem;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a reply: a string or a table {text|hex, delay_ms, raw}")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(ReplyItem::text(v))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        ReplyItem::deserialize(de::value::MapAccessDeserializer::new(map))
    }
}
