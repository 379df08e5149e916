//! Writing line protocol: the escaping rules that [`crate::parse_lines`] undoes, and a
//! canonical `Display` for [`ParsedLine`] and [`FieldValue`].
//!
//! For any measurement, key or value the parser can return, `parse(escape(x)) == x`, with
//! these limits of the format itself: names and tag values cannot contain `\n`; a
//! measurement cannot start with `#` (the line would be a comment) nor with a space, tab or
//! `\r` that is not escaped (a leading space is escaped here; tabs and `\r` cannot be).

use std::fmt::{self, Write};

use crate::{FieldValue, ParsedLine};

/// Appends `s` escaped as a measurement (`,` space `\`).
pub fn escape_measurement(s: &str, out: &mut String) {
    escape_into(s, out, |c| matches!(c, ',' | ' ' | '\\'));
}

/// Appends `s` escaped as a tag key, tag value or field key (`,` `=` space `\`).
pub fn escape_key(s: &str, out: &mut String) {
    escape_into(s, out, |c| matches!(c, ',' | '=' | ' ' | '\\'));
}

/// Appends `s` escaped as the inside of a quoted string value (`"` `\`), without the quotes.
pub fn escape_string_value(s: &str, out: &mut String) {
    escape_into(s, out, |c| matches!(c, '"' | '\\'));
}

fn escape_into(s: &str, out: &mut String, special: impl Fn(char) -> bool) {
    out.reserve(s.len());
    for c in s.chars() {
        if special(c) {
            out.push('\\');
        }
        out.push(c);
    }
}

fn write_escaped(
    f: &mut fmt::Formatter<'_>,
    s: &str,
    escape: fn(&str, &mut String),
) -> fmt::Result {
    let mut buf = String::new();
    escape(s, &mut buf);
    f.write_str(&buf)
}

/// Canonical line protocol of the value: `1.5`, `1i`, `1u`, `true`, `"..."`. Floats use
/// Rust's shortest round-trip formatting, so parsing the text gives back the same `f64`.
impl fmt::Display for FieldValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::F64(v) => write!(f, "{v}"),
            Self::I64(v) => write!(f, "{v}i"),
            Self::U64(v) => write!(f, "{v}u"),
            Self::Bool(v) => write!(f, "{v}"),
            Self::String(s) => {
                f.write_char('"')?;
                write_escaped(f, s, escape_string_value)?;
                f.write_char('"')
            }
        }
    }
}

/// Canonical line protocol of the line (without a trailing newline): what the parser reads
/// back as an equal line.
impl fmt::Display for ParsedLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_escaped(f, &self.measurement, escape_measurement)?;
        for (k, v) in &self.tags {
            f.write_char(',')?;
            write_escaped(f, k, escape_key)?;
            f.write_char('=')?;
            write_escaped(f, v, escape_key)?;
        }
        for (i, (k, v)) in self.fields.iter().enumerate() {
            f.write_char(if i == 0 { ' ' } else { ',' })?;
            write_escaped(f, k, escape_key)?;
            write!(f, "={v}")?;
        }
        if let Some(ts) = self.timestamp {
            write!(f, " {ts}")?;
        }
        Ok(())
    }
}
