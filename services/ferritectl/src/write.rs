//! `write`: line protocol from an argument, a file or standard input, sent to
//! `/api/v3/write_lp` in batches, with every rejected line reported by its number in the
//! input.
//!
//! ```text
//!  input ─► Batcher (blocking thread) ─► batches: ≤ --batch-size physical lines, ≤ 4 MiB,
//!     │       cut only between points; a point that is not UTF-8 (or over 10 MiB) is
//!     │       rejected here and blanked
//!     ▼
//!  channel ─► send, ≤ --concurrency at once: gzip (blocking thread) ─► POST
//!     │         204 stored · 400 + data: lines rejected, the rest stored (accept_partial)
//!     │         429/503: wait Retry-After, again · 413: split in two, again · else: failed
//!     ▼ in input order
//!  report: rejected line = batch's first input line + server's line_number − 1; summary
//! ```
//!
//! Invariant: a batch's body holds every physical line of its stretch of the input, a
//! rejected-here point as empty lines, so the server's 1-based line numbers (which count
//! physical lines, blank and comment lines included) map to input lines by an offset.
//!
//! What cannot be exact: the server lists at most 100 rejected lines per request. When it
//! stored some lines and lists 100, more may have been rejected unlisted; the report then
//! says "at least" and names the input lines concerned. (When it stored nothing, every
//! point of the batch was rejected, listed or not, and the counts stay exact.)

use std::io::{self, BufRead, BufReader, IsTerminal, Read};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use reqwest::{Method, StatusCode, header};
use serde::Deserialize;
use url::Url;

use crate::api::{Http, hint_for, innermost, message_of, origin};
use crate::cli::Precision;

/// A batch grows to about this many bytes at most (the server's default limit is 10 MiB).
pub const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// A single point larger than this cannot be sent: the server's default request limit.
pub const MAX_POINT_BYTES: usize = 10 * 1024 * 1024;

/// The server's original line text is cut to this; so is ours.
const MAX_ORIGINAL_LINE: usize = 1024;

/// How many times a busy answer or a refused connection is retried.
const MAX_ATTEMPTS: u32 = 10;

/// The progress bar shows for files larger than this.
const PROGRESS_MIN_BYTES: u64 = 5_000_000;

/// A line that was not stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Its number in the input, 1-based.
    pub line: u64,
    /// The line (cut to 1 KiB).
    pub original: String,
    /// Why.
    pub reason: String,
}

/// A stretch of the input, sent as one request.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// The input line number of the body's first physical line.
    pub first_line: u64,
    /// Physical lines in the body.
    pub lines: u64,
    /// Points (lines of data) in the body.
    pub points: u64,
    /// The line protocol.
    pub body: Vec<u8>,
    /// Points rejected before sending (blanked in the body).
    pub local: Vec<Rejected>,
    /// Bytes of input read up to the end of this batch.
    pub end_offset: u64,
}

impl Batch {
    /// The input line number of the body's last physical line.
    pub fn last_line(&self) -> u64 {
        self.first_line + self.lines.saturating_sub(1)
    }

    /// The input line and text of the first point.
    fn first_point(&self) -> (u64, String) {
        let mut scanner = Scanner::default();
        let mut pos = 0;
        for (i, line) in self.body.split_inclusive(|&b| b == b'\n').enumerate() {
            if scanner.feed(line) == LineKind::Point {
                return (self.first_line + i as u64, first_line_of(&self.body[pos..]));
            }
            pos += line.len();
        }
        (self.first_line, String::new())
    }

    /// Split at the point boundary nearest the middle; itself back for a single point.
    fn split(mut self) -> Result<(Self, Self), Self> {
        let mut scanner = Scanner::default();
        let (mut pos, mut lines, mut points) = (0, 0u64, 0u64);
        let mut best: Option<(usize, u64, u64)> = None;
        let middle = self.body.len() / 2;
        for line in self.body.split_inclusive(|&b| b == b'\n') {
            if scanner.feed(line) == LineKind::Point {
                points += 1;
            }
            pos += line.len();
            lines += 1;
            let better = best.is_none_or(|(b, _, _)| pos.abs_diff(middle) < b.abs_diff(middle));
            if !scanner.is_open() && pos < self.body.len() && points > 0 && better {
                best = Some((pos, lines, points));
            }
        }
        let Some((at, lines, points)) = best.filter(|(_, _, p)| *p < self.points) else {
            return Err(self);
        };
        let tail_body = self.body.split_off(at);
        let first_line = self.first_line;
        let (head_local, tail_local) = self
            .local
            .into_iter()
            .partition(|r| r.line < first_line + lines);
        let tail = Self {
            first_line: first_line + lines,
            lines: self.lines - lines,
            points: self.points - points,
            body: tail_body,
            local: tail_local,
            end_offset: self.end_offset,
        };
        let head = Self {
            first_line,
            lines,
            points,
            body: self.body,
            local: head_local,
            end_offset: self.end_offset,
        };
        Ok((head, tail))
    }
}

