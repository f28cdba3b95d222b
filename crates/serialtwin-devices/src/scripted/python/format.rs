//! Python's `str.format` with one positional value, byte for byte as Python 3.11 gives it.
//!
//! pyvisa-sim answers a property's getter with `response.format(value)` (`"{:.2f}"`,
//! `"{:+.8E}"`, `"{:d}"`, …) where the value is a Python `int`, `float` or `str`. A device
//! served on a real port must reply with exactly those bytes, so this behaves as Python's
//! markup parser, format spec mini-language and short float formatting do (in the C locale),
//! case for case against a table Python itself generated (`format_cases.py`). The digits themselves come from Rust's float formatting, which like
//! Python's dtoa is correctly rounded (shortest round trip for `repr`, round-half-even on the
//! exact binary value for a precision).
//!
//! A format string is parsed once ([`PyFormat::parse`]): what would fail for any value fails
//! there, with Python's message. What depends on the value's type (`{:d}` on a float) fails
//! when it is rendered ([`PyFormat::render`]). Errors are Python's exception text without the
//! class name. Refused where Python would not fail, so never served differently: attribute
//! and item access (`{0.real}`, `{0[0]}`), the `!r`/`!a` conversions, nested fields in a spec
//! (`{:{}}`), and widths or precisions above [`MAX_WIDTH`].

use std::fmt::Write as _;

use super::PyValue;

/// The largest width or precision served: Python takes any, a port's reply needs a bound.
pub const MAX_WIDTH: usize = 1 << 16;

/// The longest text one rendering gives (1 MiB): Python has no bound, a port's reply needs
/// one. Widths alone do not bound it: a format may repeat `{0:65536}`, or a long value,
/// hundreds of times.
pub const MAX_RENDERED: usize = 1 << 20;

/// The error of a rendering that would be longer than [`MAX_RENDERED`].
pub(crate) fn too_long() -> String {
    format!("the reply would be longer than {MAX_RENDERED} bytes, the most served")
}

/// `repr(x)` (and `str(x)`) of a Python float: the shortest digits that read back as `x`.
///
/// The reply of a property formatted with `{}` or `{!s}`; fixed notation while the decimal
/// exponent is within -4..16 (with at least `.0`), scientific beyond.
#[must_use]
pub fn py_repr_float(x: f64) -> String {
    format_float_short(
        x,
        FloatCode::Repr,
        0,
        Flags {
            add_dot_0: true,
            ..Flags::default()
        },
    )
}

/// A parsed format string: its literal text and its replacement fields, ready to render.
#[derive(Debug, Clone, PartialEq)]
pub struct PyFormat {
    pieces: Vec<Piece>,
}

/// A piece of a format string, in order.
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Field(Field),
}

/// A replacement field for the one value.
#[derive(Debug, Clone, PartialEq)]
struct Field {
    /// `!s`: the value's `str()` is formatted.
    to_str: bool,
    /// The spec's text, `""` when none (Python's fast path: `str(value)`).
    text: String,
    spec: Spec,
}

/// A format spec of the mini-language, parsed: `[[fill]align][sign][z][#][0][width][grouping][.precision][type]`.
#[derive(Debug, Clone, PartialEq, Default)]
struct Spec {
    /// The fill character, when given with an alignment.
    fill: Option<char>,
    align: Option<char>,
    sign: Option<char>,
    no_neg_0: bool,
    alternate: bool,
    /// The `0` flag (only when no fill was given).
    zero: bool,
    width: Option<usize>,
    /// `,` or `_`.
    grouping: Option<char>,
    precision: Option<usize>,
    /// The type letter, when given.
    ty: Option<char>,
}

/// Where automatic or manual field numbering stands (Python refuses to mix them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Numbering {
    Init,
    Auto,
    Manual,
}

