//! The one error a parse can end with, shaped like InfluxDB's so clients that match on the
//! text keep working.

/// Why a query did not parse, and where.
///
/// Displays as `<message> at line L, char C`, InfluxDB 1.x's shape, e.g.
/// `found FROM, expected identifier, string, number, bool at line 1, char 8`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at line {line}, char {column}")]
pub struct ParseError {
    /// What went wrong, without the position.
    pub message: String,
    /// 1-based line of the offending token.
    pub line: usize,
    /// 1-based character (not byte) within that line.
    pub column: usize,
    /// Byte offset of the offending token in the query text.
    pub offset: usize,
}

impl ParseError {
    /// An error at byte `offset` of `src`; line and column are derived from it.
    pub(crate) fn at(src: &str, offset: usize, message: impl Into<String>) -> Self {
        let offset = offset.min(src.len());
        let before = src.get(..offset).unwrap_or(src);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
        Self {
            message: message.into(),
            line,
            column,
            offset,
        }
    }

    /// InfluxDB's `found X, expected Y, Z` error.
    pub(crate) fn expected(src: &str, offset: usize, found: &str, expected: &[&str]) -> Self {
        let mut error = Self::at(
            src,
            offset,
            format!("found {found}, expected {}", expected.join(", ")),
        );
        // InfluxDB's scanner reports the end of input one character further on.
        if found == "EOF" {
            error.column += 1;
        }
        error
    }
}
