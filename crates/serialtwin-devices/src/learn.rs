//! From a recorded conversation to a scripted device a person can edit.
//!
//! [`learn`] writes a fleet config with one `scripted` device (the format of
//! [`crate::scripted`]) that answers as the capture's device did:
//!
//! - one rule per distinct request, in order of first appearance, matched exactly;
//! - a request always answered the same way gets `reply`; one answered differently over time
//!   (a QPIRI before and after a POP02, a drifting QPIGS) gets its replies as a `sequence` in
//!   recorded order, followed by a second rule for the same request that keeps answering the
//!   last reply once the sequence is used up (the replay's "stick at the last"), or
//!   `cycle = true` when asked;
//! - a reply is written as the frame the framing turns into the recorded bytes
//!   ([`Framing::unframe`]: the payload without the terminator and the checksum the framer
//!   adds back, so it can be edited) whenever encoding that frame gives back exactly the
//!   recorded bytes; otherwise as the recorded bytes with `raw = true`.

use std::fmt::Write as _;
use std::time::Duration;

use serialtwin_core::Framing;

use crate::replay::Conversation;
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
}

impl Default for LearnOptions {
    fn default() -> Self {
        Self {
            name: "learned".into(),
            link: Some("/tmp/serialtwin/ttyUSB0".into()),
            source: "a capture".into(),
            timing: false,
            cycle: false,
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
    let requests = conversation.by_request();

    let mut out = preamble(conversation, framing, options, requests.len());
    for (request, seen) in &requests {
        let replies: Vec<&Vec<Item>> = seen.iter().map(|&i| &groups[i]).collect();
        let times: Vec<String> = seen
            .iter()
            .take(8)
            .map(|&i| format!("{:.3}", conversation.exchanges[i].at.as_secs_f64()))
            .collect();
        let more = if seen.len() > 8 { ", ..." } else { "" };
        let request_text = quote(&escape_bytes(request));
        let all_same = replies.windows(2).all(|w| w[0] == w[1]);
        let _ = writeln!(
            out,
            "\n# {}: seen {} time(s), at {}{more} s{}",
            escape_bytes(&crate::replay::normalise_for(framing, request)),
            seen.len(),
            times.join(", "),
            if all_same {
                String::new()
            } else {
                format!("; {} different replies in order", distinct(&replies))
            }
        );
        out.push_str("[[device.script.rule]]\n");
        let _ = writeln!(out, "request = {request_text}");
        if all_same {
            let _ = writeln!(out, "reply = {}", group_toml(replies[0]));
            continue;
        }
        out.push_str("sequence = [\n");
        for group in &replies {
            let _ = writeln!(out, "  {},", group_toml(group));
        }
        out.push_str("]\n");
        if options.cycle {
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
    out
}

/// The opening comment and the `[[device]]` table.
fn preamble(
    conversation: &Conversation,
    framing: &Framing,
    options: &LearnOptions,
    distinct_requests: usize,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Learned by `serialtwin learn` from {} (framing {}): {} exchange(s), {} distinct request(s).",
        options.source,
        framing.name(),
        conversation.exchanges.len(),
        distinct_requests
    );
    out.push_str(
        "# Run it with `serialtwin run <this file>`, and edit it freely (the scripted format:\n\
         # `serialtwin models`, crates/serialtwin-devices/src/scripted/mod.rs).\n\
         #\n\
         # Requests are matched exactly (a PI30 request ends in its CRC, written as \\xNN escapes).\n\
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
    out.push_str(
        "\n[device.script]\n\
         # What requests never recorded get; left out: silence. For a PI30: default = \"(NAK\"\n",
    );

    out
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
