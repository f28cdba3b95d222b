//! From a recorded conversation to a scripted device a person can edit.
//!
//! [`learn`] writes a fleet config with one `scripted` device (the format of
//! [`crate::scripted`]) that answers as the capture's device did, and as
//! [replay](crate::replay) of the same capture does:
//!
//! - requests are matched as replay matches them (`match = "normalised"`, with replay's
//!   code): the rule's bytes, or the same normalised form (the checksum the framing verifies
//!   removed, cut at the first byte that is not printable ASCII, trimmed, case-folded). A PI30
//!   request sent under the other CRC escape rule, or typed in a terminal without a CRC, finds
//!   its recorded replies;
//! - one rule per distinct normalised form, in order of first appearance, written readable
//!   (`request = 'QPIGS'`: the payload without its checksum) when that text has the same
//!   normalised form, else as the first recorded request with `\xNN` escapes (which still
//!   matches the others by their normalised form);
//! - requests recorded in several spellings with one normalised form (`QPIGS` with and without
//!   its CRC, two CRC escape variants) share one rule and their replies, in recorded order
//!   whatever the spelling: a rule per spelling would shadow all but the first, and the
//!   device's state moved on whoever asked. (Replay keeps separate positions for exact and
//!   normalised matches; the learned device answers as the recorded one did over time.) A
//!   request without printable text (a binary frame: its normalised form is empty) is a group
//!   of its own and matches only byte for byte, as in replay;
//! - a request always answered the same way gets `reply`; one answered differently over time
//!   (a QPIRI before and after a POP02, a drifting QPIGS) gets its replies as a `sequence` in
//!   recorded order, followed by a second rule for the same request that keeps answering the
//!   last reply once the sequence is used up (the replay's "stick at the last"), or
//!   `cycle = true` when asked;
//! - a reply is written as the frame the framing turns into the recorded bytes
//!   ([`Framing::unframe`]: the payload without the terminator and the checksum the framer
//!   adds back, so it can be edited) whenever encoding that frame gives back exactly the
//!   recorded bytes; otherwise as the recorded bytes with `raw = true`;
//! - a request never recorded gets, as the script's `default`, what the recorded protocol
//!   answers a command it does not know ([`NamedFraming::unknown_command`]: `(NAK` for PI30,
//!   which the framer sends with its CRC and `\r`); nothing for a framing whose protocol says
//!   nothing (the line framings). [`LearnOptions::default`] chooses another answer.
//!
//! A framing whose protocol learns its own way ([`NamedFraming::learn`]) gets that instead:
//! Modbus (`modbus-rtu`, `modbus-ascii`) learns a `model = "modbus"` register map
//! ([`modbus::learn`](crate::modbus::learn)).
//!
//! [`NamedFraming::unknown_command`]: crate::registry::NamedFraming::unknown_command
//! [`NamedFraming::learn`]: crate::registry::NamedFraming::learn

use std::fmt::Write as _;
use std::time::Duration;

use bytes::Bytes;
use serialtwin_core::Framing;

use crate::replay::{Conversation, Fallback, normal_text_with};
use crate::scripted::escape_bytes;

/// What [`learn`] writes besides the rules.
#[derive(Clone, Debug)]
pub struct LearnOptions {
    /// The port's name.
    pub name: String,
    /// The link (`None`: no `link` key, the port gets only its pty).
    pub link: Option<String>,
    /// Where the conversation came from, for the file's opening comment.
    pub source: String,
    /// Keep the recorded delays (`delay_ms`) on replies.
    pub timing: bool,
    /// Sequences start over after their last reply instead of sticking at it.
    pub cycle: bool,
    /// What requests never recorded get (the script's `default`). `None`: what the
    /// framing's protocol answers a command it does not know
    /// ([`registry::unknown_command`](crate::registry::unknown_command)), or silence if it
    /// says nothing.
    pub default: Option<Fallback>,
}

impl Default for LearnOptions {
    fn default() -> Self {
        Self {
            name: "learned".into(),
            link: Some("/tmp/serialtwin/ttyUSB0".into()),
            source: "a capture".into(),
            timing: false,
            cycle: false,
            default: None,
        }
    }
}

