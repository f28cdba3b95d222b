//! A pyvisa-sim device file served on a real port: the device behind one of its resources.
//!
//! pyvisa-sim (0.7.1) is an in-process VISA backend whose instruments are written in YAML
//! (instruments.md §2). This model reads such a file (spec 1.0, what the bundled default file
//! says, or 1.1; any other major is refused), finds the device a resource names
//! (`ASRL1::INSTR`) and compiles it into the [scripted](crate::scripted) model's dialogue, the
//! one dialogue engine: each `dialogues` entry a rule matching its `q` byte for byte (no case
//! folding, no trimming: pyvisa-sim's matching, kept), its `r` the reply (none: silence),
//! the `error` response to a command error the reply to anything else. The device's `eom`
//! for the resource's interface frames the port: requests end with exactly `q`, replies get
//! `r`; a message is split on the `delimiter` (default `;`) and each part answered on its own.
//!
//! Its `status_register`s and `error_queue`s become the script's [`ErrorModel`]: a command
//! error sets a register's `command_error` bits and adds a queue's `command_error` entry; a
//! register's `q` answers its value and clears it, a queue's its oldest entry or `default`.
//!
//! What is not compiled yet is refused where it is written, never served wrong: properties,
//! channels, `RANDOM(...)` and `BYTES(...)` replies, resources in another file.

pub mod eom;
mod model;
pub mod yaml;

use std::convert::Infallible;

use serde_spanned::Spanned;
use serialtwin_core::{Context, Device, Framing, Replies};

pub use self::model::MODEL;
use self::yaml::{Node, YamlError};
use crate::scripted::{
    ErrorModel, ErrorQueue, ReplyItem, ReplySpec, RuleConfig, ScriptConfig, Scripted,
    StatusRegister, escape_bytes,
};

/// The spec this reads: pyvisa-sim 0.7.1's `SPEC_VERSION`.
pub const SPEC_VERSION: (u32, u32) = (1, 1);

/// A device of a pyvisa-sim file, ready to compile.
#[derive(Debug)]
pub struct Loaded {
    /// The device's name in the file.
    pub device: String,
    /// Its dialogue.
    pub script: ScriptConfig,
    /// What ends a request (`eom.<interface>.q`).
    pub query_eom: Vec<u8>,
    /// What ends a reply (`eom.<interface>.r`).
    pub reply_eom: Vec<u8>,
    /// What splits a message into queries.
    pub delimiter: Vec<u8>,
}

/// The interface and class of a resource name, as `eom` keys are written (`ASRL INSTR`).
fn eom_key(resource: &str) -> Option<&'static str> {
    let upper = resource.to_ascii_uppercase();
    let class = upper.rsplit("::").next()?;
    let interface = ["ASRL", "USB", "TCPIP", "GPIB"]
        .into_iter()
        .find(|i| upper.starts_with(i))?;
    Some(match (interface, class) {
        ("ASRL", "INSTR") => "ASRL INSTR",
        ("USB", "INSTR") => "USB INSTR",
        ("USB", "RAW") => "USB RAW",
        ("TCPIP", "INSTR") => "TCPIP INSTR",
        ("TCPIP", "SOCKET") => "TCPIP SOCKET",
        ("GPIB", "INSTR") => "GPIB INSTR",
        _ => return None,
    })
}

/// `text` as a template of the scripted model that renders exactly `text`: escapes for
/// what is not printable ASCII and for `\`, braces doubled.
fn literal_template(text: &str) -> String {
    escape_bytes(text.as_bytes())
        .replace('{', "{{")
        .replace('}', "}}")
}

/// A reply of exactly `text`.
fn literal_reply(text: &str) -> ReplySpec {
    ReplySpec::new(vec![ReplyItem::text(literal_template(text))])
}

