//! stringparser's patterns: a format string read backwards, as pyvisa-sim's setters use them.
//!
//! stringparser 0.7 (what pyvisa-sim 0.7.1 parses setter requests with) turns `VOLT {:.3f}`
//! into the regex `^VOLT\ ([-]?[0-9]+\.?[0-9]+)$` and the converter `float`. Its regexes are
//! kept exactly, quirks included: `{:f}` needs two digits (`VOLT 5` is not a setting,
//! `VOLT 12` and `VOLT 5.0` are), width and precision are ignored, a spec it does not read
//! (`{:8}`) is text, and `$` also matches before a final newline.

use std::fmt::Write as _;

use regex::Regex;

use super::PyValue;

/// How a field's text becomes a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Convert {
    /// `str`.
    Str,
    /// `int(text, base)`.
    Int(u32),
    /// `float`.
    Float,
    /// `%`: `float(text[:-1]) / 100`.
    Percent,
}

/// A compiled stringparser pattern holding exactly one value field.
#[derive(Clone, Debug)]
pub struct Pattern {
    regex: Regex,
    convert: Convert,
    /// The capture group of the value.
    value: usize,
    /// The capture group of a channel's `{ch_id}`, in a channel's setter.
    channel: Option<usize>,
}

/// One piece of a format string as Python's `string.Formatter().parse` yields it.
struct Piece {
    literal: String,
    /// `(field name, format spec)`.
    field: Option<(String, String)>,
}

/// Python's `Formatter.parse` (the parts stringparser uses).
fn formatter_parse(text: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                literal.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                literal.push('}');
            }
            '}' => return Err("Single '}' encountered in format string".into()),
            '{' => {
                let mut inside = String::new();
                let mut depth = 1;
                loop {
                    match chars.next() {
                        Some('{') => {
                            depth += 1;
                            inside.push('{');
                        }
                        Some('}') => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                            inside.push('}');
                        }
                        Some(c) => inside.push(c),
                        None => return Err("expected '}' before end of string".into()),
                    }
                }
                // name[!conversion][:spec]; the conversion is ignored by stringparser.
                let (head, spec) = match inside.find(':') {
                    Some(i) => (&inside[..i], inside[i + 1..].to_owned()),
                    None => (inside.as_str(), String::new()),
                };
                let name = match head.find('!') {
                    Some(i) => &head[..i],
                    None => head,
                };
                pieces.push(Piece {
                    literal: std::mem::take(&mut literal),
                    field: Some((name.to_owned(), spec)),
                });
            }
            c => literal.push(c),
        }
    }
    if !literal.is_empty() {
        pieces.push(Piece {
            literal,
            field: None,
        });
    }
    Ok(pieces)
}

/// stringparser's `_FMT`, searched in a spec.
const SPEC: &str = r"\A(?P<align>(?P<fill>[^{}])?[<>=\^])?(?P<sign>[\+\- ])?(?P<alternate>#)?(?P<zero>0)?(?P<width>[0-9]+)?(?P<comma>[,])?(?P<precision>\.[0-9]+)?(?P<type>[bcdeEfFgGnosxX%]+)?";

/// stringparser's `fmt_to_regex`: the regex and converter of a spec.
fn spec_regex(spec: &str) -> Result<(String, Convert), String> {
    let matched = Regex::new(SPEC)
        .map_err(|e| e.to_string())?
        .captures(spec)
        .ok_or_else(|| format!("Could not parse the formatting string {spec}"))?;
    let kind = matched.name("type").map(|m| m.as_str());
    let (mut reg, convert) = match kind {
        None | Some("s") => (".*?".to_owned(), Convert::Str),
        Some("d") => ("[0-9]+?".into(), Convert::Int(10)),
        Some("b") => ("[0-1]+?".into(), Convert::Int(2)),
        Some("o") => ("[0-7]+?".into(), Convert::Int(8)),
        Some("x") => ("[0-9a-f]+?".into(), Convert::Int(16)),
        Some("X") => ("[0-9A-F]+?".into(), Convert::Int(16)),
        Some("e") => (r"[0-9]+\.?[0-9]+(?:e[-+]?[0-9]+)?".into(), Convert::Float),
        Some("E") => (r"[0-9]+\.?[0-9]+(?:E[-+]?[0-9]+)?".into(), Convert::Float),
        Some("f" | "F") => (r"[0-9]+\.?[0-9]+".into(), Convert::Float),
        Some("g" | "G") => (
            r"[0-9]+\.?[0-9]+(?:[eE][-+]?[0-9]+)?".into(),
            Convert::Float,
        ),
        Some("%") => (r"[0-9]+\.?[0-9]+%".into(), Convert::Percent),
        Some(other) => return Err(format!("{other} is not an valid type")),
    };
    if matched.name("alternate").is_some() {
        match kind {
            Some(t @ ("o" | "x" | "X" | "b")) => reg = format!("0{t}{reg}"),
            _ => {
                return Err(format!(
                    "Alternate form (#) not allowed in {} type",
                    kind.unwrap_or("None")
                ));
            }
        }
    }
    let sign = match matched.name("sign").map(|m| m.as_str()) {
        None | Some("-") => "[-]?",
        Some("+") => "[-+]",
        Some(_) => "[- ]",
    };
    Ok((format!("{sign}{reg}"), convert))
}

