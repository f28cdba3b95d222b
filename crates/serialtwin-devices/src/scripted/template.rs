//! Byte strings with escapes, and reply templates with `{name}` placeholders.
//!
//! Escapes (processed by serialtwin, so write them in TOML 'literal strings', or double the
//! backslash in "basic strings"): `\r`, `\n`, `\t`, `\0`, `\e` (ESC), `\\`, `\xNN` (any byte).
//! In templates `{name}` is a placeholder and `{{` / `}}` are literal braces.

/// One piece of a template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Piece {
    /// Bytes copied as they are.
    Literal(Vec<u8>),
    /// A placeholder, resolved when the script is compiled.
    Name(String),
    /// A capture group of the rule's pattern (`0`: the whole request).
    Group(usize),
    /// A state value, by index.
    State(usize),
}

/// A parsed template: literal bytes and placeholders.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Template {
    pub(crate) pieces: Vec<Piece>,
}

impl Template {
    /// Parse `text`: escapes, `{name}` placeholders, `{{` and `}}`.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut literal = Vec::new();
        let mut chars = text.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            match c {
                '{' if chars.peek().is_some_and(|&(_, n)| n == '{') => {
                    chars.next();
                    literal.push(b'{');
                }
                '}' if chars.peek().is_some_and(|&(_, n)| n == '}') => {
                    chars.next();
                    literal.push(b'}');
                }
                '}' => return Err(format!("unmatched `}}` at offset {at} (write `}}}}`)")),
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some((_, '}')) => break,
                            Some((_, c)) if c.is_ascii_alphanumeric() || c == '_' => name.push(c),
                            Some((_, c)) => {
                                return Err(format!(
                                    "`{c}` in a placeholder: names are letters, digits and `_` \
                                     (write `{{{{` for a literal brace)"
                                ));
                            }
                            None => {
                                return Err("unclosed `{` (write `{{` for a literal brace)".into());
                            }
                        }
                    }
                    if name.is_empty() {
                        return Err("empty placeholder `{}`".into());
                    }
                    if !literal.is_empty() {
                        pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                    }
                    pieces.push(match name.parse::<usize>() {
                        Ok(n) => Piece::Group(n),
                        Err(_) => Piece::Name(name),
                    });
                }
                '\\' => escape(&mut chars, &mut literal)?,
                c => {
                    let mut buf = [0; 4];
                    literal.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        Ok(Self { pieces })
    }

    /// Fill in the placeholders: `group(i)` gives capture `i`, `state[i]` state value `i`.
    pub(crate) fn render<'a>(
        &self,
        group: impl Fn(usize) -> &'a [u8],
        state: &[Vec<u8>],
        out: &mut Vec<u8>,
    ) {
        for piece in &self.pieces {
            match piece {
                Piece::Literal(b) => out.extend_from_slice(b),
                Piece::Group(i) => out.extend_from_slice(group(*i)),
                Piece::State(i) => out.extend_from_slice(&state[*i]),
                // Resolved at compile time; an unresolved name renders as nothing.
                Piece::Name(_) => {}
            }
        }
    }
}

/// Process escapes in `text` (no placeholders).
pub(crate) fn unescape(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len());
    let mut chars = text.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c == '\\' {
            escape(&mut chars, &mut out)?;
        } else {
            let mut buf = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
    }
    Ok(out)
}

/// Bytes written as hex digits, optionally separated by spaces, `:` or `-` (`"00 1f FF"`).
pub(crate) fn unhex(text: &str) -> Result<Vec<u8>, String> {
    let digits: String = text.chars().filter(|c| !matches!(c, ':' | '-')).collect();
    serialtwin_core::escape::unhex(&digits)
}

/// The escape after a backslash.
fn escape(
    chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let byte = match chars.next().map(|(_, c)| c) {
        Some('{') => b'{',
        Some('}') => b'}',
        other => serialtwin_core::escape::unescape_one(other, || chars.next().map(|(_, c)| c))?,
    };
    out.push(byte);
    Ok(())
}

/// `bytes` as readable text: printable ASCII as is, everything else escaped as above.
pub use serialtwin_core::escape::escape as escape_bytes;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_make_any_byte() {
        assert_eq!(unescape(r"a\r\n\x00\xFF\\").unwrap(), b"a\r\n\x00\xff\\");
        assert!(unescape(r"\q").is_err());
        assert!(unescape(r"\x4").is_err());
        assert_eq!(unhex("00 1f:FF").unwrap(), [0, 0x1f, 0xff]);
        assert!(unhex("0").is_err());
    }

    #[test]
    fn templates_split_placeholders() {
        let t = Template::parse(r"V={volts}{{x}}\r{1}").unwrap();
        assert_eq!(
            t.pieces,
            [
                Piece::Literal(b"V=".to_vec()),
                Piece::Name("volts".into()),
                Piece::Literal(b"{x}\r".to_vec()),
                Piece::Group(1),
            ]
        );
        assert!(Template::parse("{oops").is_err());
        assert!(Template::parse("a}b").is_err());
        assert!(Template::parse("{a b}").is_err());
        assert_eq!(escape_bytes(b"OK\r\n\x00\xff"), r"OK\r\n\x00\xff");
    }
}