/// Refuse what this does not compile yet, at the text that uses it.
fn check_supported(node: &Node, what: &str) -> Result<(), YamlError> {
    let text = node.str(what)?;
    for directive in ["RANDOM(", "BYTES("] {
        if text.contains(directive) {
            return Err(YamlError::new(
                node.at,
                format!("`{directive}...)` replies are not served yet"),
            ));
        }
    }
    Ok(())
}

/// The device behind `resource` in the pyvisa-sim file `text`.
///
/// # Errors
/// Where the file is wrong, or uses what is not compiled yet (see the module's doc).
pub fn load(text: &str, resource: &str) -> Result<Loaded, YamlError> {
    let root = yaml::parse(text)?;
    root.map("a pyvisa-sim file")?;
    check_spec(&root)?;
    let resources = root
        .get("resources")
        .ok_or_else(|| YamlError::new(root.at, "no `resources`: nothing to serve"))?;
    let entries = resources.map("`resources`")?;
    let Some((name, entry)) = entries
        .iter()
        .rev()
        .find(|(name, _)| name.trim().eq_ignore_ascii_case(resource.trim()))
    else {
        let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
        return Err(YamlError::new(
            resources.at,
            format!(
                "no resource {resource:?} (the file has: {})",
                names.join(", ")
            ),
        ));
    };
    if let Some(other) = entry.get("filename") {
        return Err(YamlError::new(
            other.at,
            "a device in another file is not served yet",
        ));
    }
    let device_name = entry
        .get("device")
        .ok_or_else(|| YamlError::new(entry.at, format!("resource {name:?} names no `device`")))?;
    let device_name = device_name.str("`device`")?;
    let devices = root
        .get("devices")
        .ok_or_else(|| YamlError::new(root.at, "no `devices`"))?;
    devices.map("`devices`")?;
    let device = devices.get(device_name).ok_or_else(|| {
        YamlError::new(
            entry.at,
            format!("resource {name:?} names device {device_name:?}, which `devices` lacks"),
        )
    })?;
    device.map("a device")?;
    for key in ["properties", "channels", "bases"] {
        if let Some(node) = device.get(key) {
            return Err(YamlError::new(
                node.at,
                format!("a device's `{key}` are not served yet"),
            ));
        }
    }
    let (query_eom, reply_eom) = eoms(device, name)?;
    let delimiter = match device.get("delimiter") {
        Some(node) => node.str("`delimiter`")?.as_bytes().to_vec(),
        None => b";".to_vec(),
    };
    let mut errors = ErrorModel::default();
    let mut script = ScriptConfig {
        default: error_reply(device, &mut errors)?,
        ..ScriptConfig::default()
    };
    script.errors = errors;
    if let Some(dialogues) = device.get("dialogues") {
        for dialogue in dialogues.seq("`dialogues`")? {
            script.rules.push(rule(dialogue)?);
        }
    }
    Ok(Loaded {
        device: device_name.to_owned(),
        script,
        query_eom,
        reply_eom,
        delimiter,
    })
}

/// `spec`: present, `X.Y`, major 1 and not newer than [`SPEC_VERSION`].
fn check_spec(root: &Node) -> Result<(), YamlError> {
    let node = root
        .get("spec")
        .ok_or_else(|| YamlError::new(root.at, "the file does not specify a spec version"))?;
    let text = node.str("`spec`")?;
    let version = text
        .split_once('.')
        .and_then(|(x, y)| Some((x.trim().parse::<u32>().ok()?, y.trim().parse::<u32>().ok()?)));
    let Some(version) = version else {
        return Err(YamlError::new(
            node.at,
            format!("spec {text:?}: expected `X.Y` (integers)"),
        ));
    };
    if version.0 != SPEC_VERSION.0 || version > SPEC_VERSION {
        return Err(YamlError::new(
            node.at,
            format!(
                "spec {text}: this reads spec 1.0 and 1.1 (pyvisa-sim 0.7.1's {}.{})",
                SPEC_VERSION.0, SPEC_VERSION.1
            ),
        ));
    }
    Ok(())
}