impl PyFormat {
    /// Parses `text` as `str.format` would with one positional value.
    ///
    /// # Errors
    /// Python's message for what fails whatever the value: a field other than the first
    /// positional one, unmatched braces, mixed numbering, a spec that cannot parse (its
    /// `Invalid format specifier '…'` message stops before Python's `for object of type …`,
    /// which names the value's type); and a refusal for what is not served (see the module).
    pub fn parse(text: &str) -> Result<PyFormat, String> {
        let s: Vec<char> = text.chars().collect();
        let mut pieces = Vec::new();
        let mut pos = 0;
        let mut numbering = Numbering::Init;
        let mut next_auto: u64 = 0;
        let mut literal = String::new();
        while pos < s.len() {
            // Literal text up to a brace (MarkupIterator_next).
            let start = pos;
            let mut c = '\0';
            let mut markup = false;
            while pos < s.len() {
                c = s[pos];
                pos += 1;
                if c == '{' || c == '}' {
                    markup = true;
                    break;
                }
            }
            let at_end = pos >= s.len();
            let mut len = pos - start;
            if c == '}' && (at_end || s[pos] != '}') {
                return Err("Single '}' encountered in format string".into());
            }
            if at_end && c == '{' {
                return Err("Single '{' encountered in format string".into());
            }
            if !at_end {
                if s[pos] == c {
                    pos += 1;
                    markup = false;
                } else {
                    len -= 1;
                }
            }
            literal.extend(&s[start..start + len]);
            if !markup {
                continue;
            }
            if !literal.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut literal)));
            }
            let raw = parse_field(&s, &mut pos)?;
            let field = raw.resolve(&mut numbering, &mut next_auto)?;
            pieces.push(Piece::Field(field));
        }
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        Ok(PyFormat { pieces })
    }

    /// Whether the format has a replacement field: without one the value is unused.
    #[must_use]
    pub fn has_fields(&self) -> bool {
        self.pieces.iter().any(|p| matches!(p, Piece::Field(_)))
    }

    /// The fewest bytes any rendering has: its text, and each field's width. A format whose
    /// least is over [`MAX_RENDERED`] refuses every value, so a file can be refused for it
    /// where it is written.
    #[must_use]
    pub fn least_len(&self) -> usize {
        self.pieces
            .iter()
            .map(|piece| match piece {
                Piece::Text(text) => text.len(),
                Piece::Field(field) => field.spec.width.unwrap_or(0),
            })
            .fold(0, usize::saturating_add)
    }

    /// Appends `self.format(value)` to `out`, as Python gives it.
    ///
    /// # Errors
    /// The message of the `ValueError` (or `OverflowError` for `{:c}` out of range) Python
    /// raises for this value's type, or a refusal of a text longer than [`MAX_RENDERED`];
    /// `out` is then left as it was.
    pub fn render(&self, value: &PyValue, out: &mut String) -> Result<(), String> {
        let mut buf = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => buf.push_str(t),
                Piece::Field(f) => f.render(value, &mut buf)?,
            }
            if buf.len() > MAX_RENDERED {
                return Err(too_long());
            }
        }
        out.push_str(&buf);
        Ok(())
    }
}

/// A field as written, before its name is looked up.
struct RawField {
    name: String,
    conversion: Option<char>,
    spec: String,
    expanding: bool,
}

/// Python's `parse_field`: from just after a field's `{` to just after its `}`.
fn parse_field(s: &[char], pos: &mut usize) -> Result<RawField, String> {
    let name_start = *pos;
    let mut c = '\0';
    while *pos < s.len() {
        c = s[*pos];
        *pos += 1;
        match c {
            '{' => return Err("unexpected '{' in field name".into()),
            '[' => {
                while *pos < s.len() && s[*pos] != ']' {
                    *pos += 1;
                }
            }
            '}' | ':' | '!' => break,
            _ => {}
        }
    }
    let name: String = s[name_start..*pos - 1].iter().collect();
    let mut field = RawField {
        name,
        conversion: None,
        spec: String::new(),
        expanding: false,
    };
    if c == '!' || c == ':' {
        if c == '!' {
            if *pos >= s.len() {
                return Err("end of string while looking for conversion specifier".into());
            }
            field.conversion = Some(s[*pos]);
            *pos += 1;
            if *pos < s.len() {
                let next = s[*pos];
                *pos += 1;
                if next == '}' {
                    return Ok(field);
                }
                if next != ':' {
                    return Err("expected ':' after conversion specifier".into());
                }
            }
        }
        let spec_start = *pos;
        let mut count = 1;
        while *pos < s.len() {
            let c = s[*pos];
            *pos += 1;
            if c == '{' {
                field.expanding = true;
                count += 1;
            } else if c == '}' {
                count -= 1;
                if count == 0 {
                    field.spec = s[spec_start..*pos - 1].iter().collect();
                    return Ok(field);
                }
            }
        }
        return Err("unmatched '{' in format spec".into());
    } else if c != '}' {
        return Err("expected '}' before end of string".into());
    }
    Ok(field)
}

/// Python's `get_integer`: `None` when not all decimal digits (or empty).
fn get_integer(text: &str) -> Result<Option<u64>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    let mut acc: u64 = 0;
    for c in text.chars() {
        let Some(d) = c.to_digit(10) else {
            return Ok(None);
        };
        // Py_ssize_t's bound.
        if acc > (i64::MAX as u64 - u64::from(d)) / 10 {
            return Err("Too many decimal digits in format string".into());
        }
        acc = acc * 10 + u64::from(d);
    }
    Ok(Some(acc))
}