/// One reply frame as it will be written.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Item {
    bytes: Vec<u8>,
    raw: bool,
    delay_ms: u64,
}

/// A TOML string holding `s` (printable ASCII): a 'literal string' unless it holds `'`.
fn quote(s: &str) -> String {
    if s.contains('\'') {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        format!("'{s}'")
    }
}

/// A reply template's text: escapes, and braces doubled (they are placeholders otherwise).
fn template(bytes: &[u8]) -> String {
    escape_bytes(bytes).replace('{', "{{").replace('}', "}}")
}

fn item_toml(item: &Item) -> String {
    let text = quote(&template(&item.bytes));
    if !item.raw && item.delay_ms == 0 {
        return text;
    }
    let mut s = format!("{{ text = {text}");
    if item.delay_ms > 0 {
        let _ = write!(s, ", delay_ms = {}", item.delay_ms);
    }
    if item.raw {
        s.push_str(", raw = true");
    }
    s.push_str(" }");
    s
}

fn group_toml(items: &[Item]) -> String {
    match items {
        [one] if !one.raw && one.delay_ms == 0 => item_toml(one),
        items => format!(
            "[{}]",
            items.iter().map(item_toml).collect::<Vec<_>>().join(", ")
        ),
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The fleet config (TOML) of a scripted device answering like `conversation`, framed by
/// `framing`.
#[must_use]
pub fn learn(conversation: &Conversation, framing: &Framing, options: &LearnOptions) -> String {
    // A protocol that learns its own way (Modbus: a register map).
    if let Some(learn) = crate::registry::learner(framing.name()) {
        return learn(conversation, framing, options);
    }
    let groups: Vec<Vec<Item>> = conversation
        .exchanges
        .iter()
        .map(|ex| {
            ex.replies
                .iter()
                .map(|(delay, wire)| {
                    let delay_ms = if options.timing { millis(*delay) } else { 0 };
                    match framing.unframe(wire) {
                        Some(frame) => Item {
                            bytes: frame.to_vec(),
                            raw: false,
                            delay_ms,
                        },
                        None => Item {
                            bytes: wire.to_vec(),
                            raw: true,
                            delay_ms,
                        },
                    }
                })
                .collect()
        })
        .collect();
    let requests = requests(conversation, framing);

    let mut out = preamble(conversation, framing, options, requests.len());
    for request in &requests {
        rule(&mut out, conversation, request, &groups, options.cycle);
    }
    out
}

/// The rule (or the two) answering `request`'s group, with its comment.
fn rule(
    out: &mut String,
    conversation: &Conversation,
    request: &Request,
    groups: &[Vec<Item>],
    cycle: bool,
) {
    let seen = &request.seen;
    let replies: Vec<&Vec<Item>> = seen.iter().map(|&i| &groups[i]).collect();
    let times: Vec<String> = seen
        .iter()
        .take(8)
        .map(|&i| format!("{:.3}", conversation.exchanges[i].at.as_secs_f64()))
        .collect();
    let more = if seen.len() > 8 { ", ..." } else { "" };
    let request_text = quote(&escape_bytes(&request.written));
    let all_same = replies.windows(2).all(|w| w[0] == w[1]);
    let _ = writeln!(
        out,
        "\n# {}{}: seen {} time(s), at {}{more} s{}",
        escape_bytes(&request.name),
        if request.binary {
            " (no printable text: matched byte for byte)"
        } else {
            ""
        },
        seen.len(),
        times.join(", "),
        if all_same {
            String::new()
        } else {
            format!("; {} different replies in order", distinct(&replies))
        }
    );
    if request.spellings.len() > 1 {
        let spellings: Vec<String> = request
            .spellings
            .iter()
            .map(|s| format!("'{}'", escape_bytes(s)))
            .collect();
        let _ = writeln!(
            out,
            "# recorded as {}: this rule answers each, in recorded order",
            spellings.join(", ")
        );
    }
    out.push_str("[[device.script.rule]]\n");
    let _ = writeln!(out, "request = {request_text}");
    if all_same {
        let _ = writeln!(out, "reply = {}", group_toml(replies[0]));
        return;
    }
    out.push_str("sequence = [\n");
    for group in &replies {
        let _ = writeln!(out, "  {},", group_toml(group));
    }
    out.push_str("]\n");
    if cycle {
        out.push_str("cycle = true\n");
    } else {
        out.push_str("\n[[device.script.rule]]\n");
        let _ = writeln!(out, "request = {request_text}");
        let _ = writeln!(
            out,
            "reply = {}",
            group_toml(replies.last().copied().unwrap_or(&Vec::new()))
        );
    }
}

/// The recorded requests one rule answers (one normalised form, or one binary request), and
/// how the rule writes them.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Request {
    /// The rule's `request`: the readable text when it has the group's normalised form, else
    /// the first request recorded.
    written: Vec<u8>,
    /// What the comment calls it: the normalised form, or the binary request.
    name: Vec<u8>,
    /// A request without printable text (an empty normalised form): matched byte for byte.
    binary: bool,
    /// The distinct requests recorded, in order of first appearance.
    spellings: Vec<Bytes>,
    /// Its exchanges, in recorded order.
    seen: Vec<usize>,
}

/// The conversation's requests grouped as a normalised script matches them, in order of first
/// appearance: by normalised form (replay's, with the same code), or by the exact bytes of a
/// request whose normalised form is empty (which only matches exactly). No two groups match
/// one request, so no rule shadows another.
fn requests(conversation: &Conversation, framing: &Framing) -> Vec<Request> {
    let framer = framing.build();
    let normal = |request: &[u8]| normal_text_with(&*framer, request).to_ascii_uppercase();
    let mut out: Vec<Request> = Vec::new();
    for (i, ex) in conversation.exchanges.iter().enumerate() {
        let key = normal(&ex.request);
        let binary = key.is_empty();
        let found = out.iter_mut().find(|g| {
            g.binary == binary
                && if binary {
                    g.spellings[0] == ex.request
                } else {
                    g.name == key
                }
        });
        if let Some(group) = found {
            group.seen.push(i);
            if !group.spellings.contains(&ex.request) {
                group.spellings.push(ex.request.clone());
            }
            continue;
        }
        out.push(Request {
            written: ex.request.to_vec(),
            name: if binary { ex.request.to_vec() } else { key },
            binary,
            spellings: vec![ex.request.clone()],
            seen: vec![i],
        });
    }
    for group in &mut out {
        // Readable: a spelling's payload (its checksum removed), trimmed, when it is printable
        // and normalises to the group's form. (A payload could end in two bytes that happen to
        // be a valid checksum of the rest: then the request is written as recorded.)
        if group.binary {
            continue;
        }
        let readable = group.spellings.iter().find_map(|s| {
            let text = framer.check(s).payload(s).trim_ascii();
            (text.iter().all(|b| (0x20..=0x7e).contains(b)) && normal(text) == group.name)
                .then_some(text)
        });
        if let Some(text) = readable {
            group.written = text.to_vec();
        }
    }
    out
}

/// The opening comment and the `[[device]]` table.
fn preamble(
    conversation: &Conversation,
    framing: &Framing,
    options: &LearnOptions,
    rules: usize,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Learned by `serialtwin learn` from {} (framing {}): {} exchange(s), {} distinct request(s).",
        options.source,
        framing.name(),
        conversation.exchanges.len(),
        rules
    );
    out.push_str(
        "# Run it with `serialtwin run <this file>`, and edit it freely (the scripted format:\n\
         # `serialtwin models`, crates/serialtwin-devices/src/scripted/mod.rs).\n\
         #\n\
         # Requests are matched as `serialtwin replay` matches them (`match = \"normalised\"`): the\n\
         # same bytes, or the same text once the checksum the framing verifies is removed, cut at\n\
         # the first unprintable byte, trimmed and upper-cased (`qpigs` typed in a terminal finds\n\
         # 'QPIGS'); a request without printable text only byte for byte. One rule answers every\n\
         # recorded spelling of a request (with and without its checksum...), in recorded order.\n\
         # A request answered differently over time replays its replies as a `sequence` in\n\
         # recorded order; ",
    );
    out.push_str(if options.cycle {
        "the sequence then starts over (`cycle = true`).\n"
    } else {
        "a second rule for the same request then keeps\n# answering the last reply.\n"
    });
    out.push_str(
        "# Replies are written without what the framing adds (terminator, checksum) whenever the\n\
         # framing re-creates the recorded bytes exactly; `raw = true` replies go out byte for byte.\n",
    );
    if !conversation.leading.is_empty() {
        let _ = writeln!(
            out,
            "# The device sent {} frame(s) before the first request; they are not replayed.",
            conversation.leading.len()
        );
    }
    out.push_str("\n[[device]]\n");
    let _ = writeln!(
        out,
        "name = {}",
        quote(&escape_bytes(options.name.as_bytes()))
    );
    out.push_str("model = \"scripted\"\n");
    let _ = writeln!(out, "framing = {}", quote(framing.name()));
    if let Some(link) = &options.link {
        let _ = writeln!(out, "link = {}", quote(&escape_bytes(link.as_bytes())));
    }
    out.push_str("\n[device.script]\nmatch = \"normalised\"\n");
    out.push_str(&default(framing, options.default.as_ref()));
    out
}

