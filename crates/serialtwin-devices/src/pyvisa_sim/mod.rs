//! A pyvisa-sim device file served on a real port: the device behind one of its resources.
//!
//! pyvisa-sim (0.7.1) is an in-process VISA backend whose instruments are written in YAML
//! (instruments.md §2). This model reads such a file (spec 1.0, what the bundled default file
//! says, or 1.1; any other major is refused), finds the device a resource names
//! (`ASRL1::INSTR`) and compiles it into the [scripted](crate::scripted) model's dialogue, the
//! one dialogue engine, in pyvisa-sim's order of lookup:
//! - each `dialogues` entry a rule matching its `q` byte for byte (no case folding, no
//!   trimming: pyvisa-sim's matching, kept), its `r` the reply (none: silence; one saying
//!   `RANDOM` gives random values);
//! - each property's getter a rule answering its value through Python's `str.format`, the
//!   property a [typed value](crate::scripted::python) converted and checked by its `specs`;
//! - its `status_register`s and `error_queue`s (the script's [`ErrorModel`]);
//! - each property's setter a rule reading the request with its stringparser pattern;
//! - the `error` response to a command error the reply to anything else, which also sets a
//!   register's `command_error` bits and adds a queue's `command_error` entry.
//!
//! The device's `eom` for the resource's interface frames the port: requests end with exactly
//! `q`, replies get `r`; a message is split on the `delimiter` (default `;`) and each part
//! answered on its own, until one raises where pyvisa-sim raises to its caller.
//!
//! Its `channels` are the script's [channel groups](crate::scripted::ChannelGroup), tried
//! last. A resource whose device is in another file (`filename`) is read from beside it
//! ([`load_with`]). `bases`, and files `bundled` in pyvisa-sim's package, are refused where
//! written, never served wrong.

pub mod eom;
mod model;
pub mod rname;
pub mod yaml;

use std::convert::Infallible;

use serde_spanned::Spanned;
use serialtwin_core::{Context, Device, Framing, Replies};

pub use self::model::MODEL;
use self::yaml::{Node, YamlError};
use crate::scripted::python::{self, Property, PyFormat, PyType, PyValue, Specs};
use crate::scripted::{
    ChannelGroup, ErrorModel, ErrorQueue, PythonRule, Raised, ReplyItem, ReplySpec, RuleConfig,
    ScriptConfig, Scripted, StatusRegister, escape_bytes,
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

/// pyvisa-sim's `to_bytes`: the two-character escapes `\r` and `\n` become CR and LF (a
/// single-quoted YAML string keeps them as written), then UTF-8.
fn to_bytes(text: &str) -> Vec<u8> {
    text.replace("\\r", "\r").replace("\\n", "\n").into_bytes()
}

/// `bytes` as a template of the scripted model that renders exactly them: escapes for
/// what is not printable ASCII and for `\`, braces doubled.
fn literal_template(bytes: &[u8]) -> String {
    escape_bytes(bytes).replace('{', "{{").replace('}', "}}")
}

/// A reply of exactly `bytes`.
fn literal_reply(bytes: &[u8]) -> ReplySpec {
    ReplySpec::new(vec![ReplyItem::text(literal_template(bytes))])
}

/// The device behind `resource` in the pyvisa-sim file `text`, which names no other file.
///
/// # Errors
/// Where the file is wrong, or uses what is not compiled yet (see the module's doc).
pub fn load(text: &str, resource: &str) -> Result<Loaded, YamlError> {
    load_with(text, resource, &mut |name| {
        Err(format!(
            "cannot read {name:?}: no directory to read it from"
        ))
    })
}

/// The device behind `resource` in the pyvisa-sim file `text`; a resource whose device is
/// in another file (`filename`, beside this one, as pyvisa-sim reads it) is read with `read`.
///
/// # Errors
/// Where a file is wrong, or uses what is not compiled yet (see the module's doc); an error
/// in the other file names it, at this file's `filename`.
pub fn load_with(
    text: &str,
    resource: &str,
    read: &mut dyn FnMut(&str) -> Result<String, String>,
) -> Result<Loaded, YamlError> {
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
        .find(|(name, _)| rname::same(name, resource))
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
    let device_name = entry
        .get("device")
        .ok_or_else(|| YamlError::new(entry.at, format!("resource {name:?} names no `device`")))?;
    let device_name = device_name.str("`device`")?;
    // pyvisa-sim reads any text written here as true (BaseLoader gives it the string).
    if let Some(bundled) = entry.get("bundled")
        && !is_empty(bundled)
    {
        return Err(YamlError::new(
            bundled.at,
            "`bundled`: a file inside pyvisa-sim's package is not here to read; copy it \
             beside this one and name it in `filename` alone",
        ));
    }
    if let Some(other) = entry.get("filename") {
        let file = other.str("`filename`")?;
        let text = read(file).map_err(|why| YamlError::new(other.at, why))?;
        let in_other = || -> Result<Loaded, YamlError> {
            let root = yaml::parse(&text)?;
            root.map("a pyvisa-sim file")?;
            check_spec(&root)?;
            let device = device_of(&root, device_name, name)?;
            compile(device_name, device, name, entry)
        };
        return in_other().map_err(|e| YamlError::new(other.at, format!("{file}:{e}")));
    }
    let device = device_of(&root, device_name, name)?;
    compile(device_name, device, name, entry)
}

/// The device `device_name` of the file `root`, which `resource` names.
fn device_of<'a>(root: &'a Node, device_name: &str, resource: &str) -> Result<&'a Node, YamlError> {
    let devices = root
        .get("devices")
        .ok_or_else(|| YamlError::new(root.at, "no `devices`"))?;
    devices.map("`devices`")?;
    let device = devices.get(device_name).ok_or_else(|| {
        YamlError::new(
            devices.at,
            format!("resource {resource:?} names device {device_name:?}, which `devices` lacks"),
        )
    })?;
    device.map("a device")?;
    Ok(device)
}