impl RawField {
    /// Python's `output_markup` up to rendering: the field's object, conversion and spec.
    fn resolve(self, numbering: &mut Numbering, next_auto: &mut u64) -> Result<Field, String> {
        let split = self.name.find(['.', '[']).unwrap_or(self.name.len());
        let (first, rest) = self.name.split_at(split);
        let number = get_integer(first)?;
        let empty = first.is_empty();
        if empty || number.is_some() {
            if *numbering == Numbering::Init {
                *numbering = if empty {
                    Numbering::Auto
                } else {
                    Numbering::Manual
                };
            }
            if *numbering == Numbering::Manual && empty {
                return Err(
                    "cannot switch from manual field specification to automatic \
                            field numbering"
                        .into(),
                );
            }
            if *numbering == Numbering::Auto && !empty {
                return Err("cannot switch from automatic field numbering to manual \
                            field specification"
                    .into());
            }
        }
        let index = if empty {
            let i = *next_auto;
            *next_auto += 1;
            i
        } else {
            match number {
                Some(i) => i,
                None => return Err(py_repr_str(first)),
            }
        };
        if index != 0 {
            return Err(format!(
                "Replacement index {index} out of range for positional args tuple"
            ));
        }
        if !rest.is_empty() {
            return Err("attribute and item access are not served".into());
        }
        let to_str = match self.conversion {
            None => false,
            Some('s') => true,
            Some(c @ ('r' | 'a')) => return Err(format!("conversion !{c} is not served")),
            Some(c) if c > ' ' && c < '\x7f' => {
                return Err(format!("Unknown conversion specifier {c}"));
            }
            Some(c) => {
                return Err(format!(
                    "Unknown conversion specifier \\x{:x}",
                    u32::from(c)
                ));
            }
        };
        if self.expanding {
            return Err("nested replacement fields in a format spec are not served".into());
        }
        let spec = if self.spec.is_empty() {
            Spec::default()
        } else {
            parse_spec(&self.spec)?
        };
        Ok(Field {
            to_str,
            text: self.spec,
            spec,
        })
    }
}