/// The `q` and `r` eom of `resource`'s interface; LF both when the device has none for it,
/// as pyvisa-sim does.
fn eoms(device: &Node, resource: &str) -> Result<(Vec<u8>, Vec<u8>), YamlError> {
    let key = eom_key(resource).ok_or_else(|| {
        YamlError::new(
            device.at,
            format!("resource {resource:?}: not an interface pyvisa-sim knows"),
        )
    })?;
    let Some(entry) = device.get("eom").and_then(|eom| eom.get(key)) else {
        return Ok((b"\n".to_vec(), b"\n".to_vec()));
    };
    let part = |name: &str| -> Result<Vec<u8>, YamlError> {
        let node = entry
            .get(name)
            .ok_or_else(|| YamlError::new(entry.at, format!("eom `{key}` needs `{name}`")))?;
        // pyvisa-sim strips spaces, never the terminator's own bytes.
        Ok(node.str("an eom")?.trim_matches(' ').as_bytes().to_vec())
    };
    let query = part("q")?;
    if query.is_empty() {
        return Err(YamlError::new(
            entry.at,
            format!("eom `{key}`: an empty `q` ends no request"),
        ));
    }
    Ok((query, part("r")?))
}

/// The reply to a command error (pyvisa-sim's `command_error` response): `error: text`, or
/// `error: {response: {command_error: text}}`; none is silence. With a mapping, its
/// `status_register` and `error_queue` entries go to `errors`.
fn error_reply(device: &Node, errors: &mut ErrorModel) -> Result<Option<ReplySpec>, YamlError> {
    let Some(error) = device.get("error") else {
        return Ok(None);
    };
    let text = if let yaml::Value::Scalar(_) = &error.value {
        error
    } else {
        error.map("`error`")?;
        if let Some(registers) = error.get("status_register") {
            for register in registers.seq("`status_register`")? {
                errors.registers.push(status_register(register)?);
            }
            // pyvisa-sim sets a command error's bits in the last register that has them.
            if let Some(last) = errors.registers.iter().rposition(|r| r.command_error != 0) {
                for register in &mut errors.registers[..last] {
                    register.command_error = 0;
                }
            }
        }
        if let Some(queues) = error.get("error_queue") {
            for queue in queues.seq("`error_queue`")? {
                errors.queues.push(error_queue(queue)?);
            }
        }
        match error.get("response").and_then(|r| r.get("command_error")) {
            Some(text) => text,
            None => return Ok(None),
        }
    };
    check_supported(text, "an error response")?;
    Ok(Some(literal_reply(text.str("an error response")?)))
}

/// `{q, command_error: bits, query_error: bits}`: every key but `q` an integer, as
/// pyvisa-sim's `int()` wants (`query_error` is never raised by pyvisa-sim 0.7.1).
fn status_register(node: &Node) -> Result<StatusRegister, YamlError> {
    let mut register = StatusRegister::default();
    let mut request = None;
    for (key, value) in node.map("a status register")? {
        let text = value.str("a status register's value")?;
        if key == "q" {
            request = Some(value);
            continue;
        }
        let bits = text.trim().parse::<u64>().map_err(|_| {
            YamlError::new(
                value.at,
                format!("`{key}`: {text:?} is not a register value (a whole number)"),
            )
        })?;
        if key == "command_error" {
            register.command_error = bits;
        }
    }
    let request = request.ok_or_else(|| YamlError::new(node.at, "a status register needs `q`"))?;
    check_supported(request, "a status register's `q`")?;
    register.request = request.str("`q`")?.as_bytes().to_vec();
    Ok(register)
}

