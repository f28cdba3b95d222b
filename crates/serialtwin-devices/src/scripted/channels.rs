//! Channels: one group of dialogues, getters and setters for several channel ids, each
//! channel with its own property values ([`ChannelGroup`]).
//!
//! pyvisa-sim 0.7.1 (`channels.py`) tries a device's channel groups after everything else.
//! A group that selects in the request formats each dialogue's and getter's request with
//! `ch_id` for each id in turn (`CH {ch_id}:VOLT?` is `CH 1:VOLT?`, then `CH 2:VOLT?`), and
//! a setter's pattern may read `{ch_id}`; one that does not reads the channel from the
//! device's `selected_channel` property and matches requests as written. A setter's value is
//! made text first (`str(parsed)`) and then converted by the specs. A value the specs refuse
//! gets the setter's `e`, or counts as a command error at once. Those rules are kept here,
//! quirks included: a setter that names no channel sets the one last tried.

use bytes::Bytes;

use super::config::{ChannelGroup, PythonRule};
use super::python::random::{RandomReply, is_random};
use super::python::{self, PyError, PyFormat, PyValue};
use super::{Getter, Raised, ScriptError, ScriptErrorKind};

/// A group, compiled.
#[derive(Debug)]
pub(super) struct Group {
    ids: Vec<String>,
    can_select: bool,
    properties: Vec<python::Property>,
    dialogues: Vec<(Key, Reply)>,
    getters: Vec<(Key, usize, Getter)>,
    setters: Vec<Setter>,
}

/// A request of a group: as written, and as a format of `ch_id` (or why formatting it
/// raises, which it does for every id).
#[derive(Debug)]
struct Key {
    raw: Vec<u8>,
    format: Result<PyFormat, String>,
}

#[derive(Debug)]
enum Reply {
    Silence,
    Bytes(Bytes),
    Random(RandomReply),
}

#[derive(Debug)]
struct Setter {
    pattern: python::parse::Pattern,
    property: usize,
    reply: Option<Bytes>,
    invalid: Option<Bytes>,
}

/// A group's state on one port: the channel it last chose, and each property's values by
/// channel (a channel not in the list has the property's initial value).
#[derive(Clone, Debug, Default)]
pub(super) struct GroupState {
    selected: Option<String>,
    values: Vec<Vec<(Option<String>, PyValue)>>,
}

/// What a group did with a request.
#[derive(Debug)]
pub(super) enum Answer {
    /// This reply.
    Reply(Bytes),
    /// Nothing to send.
    Silence,
    /// A setter's value refused with no `e`: a command error.
    CommandError,
}

/// `text`, a request written with `{ch_id}`, as a format of one value: `{ch_id...}` made
/// `{0...}`; any other field raises in Python (`KeyError`, or `IndexError` for a
/// positional one), for every id.
fn key(text: &str) -> Key {
    let mut rewritten = String::new();
    let mut rest = text;
    let mut broken = None;
    while let Some(i) = rest.find(['{', '}']) {
        rewritten.push_str(&rest[..i]);
        let tail = &rest[i..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            rewritten.push_str(&tail[..2]);
            rest = &tail[2..];
            continue;
        }
        if let Some(after) = tail.strip_prefix('}') {
            rewritten.push('}');
            rest = after;
            continue;
        }
        let name_end = tail[1..]
            .find([':', '!', '}', '.', '['])
            .map_or(tail.len(), |n| n + 1);
        let name = &tail[1..name_end];
        if name == "ch_id" {
            rewritten.push_str("{0");
        } else {
            broken.get_or_insert_with(|| {
                if name.is_empty() || name.bytes().all(|b| b.is_ascii_digit()) {
                    "IndexError: Replacement index 0 out of range for positional args tuple"
                        .to_owned()
                } else {
                    format!("KeyError: '{name}'")
                }
            });
            rewritten.push_str(&tail[..name_end]);
        }
        rest = &tail[name_end..];
    }
    rewritten.push_str(rest);
    Key {
        raw: text.as_bytes().to_vec(),
        format: match broken {
            Some(why) => Err(why),
            None => PyFormat::parse(&rewritten),
        },
    }
}

