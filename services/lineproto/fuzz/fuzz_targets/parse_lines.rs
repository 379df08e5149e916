//! Arbitrary bytes (as lossy UTF-8) through `parse_lines`: no panic, and the invariants of
//! the crate doc hold for every result.
//!
//! Run: `cargo +nightly fuzz run parse_lines` in `services/lineproto/fuzz`.

#![no_main]

use ferrite_lineproto::{MAX_ORIGINAL_LINE_BYTES, ParsedLine, Precision, parse_lines};
use libfuzzer_sys::fuzz_target;

const PRECISIONS: [Precision; 5] = [
    Precision::Nanosecond,
    Precision::Microsecond,
    Precision::Millisecond,
    Precision::Second,
    Precision::Auto,
];

fuzz_target!(|data: &[u8]| {
    let (selector, rest) = data.split_first().unwrap_or((&0, &[]));
    let precision = PRECISIONS[usize::from(*selector) % PRECISIONS.len()];
    let body = String::from_utf8_lossy(rest);
    let physical_lines = body.matches('\n').count() + 1;

    let results: Vec<_> = parse_lines(&body).with_precision(precision).collect();

    // The reusing API gives the same answers.
    let mut lines = parse_lines(&body).with_precision(precision);
    let mut line = ParsedLine::default();
    let mut reused = Vec::new();
    while let Some(r) = lines.next_into(&mut line) {
        reused.push(r.map(|()| line.clone()));
    }
    assert_eq!(results, reused);

    let mut last = 0;
    for result in &results {
        let n = match result {
            Ok(l) => {
                check_line(l);
                l.line_number
            }
            Err(e) => {
                assert!(e.original_line.len() <= MAX_ORIGINAL_LINE_BYTES);
                assert!(!e.to_string().is_empty());
                e.line_number
            }
        };
        assert!(n > last, "line numbers must increase: {last} then {n}");
        assert!(n <= physical_lines);
        last = n;
    }
});

fn check_line(l: &ParsedLine<'_>) {
    assert!(!l.measurement.is_empty());
    assert!(!l.fields.is_empty());
    for (i, (k, v)) in l.tags.iter().enumerate() {
        assert!(!k.is_empty() && !v.is_empty() && k != "time");
        assert!(l.tags[..i].iter().all(|(other, _)| other != k));
    }
    for (i, (k, _)) in l.fields.iter().enumerate() {
        assert!(!k.is_empty() && k != "time");
        assert!(l.fields[..i].iter().all(|(other, _)| other != k));
    }
    // Writing the line back and parsing it gives the same line.
    let text = l.to_string();
    let mut again: Vec<_> = parse_lines(&text).collect();
    assert_eq!(again.len(), 1, "{text:?}");
    let mut again = again.remove(0).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    again.line_number = l.line_number;
    assert_eq!(&again, l, "{text:?}");
}
