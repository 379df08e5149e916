//! The line scanner: one cursor over the body's bytes, a byte-class table per token kind.
//!
//! Every token ends at an ASCII delimiter (or the end of the body), so slicing the `&str` body
//! at token boundaries always lands on char boundaries and the borrowed names need no UTF-8
//! re-validation.

use std::{
    borrow::Cow,
    collections::HashMap,
    hash::{BuildHasher, RandomState},
};

use crate::{
    Precision,
    error::{LineError, LineErrorKind, quoted},
};

/// One parsed point. Names and string values borrow from the body unless they held escapes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ParsedLine<'a> {
    /// 1-based physical line number the line starts on.
    pub line_number: usize,
    /// Measurement (table) name, unescaped; never empty.
    pub measurement: Cow<'a, str>,
    /// Tags in the order written; keys unique, non-empty, never `time`; values non-empty.
    pub tags: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    /// Fields in the order written (a repeated key keeps the position of its first occurrence
    /// and the value of its last); keys unique, non-empty, never `time`; at least one.
    pub fields: Vec<(Cow<'a, str>, FieldValue<'a>)>,
    /// The timestamp: in nanoseconds when the iterator has a precision (the default is
    /// nanoseconds, i.e. the value as written); `None` if the line had none.
    pub timestamp: Option<i64>,
}

/// A field value, typed by its syntax.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue<'a> {
    /// `1`, `1.5`, `-1e3`.
    F64(f64),
    /// `1i`.
    I64(i64),
    /// `1u`.
    U64(u64),
    /// `t`, `true`, `F`, ...
    Bool(bool),
    /// `"..."`, unescaped.
    String(Cow<'a, str>),
}

impl FieldValue<'_> {
    /// The InfluxDB name of this value's type: "float", "integer", "unsigned", "boolean",
    /// "string".
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::F64(_) => "float",
            Self::I64(_) => "integer",
            Self::U64(_) => "unsigned",
            Self::Bool(_) => "boolean",
            Self::String(_) => "string",
        }
    }

    /// Copies borrowed string data so the value outlives the body.
    pub fn into_owned(self) -> FieldValue<'static> {
        match self {
            Self::F64(v) => FieldValue::F64(v),
            Self::I64(v) => FieldValue::I64(v),
            Self::U64(v) => FieldValue::U64(v),
            Self::Bool(v) => FieldValue::Bool(v),
            Self::String(s) => FieldValue::String(Cow::Owned(s.into_owned())),
        }
    }
}

impl<'a> ParsedLine<'a> {
    /// The value of tag `key`, if present.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_ref())
    }

    /// The value of field `key`, if present.
    pub fn field(&self, key: &str) -> Option<&FieldValue<'a>> {
        self.fields.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Copies all borrowed data so the line outlives the body.
    pub fn into_owned(self) -> ParsedLine<'static> {
        let own = |c: Cow<'a, str>| -> Cow<'static, str> { Cow::Owned(c.into_owned()) };
        ParsedLine {
            line_number: self.line_number,
            measurement: own(self.measurement),
            tags: self
                .tags
                .into_iter()
                .map(|(k, v)| (own(k), own(v)))
                .collect(),
            fields: self
                .fields
                .into_iter()
                .map(|(k, v)| (own(k), v.into_owned()))
                .collect(),
            timestamp: self.timestamp,
        }
    }

    fn reset(&mut self, line_number: usize) {
        self.line_number = line_number;
        self.measurement = Cow::Borrowed("");
        self.tags.clear();
        self.fields.clear();
        self.timestamp = None;
    }
}

/// Parses a write body. Yields one item per point line; comments and blank lines are skipped;
/// after an error parsing continues with the next physical line. Timestamps are returned as
/// written (nanoseconds) unless [`Lines::with_precision`] says otherwise.
///
/// ```
/// use ferrite_lineproto::{FieldValue, Precision, parse_lines};
///
/// let body = "# header\ncpu,host=a usage=0.5,count=3i 1700000000\nbad line\n";
/// let mut lines = parse_lines(body).with_precision(Precision::Second);
/// let ok = lines.next().unwrap().unwrap();
/// assert_eq!(ok.line_number, 2);
/// assert_eq!(ok.tag("host"), Some("a"));
/// assert_eq!(ok.field("count"), Some(&FieldValue::I64(3)));
/// assert_eq!(ok.timestamp, Some(1_700_000_000_000_000_000));
/// let err = lines.next().unwrap().unwrap_err();
/// assert_eq!(err.to_string(), "error parsing line 3 (1-based): missing '=' after field key 'line'");
/// assert!(lines.next().is_none());
/// ```
pub fn parse_lines(body: &str) -> Lines<'_> {
    Lines::new(body)
}