/// The device `device` (named `device_name`) served for `name`, whose resource entry is
/// `entry`.
fn compile(
    device_name: &str,
    device: &Node,
    name: &str,
    entry: &Node,
) -> Result<Loaded, YamlError> {
    if let Some(node) = device.get("bases")
        && !is_empty(node)
    {
        return Err(YamlError::new(
            node.at,
            "`bases`: pyvisa-sim 0.7.1 itself raises NotImplementedError for them",
        ));
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
    // pyvisa-sim's order: dialogues, getters (two dictionaries: exact bytes, the last
    // entry of a request counts), registers and queues, then setters in order.
    if let Some(dialogues) = device.get("dialogues") {
        for dialogue in dialogues.seq("`dialogues`")? {
            push_exact(&mut script.rules, rule(dialogue)?);
        }
    }
    let setters = properties(device, &mut script)?;
    if let Some(groups) = device.get("channels") {
        for (i, (name, node)) in groups.map("`channels`")?.iter().enumerate() {
            if groups.map("`channels`")?[i + 1..]
                .iter()
                .any(|(later, _)| later == name)
            {
                continue;
            }
            script.channels.push(channel_group(name, node, entry)?);
        }
    }
    script.errors.before_rule = Some(script.rules.len());
    script
        .rules
        .push(python_rule(None, PythonRule::RaiseIfNotUtf8));
    script.rules.extend(setters);
    Ok(Loaded {
        device: device_name.to_owned(),
        script,
        query_eom,
        reply_eom,
        delimiter,
    })
}

/// The device's properties into `script`: their values, and their getters after the
/// dialogues; their setters, in order, returned to go after the registers and queues.
fn properties(
    device: &Node,
    script: &mut ScriptConfig,
) -> Result<Vec<Spanned<RuleConfig>>, YamlError> {
    let mut setters = Vec::new();
    if let Some(properties) = device.get("properties") {
        let mut getters = Vec::new();
        let entries = properties.map("`properties`")?;
        for (i, (name, node)) in entries.iter().enumerate() {
            // A repeated key: only the last one is in Python's dict.
            if entries[i + 1..].iter().any(|(later, _)| later == name) {
                continue;
            }
            let parts = property(name, node, false)?;
            if let Some((request, format)) = parts.getter {
                getters.push(python_rule(
                    Some(&request),
                    PythonRule::Get {
                        property: name.clone(),
                        format,
                    },
                ));
            }
            setters.extend(parts.setter.map(|setter| python_rule(None, setter)));
            script.properties.push(parts.property);
        }
        // Getters after every dialogue: a dialogue for the same request wins.
        let mut exact = Vec::new();
        for getter in getters {
            push_exact(&mut exact, getter);
        }
        script.rules.extend(exact);
    }
    Ok(setters)
}

/// A group of channels `{ids, can_select, dialogues, properties}` (pyvisa-sim's
/// `get_channel`): the resource's `channel_ids` for it, when it has some, replace `ids`.
fn channel_group(name: &str, node: &Node, resource: &Node) -> Result<ChannelGroup, YamlError> {
    node.map("a channel group")?;
    let at = |n: &Node, why: &str| YamlError::new(n.at, format!("channels {name:?}: {why}"));
    if let Some(bases) = node.get("bases")
        && !is_empty(bases)
    {
        return Err(at(
            bases,
            "`bases`: pyvisa-sim 0.7.1 itself raises NotImplementedError for them",
        ));
    }
    let listed = |ids: &Node| -> Result<Vec<String>, YamlError> {
        match &ids.value {
            yaml::Value::Seq(items) => items
                .iter()
                .map(|id| id.str("a channel id").map(str::to_owned))
                .collect(),
            yaml::Value::Map(entries) if entries.is_empty() => Ok(Vec::new()),
            _ => Err(at(ids, "`ids` must be a list")),
        }
    };
    let from_resource = match resource.get("channel_ids").and_then(|c| c.get(name)) {
        Some(ids) => listed(ids)?,
        None => Vec::new(),
    };
    let ids = if from_resource.is_empty() {
        match node.get("ids") {
            Some(ids) => listed(ids)?,
            None => Vec::new(),
        }
    } else {
        from_resource
    };
    // Only the text `False` turns selection off, as pyvisa-sim compares it.
    let can_select = !node
        .get("can_select")
        .is_some_and(|v| matches!(&v.value, yaml::Value::Scalar(t) if t == "False"));
    let text = |bytes: Vec<u8>| String::from_utf8_lossy(&bytes).into_owned();
    let mut group = ChannelGroup {
        name: name.to_owned(),
        ids,
        can_select,
        ..ChannelGroup::default()
    };
    if let Some(dialogues) = node.get("dialogues") {
        for dialogue in dialogues.seq("`dialogues`")? {
            let request = text(to_bytes(query(dialogue, "a dialogue")?));
            let reply = stripped(dialogue, "r", "a dialogue's `r`")?.map(to_bytes);
            if let (Some(bytes), Some(node)) = (&reply, dialogue.get("r")) {
                check_reply_len(node, &String::from_utf8_lossy(bytes))?;
            }
            group.dialogues.push((request, reply));
        }
    }
    if let Some(properties) = node.get("properties") {
        let entries = properties.map("`properties`")?;
        for (i, (property_name, property_node)) in entries.iter().enumerate() {
            if entries[i + 1..]
                .iter()
                .any(|(later, _)| later == property_name)
            {
                continue;
            }
            let parts = property(property_name, property_node, true)?;
            if let Some((request, format)) = parts.getter {
                group
                    .getters
                    .push((text(request), property_name.clone(), format));
            }
            group.setters.extend(parts.setter);
            group.properties.push(parts.property);
        }
    }
    Ok(group)
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
        Ok(to_bytes(node.str("an eom")?.trim_matches(' ')))
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

/// Refuse, at `node`, a reply `text` (a getter's format, or a RANDOM reply) that is longer
/// than a reply may be whatever the value: it would raise on every use.
fn check_reply_len(node: &Node, text: &str) -> Result<(), YamlError> {
    let least = if python::random::is_random(text) {
        python::random::RandomReply::new(text).least_len()
    } else {
        PyFormat::parse(text).ok().map(|f| f.least_len())
    };
    match least {
        Some(least) if least > python::format::MAX_RENDERED => Err(YamlError::new(
            node.at,
            format!(
                "this reply is at least {least} bytes long, more than the {} served",
                python::format::MAX_RENDERED
            ),
        )),
        _ => Ok(()),
    }
}

/// Whether a node is what Python reads as false: an empty scalar, sequence or mapping.
fn is_empty(node: &Node) -> bool {
    match &node.value {
        yaml::Value::Scalar(text) => text.is_empty(),
        yaml::Value::Seq(items) => items.is_empty(),
        yaml::Value::Map(entries) => entries.is_empty(),
    }
}

/// The text of a `q`, `r` or `e` key of `node`, spaces stripped as pyvisa-sim's
/// `_get_pair` does.
fn stripped<'a>(node: &'a Node, key: &str, what: &str) -> Result<Option<&'a str>, YamlError> {
    node.get(key)
        .map(|value| value.str(what).map(|text| text.trim_matches(' ')))
        .transpose()
}

