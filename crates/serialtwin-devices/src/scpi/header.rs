//! SCPI program messages: units, headers, header patterns and the relative-path rule.
//!
//! Shared by every SCPI model: a model declares the headers it knows as [`Pattern`]s
//! (`[SOURce:]VOLTage[:LEVel]`) and matches each unit's [`Header`] against them.
//!
//! Facts (instruments.md §1.1): a message is units split by `;`; a unit is a header, then
//! parameters after whitespace split by `,`; a query header ends in `?`. Keywords are
//! case-insensitive and have exactly two spellings, the short form (the upper-case part of the
//! mnemonic) and the long form (`VOLTA` is neither); `[...]` nodes may be left out; a numeric
//! suffix attaches to its keyword (`OUTP2`). A leading `:` starts at the root; after `;` a
//! header resolves under the parent of the previous header's last node (`SOUR:VOLT 5;CURR 1`
//! is `SOUR:CURR 1`); `*XXX` common commands may come anywhere and do not move the path
//! (scpi-parser `composeCompoundCommand`).

use std::fmt;

/// An error a unit raises, as SCPI queues it: a code and its standard text
/// (instruments.md §1.3; scpi-parser `libscpi/inc/scpi/error.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScpiError {
    /// The SCPI error number (negative: standard).
    pub code: i16,
    /// Its standard text.
    pub text: &'static str,
}

impl ScpiError {
    /// -102: a unit that cannot be read (stray characters, an unterminated string).
    pub const SYNTAX: Self = Self::new(-102, "Syntax error");
    /// -104: text where a number goes, and the like.
    pub const DATA_TYPE: Self = Self::new(-104, "Data type error");
    /// -108: a parameter given to a header that takes none (or one too many).
    pub const PARAMETER_NOT_ALLOWED: Self = Self::new(-108, "Parameter not allowed");
    /// -109: a header that needs a parameter got none.
    pub const MISSING_PARAMETER: Self = Self::new(-109, "Missing parameter");
    /// -113: a keyword, or a query or command form, the instrument does not have.
    pub const UNDEFINED_HEADER: Self = Self::new(-113, "Undefined header");
    /// -114: a numeric suffix the keyword does not have (`OUTP9` on a two-output supply).
    pub const SUFFIX_OUT_OF_RANGE: Self = Self::new(-114, "Header suffix out of range");
    /// -131: a unit the parameter does not take (`VOLT 5 A`).
    pub const INVALID_SUFFIX: Self = Self::new(-131, "Invalid suffix");
    /// -222: a number outside the property's range.
    pub const OUT_OF_RANGE: Self = Self::new(-222, "Data out of range");
    /// -224: a choice or boolean word the property does not know.
    pub const ILLEGAL_VALUE: Self = Self::new(-224, "Illegal parameter value");
    /// -363: a line longer than the input buffer (scpi-parser `libscpi/inc/scpi/error.h`),
    /// dropped whole.
    pub const INPUT_BUFFER_OVERRUN: Self = Self::new(-363, "Input buffer overrun");
    /// -350: what the newest entry of a full error queue becomes.
    pub const QUEUE_OVERFLOW: Self = Self::new(-350, "Queue overflow");

    /// An error `code` with its `text`.
    #[must_use]
    pub const fn new(code: i16, text: &'static str) -> Self {
        Self { code, text }
    }
}

impl fmt::Display for ScpiError {
    /// The `SYSTem:ERRor?` answer: `<code>,"<text>"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{},\"{}\"", self.code, self.text)
    }
}