/// `{q, default, command_error: entry}`: `default` answers an empty queue.
fn error_queue(node: &Node) -> Result<ErrorQueue, YamlError> {
    node.map("an error queue")?;
    let field = |key: &str| -> Result<Option<Vec<u8>>, YamlError> {
        match node.get(key) {
            Some(value) => {
                check_supported(value, "an error queue's value")?;
                Ok(Some(
                    value.str("an error queue's value")?.as_bytes().to_vec(),
                ))
            }
            None => Ok(None),
        }
    };
    let need = |key: &str| {
        field(key)?.ok_or_else(|| YamlError::new(node.at, format!("an error queue needs `{key}`")))
    };
    Ok(ErrorQueue {
        request: need("q")?,
        empty: need("default")?,
        command_error: field("command_error")?,
    })
}

/// A dialogue `{q, r}` as a rule: `q` byte for byte, `r` (spaces stripped, as pyvisa-sim
/// does) or silence.
fn rule(dialogue: &Node) -> Result<Spanned<RuleConfig>, YamlError> {
    let q = dialogue
        .get("q")
        .ok_or_else(|| YamlError::new(dialogue.at, "a dialogue needs `q`"))?;
    let request = q.str("a dialogue's `q`")?.trim_matches(' ');
    let reply = match dialogue.get("r") {
        Some(r) => {
            check_supported(r, "a dialogue's `r`")?;
            literal_reply(r.str("a dialogue's `r`")?.trim_matches(' '))
        }
        None => ReplySpec::new(Vec::new()),
    };
    Ok(Spanned::new(
        0..0,
        RuleConfig {
            request: Some(Spanned::new(0..0, escape_bytes(request.as_bytes()))),
            reply: Some(reply),
            ..RuleConfig::default()
        },
    ))
}

/// A pyvisa-sim device on a port: the scripted model's device, each part of a message
/// (split on the delimiter) answered on its own.
#[derive(Debug)]
pub struct SimDevice {
    script: Scripted,
    delimiter: Vec<u8>,
}

impl SimDevice {
    /// `script` answering each `delimiter`-separated part of a request (none: the whole).
    #[must_use]
    pub fn new(script: Scripted, framing: Framing, delimiter: Vec<u8>) -> Self {
        Self {
            script: script.with_framing(framing),
            delimiter,
        }
    }

    /// The replies to one message.
    pub fn answer(&mut self, request: &[u8], replies: &mut Replies) {
        if self.delimiter.is_empty() {
            self.script.answer(request, replies);
            return;
        }
        let mut rest = request;
        while let Some(i) = rest
            .windows(self.delimiter.len())
            .position(|w| w == self.delimiter)
        {
            self.script.answer(&rest[..i], replies);
            rest = &rest[i + self.delimiter.len()..];
        }
        self.script.answer(rest, replies);
    }
}

impl Device for SimDevice {
    type Error = Infallible;

    fn framing(&self) -> Framing {
        self.script.framing()
    }