/// Python's `repr` of a `str`: the text of a `KeyError`.
fn py_repr_str(text: &str) -> String {
    let quote = if text.contains('\'') && !text.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::new();
    out.push(quote);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if u32::from(c) < 0x20 || (0x7f..=0xa0).contains(&u32::from(c)) || c == '\u{ad}' => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python's `parse_internal_render_format_spec`, up to what depends on the value's type.
fn parse_spec(text: &str) -> Result<Spec, String> {
    let s: Vec<char> = text.chars().collect();
    let is_align = |c: char| matches!(c, '<' | '>' | '=' | '^');
    let mut spec = Spec::default();
    let mut pos = 0;
    if s.len() >= 2 && is_align(s[1]) {
        spec.fill = Some(s[0]);
        spec.align = Some(s[1]);
        pos = 2;
    } else if !s.is_empty() && is_align(s[0]) {
        spec.align = Some(s[0]);
        pos = 1;
    }
    if pos < s.len() && matches!(s[pos], '+' | '-' | ' ') {
        spec.sign = Some(s[pos]);
        pos += 1;
    }
    if pos < s.len() && s[pos] == 'z' {
        spec.no_neg_0 = true;
        pos += 1;
    }
    if pos < s.len() && s[pos] == '#' {
        spec.alternate = true;
        pos += 1;
    }
    if spec.fill.is_none() && pos < s.len() && s[pos] == '0' {
        spec.zero = true;
        pos += 1;
    }
    spec.width = spec_integer(&s, &mut pos)?;
    if pos < s.len() && s[pos] == ',' {
        spec.grouping = Some(',');
        pos += 1;
    }
    if pos < s.len() && s[pos] == '_' {
        if spec.grouping.is_some() {
            return Err("Cannot specify both ',' and '_'.".into());
        }
        spec.grouping = Some('_');
        pos += 1;
    }
    if pos < s.len() && s[pos] == ',' && spec.grouping == Some('_') {
        return Err("Cannot specify both ',' and '_'.".into());
    }
    if pos < s.len() && s[pos] == '.' {
        pos += 1;
        spec.precision = spec_integer(&s, &mut pos)?;
        if spec.precision.is_none() {
            return Err("Format specifier missing precision".into());
        }
    }
    if s.len() - pos > 1 {
        return Err(format!("Invalid format specifier '{text}'"));
    }
    if pos < s.len() {
        spec.ty = Some(s[pos]);
    }
    if let (Some(sep), Some(ty)) = (spec.grouping, spec.ty) {
        check_grouping(sep, ty)?;
    }
    Ok(spec)
}

/// The spec's width or precision: ASCII digits, bounded by [`MAX_WIDTH`].
fn spec_integer(s: &[char], pos: &mut usize) -> Result<Option<usize>, String> {
    let start = *pos;
    while *pos < s.len() && s[*pos].is_ascii_digit() {
        *pos += 1;
    }
    let digits: String = s[start..*pos].iter().collect();
    match get_integer(&digits)? {
        None => Ok(None),
        Some(n) => match usize::try_from(n) {
            Ok(n) if n <= MAX_WIDTH => Ok(Some(n)),
            _ => Err(format!(
                "a width or precision above {MAX_WIDTH} is not served"
            )),
        },
    }
}

/// Python's check of a grouping against the type letter (the default one when none).
fn check_grouping(sep: char, ty: char) -> Result<(), String> {
    match ty {
        'd' | 'e' | 'f' | 'g' | 'E' | 'G' | '%' | 'F' => Ok(()),
        'b' | 'o' | 'x' | 'X' if sep == '_' => Ok(()),
        _ => Err(format!("Cannot specify '{sep}' with {}.", quoted_code(ty))),
    }
}

/// A type letter as Python's messages quote it: `'x'`, or `'\xe9'` outside printable ASCII.
fn quoted_code(ty: char) -> String {
    if ty > ' ' && ty < '\u{80}' {
        format!("'{ty}'")
    } else {
        format!("'\\x{:x}'", u32::from(ty))
    }
}

/// Python's `Unknown format code …` message.
fn unknown_code(ty: char, type_name: &str) -> String {
    format!(
        "Unknown format code {} for object of type '{type_name}'",
        quoted_code(ty)
    )
}

impl Field {
    /// Appends the value formatted by this field (`format(value, spec)`).
    fn render(&self, value: &PyValue, out: &mut String) -> Result<(), String> {
        let converted;
        let value = if self.to_str {
            converted = PyValue::Str(py_str(value));
            &converted
        } else {
            value
        };
        if self.text.is_empty() {
            out.push_str(&py_str(value));
            return Ok(());
        }
        let spec = &self.spec;
        match value {
            PyValue::Int(i) => match spec.ty.unwrap_or('d') {
                'b' | 'c' | 'd' | 'o' | 'x' | 'X' | 'n' => format_int(*i, spec, out),
                'e' | 'E' | 'f' | 'F' | 'g' | 'G' | '%' => {
                    #[expect(
                        clippy::cast_precision_loss,
                        reason = "Python's float(int): rounded to nearest, as `as` does"
                    )]
                    let x = *i as f64;
                    format_float(x, spec, out);
                    Ok(())
                }
                ty => Err(unknown_code(ty, "int")),
            },
            PyValue::Float(x) => match spec.ty {
                None | Some('e' | 'E' | 'f' | 'F' | 'g' | 'G' | 'n' | '%') => {
                    format_float(*x, spec, out);
                    Ok(())
                }
                Some(ty) => Err(unknown_code(ty, "float")),
            },
            PyValue::Str(s) => format_str(s, spec, out),
        }
    }
}

/// Python's `str()` of the value.
fn py_str(value: &PyValue) -> String {
    match value {
        PyValue::Int(i) => i.to_string(),
        PyValue::Float(x) => py_repr_float(*x),
        PyValue::Str(s) => s.clone(),
    }
}

/// The fill and alignment in force: `0` without a fill means fill `0`, and `=` for numbers
/// when no alignment is given.
fn fill_align(spec: &Spec, default_align: char) -> (char, char) {
    let mut fill = spec.fill.unwrap_or(' ');
    let mut align = spec.align.unwrap_or(default_align);
    if spec.zero {
        fill = '0';
        if spec.align.is_none() && default_align == '>' {
            align = '=';
        }
    }
    (fill, align)
}