/// The script's `default` with its comment: `asked`, or what the framing's protocol answers
/// an unknown command.
fn default(framing: &Framing, asked: Option<&Fallback>) -> String {
    let name = framing.name();
    let (frame, why) = match asked {
        None => match crate::registry::unknown_command(name) {
            Some(frame) => (
                Some(frame.to_vec()),
                format!("what a {name} device answers a command it does not know"),
            ),
            None => (
                None,
                format!("framing {name} says nothing of what its devices answer unknown commands"),
            ),
        },
        Some(Fallback::Silence) => (None, "as asked".to_owned()),
        Some(Fallback::Nak | Fallback::Frame(_)) => (None, "the frame asked for".to_owned()),
    };
    let frame = match asked {
        Some(Fallback::Nak) => Some(b"(NAK".to_vec()),
        Some(Fallback::Frame(frame)) => Some(frame.to_vec()),
        _ => frame,
    };
    match frame {
        Some(frame) => format!(
            "# Requests never recorded get {why},\n\
             # through the framing (which adds its checksum and terminator); leave it out for silence.\n\
             default = {}\n",
            quote(&template(&frame))
        ),
        None => format!(
            "# Requests never recorded get silence ({why});\n\
             # `default = \"...\"` answers them with a frame.\n"
        ),
    }
}

