//! YAML as pyvisa-sim reads it (`PyYAML`'s `BaseLoader`): every scalar a string, mappings and
//! sequences, nothing typed. `1.0`, `True` and `~` stay the text they are, which is what
//! pyvisa-sim's own code then sees.
//!
//! Built from [`saphyr_parser`]'s events (a maintained, pure-Rust YAML 1.2 parser), keeping
//! where each node starts so that errors name a line and a column.

use std::collections::HashMap;

use saphyr_parser::{Event, Marker, Parser};

/// The most nodes a file may expand to (aliases included): far more than a device file
/// holds, and what stops a file of nested aliases from growing without bound.
const MAX_NODES: usize = 100_000;

/// The deepest a node may nest (aliases expanded): far deeper than a device file goes, and
/// what keeps the recursive walks over a node (copying an alias, dropping it) off the end of
/// the stack.
const MAX_DEPTH: usize = 256;

/// Where a node starts: 1-based line and column.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct At {
    /// The line, from 1.
    pub line: usize,
    /// The column, from 1 (in characters).
    pub col: usize,
}

impl From<&Marker> for At {
    fn from(m: &Marker) -> Self {
        Self {
            line: m.line(),
            col: m.col() + 1,
        }
    }
}

impl std::fmt::Display for At {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// A YAML node and where it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// What it is.
    pub value: Value,
    /// Where it starts.
    pub at: At,
}

/// A node's value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// Any scalar, as its text.
    Scalar(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping with scalar keys, in file order (a repeated key: the last one counts, as in
    /// `PyYAML`).
    Map(Vec<(String, Node)>),
}

/// A YAML error: where, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {reason}")]
pub struct YamlError {
    /// Where.
    pub at: At,
    /// Why.
    pub reason: String,
}

impl YamlError {
    pub(crate) fn new(at: At, reason: impl Into<String>) -> Self {
        Self {
            at,
            reason: reason.into(),
        }
    }
}

impl Node {
    /// The scalar's text.
    ///
    /// # Errors
    /// Not a scalar: an error naming `what` it should be.
    pub fn str(&self, what: &str) -> Result<&str, YamlError> {
        match &self.value {
            Value::Scalar(s) => Ok(s),
            _ => Err(YamlError::new(self.at, format!("{what} must be a string"))),
        }
    }

    /// The mapping's entries.
    ///
    /// # Errors
    /// Not a mapping: an error naming `what` it should be.
    pub fn map(&self, what: &str) -> Result<&[(String, Node)], YamlError> {
        match &self.value {
            Value::Map(m) => Ok(m),
            _ => Err(YamlError::new(self.at, format!("{what} must be a mapping"))),
        }
    }

    /// The sequence's items.
    ///
    /// # Errors
    /// Not a sequence: an error naming `what` it should be.
    pub fn seq(&self, what: &str) -> Result<&[Node], YamlError> {
        match &self.value {
            Value::Seq(s) => Ok(s),
            _ => Err(YamlError::new(self.at, format!("{what} must be a list"))),
        }
    }

    /// The value of `key` in a mapping (the last one written), if any.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(m) => m.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

/// A container being built: its items, where it starts, its anchor, and the height of its
/// tallest item so far.
enum Open {
    Seq(Vec<Node>, At, usize, usize),
    Map(Vec<(String, Node)>, Option<String>, At, usize, usize),
}

/// Parse one YAML document (an empty file is an empty mapping's absence: an error).
///
/// # Errors
/// A syntax error, more than one document, a key that is not a scalar, an unknown alias,
/// more than `MAX_NODES` (100,000) nodes, or nodes nested more than `MAX_DEPTH` (256) deep.
pub fn parse(text: &str) -> Result<Node, YamlError> {
    let mut stack: Vec<Open> = Vec::new();
    // Each anchored node, with its height (1 for a scalar).
    let mut anchors: HashMap<usize, (Node, usize)> = HashMap::new();
    let mut root: Option<Node> = None;
    let mut nodes = 0usize;
    let mut last = At::default();
    for event in Parser::new_from_str(text) {
        let (event, span) =
            event.map_err(|e| YamlError::new(e.marker().into(), e.info().to_owned()))?;
        let at = At::from(&span.start);
        last = at;
        let done = match event {
            Event::Scalar(text, _, anchor, _) => Some((
                Node {
                    value: Value::Scalar(text.into_owned()),
                    at,
                },
                anchor,
                1,
            )),
            Event::Alias(id) => {
                let (node, height) = anchors
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| YamlError::new(at, "an alias of no anchor"))?;
                nodes += count(&node);
                Some((node, 0, height))
            }
            Event::SequenceStart(..) | Event::MappingStart(..) if stack.len() >= MAX_DEPTH => {
                return Err(too_deep(at));
            }
            Event::SequenceStart(anchor, _) => {
                stack.push(Open::Seq(Vec::new(), at, anchor, 0));
                None
            }
            Event::MappingStart(anchor, _) => {
                stack.push(Open::Map(Vec::new(), None, at, anchor, 0));
                None
            }
            Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                Some(Open::Seq(items, at, anchor, height)) => Some((
                    Node {
                        value: Value::Seq(items),
                        at,
                    },
                    anchor,
                    height + 1,
                )),
                Some(Open::Map(items, _, at, anchor, height)) => Some((
                    Node {
                        value: Value::Map(items),
                        at,
                    },
                    anchor,
                    height + 1,
                )),
                None => return Err(YamlError::new(at, "an end of nothing")),
            },
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart(_)
            | Event::DocumentEnd => None,
        };
        let Some((node, anchor, height)) = done else {
            continue;
        };
        nodes += 1;
        if nodes > MAX_NODES {
            return Err(YamlError::new(
                at,
                format!("more than {MAX_NODES} nodes (aliases expanded)"),
            ));
        }
        // An alias copies a node whole: its height counts where it lands.
        if stack.len() + height > MAX_DEPTH {
            return Err(too_deep(at));
        }
        if anchor != 0 {
            anchors.insert(anchor, (node.clone(), height));
        }
        attach(&mut stack, &mut root, node, height)?;
    }
    root.ok_or_else(|| YamlError::new(last, "an empty file"))
}

