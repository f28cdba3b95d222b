//! The `template` target: scripted devices' reply templates, through the public entry
//! ([`Script::compile`] of a [`ScriptConfig`], then [`Scripted::answer`]).
//!
//! The input is split at `0xFF` bytes (never part of UTF-8 text) into a reply template, a
//! request, a state value, a `set` template and a regex. Invariants:
//!
//! - no panic, compiling or answering;
//! - a compile error points at one of the values the script was given (its span);
//! - templates mean what the docs say: with an exact rule (no captures), the script compiles
//!   exactly when a reference reading of the syntax accepts every value (escapes `\r \n \t \0
//!   \e \\ \{ \} \xNN`, `{{` and `}}`, `{0}` the request, `{name}` a state value), and its reply
//!   is the reference's rendering, after the rule's `set`;
//! - any bytes escaped (braces doubled) are a template that renders exactly those bytes, an
//!   exact `request` written with escapes matches exactly those bytes, and `{0}` of a regex
//!   rule matching everything echoes the request.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use serialtwin_core::Replies;
use serialtwin_core::escape::escape;
use serialtwin_devices::scripted::{
    ErrorModel, MatchMode, ReplyItem, ReplySpec, RuleConfig, Script, ScriptConfig, Scripted,
};
use toml::Spanned;

/// Where each value is said to be written: distinct, so an error names the one at fault.
const STATE_S: Range<usize> = 0..1;
const STATE_V: Range<usize> = 1..2;
const SET: Range<usize> = 2..3;
const REPLY: Range<usize> = 3..4;
const DEFAULT: Range<usize> = 4..5;
const REGEX: Range<usize> = 5..6;
const RULE: Range<usize> = 6..7;
const REQUEST: Range<usize> = 7..8;
const ALL: [Range<usize>; 8] = [STATE_S, STATE_V, SET, REPLY, DEFAULT, REGEX, RULE, REQUEST];

/// The value of the second state value.
const V: &str = "V";

fn spanned(span: Range<usize>, text: &str) -> Spanned<String> {
    Spanned::new(span, text.to_owned())
}

fn reply(span: Range<usize>, text: &str) -> ReplySpec {
    ReplySpec {
        items: vec![ReplyItem::text(text)],
        span,
    }
}

/// `bytes` as a template of nothing but literal bytes.
fn literal(bytes: &[u8]) -> String {
    escape(bytes).replace('{', "{{").replace('}', "}}")
}

/// One answer's frames (delays and rawness are not what is fuzzed here: checked as plain).
fn answer(device: &mut Scripted, request: &[u8]) -> Vec<Vec<u8>> {
    let mut replies = Replies::new();
    device
        .answer(request, &mut replies)
        .expect("a script written in TOML never raises");
    replies
        .as_slice()
        .iter()
        .map(|r| {
            assert!(!r.raw && r.delay.is_zero(), "{r:?}");
            r.bytes.to_vec()
        })
        .collect()
}

fn compile(config: &ScriptConfig) -> Option<Script> {
    match Script::compile(config) {
        Ok(script) => Some(script),
        Err(e) => {
            let span = e.span.clone().expect("a compile error has a span");
            assert!(ALL.contains(&span), "error at {span:?}: {e}");
            assert!(!e.to_string().is_empty());
            None
        }
    }
}

/// The escape after a backslash, as the docs list them.
fn reference_escape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<u8> {
    Some(match chars.next()? {
        'r' => b'\r',
        'n' => b'\n',
        't' => b'\t',
        '0' => 0,
        'e' => 0x1b,
        '\\' => b'\\',
        '{' => b'{',
        '}' => b'}',
        'x' => {
            let hi = chars.next()?.to_digit(16)?;
            let lo = chars.next()?.to_digit(16)?;
            u8::try_from(hi * 16 + lo).ok()?
        }
        _ => return None,
    })
}

fn push_char(out: &mut Vec<u8>, c: char) {
    let mut buf = [0; 4];
    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
}

/// A state value as the docs say it is read: escapes, no placeholders.
fn reference_unescape(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.push(reference_escape(&mut chars)?);
        } else {
            push_char(&mut out, c);
        }
    }
    Some(out)
}