/// The units of one message, split at the `;`s outside quoted strings. Empty units (`;;`,
/// a trailing `;`) are left out. An unterminated string runs to the end of the message and
/// is the last unit's (its parameters then fail with -102).
#[must_use]
pub fn units(message: &str) -> Vec<&str> {
    let mut units = Vec::new();
    let mut quote = None;
    let mut start = 0;
    for (i, c) in message.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, ';') => {
                units.push(&message[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    units.push(&message[start..]);
    units
        .into_iter()
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect()
}

/// One unit, split into its header text and its parameters.
///
/// # Errors
/// [`ScpiError::SYNTAX`] for an unterminated string or an empty parameter (`VOLT 1,,2`).
pub fn split_unit(unit: &str) -> Result<(&str, Vec<&str>), ScpiError> {
    let unit = unit.trim();
    let (header, rest) = unit
        .split_once(|c: char| c.is_ascii_whitespace())
        .unwrap_or((unit, ""));
    let rest = rest.trim();
    if rest.is_empty() {
        return Ok((header, Vec::new()));
    }
    let mut params = Vec::new();
    let mut quote = None;
    let mut start = 0;
    for (i, c) in rest.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, ',') => {
                params.push(rest[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    if quote.is_some() {
        return Err(ScpiError::SYNTAX);
    }
    params.push(rest[start..].trim());
    if params.iter().any(|p| p.is_empty()) {
        return Err(ScpiError::SYNTAX);
    }
    Ok((header, params))
}

/// Where a unit's header lies, the relative-path rule applied: `header` read after
/// `previous` (the last non-common header of the message, as composed), textually as
/// scpi-parser composes it (`A:B;C` is `A:C`, `A:B;:C` is `:C`, `*X` is itself).
#[must_use]
pub fn compose(previous: Option<&str>, header: &str) -> String {
    match previous {
        Some(prev) if !header.starts_with([':', '*']) => {
            let prev = prev.trim_start_matches(':');
            match prev.rfind(':') {
                Some(i) => format!("{}{header}", &prev[..=i]),
                None => header.to_owned(),
            }
        }
        _ => header.to_owned(),
    }
}

/// A unit's header, read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Header {
    /// An IEEE 488.2 common command (`*IDN?`): its name upper-cased, without `*` or `?`.
    Common {
        /// `IDN`, `RST`...
        name: String,
        /// Whether it ends in `?`.
        query: bool,
    },
    /// A SCPI header (`:SOUR:VOLT?`).
    Path {
        /// Its keywords, each with its numeric suffix if it has one.
        words: Vec<Word>,
        /// Whether it ends in `?`.
        query: bool,
    },
}

/// One keyword of a header as the client wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Word {
    /// The letters (case as written).
    pub letters: String,
    /// The numeric suffix (`2` of `OUTP2`), if written.
    pub suffix: Option<u32>,
}

impl Header {
    /// Read `text` (one unit's header, composed with [`compose`]).
    ///
    /// # Errors
    /// [`ScpiError::SYNTAX`] for anything but `*LETTERS[?]` or `[:]KEYWORD[n](:KEYWORD[n])*[?]`
    /// (keywords start with a letter, at most 12 of them, letters then digits);
    /// [`ScpiError::SUFFIX_OUT_OF_RANGE`] for a suffix of 0 or one past `u32`.
    pub fn parse(text: &str) -> Result<Self, ScpiError> {
        let (body, query) = match text.strip_suffix('?') {
            Some(body) => (body, true),
            None => (text, false),
        };
        if let Some(name) = body.strip_prefix('*') {
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err(ScpiError::SYNTAX);
            }
            return Ok(Self::Common {
                name: name.to_ascii_uppercase(),
                query,
            });
        }
        let body = body.strip_prefix(':').unwrap_or(body);
        let words = body
            .split(':')
            .map(Word::parse)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::Path { words, query })
    }
}

impl Word {
    fn parse(text: &str) -> Result<Self, ScpiError> {
        let digits_at = text
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(text.len());
        let (letters, digits) = text.split_at(digits_at);
        // The longest SCPI mnemonic is 12 characters (SCPI-99 Vol. 1 §6.2.1).
        if letters.is_empty() || letters.len() > 12 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ScpiError::SYNTAX);
        }
        let suffix = if digits.is_empty() {
            None
        } else {
            match digits.parse::<u32>() {
                Ok(n) if n > 0 => Some(n),
                _ => return Err(ScpiError::SUFFIX_OUT_OF_RANGE),
            }
        };
        Ok(Self {
            letters: letters.to_owned(),
            suffix,
        })
    }
}

/// A keyword as an instrument declares it: `VOLTage` (short form `VOLT`, the upper-case
/// part), matched in either form, any case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mnemonic {
    long: String,
    short_len: usize,
}

impl Mnemonic {
    /// Read `text`: letters, the short form upper-case, then the rest of the long form
    /// lower-case (`VOLTage`, `RAMP`).
    ///
    /// # Errors
    /// Why `text` is no mnemonic.
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        let short_len = text
            .find(|c: char| !c.is_ascii_uppercase())
            .unwrap_or(text.len());
        if short_len == 0 || !text.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(PatternError::Mnemonic(text.to_owned()));
        }
        if !text[short_len..].bytes().all(|b| b.is_ascii_lowercase()) || text.len() > 12 {
            return Err(PatternError::Mnemonic(text.to_owned()));
        }
        Ok(Self {
            long: text.to_owned(),
            short_len,
        })
    }

    /// The short form, upper-case (what a query of a choice answers).
    #[must_use]
    pub fn short(&self) -> &str {
        &self.long[..self.short_len]
    }

    /// Whether `letters` spell this mnemonic: its short or its long form, any case.
    #[must_use]
    pub fn is(&self, letters: &str) -> bool {
        letters.eq_ignore_ascii_case(self.short()) || letters.eq_ignore_ascii_case(&self.long)
    }
}

impl fmt::Display for Mnemonic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.long)
    }
}