/// What a physical line is, given the lines before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    /// Blank or a `#` comment.
    Skip,
    /// The first line of a point.
    Point,
    /// A later line of a point whose quoted string value holds a newline.
    Continuation,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Section {
    /// Measurement and tags.
    #[default]
    Key,
    /// A field key (`Rest` after it when the field set ends).
    FieldKey,
    /// Right after `=`.
    ValueStart,
    /// An unquoted value, or after a closing quote.
    Value,
    /// Inside a quoted string value.
    String,
    /// The timestamp.
    Rest,
}

/// Finds where points start, just enough to never cut a batch inside a string value that
/// spans lines (the server's parser allows raw newlines there).
#[derive(Debug, Clone, Copy, Default)]
pub struct Scanner {
    open: bool,
}

impl Scanner {
    /// Inside a quoted string value after the last line fed.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Feed the next physical line (with or without its `\n`).
    pub fn feed(&mut self, line: &[u8]) -> LineKind {
        let (kind, mut section, mut i) = if self.open {
            (LineKind::Continuation, Section::String, 0)
        } else {
            let mut i = 0;
            while i < line.len() {
                match line[i] {
                    b' ' | b'\t' | b'\r' => i += 1,
                    0xEF if line[i..].starts_with(&[0xEF, 0xBB, 0xBF]) => i += 3,
                    _ => break,
                }
            }
            match line.get(i) {
                None | Some(b'\n' | b'#') => return LineKind::Skip,
                Some(_) => (LineKind::Point, Section::Key, i),
            }
        };
        let mut key_len = 0;
        while i < line.len() {
            let b = line[i];
            i += 1;
            section = match (section, b) {
                (_, b'\n') if section != Section::String => break,
                (Section::Key | Section::FieldKey | Section::Value, b'\\') => {
                    i += 1;
                    section
                }
                (Section::Key, b' ') => Section::FieldKey,
                (Section::FieldKey, b' ') if key_len == 0 => Section::FieldKey,
                (Section::FieldKey, b' ') => Section::Rest,
                (Section::FieldKey, b'=') => Section::ValueStart,
                (Section::FieldKey, _) => {
                    key_len += 1;
                    Section::FieldKey
                }
                (Section::ValueStart, b'"') => Section::String,
                (Section::ValueStart | Section::Value, b',') => {
                    key_len = 0;
                    Section::FieldKey
                }
                (Section::ValueStart | Section::Value, b' ') => Section::Rest,
                (Section::ValueStart, _) => Section::Value,
                (Section::String, b'\\')
                    if line.get(i).is_some_and(|&n| n == b'"' || n == b'\\') =>
                {
                    i += 1;
                    Section::String
                }
                (Section::String, b'"') => Section::Value,
                (other, _) => other,
            };
        }
        self.open = section == Section::String;
        kind
    }
}

/// Cuts the input into batches.
#[derive(Debug)]
pub struct Batcher<R> {
    input: R,
    max_lines: u64,
    max_bytes: usize,
    max_point_bytes: usize,
    next_line: u64,
    offset: u64,
    /// A line read that did not fit the previous batch.
    carry: Option<Vec<u8>>,
    done: bool,
}

impl<R: BufRead> Batcher<R> {
    /// Batches of at most `max_lines` physical lines and about `max_bytes`.
    pub fn new(input: R, max_lines: u64, max_bytes: usize) -> Self {
        Self {
            input,
            max_lines: max_lines.max(1),
            max_bytes,
            max_point_bytes: MAX_POINT_BYTES.max(max_bytes),
            next_line: 1,
            offset: 0,
            carry: None,
            done: false,
        }
    }