/// Python's `format_string_internal`.
fn format_str(s: &str, spec: &Spec, out: &mut String) -> Result<(), String> {
    let ty = spec.ty.unwrap_or('s');
    if let Some(sep) = spec.grouping {
        check_grouping(sep, ty)?;
    }
    if ty != 's' {
        return Err(unknown_code(ty, "str"));
    }
    match spec.sign {
        Some(' ') => return Err("Space not allowed in string format specifier".into()),
        Some(_) => return Err("Sign not allowed in string format specifier".into()),
        None => {}
    }
    if spec.no_neg_0 {
        return Err("Negative zero coercion (z) not allowed in string format specifier".into());
    }
    if spec.alternate {
        return Err("Alternate form (#) not allowed in string format specifier".into());
    }
    let (fill, align) = fill_align(spec, '<');
    if align == '=' {
        return Err("'=' alignment not allowed in string format specifier".into());
    }
    let mut len = s.chars().count();
    let text: &str = match spec.precision {
        Some(p) if p < len => {
            len = p;
            s.char_indices().nth(p).map_or(s, |(i, _)| &s[..i])
        }
        _ => s,
    };
    let pad = spec.width.unwrap_or(0).saturating_sub(len);
    let left = match align {
        '>' => pad,
        '^' => pad / 2,
        _ => 0,
    };
    push_fill(out, fill, left);
    out.push_str(text);
    push_fill(out, fill, pad - left);
    Ok(())
}

fn push_fill(out: &mut String, fill: char, n: usize) {
    out.extend(std::iter::repeat_n(fill, n));
}

/// Python's `format_long_internal` (types `b c d o x X n`).
fn format_int(i: i128, spec: &Spec, out: &mut String) -> Result<(), String> {
    if spec.precision.is_some() {
        return Err("Precision not allowed in integer format specifier".into());
    }
    if spec.no_neg_0 {
        return Err("Negative zero coercion (z) not allowed in integer format specifier".into());
    }
    let ty = spec.ty.unwrap_or('d');
    let (fill, align) = fill_align(spec, '>');
    let mut number = Number {
        negative: i < 0,
        prefix: "",
        digits: String::new(),
        decimal: false,
        remainder: String::new(),
    };
    let magnitude = i.unsigned_abs();
    let mut group = 3;
    match ty {
        'c' => {
            if spec.sign.is_some() {
                return Err("Sign not allowed with integer format specifier 'c'".into());
            }
            if spec.alternate {
                return Err(
                    "Alternate form (#) not allowed with integer format specifier 'c'".into(),
                );
            }
            // PyLong_AsLong first, then the code point's range.
            if i64::try_from(i).is_err() {
                return Err("Python int too large to convert to C long".into());
            }
            let c = u32::try_from(i)
                .ok()
                .filter(|&c| c <= 0x10_ffff)
                .ok_or("%c arg not in range(0x110000)")?;
            let c = char::from_u32(c).ok_or("a lone surrogate ({:c}) is not served")?;
            number.remainder.push(c);
        }
        'b' => {
            number.prefix = "0b";
            number.digits = format!("{magnitude:b}");
            group = 4;
        }
        'o' => {
            number.prefix = "0o";
            number.digits = format!("{magnitude:o}");
            group = 4;
        }
        'x' => {
            number.prefix = "0x";
            number.digits = format!("{magnitude:x}");
            group = 4;
        }
        'X' => {
            number.prefix = "0X";
            number.digits = format!("{magnitude:X}");
            group = 4;
        }
        _ => number.digits = magnitude.to_string(),
    }
    if !spec.alternate {
        number.prefix = "";
    }
    // 'n' is the C locale's: no grouping.
    let grouping = if ty == 'n' {
        None
    } else {
        spec.grouping.map(|sep| (sep, group))
    };
    number.write(spec, fill, align, grouping, out);
    Ok(())
}

/// Python's `format_float_internal` (types `e E f F g G n %` and none).
fn format_float(x: f64, spec: &Spec, out: &mut String) {
    let mut flags = Flags {
        add_dot_0: false,
        alternate: spec.alternate,
        no_neg_0: spec.no_neg_0,
        upper: false,
    };
    let mut x = x;
    let mut percent = false;
    let (code, default_precision) = match spec.ty {
        None => {
            flags.add_dot_0 = true;
            (FloatCode::Repr, 0)
        }
        Some('e') => (FloatCode::Exp, 6),
        Some('f') => (FloatCode::Fixed, 6),
        Some('%') => {
            x *= 100.0;
            percent = true;
            (FloatCode::Fixed, 6)
        }
        Some('E') => {
            flags.upper = true;
            (FloatCode::Exp, 6)
        }
        Some('F') => {
            flags.upper = true;
            (FloatCode::Fixed, 6)
        }
        Some('G') => {
            flags.upper = true;
            (FloatCode::General, 6)
        }
        // 'g' and 'n' (the C locale's 'g').
        Some(_) => (FloatCode::General, 6),
    };
    let (code, precision) = match spec.precision {
        None => (code, default_precision),
        Some(p) if code == FloatCode::Repr => (FloatCode::General, p),
        Some(p) => (code, p),
    };
    let mut buf = format_float_short(x, code, precision, flags);
    if percent {
        buf.push('%');
    }
    let (negative, body) = match buf.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, buf.as_str()),
    };
    let int_len = body.bytes().take_while(u8::is_ascii_digit).count();
    let (digits, after) = body.split_at(int_len);
    let (decimal, remainder) = match after.strip_prefix('.') {
        Some(rest) => (true, rest),
        None => (false, after),
    };
    let number = Number {
        negative,
        prefix: "",
        digits: digits.to_string(),
        decimal,
        remainder: remainder.to_string(),
    };
    let (fill, align) = fill_align(spec, '>');
    let grouping = if spec.ty == Some('n') {
        None
    } else {
        spec.grouping.map(|sep| (sep, 3))
    };
    number.write(spec, fill, align, grouping, out);
}