/// Iterator over the lines of a body; see [`parse_lines`].
///
/// [`Lines::next_into`] parses into a caller-owned [`ParsedLine`] to reuse its vectors (no
/// allocation per line for escape-free input); the `Iterator` impl allocates two vectors per
/// line, sized from the previous line.
#[derive(Clone)]
pub struct Lines<'a> {
    body: &'a str,
    pos: usize,
    /// Physical line number at `pos`.
    line_number: usize,
    precision: Precision,
    tags_hint: usize,
    fields_hint: usize,
}

impl<'a> Lines<'a> {
    /// Starts at the beginning of `body`.
    pub fn new(body: &'a str) -> Self {
        Self {
            body,
            pos: 0,
            line_number: 1,
            precision: Precision::Nanosecond,
            tags_hint: 0,
            fields_hint: 0,
        }
    }

    /// Converts every timestamp from `precision` to nanoseconds; a timestamp that overflows
    /// makes its line an error ([`LineErrorKind::TimestampOutOfRange`]).
    pub fn with_precision(mut self, precision: Precision) -> Self {
        self.precision = precision;
        self
    }

    /// The precision timestamps are converted from.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Parses the next point line into `out` (clearing it first). `None` at the end of the
    /// body. On `Some(Err(_))`, `out` holds partial data and must be ignored.
    pub fn next_into(&mut self, out: &mut ParsedLine<'a>) -> Option<Result<(), LineError>> {
        let bytes = self.body.as_bytes();
        loop {
            let line_start = self.pos;
            let mut p = line_start;
            loop {
                match bytes.get(p) {
                    Some(b' ' | b'\t' | b'\r') => p += 1,
                    // A UTF-8 byte-order mark (U+FEFF), as editors put at the start of a file.
                    Some(0xEF) if bytes[p..].starts_with(&[0xEF, 0xBB, 0xBF]) => p += 3,
                    _ => break,
                }
            }
            match bytes.get(p) {
                None => {
                    self.pos = bytes.len();
                    return None;
                }
                Some(b'\n') => {
                    self.pos = p + 1;
                    self.line_number += 1;
                    continue;
                }
                Some(b'#') => {
                    self.skip_physical_line(p);
                    continue;
                }
                Some(_) => {}
            }

            let line_number = self.line_number;
            out.reset(line_number);
            let mut cur = Cursor {
                body: self.body,
                bytes,
                pos: p,
                newlines: 0,
            };
            return Some(match parse_line(&mut cur, out) {
                Ok(()) => {
                    self.pos = cur.pos;
                    self.line_number += 1 + cur.newlines;
                    match out.timestamp {
                        Some(ts) if self.precision != Precision::Nanosecond => {
                            match self.precision.to_nanos(ts) {
                                Ok(ns) => {
                                    out.timestamp = Some(ns);
                                    Ok(())
                                }
                                Err(e) => Err(LineError::new(
                                    line_number,
                                    self.physical_line(line_start),
                                    LineErrorKind::TimestampOutOfRange {
                                        value: e.value,
                                        precision: e.precision,
                                    },
                                )),
                            }
                        }
                        _ => Ok(()),
                    }
                }
                Err(kind) => {
                    let err = LineError::new(line_number, self.physical_line(line_start), kind);
                    self.skip_physical_line(line_start);
                    Err(err)
                }
            });
        }
    }

    /// The physical line starting at `start`, without its `\n`.
    fn physical_line(&self, start: usize) -> &'a str {
        let rest = &self.body[start..];
        rest.find('\n').map_or(rest, |n| &rest[..n])
    }

    /// Moves to the start of the physical line after the one containing `from`.
    fn skip_physical_line(&mut self, from: usize) {
        match self.body[from..].find('\n') {
            Some(n) => {
                self.pos = from + n + 1;
                self.line_number += 1;
            }
            None => self.pos = self.body.len(),
        }
    }
}