    #[cfg(test)]
    fn with_max_point_bytes(mut self, n: usize) -> Self {
        self.max_point_bytes = n;
        self
    }
}

/// The first physical line of `bytes`, as text, cut to 1 KiB.
fn first_line_of(bytes: &[u8]) -> String {
    let line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut text = String::from_utf8_lossy(&line[..line.len().min(MAX_ORIGINAL_LINE)]).into_owned();
    if line.len() > MAX_ORIGINAL_LINE {
        text.push('…');
    }
    text
}

/// Replace `body[from..]` by as many empty lines as it spans.
fn blank_from(body: &mut Vec<u8>, from: usize) {
    let tail = &body[from..];
    let lines = tail.split_inclusive(|&b| b == b'\n').count();
    body.truncate(from);
    body.extend(std::iter::repeat_n(b'\n', lines));
}

impl<R: BufRead> Iterator for Batcher<R> {
    type Item = io::Result<Batch>;

    fn next(&mut self) -> Option<io::Result<Batch>> {
        let mut batch = Batch {
            first_line: self.next_line,
            ..Batch::default()
        };
        let mut scanner = Scanner::default();
        // Where the current point starts: body offset and input line.
        let mut point = (0, 0);
        loop {
            let start = batch.body.len();
            if let Some(carried) = self.carry.take() {
                batch.body.extend(carried);
            } else if self.done {
                break;
            } else {
                match self.input.read_until(b'\n', &mut batch.body) {
                    Ok(0) => {
                        self.done = true;
                        break;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        self.done = true;
                        return Some(Err(e));
                    }
                }
            }
            let len = batch.body.len() - start;
            // Full: this line opens the next batch. Inside a multi-line string the batch
            // may grow to the point limit so that the point stays whole.
            let limit = if scanner.is_open() {
                self.max_point_bytes
            } else {
                self.max_bytes
            };
            if start > 0 && batch.body.len() > limit && len <= self.max_point_bytes {
                self.carry = Some(batch.body.split_off(start));
                break;
            }
            let line_number = self.next_line;
            self.next_line += 1;
            self.offset += len as u64;
            batch.lines += 1;
            let problem = if len > self.max_point_bytes {
                Some(format!(
                    "the line is {len} bytes, more than one request may hold ({} bytes)",
                    self.max_point_bytes
                ))
            } else if std::str::from_utf8(&batch.body[start..]).is_err() {
                Some("the line is not valid UTF-8".to_string())
            } else {
                None
            };
            match problem {
                Some(reason) => {
                    // Reject the whole point the line belongs to; its lines stay as blanks.
                    let (from, first) = if scanner.is_open() {
                        batch.points -= 1;
                        point
                    } else {
                        (start, line_number)
                    };
                    let reason = if first == line_number {
                        reason
                    } else {
                        format!("{reason} (line {line_number} of this point)")
                    };
                    batch.local.push(Rejected {
                        line: first,
                        original: first_line_of(&batch.body[from..]),
                        reason,
                    });
                    blank_from(&mut batch.body, from);
                    scanner = Scanner::default();
                }
                None => {
                    if scanner.feed(&batch.body[start..]) == LineKind::Point {
                        batch.points += 1;
                        point = (start, line_number);
                    }
                }
            }
            if !scanner.is_open()
                && (batch.lines >= self.max_lines || batch.body.len() >= self.max_bytes)
            {
                break;
            }
        }
        batch.end_offset = self.offset;
        (batch.lines > 0).then_some(Ok(batch))
    }
}

/// What a request did with a batch.
#[derive(Debug, Default)]
pub struct BatchReport {
    /// The batch's first input line.
    pub first_line: u64,
    /// Its last input line.
    pub last_line: u64,
    /// Points in it (rejected-here ones included).
    pub points: u64,
    /// Rejected points the server or ferritectl listed, by input line.
    pub rejected: Vec<Rejected>,
    /// Rejected points counted but not listed.
    pub unlisted: u64,
    /// Input line ranges where the server may have rejected more lines than it listed.
    pub truncated: Vec<(u64, u64)>,
    /// Points of requests that failed (not stored, or not known to be).
    pub failed_points: u64,
    /// Why a request failed; the run stops after it.
    pub failure: Option<String>,
    /// Bytes of input read up to the end of this batch.
    pub end_offset: u64,
}