/// A number in pieces, as Python's `calc_number_widths` and `fill_number` lay it out:
/// `<lpad><sign><prefix><spad><grouped digits><.><remainder><rpad>`.
struct Number {
    negative: bool,
    prefix: &'static str,
    /// The integer digits, grouped and zero padded.
    digits: String,
    decimal: bool,
    /// After the point: fraction, exponent, `%`, or all of `inf`/`nan`/the `c` character.
    remainder: String,
}

impl Number {
    fn write(
        &self,
        spec: &Spec,
        fill: char,
        align: char,
        grouping: Option<(char, usize)>,
        out: &mut String,
    ) {
        let sign = match (spec.sign, self.negative) {
            (_, true) => Some('-'),
            (Some('+'), false) => Some('+'),
            (Some(' '), false) => Some(' '),
            _ => None,
        };
        let fixed = usize::from(sign.is_some())
            + self.prefix.len()
            + usize::from(self.decimal)
            + self.remainder.chars().count();
        let min_width = match spec.width {
            Some(w) if fill == '0' && align == '=' => w.saturating_sub(fixed),
            _ => 0,
        };
        let grouped = if self.digits.is_empty() {
            String::new()
        } else {
            group_digits(&self.digits, min_width, grouping)
        };
        let pad = spec
            .width
            .unwrap_or(0)
            .saturating_sub(fixed + grouped.chars().count());
        let (left, middle, right) = match align {
            '<' => (0, 0, pad),
            '^' => (pad / 2, 0, pad - pad / 2),
            '=' => (0, pad, 0),
            _ => (pad, 0, 0),
        };
        push_fill(out, fill, left);
        out.extend(sign);
        out.push_str(self.prefix);
        push_fill(out, fill, middle);
        out.push_str(&grouped);
        if self.decimal {
            out.push('.');
        }
        out.push_str(&self.remainder);
        push_fill(out, fill, right);
    }
}

/// Python's `_PyUnicode_InsertThousandsGrouping`: `digits` in groups of `size` from the right
/// with `sep` between them, zero padded to at least `min_width` (separators in the padding).
fn group_digits(digits: &str, min_width: usize, grouping: Option<(char, usize)>) -> String {
    let Some((sep, size)) = grouping else {
        let mut out = "0".repeat(min_width.saturating_sub(digits.len()));
        out.push_str(digits);
        return out;
    };
    let digits = digits.as_bytes();
    // Built from the right, reversed at the end.
    let mut rev: Vec<char> = Vec::new();
    let mut remaining = digits.len();
    let mut min_width = isize::try_from(min_width).unwrap_or(isize::MAX);
    let mut use_sep = false;
    loop {
        let wanted = usize::try_from(min_width)
            .unwrap_or(0)
            .max(remaining)
            .max(1);
        let l = size.min(wanted);
        let chars = remaining.min(l);
        let zeros = l - chars;
        if use_sep {
            rev.push(sep);
        }
        for k in 0..chars {
            rev.push(char::from(digits[remaining - 1 - k]));
        }
        rev.extend(std::iter::repeat_n('0', zeros));
        use_sep = true;
        remaining -= chars;
        min_width -= isize::try_from(l).unwrap_or(isize::MAX);
        if remaining == 0 && min_width <= 0 {
            break;
        }
        min_width -= 1;
    }
    rev.iter().rev().collect()
}

/// The conversions of Python's `PyOS_double_to_string` used by `format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FloatCode {
    /// `e`: `precision` digits after the point, always an exponent.
    Exp,
    /// `f`: `precision` digits after the point.
    Fixed,
    /// `g`: `precision` significant digits, trailing zeros dropped.
    General,
    /// `r`: `repr`, the shortest round trip.
    Repr,
}

