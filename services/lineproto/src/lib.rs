//! ferrite-lineproto: the InfluxDB line protocol parser.
//!
//! Turns a write body (`/write`, `/api/v2/write`, `/api/v3/write_lp`) into typed lines that
//! borrow from the body, or into one precise [`LineError`] per bad line. It does no I/O and
//! knows nothing about schemas: the router validates column types against the catalog after
//! this crate has checked the syntax.
//!
//! ```text
//!   body: &str ──► Lines (iterator; one pass, one cursor over the bytes)
//!                   │
//!                   │  per physical line:
//!                   │    skip leading blanks ── blank line / `# comment` ──► skip, count the line
//!                   │    measurement ─► [,tag=value]* ─► ␠ field=value[,field=value]* ─► [␠ timestamp]
//!                   │    names: borrowed slices unless they hold a `\` escape (then owned)
//!                   │    checks: duplicate tag, `time` tag, duplicate field (last wins,
//!                   │            conflicting types rejected), `time` field (dropped)
//!                   │    timestamp × precision ─► nanoseconds (checked; `auto` guesses per line)
//!                   ▼
//!   Ok(ParsedLine { line_number, measurement, tags, fields, timestamp })
//!   Err(LineError { line_number, original_line, kind })  ──► resume at the next physical line
//! ```
//!
//! # Syntax accepted
//!
//! `measurement[,tag=value...] field=value[,field=value...] [timestamp]`, one point per line,
//! lines separated by `\n` (a `\r` before it is ignored).
//!
//! * **Escapes.** In the measurement `\,` `\ ` and `\\` are escapes; in tag keys, tag values and
//!   field keys also `\=`. A backslash before any other character is a literal backslash (so
//!   `a\b` is the three characters `a\b`). In quoted string values `\"` and `\\` are escapes and
//!   every other backslash is literal.
//! * **Field values.** Floats (`1`, `-1.5`, `1.`, `.5`, `1e10`, `-1.5E-3`; no `+` sign, no
//!   `inf`/`nan`, and a value that overflows `f64` is an error); integers `1i` (`i64`, overflow
//!   is an error); unsigned integers `1u` (`u64`); booleans `t T true True TRUE f F false False
//!   FALSE`; double-quoted strings. A quoted string may contain raw newlines (as in InfluxDB):
//!   the line then spans several physical lines and keeps the number of the first one.
//! * **Timestamp.** Optional signed integer. `None` means "the caller fills in now".
//! * **Whitespace.** Leading spaces, tabs and `\r` are skipped; a line that is then empty or
//!   starts with `#` is skipped. Sections are separated by one or more spaces. Trailing spaces,
//!   tabs and `\r` at the end of a line are ignored. Inside names a tab is an ordinary
//!   character. A UTF-8 byte-order mark (U+FEFF) at the start of a line is skipped like a
//!   leading blank, so a file saved with one parses, and no measurement starts with one.
//!
//! # Decisions where InfluxDB versions differ (all follow InfluxDB 3 / IOx unless noted)
//!
//! * Duplicate tag key in a line: error.
//! * Duplicate field key in a line: the last value wins if the types agree (kept at the first
//!   occurrence's position); different types are an error (IOx `mutable_batch_lp`
//!   semantics). The output never has duplicate field keys.
//! * Tag key `time`: error. Field key `time`: dropped (IOx strips it with a warning); a line
//!   whose only field is `time` is an error.
//! * NUL is rejected in measurement, tag keys and field keys (they become table and column
//!   names); it is allowed in tag values and string values.
//! * Deviations: `1.`, `.5`, trailing whitespace without a timestamp, and names whose decoded
//!   value ends in a backslash (`m\\`) are accepted (IOx rejects them); `\`+newline is not a
//!   line continuation; a comment ends at the newline even if it contains a quote; an infinite
//!   float is rejected (IOx accepts it).
//! * Errors count **physical** lines, 1-based, including comments and blank lines.
//!
//! # Invariants
//!
//! * The parser never panics and never reads past the body; every `Err` names the 1-based
//!   physical line it started on and parsing resumes at the following physical line.
//! * Line numbers of successive results strictly increase.
//! * A name or string value is `Cow::Borrowed` from the body unless it contained an escape.
//! * `ParsedLine` tags have no duplicate key and no `time` key; fields are non-empty, have no
//!   duplicate key and no `time` key; with a precision set, `timestamp` is in nanoseconds.

mod error;
pub mod escape;
mod parser;
mod precision;

pub use error::{LineError, LineErrorKind, MAX_ORIGINAL_LINE_BYTES};
pub use parser::{FieldValue, Lines, ParsedLine, parse_lines};
pub use precision::{InvalidPrecision, Precision, TimestampOutOfRange};

#[cfg(test)]
mod tests;