/// A `write_lp` error body.
#[derive(Debug, Deserialize)]
struct LinesBody {
    error: String,
    data: Vec<Issue>,
}

#[derive(Debug, Deserialize)]
struct Issue {
    original_line: String,
    line_number: u64,
    error_message: String,
}

/// One answer to one request.
enum Answer {
    Stored,
    Lines(LinesBody),
    TooLarge(String),
    Failed(String),
}

/// Sends batches to one database.
#[derive(Debug)]
pub struct Sender {
    http: Http,
    url: Url,
    database: String,
    gzip: bool,
}

impl Sender {
    /// Write to `database` with `precision`, gzipped or not.
    pub fn new(http: Http, database: &str, precision: Precision, gzip: bool) -> Self {
        let mut url = http.url(&["api", "v3", "write_lp"]);
        url.query_pairs_mut()
            .append_pair("db", database)
            .append_pair("precision", precision.as_str())
            .append_pair("accept_partial", "true");
        Self {
            http,
            url,
            database: database.to_string(),
            gzip,
        }
    }

    /// Send `batch` (split if the server finds it too large) and say what became of it.
    pub async fn send(&self, batch: Batch) -> BatchReport {
        let mut report = BatchReport {
            first_line: batch.first_line,
            last_line: batch.last_line(),
            end_offset: batch.end_offset,
            ..BatchReport::default()
        };
        let mut pending = vec![batch];
        while let Some(mut batch) = pending.pop() {
            report.points += batch.points + batch.local.len() as u64;
            report.rejected.append(&mut batch.local);
            if batch.points == 0 {
                continue;
            }
            match self.post(&batch).await {
                Answer::Stored => {}
                Answer::Lines(body) => self.lines(&batch, body, &mut report),
                Answer::TooLarge(message) => {
                    let (first, last, points) = (batch.first_line, batch.last_line(), batch.points);
                    match batch.split() {
                        Ok((head, tail)) => {
                            // Counted again when the halves are taken.
                            report.points -= points;
                            pending.push(tail);
                            pending.push(head);
                        }
                        Err(batch) => {
                            let (line, original) = batch.first_point();
                            report.rejected.push(Rejected {
                                line,
                                original,
                                reason: format!(
                                    "the only point of input lines {first}–{last} is larger \
                                     than the server accepts: {message}"
                                ),
                            });
                        }
                    }
                }
                Answer::Failed(message) => {
                    report.failed_points += batch.points;
                    report.failure = Some(format!(
                        "lines {}–{} not written: {message}",
                        batch.first_line,
                        batch.last_line()
                    ));
                    // The rest of this batch is not sent either.
                    for rest in pending.drain(..) {
                        report.points += rest.points + rest.local.len() as u64;
                        report.failed_points += rest.points;
                        report.rejected.extend(rest.local);
                    }
                }
            }
        }
        report.rejected.sort_by_key(|r| r.line);
        report
    }

    /// The rejected lines of an answer, in input numbering.
    fn lines(&self, batch: &Batch, body: LinesBody, report: &mut BatchReport) {
        let listed = body.data.len() as u64;
        for issue in body.data {
            report.rejected.push(Rejected {
                line: batch.first_line + issue.line_number.saturating_sub(1),
                original: issue.original_line,
                reason: issue.error_message,
            });
        }
        // "parsing failed": nothing of the request was stored, so every point was rejected.
        let nothing_stored = !body.error.starts_with("partial write");
        if nothing_stored {
            report.unlisted += batch.points.saturating_sub(listed);
        } else if listed >= 100 {
            report.truncated.push((batch.first_line, batch.last_line()));
        }
    }