impl Key {
    /// The request for channel `id`.
    fn for_id(&self, id: &str) -> Result<Vec<u8>, Raised> {
        let format = self.format.as_ref().map_err(|why| Raised(why.clone()))?;
        let mut out = String::new();
        format
            .render(&PyValue::Str(id.to_owned()), &mut out)
            .map_err(Raised)?;
        Ok(out.into_bytes())
    }
}

/// Compile `group`.
pub(super) fn compile(group: &ChannelGroup) -> Result<Group, ScriptError> {
    let fail = |why: String| ScriptError {
        span: None,
        kind: ScriptErrorKind::Python(format!("channels {:?}: {why}", group.name)),
    };
    let property = |name: &str| {
        group
            .properties
            .iter()
            .position(|p| p.name == name)
            .ok_or_else(|| fail(format!("no property {name:?}")))
    };
    let dialogues = group
        .dialogues
        .iter()
        .map(|(request, reply)| {
            let reply = match reply {
                None => Reply::Silence,
                Some(bytes) => match std::str::from_utf8(bytes) {
                    Ok(text) if is_random(text) => Reply::Random(RandomReply::new(text)),
                    _ => Reply::Bytes(Bytes::from(bytes.clone())),
                },
            };
            (key(request), reply)
        })
        .collect();
    let getters = group
        .getters
        .iter()
        .map(|(request, name, format)| {
            Ok((
                key(request),
                property(name)?,
                Getter::new(format.as_deref()),
            ))
        })
        .collect::<Result<_, ScriptError>>()?;
    let setters = group
        .setters
        .iter()
        .filter_map(|setter| match setter {
            PythonRule::Set {
                pattern,
                property: name,
                reply,
                invalid,
            } => Some((pattern, name, reply, invalid)),
            _ => None,
        })
        .map(|(pattern, name, reply, invalid)| {
            Ok(Setter {
                pattern: python::parse::Pattern::for_channel(pattern)
                    .map_err(|why| fail(format!("setter pattern {pattern:?}: {why}")))?,
                property: property(name)?,
                reply: reply.clone().map(Bytes::from),
                invalid: invalid.clone().map(Bytes::from),
            })
        })
        .collect::<Result<_, ScriptError>>()?;
    Ok(Group {
        ids: group.ids.clone(),
        can_select: group.can_select,
        properties: group.properties.clone(),
        dialogues,
        getters,
        setters,
    })
}

impl Group {
    /// A fresh state for one port.
    pub(super) fn state(&self) -> GroupState {
        GroupState {
            selected: None,
            values: vec![Vec::new(); self.properties.len()],
        }
    }

    fn value<'a>(&'a self, state: &'a GroupState, property: usize) -> &'a PyValue {
        state.values[property]
            .iter()
            .find(|(id, _)| *id == state.selected)
            .map_or(&self.properties[property].initial, |(_, v)| v)
    }

    /// The last dialogue and getter whose request (for `id`, or as written) is `request`.
    fn exact(
        &self,
        state: &GroupState,
        id: Option<&str>,
        request: &[u8],
    ) -> Result<Option<Answer>, Raised> {
        let matches = |key: &Key| -> Result<bool, Raised> {
            Ok(match id {
                Some(id) => key.for_id(id)? == request,
                None => key.raw == request,
            })
        };
        // Python builds each dictionary whole: a key that cannot be formatted raises even
        // where another would match.
        let mut dialogue = None;
        for (key, reply) in &self.dialogues {
            if matches(key)? {
                dialogue = Some(reply);
            }
        }
        if let Some(reply) = dialogue {
            return Ok(Some(match reply {
                Reply::Silence => Answer::Silence,
                Reply::Bytes(bytes) => Answer::Reply(bytes.clone()),
                Reply::Random(random) => {
                    let mut out = String::new();
                    random.render(&mut out).map_err(Raised)?;
                    Answer::Reply(Bytes::from(out))
                }
            }));
        }
        let mut getter = None;
        for (key, property, format) in &self.getters {
            if matches(key)? {
                getter = Some((*property, format));
            }
        }
        let Some((property, format)) = getter else {
            return Ok(None);
        };
        let mut out = String::new();
        format
            .render(self.value(state, property), &mut out)
            .map_err(Raised)?;
        Ok(Some(Answer::Reply(Bytes::from(out))))
    }

