//! The scanner: one token at a time from a byte offset, so the parser can rescan a `/` as the
//! start of a regex literal where an operand is expected (the only context-dependent token).

use crate::error::ParseError;

/// InfluxDB 1.x's reserved words. A bare identifier spelled like one of these (in any case)
/// is the keyword; it must be double-quoted to be used as a name.
const KEYWORDS: &[&str] = &[
    "ALL",
    "ALTER",
    "ANALYZE",
    "AND",
    "ANY",
    "AS",
    "ASC",
    "BEGIN",
    "BY",
    "CARDINALITY",
    "CONTINUOUS",
    "CREATE",
    "DATABASE",
    "DATABASES",
    "DEFAULT",
    "DELETE",
    "DESC",
    "DESTINATIONS",
    "DIAGNOSTICS",
    "DISTINCT",
    "DROP",
    "DURATION",
    "END",
    "EVERY",
    "EXACT",
    "EXPLAIN",
    "FALSE",
    "FIELD",
    "FOR",
    "FROM",
    "GRANT",
    "GRANTS",
    "GROUP",
    "GROUPS",
    "IN",
    "INF",
    "INSERT",
    "INTO",
    "KEY",
    "KEYS",
    "KILL",
    "LIMIT",
    "MEASUREMENT",
    "MEASUREMENTS",
    "NAME",
    "OFFSET",
    "ON",
    "OR",
    "ORDER",
    "PASSWORD",
    "POLICIES",
    "POLICY",
    "PRIVILEGES",
    "QUERIES",
    "QUERY",
    "READ",
    "REPLICATION",
    "RESAMPLE",
    "RETENTION",
    "REVOKE",
    "SELECT",
    "SERIES",
    "SET",
    "SHARD",
    "SHARDS",
    "SHOW",
    "SLIMIT",
    "SOFFSET",
    "STATS",
    "SUBSCRIPTION",
    "SUBSCRIPTIONS",
    "TAG",
    "TO",
    "TRUE",
    "USER",
    "USERS",
    "VALUES",
    "WHERE",
    "WITH",
    "WRITE",
];

/// The canonical (upper-case) keyword `word` spells, if any.
pub(crate) fn keyword(word: &str) -> Option<&'static str> {
    KEYWORDS
        .iter()
        .copied()
        .find(|k| k.eq_ignore_ascii_case(word))
}

pub(crate) const NANOS_PER_MICRO: i64 = 1_000;
pub(crate) const NANOS_PER_MILLI: i64 = 1_000_000;
pub(crate) const NANOS_PER_SECOND: i64 = 1_000_000_000;
pub(crate) const NANOS_PER_MINUTE: i64 = 60 * NANOS_PER_SECOND;
pub(crate) const NANOS_PER_HOUR: i64 = 60 * NANOS_PER_MINUTE;
pub(crate) const NANOS_PER_DAY: i64 = 24 * NANOS_PER_HOUR;
pub(crate) const NANOS_PER_WEEK: i64 = 7 * NANOS_PER_DAY;

/// What a token is. Literal values are decoded (escapes resolved, durations in nanoseconds);
/// integers and floats keep their text so the parser can fold a leading minus in first.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TokenKind {
    Eof,
    /// A bare identifier that is not a keyword.
    Ident(String),
    /// A double-quoted identifier, unescaped.
    QuotedIdent(String),
    /// A keyword, upper-case.
    Keyword(&'static str),
    /// A single-quoted string, unescaped.
    Str(String),
    /// Decimal digits.
    Integer,
    /// Digits with a decimal point.
    Number,
    /// A duration in nanoseconds (`1h30m`).
    Duration(i64),
    /// `$name`, without the `$`.
    BindParam(String),
    Eq,
    Neq,
    Lt,
    Lte,
    Gt,
    Gte,
    EqRegex,
    NeqRegex,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    BitAnd,
    BitOr,
    BitXor,
    Comma,
    LParen,
    RParen,
    Semicolon,
    Dot,
    DoubleColon,
    /// A character that starts no token.
    Illegal(char),
}

/// A token and the bytes `start..end` of the source it was read from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub kind: TokenKind,
    pub start: usize,
    pub end: usize,
}

impl Token {
    /// How an error names this token: `EOF`, the keyword, or its source text.
    pub fn describe<'a>(&self, src: &'a str) -> &'a str {
        match self.kind {
            TokenKind::Eof => "EOF",
            TokenKind::Keyword(k) => k,
            _ => src.get(self.start..self.end).unwrap_or(""),
        }
    }
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The character at byte `at`, if any.
fn char_at(src: &str, at: usize) -> Option<char> {
    src.get(at..).and_then(|s| s.chars().next())
}