/// The flags of `PyOS_double_to_string`, and the upper-case strings of `E F G`.
#[derive(Debug, Clone, Copy, Default)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "Python's flag bits, kept one to one with its C"
)]
struct Flags {
    add_dot_0: bool,
    alternate: bool,
    no_neg_0: bool,
    upper: bool,
}

/// The digits (no leading or trailing zeros, `"0"` for zero) and decimal point position of
/// `x` (finite, not negative), as David Gay's `dtoa` gives them: mode 0 shortest, mode 2
/// `ndigits` significant digits, mode 3 `ndigits` digits after the point.
fn dtoa(x: f64, code: FloatCode, ndigits: usize) -> (String, i64) {
    if x == 0.0 {
        return ("0".into(), 1);
    }
    let (digits, decpt) = match code {
        FloatCode::Repr | FloatCode::Exp | FloatCode::General => {
            let text = if code == FloatCode::Repr {
                format!("{x:e}")
            } else {
                format!("{:.*e}", ndigits.saturating_sub(1), x)
            };
            let (mantissa, exp) = text.split_once('e').unwrap_or((&text, "0"));
            let exp: i64 = exp.parse().unwrap_or(0);
            (mantissa.replace('.', ""), exp + 1)
        }
        FloatCode::Fixed => {
            let text = format!("{x:.ndigits$}");
            let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
            let all = format!("{int}{frac}");
            let lead = all.bytes().take_while(|&b| b == b'0').count();
            let decpt = i64::try_from(int.len()).unwrap_or(0) - i64::try_from(lead).unwrap_or(0);
            (all[lead..].to_string(), decpt)
        }
    };
    let digits = digits.trim_end_matches('0').to_string();
    if digits.is_empty() {
        // Rounded to nothing (mode 3 only): dtoa's decpt is -ndigits.
        return (digits, -i64::try_from(ndigits).unwrap_or(0));
    }
    (digits, decpt)
}