/// `q` of a dialogue, getter or setter: required.
fn query<'a>(node: &'a Node, what: &str) -> Result<&'a str, YamlError> {
    stripped(node, "q", what)?.ok_or_else(|| YamlError::new(node.at, format!("{what} needs `q`")))
}

/// A rule whose request is `request` (exact) and whose answer is Python's.
fn python_rule(request: Option<&[u8]>, python: PythonRule) -> Spanned<RuleConfig> {
    Spanned::new(
        0..0,
        RuleConfig {
            request: request.map(|r| Spanned::new(0..0, escape_bytes(r))),
            python: Some(python),
            ..RuleConfig::default()
        },
    )
}

/// Add an exact rule; one for the same request before it is replaced in place (a
/// dictionary's last entry counts).
fn push_exact(rules: &mut Vec<Spanned<RuleConfig>>, rule: Spanned<RuleConfig>) {
    let request = rule.get_ref().request.as_ref().map(|r| r.get_ref().clone());
    match rules
        .iter_mut()
        .find(|r| r.get_ref().request.as_ref().map(Spanned::get_ref) == request.as_ref())
    {
        Some(old) => *old = rule,
        None => rules.push(rule),
    }
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
    Ok(Some(literal_reply(&to_bytes(
        text.str("an error response")?,
    ))))
}

