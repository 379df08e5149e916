//! Errors for one bad line: where it is, what it said, and why it was rejected.

use std::fmt;

use crate::Precision;

/// `original_line` in a [`LineError`] is cut to at most this many bytes (on a char boundary),
/// so a multi-megabyte garbage line does not become a multi-megabyte error response.
pub const MAX_ORIGINAL_LINE_BYTES: usize = 1024;

/// Values quoted inside error messages (a field value, a timestamp) are cut to this many bytes.
const MAX_QUOTED_VALUE_BYTES: usize = 64;

/// One line that could not be parsed.
///
/// Displays as `error parsing line 3 (1-based): <reason>`, the shape InfluxDB uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1-based physical line number (comments and blank lines count).
    pub line_number: usize,
    /// The physical line as sent, without its line ending, cut to
    /// [`MAX_ORIGINAL_LINE_BYTES`].
    pub original_line: String,
    /// Why the line was rejected.
    pub kind: LineErrorKind,
}

impl LineError {
    /// An error for `line_number` whose text is `line` (cut to [`MAX_ORIGINAL_LINE_BYTES`]).
    pub fn new(line_number: usize, line: &str, kind: LineErrorKind) -> Self {
        let line = line.strip_suffix('\r').unwrap_or(line);
        Self {
            line_number,
            original_line: truncate(line, MAX_ORIGINAL_LINE_BYTES).to_owned(),
            kind,
        }
    }
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "error parsing line {} (1-based): {}",
            self.line_number, self.kind
        )
    }
}

impl std::error::Error for LineError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.kind)
    }
}

/// The reason a line was rejected; one variant per cause.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineErrorKind {
    /// The line starts with `,` (after leading whitespace): there is no measurement name.
    #[error("missing measurement")]
    MissingMeasurement,

    /// A measurement, tag key or field key contains a NUL byte.
    #[error("{what} contains a NUL character")]
    NulInName {
        /// "measurement", "tag key" or "field key".
        what: &'static str,
    },

    /// The measurement (and tags) are not followed by any `key=value` field.
    #[error("no fields: a line needs at least one field (key=value) after the measurement")]
    NoFields,

    /// `m,=v` or `m, f=1`: a comma in the tag set not followed by a key.
    #[error("missing tag key (expected key=value after ',')")]
    EmptyTagKey,

    /// `m,host f=1` or `m,host= f=1`.
    #[error("missing tag value for key '{key}'")]
    MissingTagValue {
        /// The tag key.
        key: String,
    },

    /// The same tag key appears twice in one line.
    #[error("duplicate tag key '{key}'")]
    DuplicateTag {
        /// The repeated key.
        key: String,
    },

    /// A tag named `time` (the timestamp column's name).
    #[error("tag key 'time' is not allowed: 'time' is the timestamp column")]
    TimeTag,

    /// `m =1`, `m f=1,` or `m f=1,,g=2`: a field without a key.
    #[error("missing field key (expected key=value)")]
    EmptyFieldKey,

    /// `m f` or `m f,g=1`: a field key not followed by `=`.
    #[error("missing '=' after field key '{key}'")]
    MissingFieldEquals {
        /// The field key.
        key: String,
    },

    /// `m f=` or `m f=,g=1`.
    #[error("missing field value for '{key}'")]
    MissingFieldValue {
        /// The field key.
        key: String,
    },

    /// A value that looks like a float but is not one (or overflows `f64`).
    #[error("invalid float '{value}' for field '{key}': {reason}")]
    InvalidFloat {
        /// The field key.
        key: String,
        /// The value as written (cut to 64 bytes).
        value: String,
        /// "invalid syntax" or "out of range".
        reason: &'static str,
    },

    /// A value with the `i` suffix that is not an `i64`.
    #[error("invalid integer '{value}' for field '{key}': {reason}")]
    InvalidInteger {
        /// The field key.
        key: String,
        /// The value as written, suffix included (cut to 64 bytes).
        value: String,
        /// "invalid syntax" or "out of range".
        reason: &'static str,
    },

    /// A value with the `u` suffix that is not a `u64`.
    #[error("invalid unsigned integer '{value}' for field '{key}': {reason}")]
    InvalidUnsigned {
        /// The field key.
        key: String,
        /// The value as written, suffix included (cut to 64 bytes).
        value: String,
        /// "invalid syntax", "negative" or "out of range".
        reason: &'static str,
    },

    /// A value that is none of the field types (`abc`, `+1`, `tru`, `nan`).
    #[error(
        "invalid value '{value}' for field '{key}': expected a float (1.5), an integer (1i), \
         an unsigned integer (1u), a boolean (true/false) or a double-quoted string"
    )]
    InvalidFieldValue {
        /// The field key.
        key: String,
        /// The value as written (cut to 64 bytes).
        value: String,
    },

    /// A string value whose closing `"` never comes.
    #[error("unterminated quoted string for field '{key}'")]
    UnterminatedString {
        /// The field key.
        key: String,
    },

    /// `f="a"b`: something other than `,`, a space or the line end after a closing quote.
    #[error("unexpected '{found}' after the quoted string of field '{key}'")]
    ContentAfterString {
        /// The field key.
        key: String,
        /// The character found.
        found: char,
    },

    /// The same field key twice in one line with values of different types.
    #[error(
        "field '{key}' is specified more than once with conflicting types ({first} and {second})"
    )]
    ConflictingFieldTypes {
        /// The field key.
        key: String,
        /// Type of the earlier occurrence.
        first: &'static str,
        /// Type of the later occurrence.
        second: &'static str,
    },

    /// The only field is named `time`, which is dropped, leaving no field.
    #[error(
        "field key 'time' is not allowed ('time' is the timestamp column) and it was the only field"
    )]
    TimeOnlyField,

    /// The timestamp is not a signed 64-bit integer.
    #[error("invalid timestamp '{value}': {reason}")]
    InvalidTimestamp {
        /// The timestamp as written (cut to 64 bytes).
        value: String,
        /// "expected an integer" or "out of range".
        reason: &'static str,
    },

    /// The timestamp does not fit in `i64` nanoseconds at the request's precision.
    #[error("timestamp {value} out of range for precision {precision}")]
    TimestampOutOfRange {
        /// The timestamp as written.
        value: i64,
        /// The precision it was scaled by.
        precision: Precision,
    },

    /// Something after the timestamp (`m f=1 1 2`) or stray characters at the line end.
    #[error("unexpected content '{content}' at end of line")]
    TrailingContent {
        /// What was found (cut to 64 bytes).
        content: String,
    },
}

/// Cuts `s` to at most `max` bytes on a char boundary.
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A value quoted in an error message: cut to 64 bytes, marked with `…` if cut.
pub(crate) fn quoted(s: &str) -> String {
    let t = truncate(s, MAX_QUOTED_VALUE_BYTES);
    if t.len() == s.len() {
        s.to_owned()
    } else {
        format!("{t}…")
    }
}