/// Shows the position, not the (possibly huge) body.
impl std::fmt::Debug for Lines<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lines")
            .field("body_len", &self.body.len())
            .field("pos", &self.pos)
            .field("line_number", &self.line_number)
            .field("precision", &self.precision)
            .finish_non_exhaustive()
    }
}

impl<'a> Iterator for Lines<'a> {
    type Item = Result<ParsedLine<'a>, LineError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut line = ParsedLine {
            tags: Vec::with_capacity(self.tags_hint),
            fields: Vec::with_capacity(self.fields_hint),
            ..ParsedLine::default()
        };
        Some(match self.next_into(&mut line)? {
            Ok(()) => {
                self.tags_hint = line.tags.len();
                self.fields_hint = line.fields.len();
                Ok(line)
            }
            Err(e) => Err(e),
        })
    }
}

impl std::iter::FusedIterator for Lines<'_> {}

// Byte classes: bit set = the byte ends a token of that kind.
/// Ends a measurement: `,` space `\n` `\` NUL.
const MEASUREMENT: u8 = 1;
/// Ends a tag key or field key: `,` `=` space `\n` `\` NUL.
const KEY: u8 = 2;
/// Ends a tag value: `,` space `\n` `\`.
const TAG_VALUE: u8 = 4;
/// Ends an unquoted field value: `,` space tab `\r` `\n`.
const FIELD_VALUE: u8 = 8;
/// Ends a timestamp: space tab `\r` `\n`.
const TIMESTAMP: u8 = 16;

static CLASS: [u8; 256] = byte_classes();

const fn byte_classes() -> [u8; 256] {
    let mut t = [0u8; 256];
    t[b',' as usize] = MEASUREMENT | KEY | TAG_VALUE | FIELD_VALUE;
    t[b'=' as usize] = KEY;
    t[b' ' as usize] = MEASUREMENT | KEY | TAG_VALUE | FIELD_VALUE | TIMESTAMP;
    t[b'\n' as usize] = MEASUREMENT | KEY | TAG_VALUE | FIELD_VALUE | TIMESTAMP;
    t[b'\\' as usize] = MEASUREMENT | KEY | TAG_VALUE;
    t[0] = MEASUREMENT | KEY;
    t[b'\t' as usize] = FIELD_VALUE | TIMESTAMP;
    t[b'\r' as usize] = FIELD_VALUE | TIMESTAMP;
    t
}

/// Position within one line (which may span physical lines through quoted newlines).
struct Cursor<'a> {
    body: &'a str,
    bytes: &'a [u8],
    pos: usize,
    /// Newlines consumed inside quoted strings.
    newlines: usize,
}