fn distinct(groups: &[&Vec<Item>]) -> usize {
    let mut seen: Vec<&Vec<Item>> = Vec::new();
    for g in groups {
        if !seen.contains(g) {
            seen.push(g);
        }
    }
    seen.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_and_templates() {
        assert_eq!(quote(r"QPIGS\xb7\xa9"), r"'QPIGS\xb7\xa9'");
        assert_eq!(quote(r#"it's "x"\r"#), r#""it's \"x\"\\r""#);
        assert_eq!(template(b"{a}\r"), r"{{a}}\r");
    }

    #[test]
    fn a_reply_is_written_as_what_the_framing_adds_back_to() {
        // Whatever the protocol: the line framings have no checksum, PI30's framer its CRC.
        let crlf = Framing::default();
        assert_eq!(crlf.unframe(b"OK\r\n").as_deref(), Some(&b"OK"[..]));
        assert_eq!(crlf.unframe(b"OK\n"), None);
        let pi30 = crate::framing_by_name("pi30").unwrap();
        let mut wire = bytes::BytesMut::new();
        pi30.build().encode(b"(ACK", &mut wire).unwrap();
        assert_eq!(pi30.unframe(&wire).as_deref(), Some(&b"(ACK"[..]));
        // A wrong checksum cannot be re-created: written raw.
        let n = wire.len();
        wire[n - 2] ^= 1;
        assert_eq!(pi30.unframe(&wire), None);
    }
}
