//! ferrite-influxql: the InfluxQL (InfluxDB 1.x) parser.
//!
//! Turns query text into a typed syntax tree a planner can work from, or into one
//! [`ParseError`] worded like InfluxDB's. It plans and executes nothing.
//!
//! ```text
//!   "SELECT mean(v) FROM cpu WHERE time > now() - 1h GROUP BY time(1m); SHOW DATABASES"
//!        │
//!        ▼  lexer: one token at a time from a byte offset; a `/` where an operand is
//!        │         expected is rescanned as a regex literal `/…/`
//!        ▼  parser: recursive descent, one token of lookahead, precedence climbing
//!   Vec<Statement>  ──Display──►  canonical InfluxQL (parses back to the same tree)
//! ```
//!
//! # What is accepted
//!
//! `SELECT` (fields, `FROM` measurements / regexes / subqueries, `WHERE`, `GROUP BY
//! time(…)`, tags, regex and `*`, `fill`, `ORDER BY time`, `LIMIT`, `OFFSET`, `SLIMIT`,
//! `SOFFSET`, `tz`), `SHOW DATABASES`, `SHOW MEASUREMENTS`, `SHOW TAG KEYS`, `SHOW TAG
//! VALUES`, `SHOW FIELD KEYS`, `SHOW SERIES`, `SHOW RETENTION POLICIES`, `CREATE DATABASE`.
//! `SELECT … INTO` is rejected with its own error. Keywords are InfluxDB 1.x's reserved words,
//! case-insensitive; using one as a name needs double quotes, as in InfluxDB.
//!
//! # Invariants
//!
//! * The parser never panics, on any input; every error carries the byte offset and the
//!   1-based line and character of the offending token.
//! * Durations are nanoseconds in `i64` (overflow is an error, not a wrap); regexes are kept
//!   as their source text, uncompiled.
//! * For every tree `t` the parser returns, `parse(t.to_string()) == t`.

mod ast;
mod error;
mod lexer;
mod parser;

pub use ast::*;
pub use error::ParseError;
pub use parser::MAX_NESTING;

/// Parses `;`-separated statements (empty ones, a trailing `;` and empty input are allowed).
pub fn parse_statements(query: &str) -> Result<Vec<Statement>, ParseError> {
    parser::Parser::new(query).statements()
}

/// Parses exactly one statement, optionally followed by `;`.
pub fn parse_statement(query: &str) -> Result<Statement, ParseError> {
    parser::Parser::new(query).single_statement()
}

/// Parses a single expression (a condition or a projection), e.g. for tests and tools.
pub fn parse_expr(text: &str) -> Result<Expr, ParseError> {
    let mut parser = parser::Parser::new(text);
    let expr = parser.expr()?;
    parser.end()?;
    Ok(expr)
}

#[cfg(test)]
mod tests;
