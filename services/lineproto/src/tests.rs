//! The parser's specification, one rule per test.

use std::borrow::Cow;

use crate::{
    FieldValue, LineError, LineErrorKind, MAX_ORIGINAL_LINE_BYTES, ParsedLine, Precision,
    escape::{escape_key, escape_measurement, escape_string_value},
    parse_lines,
};

use FieldValue::{Bool, F64, I64, String as Str, U64};

/// Parses a body that must hold exactly one good line.
fn one(body: &str) -> ParsedLine<'_> {
    let mut all: Vec<_> = parse_lines(body).collect();
    assert_eq!(all.len(), 1, "expected one line from {body:?}, got {all:?}");
    all.remove(0)
        .unwrap_or_else(|e| panic!("{body:?} failed: {e}"))
}

/// Parses a body that must hold exactly one line, and it must be bad.
fn err(body: &str) -> LineError {
    let mut all: Vec<_> = parse_lines(body).collect();
    assert_eq!(all.len(), 1, "expected one line from {body:?}, got {all:?}");
    all.remove(0)
        .expect_err(&format!("{body:?} should have failed"))
}

fn kind(body: &str) -> LineErrorKind {
    err(body).kind
}

/// The value of field `f` of the single line `m f=<value>`.
fn value(v: &str) -> FieldValue<'static> {
    let body = format!("m f={v}");
    one(&body).field("f").cloned().unwrap().into_owned()
}

fn value_err(v: &str) -> String {
    kind(&format!("m f={v}")).to_string()
}

/// `(line_number, Ok | error message)` for every item of a body.
fn outline(body: &str) -> Vec<(usize, Result<(), String>)> {
    parse_lines(body)
        .map(|r| match r {
            Ok(l) => (l.line_number, Ok(())),
            Err(e) => (e.line_number, Err(e.kind.to_string())),
        })
        .collect()
}

// ---------------------------------------------------------------- line shape

#[test]
fn minimal_line_is_measurement_and_one_field() {
    let l = one("m f=1");
    assert_eq!(l.line_number, 1);
    assert_eq!(l.measurement, "m");
    assert!(l.tags.is_empty());
    assert_eq!(l.fields, vec![(Cow::Borrowed("f"), F64(1.0))]);
    assert_eq!(l.timestamp, None);
}

#[test]
fn full_line_has_tags_fields_and_timestamp_in_written_order() {
    let l =
        one("cpu,host=a,region=west usage=0.5,count=3i,ok=t,name=\"x\",big=7u 1700000000000000000");
    assert_eq!(l.measurement, "cpu");
    assert_eq!(
        l.tags,
        vec![
            (Cow::Borrowed("host"), Cow::Borrowed("a")),
            (Cow::Borrowed("region"), Cow::Borrowed("west"))
        ]
    );
    assert_eq!(
        l.fields,
        vec![
            (Cow::Borrowed("usage"), F64(0.5)),
            (Cow::Borrowed("count"), I64(3)),
            (Cow::Borrowed("ok"), Bool(true)),
            (Cow::Borrowed("name"), Str(Cow::Borrowed("x"))),
            (Cow::Borrowed("big"), U64(7)),
        ]
    );
    assert_eq!(l.timestamp, Some(1_700_000_000_000_000_000));
    assert_eq!(l.tag("region"), Some("west"));
    assert_eq!(l.tag("nope"), None);
    assert_eq!(l.field("count"), Some(&I64(3)));
}

#[test]
fn names_and_strings_without_escapes_borrow_from_the_body() {
    let l = one("m,t=v f=\"s\"");
    assert!(matches!(l.measurement, Cow::Borrowed(_)));
    assert!(matches!(l.tags[0].0, Cow::Borrowed(_)));
    assert!(matches!(l.tags[0].1, Cow::Borrowed(_)));
    assert!(matches!(l.fields[0].0, Cow::Borrowed(_)));
    assert!(matches!(l.fields[0].1, Str(Cow::Borrowed(_))));
}

#[test]
fn names_with_escapes_are_owned() {
    let l = one(r#"m\ 1,t\,=v\= f\==" \" ""#);
    assert!(matches!(l.measurement, Cow::Owned(_)));
    assert!(matches!(l.tags[0].0, Cow::Owned(_)));
    assert!(matches!(l.tags[0].1, Cow::Owned(_)));
    assert!(matches!(l.fields[0].0, Cow::Owned(_)));
    assert!(matches!(l.fields[0].1, Str(Cow::Owned(_))));
}

#[test]
fn sections_may_be_separated_by_several_spaces() {
    let l = one("m,t=1   f=1,g=2    5");
    assert_eq!(l.fields.len(), 2);
    assert_eq!(l.timestamp, Some(5));
}

#[test]
fn leading_spaces_and_tabs_are_skipped() {
    assert_eq!(one("  \t m f=1").measurement, "m");
}

#[test]
fn trailing_whitespace_is_ignored_with_or_without_timestamp() {
    assert_eq!(one("m f=1 \t ").timestamp, None);
    assert_eq!(one("m f=1\t").timestamp, None);
    assert_eq!(one("m f=1 5  \t").timestamp, Some(5));
    assert_eq!(one("m f=\"x\"  ").field("f"), Some(&Str("x".into())));
}

#[test]
fn crlf_line_endings_are_accepted() {
    let body = "m f=1 1\r\nm f=2i\r\n\r\nm f=t\r\n";
    let lines: Vec<_> = parse_lines(body).map(Result::unwrap).collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0].timestamp, Some(1));
    assert_eq!(lines[1].field("f"), Some(&I64(2)));
    assert_eq!(lines[2].line_number, 4);
}