/// Put a finished node (of `height`) into the container being built, or make it the root.
fn attach(
    stack: &mut [Open],
    root: &mut Option<Node>,
    node: Node,
    height: usize,
) -> Result<(), YamlError> {
    match stack.last_mut() {
        Some(Open::Seq(items, _, _, tallest)) => {
            *tallest = (*tallest).max(height);
            items.push(node);
        }
        Some(Open::Map(items, key, _, _, tallest)) => match key.take() {
            Some(k) => {
                *tallest = (*tallest).max(height);
                items.push((k, node));
            }
            None => match node.value {
                Value::Scalar(k) => *key = Some(k),
                _ => return Err(YamlError::new(node.at, "a key must be a string")),
            },
        },
        None if root.is_some() => {
            return Err(YamlError::new(
                node.at,
                "more than one document (a device file is one)",
            ));
        }
        None => *root = Some(node),
    }
    Ok(())
}

/// The error of a node nested too deep.
fn too_deep(at: At) -> YamlError {
    YamlError::new(
        at,
        format!("nodes nested more than {MAX_DEPTH} deep (aliases expanded)"),
    )
}

/// How many nodes `node` holds, itself included.
fn count(node: &Node) -> usize {
    1 + match &node.value {
        Value::Scalar(_) => 0,
        Value::Seq(items) => items.iter().map(count).sum(),
        Value::Map(items) => items.iter().map(|(_, v)| 1 + count(v)).sum(),
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::*;

    #[test]
    fn every_scalar_is_its_text() {
        let node = parse("spec: 1.0\na: [True, ~, 0x10, '1.0']\nb: {q: \"\\r\\n\"}\n").unwrap();
        assert_eq!(node.get("spec").unwrap().str("").unwrap(), "1.0");
        let a: Vec<&str> = node
            .get("a")
            .unwrap()
            .seq("")
            .unwrap()
            .iter()
            .map(|n| n.str("").unwrap())
            .collect();
        assert_eq!(a, ["True", "~", "0x10", "1.0"]);
        let q = node.get("b").unwrap().get("q").unwrap();
        assert_eq!(q.str("").unwrap(), "\r\n");
        assert_eq!(q.at, At { line: 3, col: 8 });
    }

    #[test]
    fn aliases_copy_and_bombs_stop() {
        let node = parse("a: &x {q: A}\nb: *x\n").unwrap();
        assert_eq!(
            node.get("b").unwrap().get("q").unwrap().str("").unwrap(),
            "A"
        );
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..8 {
            let p = i - 1;
            writeln!(
                bomb,
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]"
            )
            .unwrap();
        }
        let e = parse(&bomb).unwrap_err();
        assert!(e.reason.contains("more than"), "{e}");
    }

    #[test]
    fn deep_nesting_stops_with_an_error() {
        // Flow, block and through aliases of aliases: each refused where it gets too deep,
        // not a stack overflow (found by the `pyvisa_sim` fuzz target).
        let flow = format!("{}{}", "[".repeat(3000), "]".repeat(3000));
        let e = parse(&flow).unwrap_err();
        assert!(
            e.reason.contains("deep") || e.reason.contains("recursion"),
            "{e}"
        );
        let block = format!("{}x\n", "- ".repeat(20_000));
        let e = parse(&block).unwrap_err();
        assert_eq!(
            e.reason,
            "nodes nested more than 256 deep (aliases expanded)"
        );
        assert_eq!(
            e.at,
            At {
                line: 1,
                col: 2 * 256 + 1
            }
        );
        let mut aliases = format!("a0: &a0 {}x{}\n", "[".repeat(40), "]".repeat(40));
        for i in 1..20 {
            let p = i - 1;
            writeln!(
                aliases,
                "a{i}: &a{i} {}*a{p}{}",
                "[".repeat(40),
                "]".repeat(40)
            )
            .unwrap();
        }
        let e = parse(&aliases).unwrap_err();
        assert!(e.reason.contains("more than 256 deep"), "{e}");
        assert_eq!(e.at.line, 7, "{e}");
        // As deep as allowed still reads.
        let ok = format!("{}x", "- ".repeat(MAX_DEPTH - 1));
        parse(&ok).unwrap();
    }

    #[test]
    fn errors_have_a_position() {
        let e = parse("a: [1, 2\nb: c\n").unwrap_err();
        assert!(e.at.line >= 1, "{e}");
        assert_eq!(parse("").unwrap_err().reason, "an empty file");
        assert!(
            parse("a: 1\n---\nb: 2\n")
                .unwrap_err()
                .reason
                .contains("one document")
        );
        assert!(parse("? [a]\n: b\n").unwrap_err().reason.contains("key"));
    }
}
