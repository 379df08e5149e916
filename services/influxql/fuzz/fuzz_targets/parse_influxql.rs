//! Arbitrary bytes (as lossy UTF-8) through `parse_statements`: no panic, errors point inside
//! the input, and every tree prints to text that parses back to the same tree.
//!
//! Run: `cargo +nightly fuzz run parse_influxql corpus seeds -- -dict=parse_influxql.dict` in
//! `services/influxql/fuzz` (new inputs go to the ignored `corpus`, `seeds` stays as is).

#![no_main]

use ferrite_influxql::{parse_statement, parse_statements};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let query = String::from_utf8_lossy(data);
    match parse_statements(&query) {
        Ok(statements) => {
            for statement in statements {
                let printed = statement.to_string();
                let reparsed = parse_statement(&printed)
                    .unwrap_or_else(|e| panic!("{printed:?} does not parse back: {e}"));
                assert_eq!(reparsed, statement, "{printed:?}");
            }
        }
        Err(e) => {
            assert!(e.offset <= query.len());
            assert!(e.line >= 1 && e.column >= 1);
        }
    }
});