    /// The group's answer to `request`, with the device's `selected_channel` value.
    fn answer(
        &self,
        state: &mut GroupState,
        selected_channel: Option<&PyValue>,
        request: &[u8],
    ) -> Result<Option<Answer>, Raised> {
        if self.can_select {
            for id in &self.ids {
                state.selected = Some(id.clone());
                if let Some(answer) = self.exact(state, Some(id), request)? {
                    return Ok(Some(answer));
                }
            }
        } else {
            let selected =
                selected_channel.ok_or_else(|| Raised("KeyError: 'selected_channel'".into()))?;
            let Some(id) = self
                .ids
                .iter()
                .find(|id| *selected == PyValue::Str((*id).clone()))
            else {
                return Ok(None);
            };
            state.selected = Some(id.clone());
            if let Some(answer) = self.exact(state, None, request)? {
                return Ok(Some(answer));
            }
        }
        self.set(state, request)
    }

    /// The first setter whose pattern reads `request`.
    fn set(&self, state: &mut GroupState, request: &[u8]) -> Result<Option<Answer>, Raised> {
        let Ok(text) = std::str::from_utf8(request) else {
            return Ok(None);
        };
        for setter in &self.setters {
            let Some((channel, value)) = setter.pattern.parse_for_channel(text) else {
                continue;
            };
            if let Some(channel) = channel {
                state.selected = Some(channel);
            }
            // `set_value(str(parsed))`: text first, then the specs' conversion.
            let value = PyValue::Str(value.to_string());
            return match self.properties[setter.property].validate(&value) {
                Ok(value) => {
                    let slot = &mut state.values[setter.property];
                    match slot.iter_mut().find(|(id, _)| *id == state.selected) {
                        Some((_, old)) => *old = value,
                        None => slot.push((state.selected.clone(), value)),
                    }
                    Ok(Some(
                        setter.reply.clone().map_or(Answer::Silence, Answer::Reply),
                    ))
                }
                Err(PyError::Value(_)) => Ok(Some(
                    setter
                        .invalid
                        .clone()
                        .map_or(Answer::CommandError, Answer::Reply),
                )),
                Err(PyError::Other(why)) => Err(Raised(why)),
            };
        }
        Ok(None)
    }
}

/// The first group's answer to `request` (an empty reply counts as none, as Python's
/// truth test of `b""` does).
pub(super) fn answer(
    groups: &[Group],
    states: &mut [GroupState],
    selected_channel: Option<&PyValue>,
    request: &[u8],
) -> Result<Option<Answer>, Raised> {
    for (group, state) in groups.iter().zip(states) {
        match group.answer(state, selected_channel, request)? {
            Some(Answer::Reply(bytes)) if bytes.is_empty() => {}
            Some(answer) => return Ok(Some(answer)),
            None => {}
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_formats_of_ch_id() {
        let k = key("CH {ch_id}:VOLT?");
        assert_eq!(k.for_id("2").unwrap(), b"CH 2:VOLT?");
        assert_eq!(key("{ch_id}{{x}}{ch_id}").for_id("1").unwrap(), b"1{x}1");
        assert_eq!(key("NO FIELD").for_id("1").unwrap(), b"NO FIELD");
        assert!(
            key("CH {}")
                .for_id("1")
                .unwrap_err()
                .0
                .contains("IndexError")
        );
        assert!(
            key("CH {x}")
                .for_id("1")
                .unwrap_err()
                .0
                .contains("KeyError")
        );
        assert_eq!(key("CH {ch_id}").raw, b"CH {ch_id}");
    }
}