    async fn post(&self, batch: &Batch) -> Answer {
        let what = format!("writing to database '{}'", self.database);
        let body: Bytes = if self.gzip {
            let raw = batch.body.clone();
            match tokio::task::spawn_blocking(move || gzip(&raw)).await {
                Ok(Ok(z)) => z.into(),
                Ok(Err(e)) => return Answer::Failed(format!("gzip: {e}")),
                Err(e) => return Answer::Failed(format!("gzip: {e}")),
            }
        } else {
            batch.body.clone().into()
        };
        let mut backoff =
            ferrite_retry::Backoff::new(Duration::from_millis(250), Duration::from_secs(10));
        for attempt in 1..=MAX_ATTEMPTS {
            let mut request = self
                .http
                .request(Method::POST, self.url.clone())
                .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
                .body(body.clone());
            if self.gzip {
                request = request.header(header::CONTENT_ENCODING, "gzip");
            }
            let response = match request.send().await {
                Ok(r) => r,
                // The request never left: safe to send again.
                Err(e) if e.is_connect() && attempt < MAX_ATTEMPTS => {
                    tokio::time::sleep(backoff.next_delay()).await;
                    continue;
                }
                Err(e) if e.is_connect() => {
                    return Answer::Failed(format!(
                        "{what}: cannot reach ferrite at {}: {}",
                        origin(&self.url),
                        innermost(&e)
                    ));
                }
                Err(e) if e.is_timeout() => {
                    return Answer::Failed(format!(
                        "{what}: no answer in time (raise --timeout?); these lines may or may \
                         not have been stored"
                    ));
                }
                Err(e) => {
                    return Answer::Failed(format!(
                        "{what}: the request failed ({}); these lines may or may not have been \
                         stored",
                        innermost(&e)
                    ));
                }
            };
            let status = response.status();
            if status.is_success() {
                return Answer::Stored;
            }
            let retry_after = response
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(|s| Duration::from_secs_f64(s.min(60.0)));
            let text = response.text().await.unwrap_or_default();
            match status {
                StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
                    if attempt < MAX_ATTEMPTS =>
                {
                    let delay = retry_after.unwrap_or_else(|| backoff.next_delay());
                    tokio::time::sleep(delay).await;
                }
                StatusCode::PAYLOAD_TOO_LARGE => return Answer::TooLarge(message_of(&text)),
                StatusCode::BAD_REQUEST => {
                    return match serde_json::from_str::<LinesBody>(&text) {
                        Ok(lines) => Answer::Lines(lines),
                        Err(_) => Answer::Failed(format!(
                            "{what}: 400 Bad Request: {}",
                            message_of(&text)
                        )),
                    };
                }
                _ => {
                    let message = message_of(&text);
                    let hint = hint_for(status, &message);
                    let tries = if attempt > 1 {
                        format!(" (after {attempt} attempts)")
                    } else {
                        String::new()
                    };
                    return Answer::Failed(format!("{what}: {status}: {message}{hint}{tries}"));
                }
            }
        }
        Answer::Failed(format!(
            "{what}: the server stayed busy for {MAX_ATTEMPTS} attempts"
        ))
    }
}

fn gzip(raw: &[u8]) -> io::Result<Vec<u8>> {
    use std::io::Write as _;
    let mut z = flate2::write::GzEncoder::new(
        Vec::with_capacity(raw.len() / 4),
        flate2::Compression::fast(),
    );
    z.write_all(raw)?;
    z.finish()
}

/// Where the line protocol comes from.
#[derive(Debug, Clone)]
pub enum Input {
    /// The argument.
    Text(String),
    /// `-` or `--file -`.
    Stdin,
    /// `--file PATH`.
    File(PathBuf),
}

/// A write that could not start, or could not read its input.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The file cannot be opened.
    #[error("cannot open {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Nothing to write.
    #[error("nothing to write: the input holds no line protocol (only blank or comment lines)")]
    Empty,
}

/// How a write went.
#[derive(Debug, Default)]
pub struct Summary {
    /// Points read.
    pub points: u64,
    /// Points rejected (a lower bound when `truncated` is not empty).
    pub rejected: u64,
    /// Where more lines may have been rejected than the server listed.
    pub truncated: Vec<(u64, u64)>,
    /// Points not written because a request failed.
    pub failed_points: u64,
    /// Why the run stopped early.
    pub failure: Option<String>,
    /// How long it took.
    pub elapsed: Duration,
}

impl Summary {
    /// Points stored (an upper bound when `truncated` is not empty).
    pub fn written(&self) -> u64 {
        self.points
            .saturating_sub(self.rejected)
            .saturating_sub(self.failed_points)
    }

