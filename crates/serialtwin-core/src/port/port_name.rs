//! Port names: what a port may be called.
//!
//! A port's name is how the control protocol addresses it (`set inv0 grid off`), how `list`
//! shows it, and how traces and logs label its traffic. The protocol splits a command line at
//! whitespace and reads `*` as every port, so a usable name is one word of it: not empty,
//! printable (no control or invisible formatting characters, which would also let a name
//! rewrite the terminal or the log it is printed to), no whitespace, and not `*`.
//! [`check_port_name`] is the one place that decides; the fleet and the config file both ask it.

use std::fmt;

/// Why a string cannot be a port name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortNameError {
    /// The name is empty.
    #[error("a port name cannot be empty: it must be one word of the control protocol")]
    Empty,
    /// The name is `*`, which the control protocol reads as every port.
    #[error("`*` cannot be a port name: control commands read it as every port")]
    Star,
    /// The name contains a character that cannot be part of one printable word.
    #[error(
        "port name {name:?} contains {kind} '{shown}' (U+{code:04X}) at character {at}: a port name \
         must be one word of the control protocol (printable, no whitespace)",
        shown = .ch.escape_debug(),
        code = u32::from(*.ch)
    )]
    BadChar {
        /// The name, shown escaped in the message.
        name: String,
        /// The offending character.
        ch: char,
        /// Its 1-based position, in characters.
        at: usize,
        /// What kind of character it is.
        kind: BadKind,
    },
}

/// What is wrong with a character of a port name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadKind {
    /// Whitespace: the control protocol would split the name into two words.
    Whitespace,
    /// A control character (C0, DEL, C1): unprintable, and it may drive a terminal.
    Control,
    /// An invisible formatting character (zero-width, bidirectional overrides...): the name
    /// would not read as what it is.
    Format,
}

impl fmt::Display for BadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Whitespace => "whitespace",
            Self::Control => "the control character",
            Self::Format => "the invisible formatting character",
        })
    }
}

/// Unicode's format characters (general category Cf): invisible, and able to reorder or hide
/// what is printed around them. The standard library has no test for the category.
const FORMAT: &[(char, char)] = &[
    ('\u{00AD}', '\u{00AD}'),
    ('\u{0600}', '\u{0605}'),
    ('\u{061C}', '\u{061C}'),
    ('\u{06DD}', '\u{06DD}'),
    ('\u{070F}', '\u{070F}'),
    ('\u{0890}', '\u{0891}'),
    ('\u{08E2}', '\u{08E2}'),
    ('\u{180E}', '\u{180E}'),
    ('\u{200B}', '\u{200F}'),
    ('\u{202A}', '\u{202E}'),
    ('\u{2060}', '\u{2064}'),
    ('\u{2066}', '\u{206F}'),
    ('\u{FEFF}', '\u{FEFF}'),
    ('\u{FFF9}', '\u{FFFB}'),
    ('\u{110BD}', '\u{110BD}'),
    ('\u{110CD}', '\u{110CD}'),
    ('\u{13430}', '\u{1343F}'),
    ('\u{1BCA0}', '\u{1BCA3}'),
    ('\u{1D173}', '\u{1D17A}'),
    ('\u{E0001}', '\u{E0001}'),
    ('\u{E0020}', '\u{E007F}'),
];

/// What is wrong with `c` in a port name, if anything.
fn bad_kind(c: char) -> Option<BadKind> {
    // Tab, newline and CR are both: whitespace says the more useful thing (one word).
    if c.is_whitespace() {
        Some(BadKind::Whitespace)
    } else if c.is_control() {
        Some(BadKind::Control)
    } else if FORMAT.iter().any(|&(lo, hi)| (lo..=hi).contains(&c)) {
        Some(BadKind::Format)
    } else {
        None
    }
}

/// Whether `name` can be a port name: one word of the control protocol.
///
/// # Errors
/// [`PortNameError`], saying what is wrong and where.
pub fn check_port_name(name: &str) -> Result<(), PortNameError> {
    if name.is_empty() {
        return Err(PortNameError::Empty);
    }
    if name == "*" {
        return Err(PortNameError::Star);
    }
    match name
        .chars()
        .enumerate()
        .find_map(|(i, c)| bad_kind(c).map(|kind| (i, c, kind)))
    {
        Some((i, ch, kind)) => Err(PortNameError::BadChar {
            name: name.to_owned(),
            ch,
            at: i + 1,
            kind,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(name: &str) -> BadKind {
        match check_port_name(name) {
            Err(PortNameError::BadChar { kind, .. }) => kind,
            other => panic!("{name:?}: {other:?}"),
        }
    }

    #[test]
    fn whitespace_is_refused() {
        for name in [
            "inv 0",
            "inv\t0",
            "inv\n0",
            " inv",
            "inv\u{a0}0",
            "inv\u{3000}0",
        ] {
            assert_eq!(kind(name), BadKind::Whitespace, "{name:?}");
        }
    }

    #[test]
    fn control_characters_are_refused() {
        for name in ["inv\u{1b}[2J", "inv\0", "inv\u{7f}", "\u{85}inv", "inv\r"] {
            let k = kind(name);
            // Tab, newline, CR and NEL are both control and whitespace: either refusal is right.
            assert!(
                matches!(k, BadKind::Control | BadKind::Whitespace),
                "{name:?}: {k:?}"
            );
        }
        assert_eq!(kind("inv\u{1b}0"), BadKind::Control);
        assert_eq!(kind("inv\0"), BadKind::Control);
        assert_eq!(kind("inv\u{7f}"), BadKind::Control);
    }

    #[test]
    fn invisible_formatting_is_refused() {
        for name in ["inv\u{200b}0", "inv\u{202e}0", "\u{feff}inv", "inv\u{ad}"] {
            assert_eq!(kind(name), BadKind::Format, "{name:?}");
        }
    }
}