/// The first byte at or after `pos` that is not whitespace or inside a comment.
fn skip_blanks(src: &str, mut pos: usize) -> Result<usize, ParseError> {
    loop {
        let rest = src.get(pos..).unwrap_or("");
        let trimmed = rest.trim_start();
        pos += rest.len() - trimmed.len();
        if trimmed.starts_with("--") {
            pos += trimmed.find('\n').unwrap_or(trimmed.len());
        } else if trimmed.starts_with("/*") {
            match trimmed.get(2..).and_then(|s| s.find("*/")) {
                Some(i) => pos += i + 4,
                None => return Err(ParseError::at(src, pos, "unterminated comment")),
            }
        } else {
            return Ok(pos);
        }
    }
}

/// The next token at or after byte `pos` (skipping blanks and comments).
pub(crate) fn next_token(src: &str, pos: usize) -> Result<Token, ParseError> {
    let start = skip_blanks(src, pos)?;
    let Some(c) = char_at(src, start) else {
        return Ok(Token {
            kind: TokenKind::Eof,
            start,
            end: start,
        });
    };
    let next = char_at(src, start + c.len_utf8());
    let punct = |kind, len: usize| {
        Ok(Token {
            kind,
            start,
            end: start + len,
        })
    };
    match (c, next) {
        ('=', Some('~')) => punct(TokenKind::EqRegex, 2),
        ('=', _) => punct(TokenKind::Eq, 1),
        ('!', Some('=')) => punct(TokenKind::Neq, 2),
        ('!', Some('~')) => punct(TokenKind::NeqRegex, 2),
        ('<', Some('>')) => punct(TokenKind::Neq, 2),
        ('<', Some('=')) => punct(TokenKind::Lte, 2),
        ('<', _) => punct(TokenKind::Lt, 1),
        ('>', Some('=')) => punct(TokenKind::Gte, 2),
        ('>', _) => punct(TokenKind::Gt, 1),
        ('+', _) => punct(TokenKind::Add, 1),
        ('-', _) => punct(TokenKind::Sub, 1),
        ('*', _) => punct(TokenKind::Mul, 1),
        ('/', _) => punct(TokenKind::Div, 1),
        ('%', _) => punct(TokenKind::Mod, 1),
        ('&', _) => punct(TokenKind::BitAnd, 1),
        ('|', _) => punct(TokenKind::BitOr, 1),
        ('^', _) => punct(TokenKind::BitXor, 1),
        (',', _) => punct(TokenKind::Comma, 1),
        ('(', _) => punct(TokenKind::LParen, 1),
        (')', _) => punct(TokenKind::RParen, 1),
        (';', _) => punct(TokenKind::Semicolon, 1),
        (':', Some(':')) => punct(TokenKind::DoubleColon, 2),
        ('.', Some(d)) if d.is_ascii_digit() => scan_number(src, start),
        ('.', _) => punct(TokenKind::Dot, 1),
        ('\'', _) => {
            let (value, end) = scan_quoted(src, start, '\'', "string")?;
            punct(TokenKind::Str(value), end - start)
        }
        ('"', _) => {
            let (value, end) = scan_quoted(src, start, '"', "quoted identifier")?;
            punct(TokenKind::QuotedIdent(value), end - start)
        }
        ('$', Some(n)) if is_ident_char(n) => {
            let end = ident_end(src, start + 1);
            let name = src.get(start + 1..end).unwrap_or("").to_owned();
            punct(TokenKind::BindParam(name), end - start)
        }
        (c, _) if c.is_ascii_digit() => scan_number(src, start),
        (c, _) if is_ident_start(c) => {
            let end = ident_end(src, start);
            let word = src.get(start..end).unwrap_or("");
            let kind = match keyword(word) {
                Some(k) => TokenKind::Keyword(k),
                None => TokenKind::Ident(word.to_owned()),
            };
            punct(kind, end - start)
        }
        (c, _) => punct(TokenKind::Illegal(c), c.len_utf8()),
    }
}

/// The byte after the identifier characters starting at `pos`.
fn ident_end(src: &str, pos: usize) -> usize {
    let rest = src.get(pos..).unwrap_or("");
    pos + rest.find(|c: char| !is_ident_char(c)).unwrap_or(rest.len())
}

/// The byte after the ASCII digits starting at `pos`.
fn digits_end(src: &str, pos: usize) -> usize {
    let rest = src.get(pos..).unwrap_or("");
    pos + rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len())
}