    /// Everything stored.
    pub fn is_clean(&self) -> bool {
        self.rejected == 0 && self.failure.is_none() && self.truncated.is_empty()
    }

    /// The closing lines.
    pub fn describe(&self) -> String {
        let secs = self.elapsed.as_secs_f64().max(0.001);
        let written = self.written();
        let approx = if self.truncated.is_empty() {
            ""
        } else {
            "at most "
        };
        let mut text = format!(
            "wrote {approx}{} of {} lines in {secs:.1}s ({} lines/s)",
            grouped(written),
            grouped(self.points),
            grouped((written as f64 / secs) as u64)
        );
        if self.rejected > 0 || !self.truncated.is_empty() {
            let at_least = if self.truncated.is_empty() {
                ""
            } else {
                "at least "
            };
            text.push_str(&format!("; {at_least}{} rejected", grouped(self.rejected)));
        }
        if self.failed_points > 0 {
            text.push_str(&format!("; {} not written", grouped(self.failed_points)));
        }
        text.push('\n');
        if !self.truncated.is_empty() {
            let ranges: Vec<String> = self
                .truncated
                .iter()
                .map(|(a, b)| format!("{a}–{b}"))
                .collect();
            text.push_str(&format!(
                "the server lists at most 100 rejected lines per request; in input lines {} \
                 more lines may have been rejected than are listed above (a smaller \
                 --batch-size lists them all)\n",
                ranges.join(", ")
            ));
        }
        if let Some(failure) = &self.failure {
            text.push_str(&format!("stopped early: {failure}\n"));
        }
        text
    }
}

/// `1234567` → `1,234,567`.
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Settings of one write.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// The most physical lines per request.
    pub batch_size: u64,
    /// Requests in flight at once.
    pub concurrency: usize,
}

fn print_rejects(report: &BatchReport) {
    let mut text = String::new();
    for r in &report.rejected {
        text.push_str(&format!("line {}: {}\n", r.line, r.reason));
        if !r.original.is_empty() {
            text.push_str(&format!("    {}\n", r.original));
        }
    }
    if report.unlisted > 0 {
        text.push_str(&format!(
            "lines {}–{}: {} more rejected lines that the server did not list (it lists at \
             most 100 per request, and stored none of this one)\n",
            report.first_line, report.last_line, report.unlisted
        ));
    }
    for (a, b) in &report.truncated {
        text.push_str(&format!(
            "lines {a}–{b}: the server listed 100 rejected lines, its most per request; more \
             of these lines may have been rejected\n"
        ));
    }
    if let Some(failure) = &report.failure {
        text.push_str(&format!("error: {failure}\n"));
    }
    if !text.is_empty() {
        eprint!("{text}");
    }
}