/// Why a header pattern (or a mnemonic) in a config is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// Not letters with the short form upper-case and the rest lower-case.
    #[error(
        "{0:?} is not a SCPI mnemonic: letters, the short form upper-case then the rest \
         lower-case (`VOLTage`), at most 12"
    )]
    Mnemonic(String),
    /// Brackets that do not pair, or nest.
    #[error("unbalanced or nested `[` `]` in the header pattern")]
    Brackets,
    /// A `:` with no keyword on one side.
    #[error("an empty keyword (`::`, or a `:` at an end) in the header pattern")]
    Empty,
    /// Every keyword optional: the empty header would match.
    #[error("the header pattern needs at least one keyword outside `[ ]`")]
    AllOptional,
    /// More than one `#`.
    #[error("at most one keyword of a header pattern takes a numeric suffix (`#`)")]
    Suffixes,
    /// A `?`, `*` or other character that has no place in a pattern.
    #[error(
        "unexpected {0:?} in the header pattern (write it without `?`: the query form comes \
         with every property)"
    )]
    Character(char),
}

/// One keyword of a [`Pattern`].
#[derive(Clone, Debug, PartialEq, Eq)]
struct PatternNode {
    mnemonic: Mnemonic,
    /// Written inside `[ ]`: may be left out.
    optional: bool,
    /// Followed by `#`: takes a numeric suffix (1 when left out).
    suffix: bool,
}

/// A header an instrument knows, as SCPI documents write it: `[SOURce:]VOLTage[:LEVel]`,
/// `OUTPut#[:STATe]` (`#`: a numeric suffix, 1 when left out).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    nodes: Vec<PatternNode>,
}

impl Pattern {
    /// Read a pattern.
    ///
    /// # Errors
    /// Why it is not one.
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        let mut nodes = Vec::new();
        let mut optional = false;
        let mut word = String::new();
        let mut suffix = false;
        let mut finish = |word: &mut String, suffix: &mut bool, optional: bool| {
            if word.is_empty() {
                return Ok(());
            }
            nodes.push(PatternNode {
                mnemonic: Mnemonic::parse(word)?,
                optional,
                suffix: std::mem::take(suffix),
            });
            word.clear();
            Ok::<(), PatternError>(())
        };
        let text = text.strip_prefix(':').unwrap_or(text);
        let mut last = None;
        for c in text.chars() {
            match c {
                '[' if !optional => {
                    finish(&mut word, &mut suffix, false)?;
                    optional = true;
                }
                ']' if optional => {
                    if word.is_empty() && last != Some(':') {
                        return Err(PatternError::Empty);
                    }
                    finish(&mut word, &mut suffix, true)?;
                    optional = false;
                }
                '[' | ']' => return Err(PatternError::Brackets),
                ':' => {
                    if word.is_empty() && !matches!(last, Some('[' | ']')) {
                        return Err(PatternError::Empty);
                    }
                    finish(&mut word, &mut suffix, optional)?;
                }
                '#' if !word.is_empty() && !suffix => suffix = true,
                c if c.is_ascii_alphabetic() && !suffix => word.push(c),
                c => return Err(PatternError::Character(c)),
            }
            last = Some(c);
        }
        if optional {
            return Err(PatternError::Brackets);
        }
        if word.is_empty() && matches!(last, Some(':') | None) {
            return Err(PatternError::Empty);
        }
        finish(&mut word, &mut suffix, false)?;
        if nodes.iter().all(|n| n.optional) {
            return Err(PatternError::AllOptional);
        }
        if nodes.iter().filter(|n| n.suffix).count() > 1 {
            return Err(PatternError::Suffixes);
        }
        Ok(Self { nodes })
    }

    /// Whether the pattern has a keyword that takes a numeric suffix.
    #[must_use]
    pub fn has_suffix(&self) -> bool {
        self.nodes.iter().any(|n| n.suffix)
    }

    /// Whether `words` spell this pattern: `Some(suffix)` if they do (the numeric suffix of the
    /// `#` keyword, 1 when left out or when there is none), else `None`.
    #[must_use]
    pub fn matches(&self, words: &[Word]) -> Option<u32> {
        fn fits(words: &[Word], nodes: &[PatternNode], suffix: &mut u32) -> bool {
            match (words, nodes) {
                ([], []) => true,
                (_, [n, rest @ ..]) if n.optional && fits(words, rest, suffix) => true,
                ([w, ws @ ..], [n, ns @ ..]) => {
                    let spelled = n.mnemonic.is(&w.letters) && (n.suffix || w.suffix.is_none());
                    if spelled && fits(ws, ns, suffix) {
                        if n.suffix {
                            *suffix = w.suffix.unwrap_or(1);
                        }
                        true
                    } else {
                        false
                    }
                }
                _ => false,
            }
        }
        let mut suffix = 1;
        fits(words, &self.nodes, &mut suffix).then_some(suffix)
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, n) in self.nodes.iter().enumerate() {
            let colon = if i == 0 { "" } else { ":" };
            let hash = if n.suffix { "#" } else { "" };
            if n.optional {
                write!(f, "[{colon}{}{hash}]", n.mnemonic)?;
            } else {
                write!(f, "{colon}{}{hash}", n.mnemonic)?;
            }
        }
        Ok(())
    }
}