impl<'a> Cursor<'a> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// Advances to the first byte whose class has a bit of `mask` (or the end).
    #[inline]
    fn scan_to(&mut self, mask: u8) {
        let rest = &self.bytes[self.pos..];
        self.pos += rest
            .iter()
            .position(|&b| CLASS[b as usize] & mask != 0)
            .unwrap_or(rest.len());
    }

    #[inline]
    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.pos += 1;
        }
    }

    #[inline]
    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r')) {
            self.pos += 1;
        }
    }

    /// Scans a measurement, tag key, tag value or field key ending at a byte of class `mask`,
    /// decoding escapes. Borrowed unless an escape was present.
    #[inline]
    fn name(&mut self, mask: u8) -> Cow<'a, str> {
        let start = self.pos;
        self.scan_to(mask);
        if self.peek() == Some(b'\\') {
            self.escaped_name(start, mask)
        } else {
            Cow::Borrowed(&self.body[start..self.pos])
        }
    }

    /// Slow path of [`Cursor::name`]: `pos` is at a backslash.
    #[cold]
    fn escaped_name(&mut self, start: usize, mask: u8) -> Cow<'a, str> {
        let mut s = String::with_capacity(self.pos - start + 16);
        let mut segment = start;
        while self.peek() == Some(b'\\') {
            s.push_str(&self.body[segment..self.pos]);
            let escaped = match self.bytes.get(self.pos + 1) {
                Some(b',' | b' ' | b'\\') => true,
                Some(b'=') => mask != MEASUREMENT,
                _ => false,
            };
            if escaped {
                s.push(char::from(self.bytes[self.pos + 1]));
                self.pos += 2;
            } else {
                // Not an escape: the backslash is literal and the next byte is read normally.
                s.push('\\');
                self.pos += 1;
            }
            segment = self.pos;
            self.scan_to(mask);
        }
        s.push_str(&self.body[segment..self.pos]);
        Cow::Owned(s)
    }

    /// The rest of the current physical line from `pos`, for error messages.
    fn rest_of_physical_line(&self) -> &'a str {
        let rest = &self.body[self.pos..];
        let line = rest.find('\n').map_or(rest, |n| &rest[..n]);
        line.trim_end_matches(['\r', ' ', '\t'])
    }

    /// Parses a field value starting at `pos` (just after the `=`).
    #[inline]
    fn field_value(&mut self, key: &str) -> Result<FieldValue<'a>, LineErrorKind> {
        let start = self.pos;
        match self.peek() {
            Some(b'0'..=b'9' | b'-' | b'.') => {
                self.scan_to(FIELD_VALUE);
                number(&self.body[start..self.pos], key)
            }
            Some(b'"') => self.string_value(key),
            Some(b't' | b'T' | b'f' | b'F') => {
                self.scan_to(FIELD_VALUE);
                match &self.bytes[start..self.pos] {
                    b"t" | b"T" | b"true" | b"True" | b"TRUE" => Ok(FieldValue::Bool(true)),
                    b"f" | b"F" | b"false" | b"False" | b"FALSE" => Ok(FieldValue::Bool(false)),
                    _ => Err(LineErrorKind::InvalidFieldValue {
                        key: quoted(key),
                        value: quoted(&self.body[start..self.pos]),
                    }),
                }
            }
            None | Some(b',' | b' ' | b'\n' | b'\r' | b'\t') => {
                Err(LineErrorKind::MissingFieldValue { key: quoted(key) })
            }
            Some(_) => {
                self.scan_to(FIELD_VALUE);
                Err(LineErrorKind::InvalidFieldValue {
                    key: quoted(key),
                    value: quoted(&self.body[start..self.pos]),
                })
            }
        }
    }

    /// Parses `"..."` with `pos` at the opening quote. Raw newlines are part of the value.
    fn string_value(&mut self, key: &str) -> Result<FieldValue<'a>, LineErrorKind> {
        self.pos += 1;
        let start = self.pos;
        let mut owned: Option<String> = None;
        let mut segment = start;
        let value = loop {
            let rest = &self.bytes[self.pos..];
            let Some(n) = rest.iter().position(|&b| matches!(b, b'"' | b'\\' | b'\n')) else {
                return Err(LineErrorKind::UnterminatedString { key: quoted(key) });
            };
            let p = self.pos + n;
            match self.bytes[p] {
                b'"' => {
                    self.pos = p + 1;
                    break match owned {
                        Some(mut s) => {
                            s.push_str(&self.body[segment..p]);
                            Cow::Owned(s)
                        }
                        None => Cow::Borrowed(&self.body[start..p]),
                    };
                }
                b'\n' => {
                    self.newlines += 1;
                    self.pos = p + 1;
                }
                _ => match self.bytes.get(p + 1) {
                    Some(&c @ (b'"' | b'\\')) => {
                        let s = owned.get_or_insert_with(String::new);
                        s.push_str(&self.body[segment..p]);
                        s.push(char::from(c));
                        self.pos = p + 2;
                        segment = self.pos;
                    }
                    // A backslash before anything else is literal.
                    _ => self.pos = p + 1,
                },
            }
        };
        match self.peek() {
            None | Some(b',' | b' ' | b'\n' | b'\r' | b'\t') => Ok(FieldValue::String(value)),
            Some(_) => Err(LineErrorKind::ContentAfterString {
                key: quoted(key),
                found: self.body[self.pos..].chars().next().unwrap_or('?'),
            }),
        }
    }

    /// After the last field value (or the timestamp): optional blanks, then the line end.
    fn end_of_line(&mut self) -> Result<(), LineErrorKind> {
        self.skip_blanks();
        match self.peek() {
            None => Ok(()),
            Some(b'\n') => {
                self.pos += 1;
                Ok(())
            }
            Some(_) => Err(LineErrorKind::TrailingContent {
                content: quoted(self.rest_of_physical_line()),
            }),
        }
    }
}