#[test]
fn blank_and_comment_lines_are_skipped_but_counted() {
    let body = "\n# comment\n   \n  # indented comment\n\t\nm f=1\n";
    let l = one(body);
    assert_eq!(l.line_number, 6);
}

#[test]
fn a_comment_ends_at_its_newline_even_with_a_quote_in_it() {
    let body = "# a comment f=\"unclosed\nm f=1";
    assert_eq!(one(body).line_number, 2);
}

#[test]
fn a_hash_after_the_start_is_part_of_the_name() {
    assert_eq!(one("m#1,t#=#v f#=1").measurement, "m#1");
}

#[test]
fn an_empty_body_or_only_comments_yields_nothing() {
    assert!(parse_lines("").next().is_none());
    assert!(parse_lines("\n\n  \n# x\n").next().is_none());
}

#[test]
fn a_byte_order_mark_at_the_start_of_a_line_is_skipped() {
    assert_eq!(one("\u{feff}m f=1").measurement, "m");
    assert_eq!(one("\n \u{feff}m f=1").measurement, "m");
    // Elsewhere it is an ordinary character.
    assert_eq!(one("m\u{feff} f=1").measurement, "m\u{feff}");
}

#[test]
fn the_last_line_needs_no_newline() {
    assert_eq!(outline("m f=1\nm f=2"), vec![(1, Ok(())), (2, Ok(()))]);
}

// ---------------------------------------------------------------- escaping

#[test]
fn measurement_escapes_comma_space_and_backslash() {
    assert_eq!(one(r"we\,a\ th\\er f=1").measurement, r"we,a th\er");
}

#[test]
fn measurement_keeps_equals_sign_and_backslash_equals_literally() {
    assert_eq!(one(r"a=b f=1").measurement, "a=b");
    assert_eq!(one(r"a\=b f=1").measurement, r"a\=b");
}