/// Python's `format_float_short`: `x` laid out from its `dtoa` digits.
fn format_float_short(x: f64, code: FloatCode, precision: usize, flags: Flags) -> String {
    let mut out = String::new();
    if x.is_nan() {
        return if flags.upper { "NAN" } else { "nan" }.into();
    }
    if x.is_infinite() {
        if x < 0.0 {
            out.push('-');
        }
        out.push_str(if flags.upper { "INF" } else { "inf" });
        return out;
    }
    let to_i64 = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    // `precision` as PyOS_double_to_string adjusts it.
    let precision = match code {
        FloatCode::Exp => precision + 1,
        FloatCode::General => precision.max(1),
        FloatCode::Fixed | FloatCode::Repr => precision,
    };
    let (digits, mut decpt) = dtoa(x.abs(), code, precision);
    let mut negative = x.is_sign_negative();
    if flags.no_neg_0 && negative && (digits.is_empty() || digits == "0") {
        negative = false;
    }
    let digits_len = to_i64(digits.len());
    let precision = to_i64(precision);
    let mut use_exp = false;
    let mut vdigits_end = digits_len;
    match code {
        FloatCode::Exp => {
            use_exp = true;
            vdigits_end = precision;
        }
        FloatCode::Fixed => vdigits_end = decpt + precision,
        FloatCode::General => {
            let limit = if flags.add_dot_0 {
                precision - 1
            } else {
                precision
            };
            if decpt <= -4 || decpt > limit {
                use_exp = true;
            }
            if flags.alternate {
                vdigits_end = precision;
            }
        }
        FloatCode::Repr => {
            if decpt <= -4 || decpt > 16 {
                use_exp = true;
            }
        }
    }
    let mut exp = 0;
    if use_exp {
        exp = decpt - 1;
        decpt = 1;
    }
    let vdigits_start = if decpt <= 0 { decpt - 1 } else { 0 };
    vdigits_end = if !use_exp && flags.add_dot_0 {
        vdigits_end.max(decpt + 1)
    } else {
        vdigits_end.max(decpt)
    };
    let zeros = |out: &mut String, n: i64| {
        out.extend(std::iter::repeat_n('0', usize::try_from(n).unwrap_or(0)));
    };
    if negative {
        out.push('-');
    }
    if decpt <= 0 {
        zeros(&mut out, decpt - vdigits_start);
        out.push('.');
        zeros(&mut out, -decpt);
    } else {
        zeros(&mut out, -vdigits_start);
    }
    if 0 < decpt && decpt <= digits_len {
        let point = usize::try_from(decpt).unwrap_or(0);
        out.push_str(&digits[..point]);
        out.push('.');
        out.push_str(&digits[point..]);
    } else {
        out.push_str(&digits);
    }
    if digits_len < decpt {
        zeros(&mut out, decpt - digits_len);
        out.push('.');
        zeros(&mut out, vdigits_end - decpt);
    } else {
        zeros(&mut out, vdigits_end - digits_len);
    }
    if out.ends_with('.') && !flags.alternate {
        out.pop();
    }
    if use_exp {
        out.push(if flags.upper { 'E' } else { 'e' });
        let _ = write!(out, "{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{MAX_RENDERED, PyFormat, PyValue, py_repr_float};

    #[test]
    fn a_rendering_is_bounded() {
        // Found by the `pyvisa_sim` fuzz target: each width within MAX_WIDTH, repeated.
        let mut out = String::from("kept");
        let sixteen = PyFormat::parse(&"{0:65536}".repeat(16)).unwrap();
        sixteen.render(&PyValue::Int(1), &mut out).unwrap();
        assert_eq!(out.len(), 4 + MAX_RENDERED);
        let mut out = String::from("kept");
        let seventeen = PyFormat::parse(&"{0:65536}".repeat(17)).unwrap();
        let e = seventeen.render(&PyValue::Int(1), &mut out).unwrap_err();
        assert!(e.contains("longer than 1048576 bytes"), "{e}");
        assert_eq!(out, "kept");
        // A long value, many times.
        let many = PyFormat::parse(&"{0}".repeat(300)).unwrap();
        let value = PyValue::Str("x".repeat(4096));
        assert!(many.render(&value, &mut String::new()).is_err());
    }

    /// A value of the generated tables: a float by its bits (`-0.0`, NaN exactly).
    #[derive(Debug, Clone, Copy)]
    pub(super) enum V {
        I(i128),
        F(u64),
        S(&'static str),
    }

    #[expect(
        clippy::unreadable_literal,
        reason = "generated: bits and values as Python prints them"
    )]
    mod cases {
        use super::V;
        include!("format_cases.rs");
    }

    fn value(v: V) -> PyValue {
        match v {
            V::I(i) => PyValue::Int(i),
            V::F(b) => PyValue::Float(f64::from_bits(b)),
            V::S(s) => PyValue::Str(s.to_string()),
        }
    }

    fn format(text: &str, v: &PyValue) -> Result<String, String> {
        let f = PyFormat::parse(text)?;
        let mut out = String::from("before:");
        f.render(v, &mut out)?;
        Ok(out.split_off("before:".len()))
    }

    #[test]
    fn every_case_is_pythons() {
        let mut wrong = Vec::new();
        for &(text, v, expected) in cases::CASES {
            let got = format(text, &value(v));
            let expected = expected.map(str::to_string).map_err(str::to_string);
            if got != expected {
                wrong.push(format!("{text:?} {v:?}: got {got:?}, Python {expected:?}"));
            }
        }
        assert!(
            wrong.is_empty(),
            "{} of {} cases differ:\n{}",
            wrong.len(),
            cases::CASES.len(),
            wrong.join("\n")
        );
    }

    #[test]
    fn repr_is_pythons() {
        for &(bits, repr) in cases::REPRS {
            assert_eq!(py_repr_float(f64::from_bits(bits)), repr, "{bits:#x}");
        }
    }

    #[test]
    fn parse_errors_are_pythons() {
        for &(text, message) in cases::PARSE_ERRORS {
            assert_eq!(PyFormat::parse(text), Err(message.to_string()), "{text:?}");
        }
    }

    #[test]
    fn what_is_not_served_is_refused_at_parse() {
        for (text, message) in [
            ("{0.real}", "attribute and item access are not served"),
            ("{0[0]}", "attribute and item access are not served"),
            ("{[}]}", "attribute and item access are not served"),
            ("{!r}", "conversion !r is not served"),
            ("{0!a:>5}", "conversion !a is not served"),
            (
                "{:{}}",
                "nested replacement fields in a format spec are not served",
            ),
            (
                "{:>{0}}",
                "nested replacement fields in a format spec are not served",
            ),
            ("{:70000}", "a width or precision above 65536 is not served"),
        ] {
            assert_eq!(PyFormat::parse(text), Err(message.to_string()), "{text:?}");
        }
    }

    #[test]
    fn a_failed_render_leaves_the_output_alone() {
        let f = PyFormat::parse("V={:d}").expect("parses");
        let mut out = String::from("x");
        assert!(f.render(&PyValue::Float(1.0), &mut out).is_err());
        assert_eq!(out, "x");
        assert!(f.has_fields());
        assert!(!PyFormat::parse("a{{}}").expect("parses").has_fields());
    }
}