/// A duration unit at byte `pos`: its length in bytes and nanoseconds per unit. Longest
/// match first, and a unit must not run on into an identifier (`1mx` is no duration).
fn duration_unit(src: &str, pos: usize) -> Option<(usize, i64)> {
    let rest = src.get(pos..)?;
    const UNITS: &[(&str, i64)] = &[
        ("ns", 1),
        ("ms", NANOS_PER_MILLI),
        ("u", NANOS_PER_MICRO),
        ("µ", NANOS_PER_MICRO),
        ("s", NANOS_PER_SECOND),
        ("m", NANOS_PER_MINUTE),
        ("h", NANOS_PER_HOUR),
        ("d", NANOS_PER_DAY),
        ("w", NANOS_PER_WEEK),
    ];
    UNITS.iter().find_map(|&(unit, nanos)| {
        let after = rest.strip_prefix(unit)?;
        let runs_on = after
            .chars()
            .next()
            .is_some_and(|c| is_ident_char(c) && !c.is_ascii_digit());
        (!runs_on).then_some((unit.len(), nanos))
    })
}

/// An integer, a float (`1.5`, `.5`) or a duration (`10s`, `1h30m`) starting at `start`.
fn scan_number(src: &str, start: usize) -> Result<Token, ParseError> {
    let int_end = digits_end(src, start);
    if char_at(src, int_end) == Some('.')
        && char_at(src, int_end + 1).is_some_and(|c| c.is_ascii_digit())
    {
        return Ok(Token {
            kind: TokenKind::Number,
            start,
            end: digits_end(src, int_end + 1),
        });
    }
    if duration_unit(src, int_end).is_none() {
        return Ok(Token {
            kind: TokenKind::Integer,
            start,
            end: int_end,
        });
    }
    // A duration: one or more `<digits><unit>` segments, summed.
    let overflow = |end: usize| {
        let text = src.get(start..end).unwrap_or("");
        ParseError::at(
            src,
            start,
            format!("overflowed duration {text}: choose a smaller duration or INF"),
        )
    };
    let mut total: i64 = 0;
    let mut pos = start;
    loop {
        let end = digits_end(src, pos);
        let Some((unit_len, nanos)) = duration_unit(src, end) else {
            let text = src.get(start..end).unwrap_or("");
            return Err(ParseError::at(
                src,
                start,
                format!("invalid duration {text}: a number needs a unit"),
            ));
        };
        let value: i64 = src
            .get(pos..end)
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| overflow(end + unit_len))?;
        total = value
            .checked_mul(nanos)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| overflow(end + unit_len))?;
        pos = end + unit_len;
        if !char_at(src, pos).is_some_and(|c| c.is_ascii_digit()) {
            return Ok(Token {
                kind: TokenKind::Duration(total),
                start,
                end: pos,
            });
        }
    }
}

/// A string or quoted identifier delimited by `quote` at `start`: its unescaped value and the
/// byte after the closing quote. Escapes: `\\`, `\n`, `\'`, `\"`; a raw newline ends it badly.
fn scan_quoted(
    src: &str,
    start: usize,
    quote: char,
    what: &str,
) -> Result<(String, usize), ParseError> {
    let mut value = String::new();
    let body = start + quote.len_utf8();
    let mut chars = src.get(body..).unwrap_or("").char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            c if c == quote => return Ok((value, body + i + c.len_utf8())),
            '\n' => break,
            '\\' => match chars.next() {
                Some((_, '\\')) => value.push('\\'),
                Some((_, 'n')) => value.push('\n'),
                Some((_, '\'')) => value.push('\''),
                Some((_, '"')) => value.push('"'),
                Some((_, other)) => {
                    return Err(ParseError::at(
                        src,
                        body + i,
                        format!("bad escape \\{other} in {what}"),
                    ));
                }
                None => break,
            },
            c => value.push(c),
        }
    }
    Err(ParseError::at(src, start, format!("unterminated {what}")))
}

/// A regex literal `/…/` whose opening slash is at `start`: its pattern (with `\/` turned
/// into `/`, every other escape kept for the regex engine) and the byte after the closing slash.
pub(crate) fn scan_regex(src: &str, start: usize) -> Result<(String, usize), ParseError> {
    let mut pattern = String::new();
    let body = start + 1;
    let mut chars = src.get(body..).unwrap_or("").char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '/' => return Ok((pattern, body + i + 1)),
            '\n' => break,
            '\\' => match chars.next() {
                Some((_, '/')) => pattern.push('/'),
                Some((_, '\n')) | None => break,
                Some((_, other)) => {
                    pattern.push('\\');
                    pattern.push(other);
                }
            },
            c => pattern.push(c),
        }
    }
    Err(ParseError::at(src, start, "unterminated regex"))
}