/// Read `input`, send it through `sender`, report rejected lines on standard error as the
/// answers come, and return the totals.
pub async fn write(
    sender: Sender,
    input: Input,
    options: WriteOptions,
) -> Result<Summary, WriteError> {
    let started = Instant::now();
    let (reader, size): (Box<dyn BufRead + Send>, Option<u64>) = match input {
        Input::Text(text) => (Box::new(io::Cursor::new(text.into_bytes())), None),
        Input::Stdin => (
            Box::new(BufReader::with_capacity(1 << 20, io::stdin())),
            None,
        ),
        Input::File(path) => {
            let file = std::fs::File::open(&path).map_err(|source| WriteError::Open {
                path: path.clone(),
                source,
            })?;
            let size = file.metadata().ok().map(|m| m.len());
            let reader: Box<dyn Read + Send> = Box::new(file);
            (Box::new(BufReader::with_capacity(1 << 20, reader)), size)
        }
    };
    let progress = match size {
        Some(n) if n > PROGRESS_MIN_BYTES && io::stderr().is_terminal() => Some(progress_bar(n)),
        _ => None,
    };

    let concurrency = options.concurrency.max(1);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<io::Result<Batch>>(concurrency);
    let stop = Arc::new(AtomicBool::new(false));
    let reading = {
        let stop = Arc::clone(&stop);
        let batcher = Batcher::new(reader, options.batch_size, MAX_BATCH_BYTES);
        tokio::task::spawn_blocking(move || {
            for batch in batcher {
                if stop.load(Ordering::Relaxed) || tx.blocking_send(batch).is_err() {
                    break;
                }
            }
        })
    };

    let sender = Arc::new(sender);
    let mut summary = Summary::default();
    let mut sent_lines = 0;
    {
        let batches = futures::stream::poll_fn(|cx| rx.poll_recv(cx));
        let stop_taking = Arc::clone(&stop);
        let mut reports = batches
            .take_while(move |_| futures::future::ready(!stop_taking.load(Ordering::Relaxed)))
            .map(|item| {
                let sender = Arc::clone(&sender);
                async move {
                    match item {
                        Ok(batch) => Ok((batch.lines, sender.send(batch).await)),
                        Err(e) => Err(e),
                    }
                }
            })
            .buffered(concurrency);
        while let Some(item) = reports.next().await {
            let report = match item {
                Ok((lines, report)) => {
                    sent_lines += lines;
                    report
                }
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    summary.failure = Some(format!(
                        "reading the input failed after line {sent_lines}: {e}"
                    ));
                    eprintln!("error: reading the input failed after line {sent_lines}: {e}");
                    continue;
                }
            };
            match &progress {
                Some(bar) => bar.suspend(|| print_rejects(&report)),
                None => print_rejects(&report),
            }
            summary.points += report.points;
            summary.rejected += report.rejected.len() as u64 + report.unlisted;
            summary.truncated.extend(report.truncated.iter().copied());
            summary.failed_points += report.failed_points;
            if let Some(failure) = report.failure {
                stop.store(true, Ordering::Relaxed);
                summary.failure.get_or_insert(failure);
            }
            if let Some(bar) = &progress {
                bar.set_position(report.end_offset);
                let secs = started.elapsed().as_secs_f64().max(0.001);
                bar.set_message(format!(
                    "{} lines, {} lines/s",
                    grouped(summary.written()),
                    grouped((summary.written() as f64 / secs) as u64)
                ));
            }
        }
    }
    drop(rx);
    let _ = reading.await;
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    summary.elapsed = started.elapsed();
    if summary.points == 0 && summary.failure.is_none() {
        return Err(WriteError::Empty);
    }
    Ok(summary)
}