/// Parses one line with the cursor at its first non-blank byte; on success the cursor is
/// past the line's `\n` (or at the end of the body).
fn parse_line<'a>(cur: &mut Cursor<'a>, out: &mut ParsedLine<'a>) -> Result<(), LineErrorKind> {
    let measurement = cur.name(MEASUREMENT);
    match cur.peek() {
        Some(b',' | b' ') if !measurement.is_empty() => {}
        Some(0) => {
            return Err(LineErrorKind::NulInName {
                what: "measurement",
            });
        }
        _ if measurement.is_empty() => return Err(LineErrorKind::MissingMeasurement),
        _ => return Err(LineErrorKind::NoFields),
    }
    out.measurement = measurement;

    let mut seen_tags = SeenKeys::default();
    while cur.peek() == Some(b',') {
        cur.pos += 1;
        let key = cur.name(KEY);
        match cur.peek() {
            Some(b'=') if !key.is_empty() => cur.pos += 1,
            Some(0) => return Err(LineErrorKind::NulInName { what: "tag key" }),
            _ if key.is_empty() => return Err(LineErrorKind::EmptyTagKey),
            _ => return Err(LineErrorKind::MissingTagValue { key: quoted(&key) }),
        }
        let value = cur.name(TAG_VALUE);
        if value.is_empty() {
            return Err(LineErrorKind::MissingTagValue { key: quoted(&key) });
        }
        if is_time(&key) {
            return Err(LineErrorKind::TimeTag);
        }
        if seen_tags.find(&out.tags, &key).is_some() {
            return Err(LineErrorKind::DuplicateTag { key: quoted(&key) });
        }
        out.tags.push((key, value));
        seen_tags.added(&out.tags);
    }

    // A tag value ends at ',', ' ', '\n' or the end, and ',' was consumed above.
    if cur.peek() != Some(b' ') {
        return Err(LineErrorKind::NoFields);
    }
    cur.skip_spaces();
    if matches!(cur.peek(), None | Some(b'\n' | b'\r' | b'\t')) {
        let save = cur.pos;
        cur.skip_blanks();
        if matches!(cur.peek(), None | Some(b'\n')) {
            return Err(LineErrorKind::NoFields);
        }
        cur.pos = save;
    }

    let mut seen_fields = SeenKeys::default();
    let mut saw_time = false;
    loop {
        let key = cur.name(KEY);
        match cur.peek() {
            Some(b'=') if !key.is_empty() => cur.pos += 1,
            Some(0) => return Err(LineErrorKind::NulInName { what: "field key" }),
            _ if key.is_empty() => return Err(LineErrorKind::EmptyFieldKey),
            next => {
                // `m 1700000000`: a timestamp where the fields should be.
                let looks_like_timestamp = out.fields.is_empty()
                    && !saw_time
                    && matches!(next, None | Some(b'\n' | b'\r'))
                    && key.bytes().all(|b| b.is_ascii_digit() || b == b'-');
                return Err(if looks_like_timestamp {
                    LineErrorKind::NoFields
                } else {
                    LineErrorKind::MissingFieldEquals { key: quoted(&key) }
                });
            }
        }
        let value = cur.field_value(&key)?;
        if is_time(&key) {
            saw_time = true;
        } else if let Some(j) = seen_fields.find(&out.fields, &key) {
            let first = out.fields[j].1.type_name();
            if first != value.type_name() {
                return Err(LineErrorKind::ConflictingFieldTypes {
                    key: quoted(&key),
                    first,
                    second: value.type_name(),
                });
            }
            // The last value wins (InfluxDB semantics), kept at the first position so that
            // indexes stay valid and a line of repeats costs O(1) per repeat.
            out.fields[j].1 = value;
        } else {
            out.fields.push((key, value));
            seen_fields.added(&out.fields);
        }
        match cur.peek() {
            Some(b',') => cur.pos += 1,
            Some(b' ') => {
                cur.skip_blanks();
                if !matches!(cur.peek(), None | Some(b'\n')) {
                    let start = cur.pos;
                    cur.scan_to(TIMESTAMP);
                    let token = &cur.body[start..cur.pos];
                    out.timestamp = Some(parse_i64(token.as_bytes()).map_err(|e| {
                        LineErrorKind::InvalidTimestamp {
                            value: quoted(token),
                            reason: match e {
                                IntError::Syntax => "expected an integer",
                                IntError::Range => "out of range",
                            },
                        }
                    })?);
                }
                break;
            }
            _ => break,
        }
    }
    if out.fields.is_empty() {
        return Err(LineErrorKind::TimeOnlyField);
    }
    cur.end_of_line()
}