    fn handle(
        &mut self,
        request: &[u8],
        _ctx: &mut Context,
        replies: &mut Replies,
    ) -> Result<(), Self::Error> {
        self.answer(request, replies);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serialtwin_core::Replies;

    use super::*;
    use crate::scripted::Script;

    /// The minimal SCPI-style device of instruments.md §2, without what is not served yet.
    const MINIMAL: &str = r#"spec: "1.1"
devices:
  psu:
    eom:
      ASRL INSTR: {q: "\n", r: "\r\n"}
    error:
      response: {command_error: "ERR"}
    dialogues:
      - {q: "*IDN?", r: "ACME,PSU-1,SN001,1.0"}
      - {q: "*CLS"}
      - {q: "VER?", r: 1.0}
      - {q: " PAD? ", r: " {a}\\ "}
  quiet:
    dialogues:
      - q: "A"
        r: "B"
resources:
  ASRL7::INSTR: {device: psu}
  ASRL8::INSTR: {device: quiet}
"#;

    fn device(text: &str, resource: &str) -> (SimDevice, Loaded) {
        let loaded = load(text, resource).unwrap();
        let script = Arc::new(Script::compile(&loaded.script).unwrap());
        let framing = eom::framing(&loaded.query_eom, &loaded.reply_eom);
        let device = SimDevice::new(Scripted::new(script), framing, loaded.delimiter.clone());
        (device, loaded)
    }

    fn ask(device: &mut SimDevice, request: &[u8]) -> Vec<Vec<u8>> {
        let mut replies = Replies::new();
        device.answer(request, &mut replies);
        replies.frames().iter().map(|f| f.to_vec()).collect()
    }

    #[test]
    fn dialogues_answer_byte_for_byte() {
        let (mut psu, loaded) = device(MINIMAL, "ASRL7::INSTR");
        assert_eq!(loaded.device, "psu");
        assert_eq!(
            (&loaded.query_eom[..], &loaded.reply_eom[..]),
            (&b"\n"[..], &b"\r\n"[..])
        );
        assert_eq!(ask(&mut psu, b"*IDN?"), [b"ACME,PSU-1,SN001,1.0".to_vec()]);
        // No `r`: silence. A number is its text. Spaces around q and r are pyvisa-sim's to
        // strip; braces and backslashes are bytes.
        assert!(ask(&mut psu, b"*CLS").is_empty());
        assert_eq!(ask(&mut psu, b"VER?"), [b"1.0".to_vec()]);
        assert_eq!(ask(&mut psu, b"PAD?"), [br"{a}\".to_vec()]);
        // Exact bytes: no case folding, no trimming; anything else is a command error.
        assert_eq!(ask(&mut psu, b"*idn?"), [b"ERR".to_vec()]);
        assert_eq!(ask(&mut psu, b"*IDN?\r"), [b"ERR".to_vec()]);
        // Each part of a message gets its own reply.
        assert_eq!(
            ask(&mut psu, b"*IDN?;FOO;*CLS;VER?"),
            [
                b"ACME,PSU-1,SN001,1.0".to_vec(),
                b"ERR".to_vec(),
                b"1.0".to_vec()
            ]
        );
    }

    #[test]
    fn no_eom_is_lf_and_no_error_is_silence() {
        let (mut quiet, loaded) = device(MINIMAL, "asrl8::instr");
        assert_eq!(
            (&loaded.query_eom[..], &loaded.reply_eom[..]),
            (&b"\n"[..], &b"\n"[..])
        );
        assert_eq!(ask(&mut quiet, b"A"), [b"B".to_vec()]);
        assert!(ask(&mut quiet, b"B").is_empty());
    }

    #[test]
    fn an_error_string_answers_every_error() {
        let text = "spec: '1.0'\ndevices:\n  d:\n    error: ERROR\n    delimiter: ','\n    \
                    dialogues: [{q: '?IDN', r: 'LSG Serial #1234'}]\nresources:\n  \
                    ASRL1::INSTR: {device: d}\n";
        let (mut d, _) = device(text, "ASRL1::INSTR");
        assert_eq!(
            ask(&mut d, b"?IDN,X;Y"),
            [b"LSG Serial #1234".to_vec(), b"ERROR".to_vec()]
        );
    }

    #[test]
    fn command_errors_feed_registers_and_queues() {
        let text = "spec: '1.1'\nresources: {ASRL4::INSTR: {device: d}}\ndevices:\n  d:\n    \
                    error:\n      status_register:\n        - {q: '*ESR?', command_error: 32, \
                    query_error: 4}\n      error_queue:\n        - {q: ':SYST:ERR?', default: \
                    '0, No Error', command_error: '1, Command error'}\n    dialogues:\n      \
                    - {q: '*IDN?', r: 'SCPI,MOCK,VERSION_1.0'}\n";
        let (mut d, _) = device(text, "ASRL4::INSTR");
        assert_eq!(ask(&mut d, b"*ESR?"), [b"0".to_vec()]);
        assert!(ask(&mut d, b"FOO").is_empty(), "no response: silence");
        assert!(ask(&mut d, b"BAR").is_empty());
        assert_eq!(ask(&mut d, b"*ESR?"), [b"32".to_vec()]);
        assert_eq!(ask(&mut d, b"*ESR?"), [b"0".to_vec()], "read clears it");
        assert_eq!(ask(&mut d, b":SYST:ERR?"), [b"1, Command error".to_vec()]);
        assert_eq!(ask(&mut d, b":SYST:ERR?"), [b"1, Command error".to_vec()]);
        assert_eq!(ask(&mut d, b":SYST:ERR?"), [b"0, No Error".to_vec()]);
        assert_eq!(ask(&mut d, b"*IDN?"), [b"SCPI,MOCK,VERSION_1.0".to_vec()]);
        for _ in 0..crate::scripted::MAX_ERROR_QUEUE + 10 {
            ask(&mut d, b"X");
        }
        for _ in 0..crate::scripted::MAX_ERROR_QUEUE {
            assert_eq!(ask(&mut d, b":SYST:ERR?"), [b"1, Command error".to_vec()]);
        }
        assert_eq!(
            ask(&mut d, b":SYST:ERR?"),
            [b"0, No Error".to_vec()],
            "bounded"
        );
    }

    #[test]
    fn the_spec_is_checked() {
        let file = |spec: &str| {
            format!("{spec}devices: {{d: {{}}}}\nresources: {{ASRL1::INSTR: {{device: d}}}}\n")
        };
        for ok in ["spec: '1.0'\n", "spec: 1.1\n", "spec: \"1.0\"\n"] {
            load(&file(ok), "ASRL1::INSTR").unwrap();
        }
        for (bad, why) in [
            ("", "does not specify"),
            ("spec: '1.2'\n", "1.0 and 1.1"),
            ("spec: '2.0'\n", "1.0 and 1.1"),
            ("spec: '0.9'\n", "1.0 and 1.1"),
            ("spec: one\n", "X.Y"),
            ("spec: [1]\n", "must be a string"),
        ] {
            let e = load(&file(bad), "ASRL1::INSTR").unwrap_err();
            assert!(e.reason.contains(why), "{bad:?}: {e}");
        }
        let e = load(&file("spec: '2.0'\n"), "ASRL1::INSTR").unwrap_err();
        assert_eq!(
            e.to_string(),
            "1:7: spec 2.0: this reads spec 1.0 and 1.1 (pyvisa-sim 0.7.1's 1.1)"
        );
    }

    #[test]
    fn what_is_not_served_yet_is_refused_where_written() {
        let base = "spec: '1.1'\nresources: {ASRL1::INSTR: {device: d}}\ndevices:\n  d:\n";
        for (extra, line, why) in [
            ("    properties: {}\n", 5, "`properties` are not served yet"),
            ("    channels: {}\n", 5, "`channels` are not served yet"),
            (
                "    error:\n      error_queue: [{q: 'E?'}]\n",
                6,
                "needs `default`",
            ),
            (
                "    error: {status_register: [{q: 'S?', command_error: x}]}\n",
                5,
                "not a register value",
            ),
            (
                "    dialogues: [{q: 'R', r: '{RANDOM(1, 2, 1):.2f}'}]\n",
                5,
                "RANDOM",
            ),
        ] {
            let e = load(&format!("{base}{extra}"), "ASRL1::INSTR").unwrap_err();
            assert_eq!(e.at.line, line, "{extra}: {e}");
            assert!(e.reason.contains(why), "{extra}: {e}");
        }
        let e = load(&format!("{base}    dialogues: []\n"), "ASRL2::INSTR").unwrap_err();
        assert!(e.reason.contains("(the file has: ASRL1::INSTR)"), "{e}");
        let e = load(
            "spec: '1.1'\nresources: {ASRL1::INSTR: {device: x}}\ndevices: {}\n",
            "ASRL1::INSTR",
        )
        .unwrap_err();
        assert!(e.reason.contains("which `devices` lacks"), "{e}");
        assert!(
            load("- a\n", "ASRL1::INSTR")
                .unwrap_err()
                .reason
                .contains("mapping")
        );
    }
}