fn progress_bar(total: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{bar:30} {bytes}/{total_bytes} {msg} (eta {eta})")
    {
        bar.set_style(style);
    }
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batches(input: &str, max_lines: u64, max_bytes: usize) -> Vec<Batch> {
        Batcher::new(
            io::Cursor::new(input.as_bytes().to_vec()),
            max_lines,
            max_bytes,
        )
        .map(Result::unwrap)
        .collect()
    }

    #[test]
    fn batches_keep_every_physical_line_so_numbers_map_by_offset() {
        let input = "a v=1 1\n\n# comment\nb v=2 2\nc v=3 3\nd v=4 4\n";
        let b = batches(input, 2, MAX_BATCH_BYTES);
        let spans: Vec<(u64, u64, u64)> = b
            .iter()
            .map(|b| (b.first_line, b.lines, b.points))
            .collect();
        assert_eq!(spans, [(1, 2, 1), (3, 2, 1), (5, 2, 2)]);
        let joined: Vec<u8> = b.iter().flat_map(|b| b.body.clone()).collect();
        assert_eq!(joined, input.as_bytes());
        assert_eq!(b[2].end_offset, input.len() as u64);
    }

    #[test]
    fn a_batch_is_never_cut_inside_a_string_that_spans_lines() {
        let input = "a s=\"one\ntwo\nthree\" 1\nb v=1 2\nc v=2 3\n";
        let b = batches(input, 1, MAX_BATCH_BYTES);
        let spans: Vec<(u64, u64, u64)> = b
            .iter()
            .map(|b| (b.first_line, b.lines, b.points))
            .collect();
        assert_eq!(spans, [(1, 3, 1), (4, 1, 1), (5, 1, 1)]);
    }

    #[test]
    fn quotes_outside_field_values_do_not_open_strings() {
        let mut s = Scanner::default();
        assert_eq!(s.feed(b"m\"x,t=\"q v=1 1\n"), LineKind::Point);
        assert!(!s.is_open());
        assert_eq!(s.feed(b"m f\"k=\"a\\\"b\" 1\n"), LineKind::Point);
        assert!(!s.is_open());
        assert_eq!(s.feed(b"m a=1,b=\"open\n"), LineKind::Point);
        assert!(s.is_open());
        assert_eq!(s.feed(b"still\\\" open\n"), LineKind::Continuation);
        assert!(s.is_open());
        assert_eq!(s.feed(b"closed\" 5\n"), LineKind::Continuation);
        assert!(!s.is_open());
        assert_eq!(s.feed(b"  \t\r\n"), LineKind::Skip);
        assert_eq!(s.feed(b"\xEF\xBB\xBF# bom comment"), LineKind::Skip);
    }

    #[test]
    fn the_byte_limit_cuts_between_lines() {
        let line = "m v=1 1\n";
        let input = line.repeat(10);
        let b = batches(&input, 1000, line.len() * 3);
        assert!(b.iter().all(|b| b.body.len() <= line.len() * 3));
        assert_eq!(b.iter().map(|b| b.lines).sum::<u64>(), 10);
        assert_eq!(b[1].first_line, 4);
    }

    #[test]
    fn points_that_are_not_utf8_are_rejected_here_and_blanked() {
        let mut input = b"a v=1 1\nb,t=".to_vec();
        input.extend([0xFF, 0xFE]);
        input.extend(b" v=2 2\nc s=\"x\n\xFF\" 3\nd v=4 4\n");
        let b: Vec<Batch> = Batcher::new(io::Cursor::new(input), 100, MAX_BATCH_BYTES)
            .map(Result::unwrap)
            .collect();
        assert_eq!(b.len(), 1);
        let b = &b[0];
        assert_eq!(b.body, b"a v=1 1\n\n\n\nd v=4 4\n");
        assert_eq!((b.lines, b.points), (5, 2));
        let lines: Vec<u64> = b.local.iter().map(|r| r.line).collect();
        assert_eq!(lines, [2, 3]);
        assert!(b.local[1].reason.contains("line 4"), "{:?}", b.local[1]);
        assert_eq!(b.local[1].original, "c s=\"x");
    }

    #[test]
    fn a_point_over_the_request_limit_is_rejected_here() {
        let input = format!("a v=1 1\nb s=\"{}\" 2\nc v=3 3", "x".repeat(100));
        let b: Vec<Batch> = Batcher::new(io::Cursor::new(input.into_bytes()), 100, 50)
            .with_max_point_bytes(60)
            .map(Result::unwrap)
            .collect();
        let local: Vec<&Rejected> = b.iter().flat_map(|b| &b.local).collect();
        assert_eq!(local.len(), 1);
        assert_eq!(local[0].line, 2);
        assert_eq!(b.iter().map(|b| b.points).sum::<u64>(), 2);
        assert_eq!(b.iter().map(|b| b.lines).sum::<u64>(), 3);
    }

    #[test]
    fn split_halves_keep_numbering_and_counts() {
        let input = "a v=1 1\nb v=2 2\n\nc s=\"x\ny\" 3\nd v=4 4\n";
        let batch = batches(input, 100, MAX_BATCH_BYTES).remove(0);
        let (head, tail) = batch.split().unwrap();
        assert_eq!((head.first_line, head.lines, head.points), (1, 3, 2));
        assert_eq!((tail.first_line, tail.lines, tail.points), (4, 3, 2));
        assert_eq!(tail.body, b"c s=\"x\ny\" 3\nd v=4 4\n");
        let single = batches("a v=1 1\n", 100, MAX_BATCH_BYTES).remove(0);
        assert!(single.split().is_err());
    }

    #[test]
    fn summaries_say_at_least_when_the_server_listed_its_maximum() {
        let mut s = Summary {
            points: 1000,
            rejected: 3,
            elapsed: Duration::from_secs(2),
            ..Summary::default()
        };
        assert_eq!(
            s.describe(),
            "wrote 997 of 1,000 lines in 2.0s (498 lines/s); 3 rejected\n"
        );
        s.truncated.push((1, 500));
        let text = s.describe();
        assert!(
            text.starts_with("wrote at most 997 of 1,000 lines"),
            "{text}"
        );
        assert!(text.contains("at least 3 rejected"), "{text}");
        assert!(text.contains("input lines 1–500"), "{text}");
        assert_eq!(grouped(1_234_567), "1,234,567");
        assert_eq!(grouped(12), "12");
    }
}