/// A template rendered as the docs say, in a rule without captures: `None` if it is not one.
fn reference_render(text: &str, request: &[u8], state: &[(&str, &[u8])]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                out.push(b'{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                out.push(b'}');
            }
            '}' => return None,
            '{' => {
                let mut name = String::new();
                loop {
                    match chars.next()? {
                        '}' => break,
                        c if c.is_ascii_alphanumeric() || c == '_' => name.push(c),
                        _ => return None,
                    }
                }
                if !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) {
                    // Numbered: only `{0}` (the request) without a regex.
                    if !name.bytes().all(|b| b == b'0') {
                        return None;
                    }
                    out.extend_from_slice(request);
                } else {
                    let (_, value) = state.iter().find(|(n, _)| *n == name)?;
                    out.extend_from_slice(value);
                }
            }
            '\\' => out.push(reference_escape(&mut chars)?),
            c => push_char(&mut out, c),
        }
    }
    Some(out)
}

/// An exact rule answering `request` with `template` after `set`, against the reference.
fn exact_rule(template: &str, request: &[u8], state: &str, set: &str) {
    let config = ScriptConfig {
        state: BTreeMap::from([
            ("s".to_owned(), spanned(STATE_S, state)),
            ("v".to_owned(), spanned(STATE_V, V)),
        ]),
        default: None,
        matching: MatchMode::Exact,
        errors: ErrorModel::default(),
        properties: Vec::new(),
        channels: Vec::new(),
        rules: vec![Spanned::new(
            RULE,
            RuleConfig {
                request: Some(spanned(REQUEST, &escape(request))),
                set: BTreeMap::from([("s".to_owned(), spanned(SET, set))]),
                reply: Some(reply(REPLY, template)),
                ..RuleConfig::default()
            },
        )],
    };
    let expected = reference_unescape(state).and_then(|initial| {
        let before = [("s", &initial[..]), ("v", V.as_bytes())];
        let new = reference_render(set, request, &before)?;
        let after = [("s", &new[..]), ("v", V.as_bytes())];
        reference_render(template, request, &after)
    });
    let script = compile(&config);
    assert_eq!(
        script.is_some(),
        expected.is_some(),
        "template {template:?}, set {set:?}, state {state:?}: compiled {}, the reference says {}",
        script.is_some(),
        expected.is_some()
    );
    let (Some(script), Some(expected)) = (script, expected) else {
        return;
    };
    let mut device = Scripted::new(Arc::new(script));
    assert_eq!(
        answer(&mut device, request),
        [expected],
        "template {template:?}, set {set:?}, state {state:?}, request {request:?}"
    );
}

/// A rule with `regex` answering with `template`: whatever it does, no panic.
fn regex_rule(template: &str, request: &[u8], regex: &str) {
    let config = ScriptConfig {
        state: BTreeMap::from([("s".to_owned(), spanned(STATE_S, V))]),
        default: Some(reply(DEFAULT, "default")),
        matching: MatchMode::Exact,
        errors: ErrorModel::default(),
        properties: Vec::new(),
        channels: Vec::new(),
        rules: vec![Spanned::new(
            RULE,
            RuleConfig {
                regex: Some(spanned(REGEX, regex)),
                reply: Some(reply(REPLY, template)),
                set: BTreeMap::from([("s".to_owned(), spanned(SET, template))]),
                ..RuleConfig::default()
            },
        )],
    };
    if let Some(script) = compile(&config) {
        let mut device = Scripted::new(Arc::new(script));
        for _ in 0..2 {
            assert_eq!(answer(&mut device, request).len(), 1);
        }
    }
}

/// Literal templates render their bytes; `{0}` echoes.
fn literals(request: &[u8]) {
    let config = ScriptConfig {
        state: BTreeMap::new(),
        default: Some(reply(DEFAULT, &literal(request))),
        matching: MatchMode::Exact,
        errors: ErrorModel::default(),
        properties: Vec::new(),
        channels: Vec::new(),
        rules: vec![Spanned::new(
            RULE,
            RuleConfig {
                regex: Some(spanned(REGEX, "(?s-u:.*)")),
                reply: Some(reply(REPLY, "{0}")),
                times: Some(1),
                ..RuleConfig::default()
            },
        )],
    };
    let script = Script::compile(&config).expect("literal templates compile");
    let mut device = Scripted::new(Arc::new(script));
    assert_eq!(answer(&mut device, request), [request], "the echo");
    assert_eq!(answer(&mut device, request), [request], "the literal");
}

/// The check for one input.
pub(crate) fn check(data: &[u8]) {
    let fields: Vec<&[u8]> = data.split(|&b| b == 0xFF).collect();
    let field = |i: usize| fields.get(i).copied().unwrap_or_default();
    let text = |i: usize| String::from_utf8_lossy(field(i)).into_owned();
    let template = text(0);
    let request = field(1);
    let state = text(2);
    let set = text(3);
    let regex = text(4);
    literals(request);
    exact_rule(&template, request, &state, &set);
    if !regex.is_empty() {
        regex_rule(&template, request, &regex);
    }
}