/// `{q, command_error: bits, query_error: bits}`: every key but `q` an integer, as
/// pyvisa-sim's `int()` wants (`query_error` is never raised by pyvisa-sim 0.7.1).
fn status_register(node: &Node) -> Result<StatusRegister, YamlError> {
    let mut register = StatusRegister::default();
    let mut request = None;
    for (key, value) in node.map("a status register")? {
        let text = value.str("a status register's value")?;
        if key == "q" {
            request = Some(text);
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
    register.request = to_bytes(request);
    Ok(register)
}

/// `{q, default, command_error: entry}`: `default` answers an empty queue.
fn error_queue(node: &Node) -> Result<ErrorQueue, YamlError> {
    node.map("an error queue")?;
    let field = |key: &str| -> Result<Option<Vec<u8>>, YamlError> {
        node.get(key)
            .map(|value| value.str("an error queue's value").map(to_bytes))
            .transpose()
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

/// A dialogue `{q, r}` as a rule: `q` byte for byte, `r` or silence; an `r` that says
/// `RANDOM` gives random values.
fn rule(dialogue: &Node) -> Result<Spanned<RuleConfig>, YamlError> {
    let request = to_bytes(query(dialogue, "a dialogue")?);
    let Some(reply) = stripped(dialogue, "r", "a dialogue's `r`")? else {
        return Ok(Spanned::new(
            0..0,
            RuleConfig {
                request: Some(Spanned::new(0..0, escape_bytes(&request))),
                reply: Some(ReplySpec::new(Vec::new())),
                ..RuleConfig::default()
            },
        ));
    };
    let reply = to_bytes(reply);
    if let Ok(text) = std::str::from_utf8(&reply)
        && python::random::is_random(text)
    {
        if let Some(node) = dialogue.get("r") {
            check_reply_len(node, text)?;
        }
        return Ok(python_rule(
            Some(&request),
            PythonRule::Random(text.to_owned()),
        ));
    }
    Ok(Spanned::new(
        0..0,
        RuleConfig {
            request: Some(Spanned::new(0..0, escape_bytes(&request))),
            reply: Some(literal_reply(&reply)),
            ..RuleConfig::default()
        },
    ))
}

/// A property as pyvisa-sim reads it: its value, its getter's request (escapes applied) and
/// format, its setter.
struct PropertyParts {
    property: Property,
    getter: Option<(Vec<u8>, Option<String>)>,
    setter: Option<PythonRule>,
}

/// A property `{default, getter: {q, r}, setter: {q, r, e}, specs: {type, min, max,
/// valid}}`: its value (the default checked by the specs, as pyvisa-sim does when it
/// loads), its getter and its setter. A channel's setter may read `{ch_id}` too.
fn property(name: &str, node: &Node, channel: bool) -> Result<PropertyParts, YamlError> {
    node.map("a property")?;
    let at = |n: &Node, why: String| YamlError::new(n.at, format!("property {name:?}: {why}"));
    let specs = match node.get("specs") {
        Some(specs) if !is_empty(specs) => Some(self::specs(specs).map_err(|e| at(specs, e))?),
        _ => None,
    };
    let default = match node.get("default") {
        Some(value) => (value, value.str("a property's `default`")?),
        None => (node, ""),
    };
    let mut property = Property {
        name: name.to_owned(),
        initial: PyValue::Str(default.1.to_owned()),
        specs,
    };
    property.initial = property
        .validate(&property.initial)
        .map_err(|e| at(default.0, format!("its default: {e}")))?;
    let getter = match node.get("getter") {
        Some(getter) => {
            getter.map("a getter")?;
            let request = to_bytes(query(getter, "a getter")?);
            let format = stripped(getter, "r", "a getter's `r`")?.map(str::to_owned);
            if let (Some(text), Some(node)) = (&format, getter.get("r")) {
                check_reply_len(node, text)?;
            }
            if let Some(text) = &format
                && !python::random::is_random(text)
                && let Err(why) = PyFormat::parse(text)
            {
                tracing::warn!(property = name, "its getter raises on every read: {why}");
            }
            Some((request, format))
        }
        None => None,
    };
    let setter = match node.get("setter") {
        Some(setter) => {
            setter.map("a setter")?;
            let pattern = query(setter, "a setter")?;
            let compiled = if channel {
                python::parse::Pattern::for_channel(pattern)
            } else {
                python::parse::Pattern::new(pattern)
            };
            compiled.map_err(|why| at(setter, format!("setter pattern {pattern:?}: {why}")))?;
            let reply = stripped(setter, "r", "a setter's `r`")?.map(to_bytes);
            let invalid = stripped(setter, "e", "a setter's `e`")?.map(to_bytes);
            Some(PythonRule::Set {
                pattern: pattern.to_owned(),
                property: name.to_owned(),
                reply,
                invalid,
            })
        }
        None => None,
    };
    Ok(PropertyParts {
        property,
        getter,
        setter,
    })
}

/// `specs: {type, min, max, valid}` as pyvisa-sim's `Specs` reads them: `type` required,
/// the others converted to it.
fn specs(node: &Node) -> Result<Specs, String> {
    let entries = node.map("`specs`").map_err(|e| e.reason)?;
    let text = |key: &str| -> Result<Option<&str>, String> {
        entries
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.str(key).map_err(|e| e.reason))
            .transpose()
    };
    let kind = text("type")?.ok_or("no property type was specified")?;
    let kind = PyType::named(kind).ok_or_else(|| {
        format!("invalid property type {kind:?}, valid types are: 'int', 'float', 'str'")
    })?;
    let convert = |value: &str| {
        kind.convert(&PyValue::Str(value.to_owned()))
            .map_err(|e| e.to_string())
    };
    let bound = |key: &str| -> Result<Option<PyValue>, String> {
        text(key)?
            .map(|v| convert(v).map_err(|e| format!("specs `{key}`: {e}")))
            .transpose()
    };
    let mut valid = Vec::new();
    if let Some((_, node)) = entries.iter().rev().find(|(k, _)| k == "valid") {
        match &node.value {
            yaml::Value::Seq(items) => {
                for item in items {
                    let item = item.str("a valid value").map_err(|e| e.reason)?;
                    valid.push(convert(item).map_err(|e| format!("specs `valid`: {e}"))?);
                }
            }
            // Python iterates a string by its characters.
            yaml::Value::Scalar(text) => {
                for c in text.chars() {
                    valid.push(convert(&c.to_string()).map_err(|e| format!("specs `valid`: {e}"))?);
                }
            }
            yaml::Value::Map(_) => return Err("specs `valid` must be a list".into()),
        }
    }
    Ok(Specs {
        kind,
        min: bound("min")?,
        max: bound("max")?,
        valid,
    })
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

    /// The replies to one message: each part's, until one raises (pyvisa-sim's `write`
    /// stops there; what it answered before stays).
    ///
    /// # Errors
    /// What a part raised.
    pub fn answer(&mut self, request: &[u8], replies: &mut Replies) -> Result<(), Raised> {
        if self.delimiter.is_empty() {
            return self.script.answer(request, replies);
        }
        let mut rest = request;
        while let Some(i) = rest
            .windows(self.delimiter.len())
            .position(|w| w == self.delimiter)
        {
            self.script.answer(&rest[..i], replies)?;
            rest = &rest[i + self.delimiter.len()..];
        }
        self.script.answer(rest, replies)
    }

    /// The device's script state (its properties' values), for tests and `ctl`.
    #[must_use]
    pub fn script(&self) -> &Scripted {
        &self.script
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
        if let Err(raised) = self.answer(request, replies) {
            // pyvisa-sim raises this to the caller of `write`; on a port, the client's
            // read times out.
            tracing::warn!(%raised, "pyvisa-sim would raise here: no reply to the rest of the message");
        }
        Ok(())
    }

    /// Set a property (`ctl set <port> frequency 500`), checked by its specs.
    fn set(&mut self, key: &str, value: &str, ctx: &mut Context) -> Result<(), String> {
        self.script.set(key, value, ctx)
    }

    fn settable(&self) -> Vec<serialtwin_core::Settable> {
        self.script.settable()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serialtwin_core::{Context, Replies};

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
        let _ = device.answer(request, &mut replies);
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

    /// instruments.md §2's minimal device, with properties, and what pyvisa-sim answered.
    const PROPERTIES: &str = r#"spec: "1.1"
devices:
  psu:
    eom:
      ASRL INSTR: {q: "\n", r: "\r\n"}
    error:
      response: {command_error: "ERR"}
      error_queue:
        - {q: "SYST:ERR?", default: '0,"No error"', command_error: '-113,"Undefined header"'}
    dialogues:
      - {q: "*IDN?", r: "ACME,PSU-1,SN001,1.0"}
      - {q: "*CLS"}
      - {q: "RAND?", r: "{RANDOM(2, 3, 2):.2f}"}
      - {q: "BAD?", r: "RANDOM(2, 3, 2){:.2f}"}
      - {q: 'ESC?', r: 'a\r\nb'}
    properties:
      volt:
        default: 1.0
        getter: {q: "VOLT?", r: "{:.3f}"}
        setter: {q: "VOLT {:f}", e: '-222,"Data out of range"'}
        specs: {type: float, min: 0, max: 30}
      mode:
        default: 0
        getter: {q: "MODE?", r: "{:d}"}
        setter: {q: "MODE {:d}", r: "OK"}
        specs: {type: int, valid: [0, 1]}
      loose:
        default: 0
        getter: {q: "LOOSE?", r: "{:d}"}
        setter: {q: "LOOSE {:d}"}
      rail:
        default: P6V
        getter: {q: "RAIL?", r: "{:s}"}
        setter: {q: "RAIL {}"}
        specs: {type: str, valid: [P6V, P25V]}
resources:
  ASRL7::INSTR: {device: psu}
"#;

    #[test]
    fn properties_are_read_set_and_checked_as_pyvisa_sim_does() {
        let (mut psu, loaded) = device(PROPERTIES, "ASRL7::INSTR");
        assert_eq!(loaded.script.properties.len(), 4);
        assert_eq!(ask(&mut psu, b"*IDN?"), [b"ACME,PSU-1,SN001,1.0".to_vec()]);
        assert_eq!(ask(&mut psu, b"FOO"), [b"ERR".to_vec()]);
        assert_eq!(
            ask(&mut psu, b"SYST:ERR?"),
            [br#"-113,"Undefined header""#.to_vec()]
        );
        assert_eq!(ask(&mut psu, b"SYST:ERR?"), [br#"0,"No error""#.to_vec()]);
        // A setter without `r` is silent; its getter formats the new value.
        assert_eq!(ask(&mut psu, b"VOLT?"), [b"1.000".to_vec()]);
        assert!(ask(&mut psu, b"VOLT 12.5").is_empty());
        assert_eq!(ask(&mut psu, b"VOLT?"), [b"12.500".to_vec()]);
        // Out of spec: `e`, and nothing queued.
        assert_eq!(
            ask(&mut psu, b"VOLT 31.0"),
            [br#"-222,"Data out of range""#.to_vec()]
        );
        assert_eq!(ask(&mut psu, b"SYST:ERR?"), [br#"0,"No error""#.to_vec()]);
        assert_eq!(ask(&mut psu, b"VOLT?"), [b"12.500".to_vec()]);
        // stringparser's `{:f}` needs two digits: `VOLT 5` is a command error.
        assert_eq!(ask(&mut psu, b"VOLT 5"), [b"ERR".to_vec()]);
        assert_eq!(
            ask(&mut psu, b"SYST:ERR?"),
            [br#"-113,"Undefined header""#.to_vec()]
        );
        // Out of spec without `e`: the next setters, then a command error.
        assert_eq!(ask(&mut psu, b"MODE 2"), [b"ERR".to_vec()]);
        assert_eq!(ask(&mut psu, b"MODE 1"), [b"OK".to_vec()]);
        assert_eq!(ask(&mut psu, b"MODE?"), [b"1".to_vec()]);
        assert_eq!(ask(&mut psu, b"RAIL P25V"), Vec::<Vec<u8>>::new());
        assert_eq!(ask(&mut psu, b"RAIL?"), [b"P25V".to_vec()]);
        assert_eq!(ask(&mut psu, b"RAIL N25V"), [b"ERR".to_vec()]);
        // Without specs the default stays a str, which `{:d}` cannot format: pyvisa-sim
        // raises, the port answers nothing more of the message; once set by its `{:d}`
        // setter the value is an int.
        let mut replies = Replies::new();
        assert!(psu.answer(b"*IDN?;LOOSE?;*IDN?", &mut replies).is_err());
        assert_eq!(replies.frames().len(), 1, "what came before stays");
        assert!(ask(&mut psu, b"LOOSE 7").is_empty());
        assert_eq!(ask(&mut psu, b"LOOSE?"), [b"7".to_vec()]);
        // A request that is not UTF-8 raises where the setters begin.
        let mut replies = Replies::new();
        assert!(psu.answer(b"\xff", &mut replies).is_err());
        assert!(replies.frames().is_empty());
        // MODE 2 and RAIL N25V queued, a raise did not (checked with pyvisa-sim).
        for _ in 0..2 {
            assert_eq!(
                ask(&mut psu, b"SYST:ERR?"),
                [br#"-113,"Undefined header""#.to_vec()]
            );
        }
        assert_eq!(ask(&mut psu, b"SYST:ERR?"), [br#"0,"No error""#.to_vec()]);
        // RANDOM values; a broken directive raises on every use.
        for _ in 0..20 {
            let reply = ask(&mut psu, b"RAND?");
            let text = std::str::from_utf8(&reply[0]).unwrap();
            let values: Vec<f64> = text.split(", ").map(|v| v.parse().unwrap()).collect();
            assert_eq!(values.len(), 2, "{text}");
            assert!(values.iter().all(|v| (2.0..=3.0).contains(v)), "{text}");
        }
        assert!(psu.answer(b"BAD?", &mut Replies::new()).is_err());
        // pyvisa-sim's own escapes in a single-quoted string.
        assert_eq!(ask(&mut psu, b"ESC?"), [b"a\r\nb".to_vec()]);
        // `ctl set` goes through the specs.
        let mut ctx = Context::for_test(serialtwin_core::SimClock::at_unix(0, 1.0));
        psu.set("volt", "2.5", &mut ctx).unwrap();
        assert_eq!(ask(&mut psu, b"VOLT?"), [b"2.500".to_vec()]);
        assert!(
            psu.set("volt", "40", &mut ctx)
                .unwrap_err()
                .contains("maximum")
        );
        assert!(psu.set("nothing", "1", &mut ctx).is_err());
    }

    #[test]
    fn lookups_go_in_pyvisa_sims_order() {
        // A setter that reads anything comes after dialogues, getters, registers and queues;
        // a later dialogue or getter for the same request replaces an earlier one.
        let text = "spec: '1.1'\nresources: {ASRL1::INSTR: {device: d}}\ndevices:\n  d:\n    \
                    error:\n      status_register: [{q: '*ESR?', command_error: 32}]\n      \
                    error_queue: [{q: 'ERR?', default: 'none', command_error: 'bad'}]\n    \
                    dialogues: [{q: 'A', r: 'first'}, {q: 'A', r: 'second'}, {q: 'G', r: 'dialogue'}]\n    \
                    properties:\n      any:\n        default: x\n        getter: {q: 'G', r: 'getter'}\n        \
                    setter: {q: '{}', r: 'set'}\n      other:\n        getter: {q: 'H', r: 'one {}'}\n      \
                    other:\n        default: z\n        getter: {q: 'H', r: 'two {}'}\n";
        let (mut d, loaded) = device(text, "ASRL1::INSTR");
        assert_eq!(
            loaded.script.properties.len(),
            2,
            "a repeated property counts once"
        );
        assert_eq!(ask(&mut d, b"A"), [b"second".to_vec()]);
        assert_eq!(ask(&mut d, b"G"), [b"dialogue".to_vec()]);
        assert_eq!(ask(&mut d, b"H"), [b"two z".to_vec()]);
        assert_eq!(ask(&mut d, b"*ESR?"), [b"0".to_vec()]);
        assert_eq!(ask(&mut d, b"ERR?"), [b"none".to_vec()]);
        assert_eq!(ask(&mut d, b"anything"), [b"set".to_vec()]);
        assert_eq!(
            d.script().property("any"),
            Some(&PyValue::Str("anything".into()))
        );
    }

    #[test]
    fn channels_keep_a_value_per_channel() {
        // The two kinds of group pyvisa-sim's own channel tests use (checked against it).
        let text = r#"spec: "1.1"
devices:
  pre:
    error: ERROR
    dialogues: [{q: "?IDN", r: "PRE"}]
    properties:
      selected_channel:
        default: 1
        getter: {q: 'I?', r: '{}'}
        setter: {q: 'I {}'}
    channels:
      c:
        ids: [1, 2]
        can_select: False
        dialogues: [{q: "NAME?", r: "pre"}]
        properties:
          frequency:
            default: 1.0
            getter: {q: 'F?', r: '{:.3f}'}
            setter: {q: 'F {:.3f}'}
            specs: {type: float, min: 1.0, max: 10.0}
  inline:
    channels:
      channel:
        ids: [1, 2, 3]
        can_select: True
        dialogues: [{q: "CH {ch_id}:NAME?", r: "inline"}]
        properties:
          voltage:
            default: 1.0
            getter: {q: "CH {ch_id}:VOLT?", r: "{:+.8E}"}
            setter: {q: "CH {ch_id}:VOLT {:.3f}", e: "BAD"}
            specs: {min: 1, max: 6, type: float}
resources:
  ASRL1::INSTR: {device: pre}
  ASRL2::INSTR: {device: inline, channel_ids: {channel: [1, 3]}}
"#;
        let (mut pre, _) = device(text, "ASRL1::INSTR");
        assert_eq!(ask(&mut pre, b"I?"), [b"1".to_vec()]);
        assert_eq!(ask(&mut pre, b"F?"), [b"1.000".to_vec()]);
        assert!(ask(&mut pre, b"F 5.0").is_empty());
        assert_eq!(ask(&mut pre, b"F?"), [b"5.000".to_vec()]);
        assert_eq!(
            ask(&mut pre, b"I 2;F?;NAME?"),
            [b"1.000".to_vec(), b"pre".to_vec()]
        );
        assert_eq!(
            ask(&mut pre, b"F 11.0"),
            [b"ERROR".to_vec()],
            "out of spec, no e"
        );
        // A channel not in `ids`: the group does not answer.
        assert_eq!(ask(&mut pre, b"I 9;F?"), [b"ERROR".to_vec()]);
        let (mut inline, _) = device(text, "ASRL2::INSTR");
        assert_eq!(
            ask(&mut inline, b"CH 1:VOLT?"),
            [b"+1.00000000E+00".to_vec()]
        );
        assert!(ask(&mut inline, b"CH 1:VOLT 2.0").is_empty());
        assert_eq!(
            ask(&mut inline, b"CH 1:VOLT?"),
            [b"+2.00000000E+00".to_vec()]
        );
        assert_eq!(
            ask(&mut inline, b"CH 3:VOLT?"),
            [b"+1.00000000E+00".to_vec()]
        );
        assert_eq!(ask(&mut inline, b"CH 3:VOLT 9.0"), [b"BAD".to_vec()]);
        assert_eq!(ask(&mut inline, b"CH 3:NAME?"), [b"inline".to_vec()]);
        // The resource's `channel_ids` replace the group's: channel 2 is not one.
        assert!(
            ask(&mut inline, b"CH 2:VOLT?").is_empty(),
            "unknown: silence"
        );
    }

    #[test]
    fn a_device_in_another_file_is_read_beside_it() {
        let main = "spec: '1.1'\nresources:\n  ASRL1::INSTR: {device: d, filename: other.yaml}\n  \
                    ASRL2::INSTR: {device: d, filename: other.yaml, bundled: 'False'}\n  \
                    ASRL3::INSTR: {device: x, filename: other.yaml}\n  \
                    ASRL4::INSTR: {device: d, filename: missing.yaml}\n";
        let other = "spec: '1.0'\ndevices:\n  d:\n    dialogues: [{q: 'A', r: 'from other'}]\n";
        let mut read = |name: &str| match name {
            "other.yaml" => Ok(other.to_owned()),
            _ => Err(format!("{name}: no such file")),
        };
        let loaded = load_with(main, "ASRL1::INSTR", &mut read).unwrap();
        let script = Arc::new(Script::compile(&loaded.script).unwrap());
        let framing = eom::framing(&loaded.query_eom, &loaded.reply_eom);
        let mut d = SimDevice::new(Scripted::new(script), framing, loaded.delimiter);
        assert_eq!(ask(&mut d, b"A"), [b"from other".to_vec()]);
        // pyvisa-sim reads any `bundled` text as true: a file of its package, not here.
        let e = load_with(main, "ASRL2::INSTR", &mut read).unwrap_err();
        assert!(e.reason.contains("`bundled`"), "{e}");
        let e = load_with(main, "ASRL3::INSTR", &mut read).unwrap_err();
        assert_eq!(e.at.line, 5, "{e}");
        assert!(e.reason.starts_with("other.yaml:3:3: "), "{e}");
        let e = load_with(main, "ASRL4::INSTR", &mut read).unwrap_err();
        assert!(e.reason.contains("missing.yaml: no such file"), "{e}");
        assert!(
            load(main, "ASRL1::INSTR").is_err(),
            "no directory to read it from"
        );
    }

    #[test]
    fn a_reply_longer_than_served_is_refused_where_written() {
        let base = "spec: '1.1'\nresources: {ASRL1::INSTR: {device: d}}\ndevices:\n  d:\n";
        for (extra, line) in [
            (
                "    properties:\n      v:\n        getter: {q: 'V?', r: '{0:65536}{0:65536}{0:65536}{0:65536}{0:65536}{0:65536}{0:65536}{0:65536}{0:65536}{0:65536}{0:65536}{0:65536}{0:65536}{0:65536}{0:65536}{0:65536}{0:65536}'}\n",
                7,
            ),
            (
                "    dialogues:\n      - {q: 'R?', r: '{RANDOM(0, 1, 256):65536.2f}'}\n",
                6,
            ),
        ] {
            let e = load(&format!("{base}{extra}"), "ASRL1::INSTR").unwrap_err();
            assert_eq!(e.at.line, line, "{e}");
            assert!(e.reason.contains("more than the 1048576 served"), "{e}");
        }
        // Within the bound: served.
        load(
            &format!(
                "{base}    dialogues:\n      - {{q: 'R?', r: '{{RANDOM(0, 1, 8):65536.2f}}'}}\n"
            ),
            "ASRL1::INSTR",
        )
        .unwrap();
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
            (
                "    channels:\n      c: {ids: 1}\n",
                6,
                "`ids` must be a list",
            ),
            (
                "    channels:\n      c:\n        properties:\n          v: {setter: {q: 'CH {ch_id}'}}\n",
                8,
                "no value field",
            ),
            ("    bases: [x]\n", 5, "NotImplementedError"),
            (
                "    properties:\n      v: {default: '7', specs: {type: float, max: '6'}}\n",
                6,
                "more than the maximum",
            ),
            (
                "    properties:\n      v: {specs: {min: '1'}}\n",
                6,
                "no property type",
            ),
            (
                "    properties:\n      v: {specs: {type: double}}\n",
                6,
                "invalid property type",
            ),
            (
                "    properties:\n      v: {default: '1', specs: {type: int, min: '0.5'}}\n",
                6,
                "invalid literal for int()",
            ),
            (
                "    properties:\n      v: {setter: {q: 'V {} {}'}}\n",
                6,
                "2 value fields",
            ),
            (
                "    properties:\n      v: {getter: {r: 'x'}}\n",
                6,
                "needs `q`",
            ),
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