/// `key == "time"` without a `memcmp` call for every 4-byte key (`rack`, `arch`, `team`).
#[inline]
fn is_time(key: &str) -> bool {
    matches!(key.as_bytes(), [b't', b'i', b'm', b'e'])
}

/// Duplicate-key detection for one line's tags or fields in expected O(1) per key.
///
/// Lines usually have a handful of keys: a 64-bit set of one-bit fingerprints says "surely
/// new" for most keys without touching the earlier ones. Past [`SeenKeys::INDEX_AFTER`] keys
/// the fingerprints saturate, so a hash index (randomly seeded, so crafted keys cannot force
/// collisions) takes over; a wide line stays linear, not quadratic.
#[derive(Default)]
struct SeenKeys {
    bits: u64,
    index: Option<(RandomState, HashMap<u64, usize>)>,
}

impl SeenKeys {
    const INDEX_AFTER: usize = 32;

    /// Position of `key` in `keys` (all of which were reported through `added`), if there.
    #[inline]
    fn find<T>(&self, keys: &[(Cow<'_, str>, T)], key: &str) -> Option<usize> {
        match &self.index {
            None if self.bits & key_bit(key) == 0 => None,
            None => keys.iter().position(|(k, _)| k == key),
            Some((state, map)) => {
                let j = *map.get(&state.hash_one(key))?;
                if keys[j].0 == key {
                    Some(j)
                } else {
                    // Two keys with one 64-bit hash: vanishingly rare, so just search.
                    keys.iter().position(|(k, _)| k == key)
                }
            }
        }
    }

    /// Records the last element of `keys` as just added.
    #[inline]
    fn added<T>(&mut self, keys: &[(Cow<'_, str>, T)]) {
        let Some(((key, _), _)) = keys.split_last() else {
            return;
        };
        match &mut self.index {
            Some((state, map)) => {
                map.entry(state.hash_one(&**key)).or_insert(keys.len() - 1);
            }
            None if keys.len() <= Self::INDEX_AFTER => self.bits |= key_bit(key),
            None => {
                let state = RandomState::new();
                let mut map = HashMap::with_capacity(keys.len() * 2);
                for (i, (k, _)) in keys.iter().enumerate() {
                    map.entry(state.hash_one(&**k)).or_insert(i);
                }
                self.index = Some((state, map));
            }
        }
    }
}

/// A one-bit fingerprint of a non-empty key.
#[inline]
fn key_bit(key: &str) -> u64 {
    let b = key.as_bytes();
    let h = (b.len() as u32).wrapping_mul(0x9E37_79B1)
        ^ u32::from(b[b.len() - 1]).wrapping_mul(0x85EB_CA77)
        ^ u32::from(b[b.len() / 2]).wrapping_mul(0xC2B2_AE3D);
    1u64 << (h.wrapping_mul(0x2545_F491) >> 26)
}

enum IntError {
    Syntax,
    Range,
}

/// `-?[0-9]+` as i64.
#[inline]
fn parse_i64(s: &[u8]) -> Result<i64, IntError> {
    let (negative, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    let magnitude = parse_u64_digits(digits)?;
    if negative {
        0i64.checked_sub_unsigned(magnitude).ok_or(IntError::Range)
    } else {
        i64::try_from(magnitude).map_err(|_| IntError::Range)
    }
}

/// `[0-9]+` as u64.
#[inline]
fn parse_u64_digits(digits: &[u8]) -> Result<u64, IntError> {
    if digits.is_empty() {
        return Err(IntError::Syntax);
    }
    let mut v: u64 = 0;
    if digits.len() <= 19 {
        // 19 decimal digits always fit in a u64.
        for &c in digits {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                return Err(IntError::Syntax);
            }
            v = v * 10 + u64::from(d);
        }
    } else {
        let mut overflow = false;
        for &c in digits {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                return Err(IntError::Syntax);
            }
            match v.checked_mul(10).and_then(|v| v.checked_add(u64::from(d))) {
                Some(n) => v = n,
                None => overflow = true,
            }
        }
        if overflow {
            return Err(IntError::Range);
        }
    }
    Ok(v)
}

/// An unquoted value starting with a digit, `-` or `.`: `1i`, `1u` or a float.
#[inline]
fn number<'a>(token: &str, key: &str) -> Result<FieldValue<'a>, LineErrorKind> {
    let bytes = token.as_bytes();
    match bytes.split_last() {
        Some((b'i', digits)) => {
            parse_i64(digits)
                .map(FieldValue::I64)
                .map_err(|e| LineErrorKind::InvalidInteger {
                    key: quoted(key),
                    value: quoted(token),
                    reason: match e {
                        IntError::Syntax => "invalid syntax",
                        IntError::Range => "out of range",
                    },
                })
        }
        Some((b'u', digits)) => {
            let reason = match digits.split_first() {
                Some((b'-', rest)) if parse_u64_digits(rest).is_ok() => Err("negative"),
                _ => match parse_u64_digits(digits) {
                    Ok(v) => Ok(v),
                    Err(IntError::Syntax) => Err("invalid syntax"),
                    Err(IntError::Range) => Err("out of range"),
                },
            };
            reason
                .map(FieldValue::U64)
                .map_err(|reason| LineErrorKind::InvalidUnsigned {
                    key: quoted(key),
                    value: quoted(token),
                    reason,
                })
        }
        _ => {
            if let Some(v) = fast_float(bytes) {
                return Ok(FieldValue::F64(v));
            }
            let float_err = |reason| LineErrorKind::InvalidFloat {
                key: quoted(key),
                value: quoted(token),
                reason,
            };
            // std's parser also takes `inf`, `nan` and a leading `+`; line protocol does not.
            if !bytes
                .iter()
                .all(|b| matches!(b, b'0'..=b'9' | b'.' | b'-' | b'+' | b'e' | b'E'))
            {
                return Err(float_err("invalid syntax"));
            }
            match token.parse::<f64>() {
                Ok(v) if v.is_finite() => Ok(FieldValue::F64(v)),
                Ok(_) => Err(float_err("out of range")),
                Err(_) => Err(float_err("invalid syntax")),
            }
        }
    }
}

/// Powers of ten that are exact in an `f64`.
const EXACT_POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Clinger's fast path for the common `-?digits[.digits]` float: when the digits form an
/// integer `m <= 2^53` and there are at most 22 decimals, `m` and `10^decimals` are exact
/// `f64`s and one IEEE division rounds correctly. Anything else (exponents, long mantissas,
/// malformed input) returns `None` for std's full parser, which also produces the errors.
#[inline]
fn fast_float(token: &[u8]) -> Option<f64> {
    let (negative, body) = match token.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, token),
    };
    let mut mantissa: u64 = 0;
    let mut digits = 0usize;
    let mut decimals = 0usize;
    let mut seen_dot = false;
    for &c in body {
        match c {
            b'0'..=b'9' => {
                if digits == 19 {
                    return None;
                }
                mantissa = mantissa * 10 + u64::from(c - b'0');
                digits += 1;
                decimals += usize::from(seen_dot);
            }
            b'.' if !seen_dot => seen_dot = true,
            _ => return None,
        }
    }
    if digits == 0 || mantissa > 1 << 53 || decimals >= EXACT_POW10.len() {
        return None;
    }
    let v = mantissa as f64 / EXACT_POW10[decimals];
    Some(if negative { -v } else { v })
}