#[test]
fn tag_keys_values_and_field_keys_escape_comma_equals_space_and_backslash() {
    let l = one(r"m,k\,1\=\ \\=v\,1\=\ \\ f\,1\=\ \\=1");
    assert_eq!(l.tags[0].0, r"k,1= \");
    assert_eq!(l.tags[0].1, r"v,1= \");
    assert_eq!(l.fields[0].0, r"f,1= \");
}

#[test]
fn backslash_before_any_other_character_is_literal() {
    let l = one(r"m\a,t\b=v\c f\d=1");
    assert_eq!(l.measurement, r"m\a");
    assert_eq!(l.tags[0], (Cow::from(r"t\b"), Cow::from(r"v\c")));
    assert_eq!(l.fields[0].0, r"f\d");
    assert_eq!(one(r"m\é f=1").measurement, r"m\é");
}

#[test]
fn a_decoded_name_may_end_in_a_backslash() {
    let l = one(r"m\\,t\\=v\\ f\\=1");
    assert_eq!(l.measurement, r"m\");
    assert_eq!(l.tags[0], (Cow::from(r"t\"), Cow::from(r"v\")));
    assert_eq!(l.fields[0].0, r"f\");
}

#[test]
fn an_unescaped_equals_sign_in_a_tag_value_is_part_of_the_value() {
    assert_eq!(one("m,t=a=b f=1").tag("t"), Some("a=b"));
}

#[test]
fn tabs_and_unicode_are_ordinary_characters_in_names() {
    let l = one("mé\tx,ключ=值\t1 π=1");
    assert_eq!(l.measurement, "mé\tx");
    assert_eq!(l.tag("ключ"), Some("值\t1"));
    assert_eq!(l.field("π"), Some(&F64(1.0)));
}

#[test]
fn nul_is_allowed_in_tag_values_and_strings() {
    let l = one("m,t=a\0b f=\"x\0y\"");
    assert_eq!(l.tag("t"), Some("a\0b"));
    assert_eq!(l.field("f"), Some(&Str("x\0y".into())));
}

// ---------------------------------------------------------------- field values

#[test]
fn floats_in_every_accepted_form() {
    for (text, v) in [
        ("1", 1.0),
        ("-1", -1.0),
        ("1.0", 1.0),
        ("-1.5", -1.5),
        ("0", 0.0),
        ("1e10", 1e10),
        ("1E10", 1e10),
        ("-1.5e-3", -1.5e-3),
        ("1.5e+3", 1.5e3),
        ("1e-0", 1.0),
        (".5", 0.5),
        ("-.5", -0.5),
        ("1.", 1.0),
        ("007.5", 7.5),
        ("1.7976931348623157e308", f64::MAX),
        ("4.9e-324", 4.9e-324),
    ] {
        assert_eq!(value(text), F64(v), "{text}");
    }
    assert!(matches!(value("-0"), F64(z) if z == 0.0 && z.is_sign_negative()));
}

#[test]
fn malformed_floats_are_rejected_with_the_value_and_field() {
    for text in [
        "1e", "1e+", "1.2.3", "--1", "-", ".", "1+2", "1-", "-e5", "1_000", "1x", "-inf", "-nan",
    ] {
        assert_eq!(
            value_err(text),
            format!("invalid float '{text}' for field 'f': invalid syntax"),
        );
    }
}

#[test]
fn a_float_beyond_f64_is_out_of_range() {
    assert_eq!(
        value_err("1e999"),
        "invalid float '1e999' for field 'f': out of range"
    );
    let long = format!("{}.0", "9".repeat(400));
    assert!(value_err(&long).ends_with(": out of range"));
}

#[test]
fn integers_have_the_i_suffix_and_the_full_i64_range() {
    assert_eq!(value("1i"), I64(1));
    assert_eq!(value("-1i"), I64(-1));
    assert_eq!(value("0i"), I64(0));
    assert_eq!(value("-0i"), I64(0));
    assert_eq!(value("007i"), I64(7));
    assert_eq!(value("9223372036854775807i"), I64(i64::MAX));
    assert_eq!(value("-9223372036854775808i"), I64(i64::MIN));
}

#[test]
fn integer_overflow_is_an_error() {
    for text in [
        "9223372036854775808i",
        "-9223372036854775809i",
        "99999999999999999999i",
        "123456789012345678901234567890i",
    ] {
        assert_eq!(
            value_err(text),
            format!("invalid integer '{text}' for field 'f': out of range")
        );
    }
}

#[test]
fn malformed_integers_are_rejected() {
    for text in ["1.5i", "-i", "1e3i", "0x1i", "--1i", "1ii"] {
        assert_eq!(
            value_err(text),
            format!("invalid integer '{text}' for field 'f': invalid syntax")
        );
    }
}

#[test]
fn unsigned_integers_have_the_u_suffix_and_the_full_u64_range() {
    assert_eq!(value("0u"), U64(0));
    assert_eq!(value("7u"), U64(7));
    assert_eq!(value("18446744073709551615u"), U64(u64::MAX));
}

#[test]
fn unsigned_errors_say_why() {
    assert_eq!(
        value_err("18446744073709551616u"),
        "invalid unsigned integer '18446744073709551616u' for field 'f': out of range"
    );
    assert_eq!(
        value_err("-1u"),
        "invalid unsigned integer '-1u' for field 'f': negative"
    );
    assert_eq!(
        value_err("1.0u"),
        "invalid unsigned integer '1.0u' for field 'f': invalid syntax"
    );
}

#[test]
fn every_boolean_spelling() {
    for t in ["t", "T", "true", "True", "TRUE"] {
        assert_eq!(value(t), Bool(true), "{t}");
    }
    for f in ["f", "F", "false", "False", "FALSE"] {
        assert_eq!(value(f), Bool(false), "{f}");
    }
}

#[test]
fn other_words_are_not_values() {
    for text in [
        "tru", "TRue", "fals", "yes", "abc", "+1", "inf", "nan", "NaN", "'x'",
    ] {
        assert_eq!(
            kind(&format!("m f={text}")),
            LineErrorKind::InvalidFieldValue {
                key: "f".into(),
                value: text.into()
            },
            "{text}"
        );
    }
}

#[test]
fn quoted_strings_keep_delimiters_and_unescape_quote_and_backslash() {
    assert_eq!(value(r#""""#), Str("".into()));
    assert_eq!(value(r#""a b,c=d""#), Str("a b,c=d".into()));
    assert_eq!(value(r#""say \"hi\"""#), Str(r#"say "hi""#.into()));
    assert_eq!(value(r#""a\\b""#), Str(r"a\b".into()));
    assert_eq!(value(r#""a\nb\\\c""#), Str(r"a\nb\\c".into()));
    assert_eq!(value(r#""ends with \\""#), Str(r"ends with \".into()));
    assert_eq!(value(r#""ünï ✓""#), Str("ünï ✓".into()));
    assert_eq!(value(r#""1i""#), Str("1i".into()));
}

#[test]
fn a_quoted_string_may_span_lines_and_the_next_line_keeps_its_physical_number() {
    let body = "m s=\"line one\nline two\r\nthree\" 5\nm f=1\n";
    let lines: Vec<_> = parse_lines(body).map(Result::unwrap).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0].line_number, 1);
    assert_eq!(
        lines[0].field("s"),
        Some(&Str("line one\nline two\r\nthree".into()))
    );
    assert_eq!(lines[0].timestamp, Some(5));
    assert_eq!(lines[1].line_number, 4);
}

#[test]
fn fields_of_all_types_in_one_line() {
    let l = one(r#"m a=1.5,b=-2i,c=3u,d="x",e=FALSE"#);
    let types: Vec<_> = l.fields.iter().map(|(_, v)| v.type_name()).collect();
    assert_eq!(types, ["float", "integer", "unsigned", "string", "boolean"]);
}

// ---------------------------------------------------------------- duplicates and `time`

#[test]
fn a_repeated_field_keeps_the_last_value_at_the_first_position() {
    let l = one("m v=2,bananas=42,v=3,platanos=24,v=4");
    let keys: Vec<_> = l.fields.iter().map(|(k, _)| k.as_ref()).collect();
    assert_eq!(keys, ["v", "bananas", "platanos"]);
    assert_eq!(l.field("v"), Some(&F64(4.0)));
}

#[test]
fn a_repeated_field_with_another_type_is_an_error() {
    assert_eq!(
        kind("m v=2i,v=3u"),
        LineErrorKind::ConflictingFieldTypes {
            key: "v".into(),
            first: "integer",
            second: "unsigned"
        }
    );
    assert_eq!(
        kind("m v=2i,v=3u").to_string(),
        "field 'v' is specified more than once with conflicting types (integer and unsigned)"
    );
}

#[test]
fn a_repeated_tag_is_an_error_even_with_the_same_value() {
    assert_eq!(
        kind("m,a=1,b=2,a=1 f=1"),
        LineErrorKind::DuplicateTag { key: "a".into() }
    );
}

#[test]
fn many_distinct_keys_are_not_mistaken_for_duplicates() {
    let tags: Vec<String> = (0..200).map(|i| format!("t{i}={i}")).collect();
    let fields: Vec<String> = (0..200).map(|i| format!("f{i}={i}i")).collect();
    let body = format!("m,{} {}", tags.join(","), fields.join(","));
    let l = one(&body);
    assert_eq!(l.tags.len(), 200);
    assert_eq!(l.fields.len(), 200);
}

#[test]
fn duplicates_are_found_in_wide_lines_too() {
    let tags: Vec<String> = (0..100).map(|i| format!("t{i}={i}")).collect();
    let fields: Vec<String> = (0..100).map(|i| format!("f{i}={i}i")).collect();
    let (tags, fields) = (tags.join(","), fields.join(","));
    let body = format!("m,{tags} {fields},f7=-7i");
    let l = one(&body);
    assert_eq!(l.fields.len(), 100);
    assert_eq!(l.field("f7"), Some(&I64(-7)));
    assert_eq!(l.fields[7].0, "f7");
    assert_eq!(
        kind(&format!("m,{tags} {fields},f99=1")),
        LineErrorKind::ConflictingFieldTypes {
            key: "f99".into(),
            first: "integer",
            second: "float"
        }
    );
    assert_eq!(
        kind(&format!("m,{tags},t0=x {fields}")),
        LineErrorKind::DuplicateTag { key: "t0".into() }
    );
}

#[test]
fn a_line_with_tens_of_thousands_of_fields_or_repeats_parses() {
    let fields: Vec<String> = (0..20_000).map(|i| format!("f{i}={i}i")).collect();
    assert_eq!(one(&format!("m {}", fields.join(","))).fields.len(), 20_000);
    let repeats = vec!["f=1i"; 20_000].join(",");
    assert_eq!(one(&format!("m {repeats}")).fields.len(), 1);
}

#[test]
fn a_time_tag_is_an_error() {
    assert_eq!(kind("m,time=1 f=1"), LineErrorKind::TimeTag);
    // Only exactly `time`.
    assert_eq!(one("m,times=1,Time=2 f=1").tags.len(), 2);
}

#[test]
fn a_time_field_is_dropped() {
    let l = one("m time=1,f=2 3");
    assert_eq!(l.fields, vec![(Cow::Borrowed("f"), F64(2.0))]);
}

#[test]
fn a_line_whose_only_field_is_time_is_an_error() {
    assert_eq!(kind("m time=1i 3"), LineErrorKind::TimeOnlyField);
    assert_eq!(kind("m time=1,time=2"), LineErrorKind::TimeOnlyField);
}

// ---------------------------------------------------------------- timestamps

#[test]
fn timestamps_are_signed_i64() {
    assert_eq!(one("m f=1 0").timestamp, Some(0));
    assert_eq!(one("m f=1 -123").timestamp, Some(-123));
    assert_eq!(one("m f=1 9223372036854775807").timestamp, Some(i64::MAX));
    assert_eq!(one("m f=1 -9223372036854775808").timestamp, Some(i64::MIN));
}

#[test]
fn invalid_timestamps_are_named() {
    assert_eq!(
        kind("m f=1 abc").to_string(),
        "invalid timestamp 'abc': expected an integer"
    );
    assert_eq!(
        kind("m f=1 1.5").to_string(),
        "invalid timestamp '1.5': expected an integer"
    );
    assert_eq!(
        kind("m f=1 +5").to_string(),
        "invalid timestamp '+5': expected an integer"
    );
    assert_eq!(
        kind("m f=1 9223372036854775808").to_string(),
        "invalid timestamp '9223372036854775808': out of range"
    );
    // A forgotten comma reads as a timestamp in the wrong place.
    assert_eq!(
        kind("m f=1 g=2").to_string(),
        "invalid timestamp 'g=2': expected an integer"
    );
}

#[test]
fn content_after_the_timestamp_is_an_error() {
    assert_eq!(
        kind("m f=1 1 2"),
        LineErrorKind::TrailingContent {
            content: "2".into()
        }
    );
    assert_eq!(
        kind("m f=1\t123"),
        LineErrorKind::TrailingContent {
            content: "123".into()
        }
    );
}

#[test]
fn precision_scales_timestamps_to_nanoseconds() {
    let ts = |p: Precision| {
        parse_lines("m f=1 1700000000")
            .with_precision(p)
            .next()
            .unwrap()
            .unwrap()
            .timestamp
    };
    assert_eq!(ts(Precision::Nanosecond), Some(1_700_000_000));
    assert_eq!(ts(Precision::Microsecond), Some(1_700_000_000_000));
    assert_eq!(ts(Precision::Millisecond), Some(1_700_000_000_000_000));
    assert_eq!(ts(Precision::Second), Some(1_700_000_000_000_000_000));
    assert_eq!(ts(Precision::Auto), Some(1_700_000_000_000_000_000));
    // A line without timestamp stays without one.
    let l = parse_lines("m f=1")
        .with_precision(Precision::Second)
        .next();
    assert_eq!(l.unwrap().unwrap().timestamp, None);
}

#[test]
fn a_timestamp_that_overflows_its_precision_is_an_error_for_that_line_only() {
    let body = "m f=1 1\nm f=1 10000000000000\nm f=1 2";
    let results: Vec<_> = parse_lines(body)
        .with_precision(Precision::Second)
        .collect();
    assert_eq!(results[0].as_ref().unwrap().timestamp, Some(1_000_000_000));
    let e = results[1].as_ref().unwrap_err();
    assert_eq!(e.line_number, 2);
    assert_eq!(e.original_line, "m f=1 10000000000000");
    assert_eq!(
        e.to_string(),
        "error parsing line 2 (1-based): timestamp 10000000000000 out of range for precision s"
    );
    assert_eq!(results[2].as_ref().unwrap().timestamp, Some(2_000_000_000));
}

#[test]
fn auto_precision_guesses_the_unit_per_line_like_influxdb3() {
    let body = "m f=1 1700000000\nm f=1 1700000000000\nm f=1 1700000000000000\nm f=1 1700000000000000000\nm f=1 -1700000000";
    let got: Vec<_> = parse_lines(body)
        .with_precision(Precision::Auto)
        .map(|l| l.unwrap().timestamp.unwrap())
        .collect();
    assert_eq!(
        got,
        [
            1_700_000_000_000_000_000,
            1_700_000_000_000_000_000,
            1_700_000_000_000_000_000,
            1_700_000_000_000_000_000,
            -1_700_000_000_000_000_000
        ]
    );
}

#[test]
fn auto_precision_boundaries() {
    use Precision::*;
    assert_eq!(Precision::guess(0), Second);
    assert_eq!(Precision::guess(4_999_999_999), Second);
    assert_eq!(Precision::guess(5_000_000_000), Millisecond);
    assert_eq!(Precision::guess(4_999_999_999_999), Millisecond);
    assert_eq!(Precision::guess(5_000_000_000_000), Microsecond);
    assert_eq!(Precision::guess(4_999_999_999_999_999), Microsecond);
    assert_eq!(Precision::guess(5_000_000_000_000_000), Nanosecond);
    assert_eq!(Precision::guess(i64::MIN), Nanosecond);
    assert_eq!(Precision::guess(-4_999_999_999), Second);
}

#[test]
fn precision_accepts_every_client_spelling() {
    use Precision::*;
    for (s, p) in [
        ("n", Nanosecond),
        ("ns", Nanosecond),
        ("nanosecond", Nanosecond),
        ("u", Microsecond),
        ("us", Microsecond),
        ("µ", Microsecond),
        ("µs", Microsecond),
        ("μs", Microsecond),
        ("microsecond", Microsecond),
        ("ms", Millisecond),
        ("millisecond", Millisecond),
        ("s", Second),
        ("second", Second),
        ("auto", Auto),
    ] {
        assert_eq!(s.parse::<Precision>(), Ok(p), "{s}");
        assert_eq!(Precision::parse(s), Ok(p), "{s}");
    }
}

#[test]
fn an_unknown_precision_lists_the_accepted_ones() {
    for s in ["", "h", "m", "NS", "seconds", "x"] {
        let e = Precision::parse(s).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "invalid precision '{s}': expected one of ns, us, ms, s (or n, u, µs, \
                 nanosecond, microsecond, millisecond, second, auto)"
            )
        );
    }
}

#[test]
fn to_nanos_detects_overflow_in_both_directions() {
    assert_eq!(Precision::Second.to_nanos(-2), Ok(-2_000_000_000));
    assert!(
        Precision::Second
            .to_nanos(i64::MAX / 1_000_000_000 + 1)
            .is_err()
    );
    assert!(
        Precision::Millisecond
            .to_nanos(i64::MIN / 1_000_000 - 1)
            .is_err()
    );
    assert_eq!(Precision::Nanosecond.to_nanos(i64::MIN), Ok(i64::MIN));
    assert_eq!(Precision::Auto.to_nanos(i64::MAX), Ok(i64::MAX));
    assert_eq!(Precision::Second.to_string(), "s");
}

// ---------------------------------------------------------------- every error, with its line

/// Each bad line is put on line 4, after a comment, a blank line and a good line, and must
/// report line 4, its text, and the given reason. The good line after it must still parse.
#[test]
fn every_error_kind_names_its_line_and_reason() {
    let cases: &[(&str, &str)] = &[
        (",t=1 f=1", "missing measurement"),
        ("m\0 f=1", "measurement contains a NUL character"),
        ("m,t\0=1 f=1", "tag key contains a NUL character"),
        ("m f\0=1", "field key contains a NUL character"),
        (
            "m",
            "no fields: a line needs at least one field (key=value) after the measurement",
        ),
        (
            "m,t=1",
            "no fields: a line needs at least one field (key=value) after the measurement",
        ),
        (
            "m,t=1   ",
            "no fields: a line needs at least one field (key=value) after the measurement",
        ),
        (
            "m 1700000000",
            "no fields: a line needs at least one field (key=value) after the measurement",
        ),
        ("m,=v f=1", "missing tag key (expected key=value after ',')"),
        ("m, f=1", "missing tag key (expected key=value after ',')"),
        (
            "m,t=1, f=1",
            "missing tag key (expected key=value after ',')",
        ),
        ("m,host f=1", "missing tag value for key 'host'"),
        ("m,host= f=1", "missing tag value for key 'host'"),
        ("m,host=,b=1 f=1", "missing tag value for key 'host'"),
        ("m,host", "missing tag value for key 'host'"),
        ("m,a=1,a=2 f=1", "duplicate tag key 'a'"),
        (
            "m,time=1 f=1",
            "tag key 'time' is not allowed: 'time' is the timestamp column",
        ),
        ("m =1", "missing field key (expected key=value)"),
        ("m f=1,", "missing field key (expected key=value)"),
        ("m f=1,,g=2", "missing field key (expected key=value)"),
        ("m usage", "missing '=' after field key 'usage'"),
        ("m f,g=1", "missing '=' after field key 'f'"),
        ("m f=1,g 5", "missing '=' after field key 'g'"),
        ("m usage=", "missing field value for 'usage'"),
        ("m usage=,g=1", "missing field value for 'usage'"),
        ("m usage= 5", "missing field value for 'usage'"),
        (
            "m x=1.2.3",
            "invalid float '1.2.3' for field 'x': invalid syntax",
        ),
        (
            "m x=99999999999999999999i",
            "invalid integer '99999999999999999999i' for field 'x': out of range",
        ),
        (
            "m x=-1u",
            "invalid unsigned integer '-1u' for field 'x': negative",
        ),
        (
            "m x=yes",
            "invalid value 'yes' for field 'x': expected a float (1.5), an integer (1i), an unsigned integer (1u), a boolean (true/false) or a double-quoted string",
        ),
        ("m x=\"abc", "unterminated quoted string for field 'x'"),
        (
            "m x=\"abc\"d",
            "unexpected 'd' after the quoted string of field 'x'",
        ),
        (
            "m x=1i,x=1",
            "field 'x' is specified more than once with conflicting types (integer and float)",
        ),
        (
            "m time=1",
            "field key 'time' is not allowed ('time' is the timestamp column) and it was the only field",
        ),
        ("m f=1 abc", "invalid timestamp 'abc': expected an integer"),
        ("m f=1 1 2", "unexpected content '2' at end of line"),
    ];
    for (bad, reason) in cases {
        let body = format!("# header\n\nm ok=1\n{bad}\nm ok=2\n");
        let got = outline(&body);
        assert_eq!(
            got,
            vec![(3, Ok(())), (4, Err(reason.to_string())), (5, Ok(()))],
            "for {bad:?}"
        );
        let e = parse_lines(&body).nth(1).unwrap().unwrap_err();
        assert_eq!(e.original_line, *bad);
        assert_eq!(
            e.to_string(),
            format!("error parsing line 4 (1-based): {reason}")
        );
    }
}

#[test]
fn the_error_source_is_the_kind() {
    let e = err("m");
    let source = std::error::Error::source(&e).unwrap();
    assert_eq!(source.to_string(), LineErrorKind::NoFields.to_string());
}

// ---------------------------------------------------------------- recovery and numbering

#[test]
fn parsing_continues_after_each_bad_line() {
    let body = "bad\nm f=1\nalso bad\n\n# c\nm f=2\nm f=\nm f=3";
    assert_eq!(
        outline(body),
        vec![
            (
                1,
                Err(
                    "no fields: a line needs at least one field (key=value) after the measurement"
                        .into()
                )
            ),
            (2, Ok(())),
            (3, Err("missing '=' after field key 'bad'".into())),
            (6, Ok(())),
            (7, Err("missing field value for 'f'".into())),
            (8, Ok(())),
        ]
    );
}

#[test]
fn an_unterminated_string_costs_only_its_own_line() {
    let body = "m s=\"open\nm f=1\nm f=2";
    assert_eq!(
        outline(body),
        vec![
            (1, Err("unterminated quoted string for field 's'".into())),
            (2, Ok(())),
            (3, Ok(())),
        ]
    );
}

#[test]
fn a_bad_line_with_a_multiline_string_resumes_after_its_first_physical_line() {
    // The string closes on line 3 but is followed by garbage: line 1 is reported, and lines 2
    // and 3 are read as lines of their own.
    let body = "m s=\"a\nm f=1\nm g=\"x\"";
    assert_eq!(
        outline(body),
        vec![
            (
                1,
                Err("unexpected 'x' after the quoted string of field 's'".into())
            ),
            (2, Ok(())),
            (3, Ok(())),
        ]
    );
}

#[test]
fn original_line_drops_the_carriage_return() {
    let e = parse_lines("m f=1\r\nbad\r\n").nth(1).unwrap().unwrap_err();
    assert_eq!(e.line_number, 2);
    assert_eq!(e.original_line, "bad");
}

#[test]
fn original_line_is_capped_on_a_char_boundary() {
    let body = format!("m {}", "é".repeat(2000));
    let e = err(&body);
    assert!(e.original_line.len() <= MAX_ORIGINAL_LINE_BYTES);
    assert!(e.original_line.len() > MAX_ORIGINAL_LINE_BYTES - 4);
    assert!(body.starts_with(&e.original_line));
}

#[test]
fn long_values_in_messages_are_cut() {
    let body = format!("m f={}", "x".repeat(1000));
    let msg = kind(&body).to_string();
    assert!(msg.len() < 300, "{msg}");
    assert!(msg.contains("…"));
}

#[test]
fn next_into_reuses_the_line_and_agrees_with_the_iterator() {
    let body = "# c\nm,a=1 f=1 1\nbad\nm\\ x,b=2 g=\"s\",h=2i 2\n\nm f=t";
    let expected: Vec<_> = parse_lines(body).collect();
    let mut lines = parse_lines(body);
    let mut line = ParsedLine::default();
    let mut got = Vec::new();
    while let Some(r) = lines.next_into(&mut line) {
        got.push(r.map(|()| line.clone()));
    }
    assert_eq!(got, expected);
    assert_eq!(got.len(), 4);
}

#[test]
fn the_iterator_is_fused() {
    let mut lines = parse_lines("m f=1");
    assert!(lines.next().is_some());
    assert!(lines.next().is_none());
    assert!(lines.next().is_none());
}

#[test]
fn into_owned_keeps_everything() {
    let body = String::from("m\\ 1,t=v f=\"s\",g=1i 5");
    let owned = {
        let l = one(&body);
        l.into_owned()
    };
    drop(body);
    assert_eq!(owned.measurement, "m 1");
    assert_eq!(owned.field("f"), Some(&Str("s".into())));
    assert_eq!(owned.timestamp, Some(5));
}

// ---------------------------------------------------------------- writing it back

#[test]
fn display_writes_canonical_line_protocol() {
    let l = one(r#"  m\ 1,t\==a\,b   f=1.50,g=-2i,h=3u,i=T,s="q\"\\"   7  "#);
    assert_eq!(
        l.to_string(),
        r#"m\ 1,t\==a\,b f=1.5,g=-2i,h=3u,i=true,s="q\"\\" 7"#
    );
}

/// A small deterministic generator for the property tests (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// 1..=12 characters drawn mostly from the characters that need escaping.
    fn text(&mut self, alphabet: &[char]) -> String {
        let len = 1 + self.below(12);
        (0..len)
            .map(|_| alphabet[self.below(alphabet.len())])
            .collect()
    }
}

const NAME_CHARS: &[char] = &[
    'a', 'b', 'Z', '0', '9', '_', '-', '.', ',', '=', ' ', '\\', '"', '#', '\t', 'é', '✓', '\0',
];

#[test]
fn escaping_round_trips_for_generated_names_and_values() {
    let mut rng = Rng(0x1234_5678_9ABC_DEF1);
    let string_chars: Vec<char> = NAME_CHARS.iter().copied().chain(['\n', '\r']).collect();
    for case in 0..5_000 {
        let mut measurement = rng.text(NAME_CHARS);
        // Limits of the format: a measurement cannot start with '#' or blank (tab), and
        // names (not tag values) cannot hold NUL.
        measurement.retain(|c| c != '\0');
        while measurement.starts_with(['#', '\t']) {
            measurement.remove(0);
        }
        if measurement.is_empty() {
            measurement.push('m');
        }
        let key = |rng: &mut Rng, i: usize| {
            let mut k = rng.text(NAME_CHARS);
            k.retain(|c| c != '\0');
            format!("{k}{i}") // distinct keys, never `time`
        };
        let tags: Vec<(String, String)> = (0..rng.below(4))
            .map(|i| (key(&mut rng, i), rng.text(NAME_CHARS)))
            .collect();
        let fields: Vec<(String, FieldValue<'static>)> = (0..1 + rng.below(4))
            .map(|i| {
                let v = match rng.below(5) {
                    0 => Str(rng.text(&string_chars).into()),
                    1 => I64(rng.next() as i64),
                    2 => U64(rng.next()),
                    3 => Bool(rng.below(2) == 0),
                    _ => F64(f64::from_bits(rng.next() >> 2)), // finite
                };
                (key(&mut rng, i), v)
            })
            .collect();
        let timestamp = (rng.below(2) == 0).then(|| rng.next() as i64);

        let mut text = String::new();
        escape_measurement(&measurement, &mut text);
        for (k, v) in &tags {
            text.push(',');
            escape_key(k, &mut text);
            text.push('=');
            escape_key(v, &mut text);
        }
        for (i, (k, v)) in fields.iter().enumerate() {
            text.push(if i == 0 { ' ' } else { ',' });
            escape_key(k, &mut text);
            text.push('=');
            match v {
                Str(s) => {
                    text.push('"');
                    escape_string_value(s, &mut text);
                    text.push('"');
                }
                other => text.push_str(&other.to_string()),
            }
        }
        if let Some(ts) = timestamp {
            text.push_str(&format!(" {ts}"));
        }

        let l = parse_lines(&text)
            .next()
            .unwrap_or_else(|| panic!("case {case}: nothing parsed from {text:?}"))
            .unwrap_or_else(|e| panic!("case {case}: {text:?}: {e}"));
        assert_eq!(l.measurement, measurement, "case {case}: {text:?}");
        let got_tags: Vec<(String, String)> = l
            .tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(got_tags, tags, "case {case}: {text:?}");
        let got_fields: Vec<(String, FieldValue<'static>)> = l
            .fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone().into_owned()))
            .collect();
        assert_eq!(got_fields, fields, "case {case}: {text:?}");
        assert_eq!(l.timestamp, timestamp, "case {case}: {text:?}");
        // The canonical writer produces the same text.
        assert_eq!(l.to_string(), text, "case {case}");
        // A following line keeps its physical line number despite newlines in strings.
        let two = format!("{text}\nnext f=1");
        let newlines = text.matches('\n').count();
        let last = parse_lines(&two).last().unwrap().unwrap();
        assert_eq!(last.line_number, newlines + 2, "case {case}: {two:?}");
    }
}

#[test]
fn arbitrary_bytes_never_panic_and_line_numbers_increase() {
    let mut rng = Rng(42);
    let alphabet: Vec<char> = NAME_CHARS
        .iter()
        .copied()
        .chain(['\n', '\r', '1', 'i', 'u', 't', 'e', '+'])
        .collect();
    for _ in 0..20_000 {
        let len = rng.below(60);
        let body: String = (0..len)
            .map(|_| alphabet[rng.below(alphabet.len())])
            .collect();
        let lines_in_body = body.matches('\n').count() + 1;
        let mut last = 0;
        for r in parse_lines(&body).with_precision(Precision::Auto) {
            let n = match &r {
                Ok(l) => {
                    assert!(!l.measurement.is_empty());
                    assert!(!l.fields.is_empty());
                    l.line_number
                }
                Err(e) => e.line_number,
            };
            assert!(n > last && n <= lines_in_body, "{body:?}");
            last = n;
        }
    }
}

#[test]
fn the_fast_float_path_agrees_with_std_parsing() {
    let mut rng = Rng(7);
    for _ in 0..50_000 {
        let int_digits = rng.below(12);
        let frac_digits = rng.below(12);
        let mut text = String::new();
        if rng.below(2) == 0 {
            text.push('-');
        }
        for _ in 0..int_digits {
            text.push(char::from(b'0' + rng.below(10) as u8));
        }
        if frac_digits > 0 || rng.below(2) == 0 {
            text.push('.');
        }
        for _ in 0..frac_digits {
            text.push(char::from(b'0' + rng.below(10) as u8));
        }
        if !text.bytes().any(|b| b.is_ascii_digit()) {
            continue;
        }
        let expected: f64 = text.parse().unwrap();
        match value(&text) {
            F64(v) => assert_eq!(v.to_bits(), expected.to_bits(), "{text}"),
            other => panic!("{text}: {other:?}"),
        }
    }
    // Values at the edges of the fast path.
    for text in [
        "9007199254740993",
        "9007199254740992.5",
        "0.1",
        "0.3",
        "123456789.987654321",
        "1.0000000000000000000000001",
    ] {
        let expected: f64 = text.parse().unwrap();
        assert_eq!(value(text), F64(expected), "{text}");
    }
}