impl Pattern {
    /// Compile a setter's pattern.
    ///
    /// # Errors
    /// What stringparser raises for it, or why pyvisa-sim could not use what it parses: a
    /// pattern must hold exactly one value field (`{}`, `{0}`, `{:f}`...; `{_}` fields are
    /// skipped), since with none or several stringparser returns a list or dict that
    /// pyvisa-sim's property cannot take.
    pub fn new(text: &str) -> Result<Self, String> {
        Self::compile(text, false)
    }

    /// Compile a channel's setter pattern, which may also hold `{ch_id}` (text: the channel
    /// the value is for).
    ///
    /// # Errors
    /// As [`Pattern::new`]; a `{ch_id}` with a format spec is refused too (it would key the
    /// channel by a number, which no channel's id is).
    pub fn for_channel(text: &str) -> Result<Self, String> {
        Self::compile(text, true)
    }

    fn compile(text: &str, channel: bool) -> Result<Self, String> {
        let mut regex = String::from(r"\A");
        let mut fields = Vec::new();
        let mut channel_group = None;
        for piece in formatter_parse(text)? {
            regex.push_str(&regex::escape(&piece.literal));
            let Some((name, spec)) = piece.field else {
                continue;
            };
            let (reg, convert) = if spec.is_empty() {
                (".*?".to_owned(), Convert::Str)
            } else {
                spec_regex(&spec)?
            };
            if name == "_" {
                let _ = write!(regex, "(?:{reg})");
                continue;
            }
            let _ = write!(regex, "({reg})");
            if channel && name == "ch_id" {
                if !spec.is_empty() {
                    return Err(format!(
                        "{{ch_id:{spec}}}: a channel's id is matched as text"
                    ));
                }
                channel_group = Some(fields.len() + 1);
                fields.push((String::new(), Convert::Str));
                continue;
            }
            fields.push((name, convert));
        }
        // Python's `$`: the end, or before a newline that ends the text.
        regex.push_str(r"\n?\z");
        let values: Vec<(usize, &(String, Convert))> = fields
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(i + 1) != channel_group)
            .map(|(i, f)| (i + 1, f))
            .collect();
        let (value, convert) = match values.as_slice() {
            [(group, (name, convert))] if name.is_empty() || name == "0" => (*group, *convert),
            [] => return Err("the pattern holds no value field".into()),
            [(_, (name, _))] => {
                return Err(format!(
                    "the field {{{name}}} makes stringparser return a mapping, which a \
                     property cannot take: write {{}} or {{0}}"
                ));
            }
            _ => {
                return Err(format!(
                    "the pattern holds {} value fields; a property takes one",
                    values.len()
                ));
            }
        };
        let regex = Regex::new(&regex).map_err(|e| e.to_string())?;
        Ok(Self {
            regex,
            convert,
            value,
            channel: channel_group,
        })
    }

    /// The channel (`{ch_id}`'s text, if the pattern has one) and the value `request` sets.
    #[must_use]
    pub fn parse_for_channel(&self, request: &str) -> Option<(Option<String>, PyValue)> {
        let captures = self.regex.captures(request)?;
        let channel = match self.channel {
            Some(group) => Some(captures.get(group)?.as_str().to_owned()),
            None => None,
        };
        Some((channel, self.convert(captures.get(self.value)?.as_str())?))
    }

    /// The value `request` sets, or `None` when it does not match (or its number does not
    /// convert, which stringparser would raise as a `ValueError` too: no match).
    #[must_use]
    pub fn parse(&self, request: &str) -> Option<PyValue> {
        self.convert(self.regex.captures(request)?.get(self.value)?.as_str())
    }

    /// A field's text as the value its conversion makes.
    fn convert(&self, text: &str) -> Option<PyValue> {
        match self.convert {
            Convert::Str => Some(PyValue::Str(text.to_owned())),
            Convert::Int(base) => {
                let (negative, digits) = match text.strip_prefix('-') {
                    Some(rest) => (true, rest),
                    None => (false, text.strip_prefix(' ').unwrap_or(text)),
                };
                let digits = digits.strip_prefix('+').unwrap_or(digits);
                let digits = match base {
                    2 => digits.strip_prefix("0b").unwrap_or(digits),
                    8 => digits.strip_prefix("0o").unwrap_or(digits),
                    16 => digits
                        .strip_prefix("0x")
                        .or_else(|| digits.strip_prefix("0X"))
                        .unwrap_or(digits),
                    _ => digits,
                };
                let magnitude = i128::from_str_radix(digits, base).ok()?;
                Some(PyValue::Int(if negative { -magnitude } else { magnitude }))
            }
            Convert::Float => text
                .trim_start_matches(' ')
                .parse()
                .ok()
                .map(PyValue::Float),
            Convert::Percent => text
                .trim_start_matches(' ')
                .strip_suffix('%')?
                .parse::<f64>()
                .ok()
                .map(|x| PyValue::Float(x / 100.0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pattern: &str, text: &str) -> Option<PyValue> {
        Pattern::new(pattern).unwrap().parse(text)
    }

    #[test]
    fn setter_patterns_read_as_stringparser_reads_them() {
        // Checked against stringparser 0.7 (see the module's doc).
        assert_eq!(parse("VOLT {:f}", "VOLT 12.5"), Some(PyValue::Float(12.5)));
        assert_eq!(parse("VOLT {:f}", "VOLT 5"), None, "two digits needed");
        assert_eq!(parse("VOLT {:f}", "VOLT 12"), Some(PyValue::Float(12.0)));
        assert_eq!(parse("VOLT {:f}", "VOLT -0.5"), Some(PyValue::Float(-0.5)));
        assert_eq!(parse("VOLT {:f}", "VOLT +0.5"), None);
        assert_eq!(parse("VOLT {:+f}", "VOLT +0.5"), Some(PyValue::Float(0.5)));
        assert_eq!(parse("VOLT {:f}", "VOLT 1.5\n"), Some(PyValue::Float(1.5)));
        assert_eq!(parse("VOLT {:f}", "VOLT 1.5\r"), None);
        assert_eq!(
            parse("!FREQ {:.2f}", "!FREQ 100.123"),
            Some(PyValue::Float(100.123))
        );
        assert_eq!(parse("!FREQ {:.2f}", "!freq 10.0"), None);
        assert_eq!(parse("OUTP {:d}", "OUTP 1"), Some(PyValue::Int(1)));
        assert_eq!(parse("OUTP {:d}", "OUTP -12"), Some(PyValue::Int(-12)));
        assert_eq!(parse("OUTP {:d}", "OUTP 1.0"), None);
        assert_eq!(
            parse("INST {:s}", "INST P25V"),
            Some(PyValue::Str("P25V".into()))
        );
        assert_eq!(parse("INST {}", "INST "), Some(PyValue::Str(String::new())));
        assert_eq!(
            parse("INST {:8}", "INST a b"),
            Some(PyValue::Str("a b".into()))
        );
        assert_eq!(parse("X {:x}", "X 1f"), Some(PyValue::Int(31)));
        assert_eq!(parse("X {:#x}", "X 0x1f"), Some(PyValue::Int(31)));
        assert_eq!(parse("X {:#x}", "X 1f"), None);
        assert_eq!(parse("B {:b}", "B 101"), Some(PyValue::Int(5)));
        assert_eq!(parse("P {:%}", "P 12.5%"), Some(PyValue::Float(0.125)));
        assert_eq!(parse("E {:e}", "E 1.5e3"), Some(PyValue::Float(1500.0)));
        assert_eq!(parse("A.{} (x)", "A.b (x)"), Some(PyValue::Str("b".into())));
        assert_eq!(parse("A.{} (x)", "AXb (x)"), None, "literals are escaped");
        assert_eq!(parse("{{V}} {0:d}", "{V} 3"), Some(PyValue::Int(3)));
        assert_eq!(parse("{_} = {:d}", "x = 3"), Some(PyValue::Int(3)));
    }

    #[test]
    fn a_channels_setter_reads_its_channel_too() {
        let p = Pattern::for_channel("CH {ch_id}:VOLT {:.3f}").unwrap();
        assert_eq!(
            p.parse_for_channel("CH 2:VOLT 1.500"),
            Some((Some("2".into()), PyValue::Float(1.5)))
        );
        let p = Pattern::for_channel("VOLT {:.3f} ON {ch_id}").unwrap();
        assert_eq!(
            p.parse_for_channel("VOLT 10.5 ON x"),
            Some((Some("x".into()), PyValue::Float(10.5)))
        );
        let p = Pattern::for_channel("F {:.3f}").unwrap();
        assert_eq!(
            p.parse_for_channel("F 10.5"),
            Some((None, PyValue::Float(10.5)))
        );
        assert!(Pattern::for_channel("CH {ch_id}").is_err(), "no value");
        assert!(Pattern::for_channel("CH {ch_id:d} {}").is_err());
        assert!(
            Pattern::new("CH {ch_id} {}").is_err(),
            "a mapping outside a channel"
        );
    }

    #[test]
    fn patterns_a_property_cannot_take_are_refused() {
        for (bad, why) in [
            ("VOLT", "no value field"),
            ("{} {}", "2 value fields"),
            ("V {volt:f}", "mapping"),
            ("V {1}", "mapping"),
            ("V {:c}", "not an valid type"),
            ("V {:ff}", "not an valid type"),
            ("V {:#f}", "Alternate form"),
            ("V }", "Single '}'"),
            ("V {", "expected '}'"),
        ] {
            let e = Pattern::new(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }
}
