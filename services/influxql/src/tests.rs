//! The parser's specification, as examples: each test names a behaviour and checks the tree,
//! the canonical text, or the exact error InfluxDB would give.

use crate::*;

/// Parses one statement, checks it prints back to a string that parses to the same tree,
/// and returns it.
fn round_trip(query: &str) -> Statement {
    let parsed = parse_statement(query).unwrap_or_else(|e| panic!("{query}: {e}"));
    let printed = parsed.to_string();
    let reparsed = parse_statement(&printed).unwrap_or_else(|e| panic!("{printed}: {e}"));
    assert_eq!(parsed, reparsed, "{query} printed as {printed}");
    parsed
}

/// The canonical text of a query.
fn canonical(query: &str) -> String {
    round_trip(query).to_string()
}

fn select(query: &str) -> SelectStatement {
    match round_trip(query) {
        Statement::Select(s) => *s,
        other => panic!("not a SELECT: {other:?}"),
    }
}

fn error(query: &str) -> String {
    match parse_statements(query) {
        Ok(s) => panic!("{query} parsed as {s:?}"),
        Err(e) => e.to_string(),
    }
}

fn var(name: &str) -> Expr {
    Expr::VarRef {
        name: name.into(),
        data_type: None,
    }
}

fn int(v: i64) -> Expr {
    Expr::Literal(Literal::Integer(v))
}

fn bin(lhs: Expr, op: BinaryOp, rhs: Expr) -> Expr {
    Expr::Binary {
        lhs: Box::new(lhs),
        op,
        rhs: Box::new(rhs),
    }
}

fn call(name: &str, args: Vec<Expr>) -> Expr {
    Expr::Call {
        name: name.into(),
        args,
    }
}

fn measurement(name: &str) -> QualifiedMeasurementName {
    QualifiedMeasurementName {
        database: None,
        retention_policy: None,
        name: MeasurementName::Name(name.into()),
    }
}

fn expr(text: &str) -> Expr {
    let e = parse_expr(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    assert_eq!(
        parse_expr(&e.to_string()),
        Ok(e.clone()),
        "{text} printed as {e}"
    );
    e
}

// --- lexer --------------------------------------------------------------------------------

#[test]
fn durations_of_every_unit_are_nanoseconds() {
    let cases: &[(&str, i64)] = &[
        ("1ns", 1),
        ("1u", 1_000),
        ("1µ", 1_000),
        ("1ms", 1_000_000),
        ("1s", 1_000_000_000),
        ("1m", 60_000_000_000),
        ("1h", 3_600_000_000_000),
        ("1d", 86_400_000_000_000),
        ("1w", 604_800_000_000_000),
        ("1h30m", 5_400_000_000_000),
        ("2d12h", 216_000_000_000_000),
        ("1600000000s", 1_600_000_000_000_000_000),
        ("1700000000000ms", 1_700_000_000_000_000_000),
    ];
    for &(text, nanos) in cases {
        assert_eq!(
            expr(text),
            Expr::Literal(Literal::Duration(nanos)),
            "{text}"
        );
    }
}

#[test]
fn durations_print_in_their_largest_even_unit() {
    assert_eq!(expr("1h30m").to_string(), "90m");
    assert_eq!(expr("7d").to_string(), "1w");
    assert_eq!(expr("1500ms").to_string(), "1500ms");
    assert_eq!(expr("1µ").to_string(), "1u");
    assert_eq!(expr("-5m").to_string(), "-5m");
}

#[test]
fn overflowing_duration_is_an_error() {
    assert_eq!(
        error("SELECT a FROM m WHERE time > 100000000000000w"),
        "overflowed duration 100000000000000w: choose a smaller duration or INF at line 1, char 30"
    );
}

#[test]
fn numbers_integers_and_floats() {
    assert_eq!(expr("42"), int(42));
    assert_eq!(expr("-42"), int(-42));
    assert_eq!(expr("1.5"), Expr::Literal(Literal::Float(1.5)));
    assert_eq!(expr(".5"), Expr::Literal(Literal::Float(0.5)));
    assert_eq!(expr("- 2.25"), Expr::Literal(Literal::Float(-2.25)));
    assert_eq!(expr("90.0").to_string(), "90.0");
    assert_eq!(expr("-9223372036854775808"), int(i64::MIN));
    assert_eq!(
        expr("18446744073709551615"),
        Expr::Literal(Literal::Unsigned(u64::MAX))
    );
}

#[test]
fn integer_beyond_u64_is_an_error() {
    assert_eq!(
        error("SELECT a FROM m WHERE a > 18446744073709551616"),
        "number 18446744073709551616 out of range at line 1, char 27"
    );
}

#[test]
fn strings_unescape_and_print_escaped() {
    assert_eq!(
        expr(r"'it\'s a \\ path'"),
        Expr::Literal(Literal::String(r"it's a \ path".into()))
    );
    assert_eq!(expr(r"'a\nb'").to_string(), r"'a\nb'");
    assert_eq!(expr("'say \"hi\"'").to_string(), "'say \"hi\"'");
}

#[test]
fn unterminated_string_is_an_error() {
    assert_eq!(
        error("SELECT a FROM m WHERE host = 'x"),
        "unterminated string at line 1, char 30"
    );
}

#[test]
fn bad_escape_is_an_error() {
    assert_eq!(
        error(r"SELECT a FROM m WHERE host = 'a\qb'"),
        r"bad escape \q in string at line 1, char 32"
    );
}

#[test]
fn quoted_identifiers_unescape() {
    assert_eq!(expr(r#""my \"field\"""#), var(r#"my "field""#));
    assert_eq!(expr(r#""with space""#).to_string(), r#""with space""#);
    assert_eq!(expr(r#""plain""#).to_string(), "plain");
    // A keyword as a name must be quoted, and is printed quoted.
    assert_eq!(expr(r#""select""#).to_string(), r#""select""#);
    assert_eq!(expr(r#""1st""#).to_string(), r#""1st""#);
}

#[test]
fn unterminated_quoted_identifier_is_an_error() {
    assert_eq!(
        error(r#"SELECT "a FROM m"#),
        "unterminated quoted identifier at line 1, char 8"
    );
}

#[test]
fn regex_literals_keep_their_source() {
    assert_eq!(
        expr(r"host =~ /^server-\d+\/a$/"),
        bin(
            var("host"),
            BinaryOp::EqRegex,
            Expr::Literal(Literal::Regex(r"^server-\d+/a$".into()))
        )
    );
    assert_eq!(expr(r"host !~ /a\/b/").to_string(), r"host !~ /a\/b/");
}

#[test]
fn unterminated_regex_is_an_error() {
    assert_eq!(
        error("SELECT a FROM m WHERE host =~ /abc"),
        "unterminated regex at line 1, char 31"
    );
}

#[test]
fn bind_parameters() {
    assert_eq!(expr("$timeFilter"), Expr::BindParam("timeFilter".into()));
    assert_eq!(
        expr("host = $__host"),
        bin(var("host"), BinaryOp::Eq, Expr::BindParam("__host".into()))
    );
}

#[test]
fn every_operator() {
    for op in [
        "=", "!=", "<", "<=", ">", ">=", "=~", "!~", "+", "-", "*", "/", "%", "&", "|", "^",
    ] {
        let rhs = if op.ends_with('~') { "/x/" } else { "b" };
        let text = format!("a {op} {rhs}");
        assert_eq!(expr(&text).to_string(), text);
    }
    assert_eq!(expr("a <> b").to_string(), "a != b");
    assert_eq!(expr("a=b AND c>=d").to_string(), "a = b AND c >= d");
}

#[test]
fn line_comments_and_block_comments_are_blanks() {
    let s = select("-- lead\nSELECT /* the field */ a -- trailing\nFROM m /* end */");
    assert_eq!(
        s.fields,
        vec![Field {
            expr: var("a"),
            alias: None
        }]
    );
}

#[test]
fn unterminated_block_comment_is_an_error() {
    assert_eq!(
        error("SELECT a FROM m /* no end"),
        "unterminated comment at line 1, char 17"
    );
}

#[test]
fn keywords_are_case_insensitive() {
    let lower = round_trip(
        "select mean(v) from cpu where a = 1 and b = 2 group by time(1m) order by time desc limit 1",
    );
    let mixed = round_trip(
        "SeLeCt mean(v) FrOm cpu WhErE a = 1 AnD b = 2 GrOuP bY time(1m) OrDeR By time DeSc LiMiT 1",
    );
    assert_eq!(lower, mixed);
    assert_eq!(
        lower.to_string(),
        "SELECT mean(v) FROM cpu WHERE a = 1 AND b = 2 GROUP BY time(1m) ORDER BY time DESC LIMIT 1"
    );
}

// --- expressions --------------------------------------------------------------------------

#[test]
fn multiplication_binds_tighter_than_addition() {
    assert_eq!(
        expr("a + b * c"),
        bin(
            var("a"),
            BinaryOp::Add,
            bin(var("b"), BinaryOp::Mul, var("c"))
        )
    );
    assert_eq!(
        expr("a * b + c"),
        bin(
            bin(var("a"), BinaryOp::Mul, var("b")),
            BinaryOp::Add,
            var("c")
        )
    );
    assert_eq!(
        expr("a % b - c"),
        bin(
            bin(var("a"), BinaryOp::Mod, var("b")),
            BinaryOp::Sub,
            var("c")
        )
    );
}

#[test]
fn operators_are_left_associative() {
    assert_eq!(
        expr("a - b - c"),
        bin(
            bin(var("a"), BinaryOp::Sub, var("b")),
            BinaryOp::Sub,
            var("c")
        )
    );
    assert_eq!(
        expr("a / b / c"),
        bin(
            bin(var("a"), BinaryOp::Div, var("b")),
            BinaryOp::Div,
            var("c")
        )
    );
}

#[test]
fn parentheses_group_and_are_kept() {
    let e = expr("(a + b) * c");
    assert_eq!(
        e,
        bin(
            Expr::Nested(Box::new(bin(var("a"), BinaryOp::Add, var("b")))),
            BinaryOp::Mul,
            var("c")
        )
    );
    assert_eq!(e.to_string(), "(a + b) * c");
}

#[test]
fn bitwise_operators_take_influxdb_precedence() {
    // `&` binds like `*`, `|` and `^` like `+`.
    assert_eq!(
        expr("a | b & c"),
        bin(
            var("a"),
            BinaryOp::BitOr,
            bin(var("b"), BinaryOp::BitAnd, var("c"))
        )
    );
    assert_eq!(
        expr("a ^ b + c"),
        bin(
            bin(var("a"), BinaryOp::BitXor, var("b")),
            BinaryOp::Add,
            var("c")
        )
    );
}

#[test]
fn and_binds_tighter_than_or() {
    assert_eq!(
        expr("a = 1 OR b = 2 AND c = 3"),
        bin(
            bin(var("a"), BinaryOp::Eq, int(1)),
            BinaryOp::Or,
            bin(
                bin(var("b"), BinaryOp::Eq, int(2)),
                BinaryOp::And,
                bin(var("c"), BinaryOp::Eq, int(3))
            )
        )
    );
}

#[test]
fn comparison_binds_looser_than_arithmetic() {
    assert_eq!(
        expr("a + 1 > b * 2"),
        bin(
            bin(var("a"), BinaryOp::Add, int(1)),
            BinaryOp::Gt,
            bin(var("b"), BinaryOp::Mul, int(2))
        )
    );
}

#[test]
fn unary_minus_folds_into_literals() {
    assert_eq!(expr("a - -1"), bin(var("a"), BinaryOp::Sub, int(-1)));
    assert_eq!(
        expr("-1h"),
        Expr::Literal(Literal::Duration(-3_600_000_000_000))
    );
}

#[test]
fn unary_minus_on_a_name_multiplies_by_minus_one() {
    let negated = Expr::Nested(Box::new(bin(int(-1), BinaryOp::Mul, var("a"))));
    assert_eq!(expr("-a"), negated);
    assert_eq!(expr("2 * -a"), bin(int(2), BinaryOp::Mul, negated.clone()));
    assert_eq!(expr("2 * -a").to_string(), "2 * (-1 * a)");
    assert_eq!(expr(&expr("2 * -a").to_string()), expr("2 * -a"));
}

#[test]
fn booleans() {
    assert_eq!(expr("TRUE"), Expr::Literal(Literal::Boolean(true)));
    assert_eq!(expr("false"), Expr::Literal(Literal::Boolean(false)));
    assert_eq!(expr("a = true").to_string(), "a = true");
}

#[test]
fn var_refs_with_every_type_cast() {
    for t in [
        "field", "tag", "integer", "float", "string", "boolean", "unsigned",
    ] {
        let text = format!("v::{t}");
        assert_eq!(expr(&text).to_string(), text);
    }
    assert_eq!(
        expr("v::FLOAT"),
        Expr::VarRef {
            name: "v".into(),
            data_type: Some(VarRefDataType::Float)
        }
    );
}

#[test]
fn unknown_type_cast_is_an_error() {
    assert_eq!(
        error("SELECT v::text FROM m"),
        "found text, expected float, integer, unsigned, string, boolean, field, tag at line 1, char 11"
    );
}

#[test]
fn wildcards() {
    assert_eq!(expr("*"), Expr::Wildcard(None));
    assert_eq!(expr("*::field"), Expr::Wildcard(Some(WildcardType::Field)));
    assert_eq!(expr("*::tag"), Expr::Wildcard(Some(WildcardType::Tag)));
}

#[test]
fn calls_with_any_name_and_arguments() {
    assert_eq!(expr("now()"), call("now", vec![]));
    assert_eq!(
        expr("percentile(x, 95)"),
        call("percentile", vec![var("x"), int(95)])
    );
    assert_eq!(
        expr("top(x, host, 3)"),
        call("top", vec![var("x"), var("host"), int(3)])
    );
    assert_eq!(
        expr("moving_average(mean(x), 3)"),
        call("moving_average", vec![call("mean", vec![var("x")]), int(3)])
    );
    assert_eq!(
        expr("derivative(mean(x), 1s)"),
        call(
            "derivative",
            vec![
                call("mean", vec![var("x")]),
                Expr::Literal(Literal::Duration(1_000_000_000))
            ]
        )
    );
    assert_eq!(expr("last(*)"), call("last", vec![Expr::Wildcard(None)]));
    assert_eq!(expr("mean(/^usage/)").to_string(), "mean(/^usage/)");
}

#[test]
fn distinct_as_call_and_as_shorthand() {
    assert_eq!(
        expr("count(distinct(x))"),
        call("count", vec![call("distinct", vec![var("x")])])
    );
    assert_eq!(
        expr("count(DISTINCT x)"),
        call("count", vec![Expr::Distinct("x".into())])
    );
    assert_eq!(expr("DISTINCT x").to_string(), "DISTINCT x");
    assert_eq!(expr("distinct(x)").to_string(), "distinct(x)");
}

#[test]
fn unclosed_call_is_an_error() {
    assert_eq!(
        error("SELECT mean(x FROM m"),
        "found FROM, expected ) at line 1, char 15"
    );
}

// --- SELECT ---------------------------------------------------------------------------------

#[test]
fn select_star() {
    let s = select("SELECT * FROM cpu");
    assert_eq!(
        s,
        SelectStatement {
            fields: vec![Field {
                expr: Expr::Wildcard(None),
                alias: None
            }],
            sources: vec![Source::Measurement(measurement("cpu"))],
            condition: None,
            dimensions: vec![],
            fill: None,
            order_by: None,
            limit: None,
            offset: None,
            series_limit: None,
            series_offset: None,
            timezone: None,
        }
    );
}

#[test]
fn fields_with_aliases() {
    let s = select(r#"SELECT mean(v) AS avg, max(v) AS "the max", v * 2 FROM m"#);
    let aliases: Vec<_> = s.fields.iter().map(|f| f.alias.as_deref()).collect();
    assert_eq!(aliases, vec![Some("avg"), Some("the max"), None]);
    assert_eq!(
        s.to_string(),
        r#"SELECT mean(v) AS avg, max(v) AS "the max", v * 2 FROM m"#
    );
}

#[test]
fn regex_field() {
    let s = select("SELECT /^usage_/ FROM cpu");
    assert_eq!(
        s.fields[0].expr,
        Expr::Literal(Literal::Regex("^usage_".into()))
    );
}

#[test]
fn qualified_sources() {
    let s =
        select(r#"SELECT v FROM db.rp.m, db..m, rp.m, "my db"."my rp"."my m", /^cpu/, db.rp./re/"#);
    let q = |db: Option<&str>, rp: Option<&str>, name: MeasurementName| {
        Source::Measurement(QualifiedMeasurementName {
            database: db.map(Into::into),
            retention_policy: rp.map(Into::into),
            name,
        })
    };
    let n = |s: &str| MeasurementName::Name(s.into());
    assert_eq!(
        s.sources,
        vec![
            q(Some("db"), Some("rp"), n("m")),
            q(Some("db"), None, n("m")),
            q(None, Some("rp"), n("m")),
            q(Some("my db"), Some("my rp"), n("my m")),
            q(None, None, MeasurementName::Regex("^cpu".into())),
            q(Some("db"), Some("rp"), MeasurementName::Regex("re".into())),
        ]
    );
    assert_eq!(
        s.to_string(),
        r#"SELECT v FROM db.rp.m, db..m, rp.m, "my db"."my rp"."my m", /^cpu/, db.rp./re/"#
    );
}

#[test]
fn four_part_measurement_is_an_error() {
    assert_eq!(
        error("SELECT v FROM a.b.c.d"),
        "found ., expected ;".to_owned() + " at line 1, char 20"
    );
}

#[test]
fn subquery_source() {
    let s = select(
        "SELECT max(m) FROM (SELECT mean(v) AS m FROM cpu GROUP BY time(1m)) WHERE time > now() - 1h",
    );
    let Source::Subquery(inner) = &s.sources[0] else {
        panic!("not a subquery: {:?}", s.sources[0]);
    };
    assert_eq!(
        inner.dimensions,
        vec![Dimension::Time {
            interval: 60_000_000_000,
            offset: None
        }]
    );
}

#[test]
fn where_with_time_range_strings() {
    let s = select(
        "SELECT v FROM m WHERE time >= '2016-01-01T00:00:00Z' AND time < '2016-01-01T01:00:00Z'",
    );
    assert_eq!(
        s.condition,
        Some(bin(
            bin(
                var("time"),
                BinaryOp::GtEq,
                Expr::Literal(Literal::String("2016-01-01T00:00:00Z".into()))
            ),
            BinaryOp::And,
            bin(
                var("time"),
                BinaryOp::Lt,
                Expr::Literal(Literal::String("2016-01-01T01:00:00Z".into()))
            )
        ))
    );
}

#[test]
fn where_with_now_minus_duration() {
    let s = select("SELECT v FROM m WHERE time > now() - 1h");
    assert_eq!(
        s.condition,
        Some(bin(
            var("time"),
            BinaryOp::Gt,
            bin(
                call("now", vec![]),
                BinaryOp::Sub,
                Expr::Literal(Literal::Duration(3_600_000_000_000))
            )
        ))
    );
}

#[test]
fn where_with_epochs() {
    assert_eq!(
        canonical("SELECT v FROM m WHERE time >= 1600000000s AND time < 1600000000000000000"),
        "SELECT v FROM m WHERE time >= 1600000000s AND time < 1600000000000000000"
    );
}

#[test]
fn where_with_regexes_and_parentheses() {
    assert_eq!(
        canonical("SELECT v FROM m WHERE (host =~ /^a/ OR host !~ /b$/) AND region = 'us'"),
        "SELECT v FROM m WHERE (host =~ /^a/ OR host !~ /b$/) AND region = 'us'"
    );
}

#[test]
fn group_by_time_tags_regex_and_star() {
    let s =
        select(r#"SELECT mean(v) FROM m GROUP BY time(10m, -5m), host, "the region", /^dc/, *"#);
    assert_eq!(
        s.dimensions,
        vec![
            Dimension::Time {
                interval: 600_000_000_000,
                offset: Some(-300_000_000_000)
            },
            Dimension::Tag("host".into()),
            Dimension::Tag("the region".into()),
            Dimension::Regex("^dc".into()),
            Dimension::Wildcard,
        ]
    );
}

#[test]
fn group_by_time_needs_a_duration() {
    assert_eq!(
        error("SELECT mean(v) FROM m GROUP BY time(10)"),
        "found 10, expected duration at line 1, char 37"
    );
}

#[test]
fn every_fill_option() {
    let cases = [
        ("null", Fill::Null),
        ("none", Fill::None),
        ("previous", Fill::Previous),
        ("LINEAR", Fill::Linear),
        ("0", Fill::Integer(0)),
        ("-1", Fill::Integer(-1)),
        ("1.5", Fill::Float(1.5)),
    ];
    for (arg, fill) in cases {
        let s = select(&format!(
            "SELECT mean(v) FROM m GROUP BY time(1m) fill({arg})"
        ));
        assert_eq!(s.fill, Some(fill), "{arg}");
    }
}

#[test]
fn unknown_fill_is_an_error() {
    assert_eq!(
        error("SELECT mean(v) FROM m GROUP BY time(1m) fill(zero)"),
        "found zero, expected null, none, previous, linear, number at line 1, char 46"
    );
}

#[test]
fn order_by_time() {
    assert_eq!(
        select("SELECT v FROM m ORDER BY time").order_by,
        Some(SortOrder::Ascending)
    );
    assert_eq!(
        select("SELECT v FROM m ORDER BY time ASC").order_by,
        Some(SortOrder::Ascending)
    );
    assert_eq!(
        select("SELECT v FROM m ORDER BY time DESC").order_by,
        Some(SortOrder::Descending)
    );
    assert_eq!(
        select("SELECT v FROM m ORDER BY DESC").order_by,
        Some(SortOrder::Descending)
    );
}

#[test]
fn order_by_other_than_time_is_an_error() {
    assert_eq!(
        error("SELECT v FROM m ORDER BY host"),
        "only ORDER BY time supported at this time at line 1, char 26"
    );
}

#[test]
fn limits_and_offsets() {
    let s = select("SELECT v FROM m GROUP BY host LIMIT 10 OFFSET 5 SLIMIT 3 SOFFSET 1");
    assert_eq!(
        (s.limit, s.offset, s.series_limit, s.series_offset),
        (Some(10), Some(5), Some(3), Some(1))
    );
}

#[test]
fn negative_limit_is_an_error() {
    assert_eq!(
        error("SELECT v FROM m LIMIT -1"),
        "found -, expected integer at line 1, char 23"
    );
}

#[test]
fn timezone() {
    let s = select("SELECT v FROM m tz('America/Chicago')");
    assert_eq!(s.timezone.as_deref(), Some("America/Chicago"));
    assert_eq!(s.to_string(), "SELECT v FROM m tz('America/Chicago')");
}

#[test]
fn every_clause_in_order() {
    let q = "SELECT mean(v) AS m FROM db.rp.cpu WHERE host = 'a' AND time > now() - 1d GROUP BY time(1h), host fill(0) ORDER BY time DESC LIMIT 10 OFFSET 1 SLIMIT 2 SOFFSET 3 tz('UTC')";
    assert_eq!(canonical(q), q);
}

#[test]
fn select_into_is_rejected() {
    assert_eq!(
        error("SELECT mean(v) INTO other FROM m"),
        "SELECT INTO is not supported at line 1, char 16"
    );
}

// --- TSBS and Grafana shapes ------------------------------------------------------------------

#[test]
fn tsbs_single_groupby() {
    let s = select(
        "SELECT max(usage_user) from cpu where (hostname = 'host_1') and time >= '2016-01-01T00:00:00Z' and time < '2016-01-01T01:00:00Z' group by time(1m)",
    );
    assert_eq!(s.fields[0].expr, call("max", vec![var("usage_user")]));
    assert_eq!(
        s.dimensions,
        vec![Dimension::Time {
            interval: 60_000_000_000,
            offset: None
        }]
    );
    assert_eq!(
        s.to_string(),
        "SELECT max(usage_user) FROM cpu WHERE (hostname = 'host_1') AND time >= '2016-01-01T00:00:00Z' AND time < '2016-01-01T01:00:00Z' GROUP BY time(1m)"
    );
}

#[test]
fn tsbs_multiple_hosts_and_fields() {
    round_trip(
        "SELECT max(usage_user), max(usage_system), max(usage_idle) from cpu where (hostname = 'host_1' or hostname = 'host_2' or hostname = 'host_3') and time >= '2016-01-01T00:00:00Z' and time < '2016-01-01T12:00:00Z' group by time(1h)",
    );
}

#[test]
fn tsbs_high_cpu() {
    let s = select(
        "SELECT * from cpu where usage_user > 90.0 and time >= '2016-01-01T00:00:00Z' and time < '2016-01-02T00:00:00Z'",
    );
    assert_eq!(s.fields[0].expr, Expr::Wildcard(None));
    assert!(s.to_string().contains("usage_user > 90.0"));
}

#[test]
fn tsbs_lastpoint() {
    let s = select("SELECT last(*) from cpu group by hostname");
    assert_eq!(s.dimensions, vec![Dimension::Tag("hostname".into())]);
}

#[test]
fn tsbs_double_groupby() {
    let s = select(
        "SELECT mean(usage_user) from cpu where time >= '2016-01-01T00:00:00Z' and time < '2016-01-01T12:00:00Z' group by time(1h),hostname",
    );
    assert_eq!(s.dimensions.len(), 2);
}

#[test]
fn tsbs_groupby_orderby_limit() {
    round_trip(
        "SELECT max(usage_user) from cpu where time < '2016-01-01T12:00:00Z' group by time(1m) order by time desc limit 5",
    );
}

#[test]
fn grafana_after_macro_expansion() {
    let s = select(
        r#"SELECT mean("value") FROM "measurement" WHERE time >= 1700000000000ms and time <= 1700003600000ms GROUP BY time(10s) fill(null)"#,
    );
    assert_eq!(s.fill, Some(Fill::Null));
    assert_eq!(
        s.to_string(),
        // `measurement` is a keyword, so it stays quoted; durations print in their largest unit.
        r#"SELECT mean(value) FROM "measurement" WHERE time >= 1700000000s AND time <= 1700003600s GROUP BY time(10s) fill(null)"#
    );
}

#[test]
fn grafana_before_macro_expansion_keeps_the_bind_param() {
    let s = select(r#"SELECT mean("value") FROM "measurement" WHERE $timeFilter"#);
    assert_eq!(s.condition, Some(Expr::BindParam("timeFilter".into())));
}

// --- SHOW and CREATE ------------------------------------------------------------------------

#[test]
fn show_databases() {
    assert_eq!(round_trip("show databases"), Statement::ShowDatabases);
}

#[test]
fn show_measurements_with_every_clause() {
    let s = round_trip(
        "SHOW MEASUREMENTS ON db WITH MEASUREMENT =~ /^cpu/ WHERE host = 'a' LIMIT 10 OFFSET 2",
    );
    assert_eq!(
        s,
        Statement::ShowMeasurements(ShowMeasurementsStatement {
            database: Some("db".into()),
            with_measurement: Some(MeasurementName::Regex("^cpu".into())),
            condition: Some(bin(
                var("host"),
                BinaryOp::Eq,
                Expr::Literal(Literal::String("a".into()))
            )),
            limit: Some(10),
            offset: Some(2),
        })
    );
    assert_eq!(
        canonical("SHOW MEASUREMENTS WITH MEASUREMENT = cpu"),
        "SHOW MEASUREMENTS WITH MEASUREMENT = cpu"
    );
    assert_eq!(canonical("SHOW MEASUREMENTS"), "SHOW MEASUREMENTS");
}

#[test]
fn show_measurements_with_bad_operator_is_an_error() {
    assert_eq!(
        error("SHOW MEASUREMENTS WITH MEASUREMENT != cpu"),
        "found !=, expected =, =~ at line 1, char 36"
    );
}

#[test]
fn show_tag_keys() {
    let s = round_trip("SHOW TAG KEYS ON db FROM cpu, /^mem/ WHERE host = 'a' LIMIT 1 OFFSET 1");
    let Statement::ShowTagKeys(s) = s else {
        panic!("{s:?}")
    };
    assert_eq!(s.sources.len(), 2);
    assert_eq!(canonical("SHOW TAG KEYS"), "SHOW TAG KEYS");
}

#[test]
fn show_tag_values_with_every_key_form() {
    let cases = [
        ("= host", ShowTagValuesKey::Eq("host".into())),
        ("!= host", ShowTagValuesKey::NotEq("host".into())),
        ("=~ /^h/", ShowTagValuesKey::EqRegex("^h".into())),
        ("!~ /^h/", ShowTagValuesKey::NotEqRegex("^h".into())),
        (
            r#"IN (host, "region")"#,
            ShowTagValuesKey::In(vec!["host".into(), "region".into()]),
        ),
    ];
    for (text, key) in cases {
        let q = format!("SHOW TAG VALUES ON db FROM cpu WITH KEY {text} WHERE a = 'b' LIMIT 5");
        let Statement::ShowTagValues(s) = round_trip(&q) else {
            panic!("{q}")
        };
        assert_eq!(s.key, key, "{q}");
        assert_eq!(s.database.as_deref(), Some("db"));
    }
    assert_eq!(
        canonical(r#"show tag values with key = "host""#),
        "SHOW TAG VALUES WITH KEY = host"
    );
}

#[test]
fn show_tag_values_without_key_is_an_error() {
    assert_eq!(
        error("SHOW TAG VALUES FROM cpu"),
        "found EOF, expected WITH at line 1, char 26"
    );
    assert_eq!(
        error("SHOW TAG VALUES WITH KEY host"),
        "found host, expected =, !=, =~, !~, IN at line 1, char 26"
    );
}

#[test]
fn show_field_keys() {
    assert_eq!(
        round_trip("SHOW FIELD KEYS ON db FROM rp.cpu LIMIT 3 OFFSET 4"),
        Statement::ShowFieldKeys(ShowFieldKeysStatement {
            database: Some("db".into()),
            sources: vec![QualifiedMeasurementName {
                database: None,
                retention_policy: Some("rp".into()),
                name: MeasurementName::Name("cpu".into()),
            }],
            limit: Some(3),
            offset: Some(4),
        })
    );
    assert_eq!(canonical("SHOW FIELD KEYS"), "SHOW FIELD KEYS");
}

#[test]
fn show_series() {
    assert_eq!(
        canonical("show series on db from cpu where host = 'a' limit 1 offset 2"),
        "SHOW SERIES ON db FROM cpu WHERE host = 'a' LIMIT 1 OFFSET 2"
    );
    assert_eq!(canonical("SHOW SERIES"), "SHOW SERIES");
}

#[test]
fn show_retention_policies() {
    assert_eq!(
        round_trip("SHOW RETENTION POLICIES ON telegraf"),
        Statement::ShowRetentionPolicies(ShowRetentionPoliciesStatement {
            database: Some("telegraf".into())
        })
    );
    assert_eq!(
        canonical("SHOW RETENTION POLICIES"),
        "SHOW RETENTION POLICIES"
    );
}

#[test]
fn unknown_show_is_an_error() {
    assert_eq!(
        error("SHOW USERS"),
        "found USERS, expected DATABASES, FIELD, MEASUREMENTS, RETENTION, SERIES, TAG at line 1, char 6"
    );
}

#[test]
fn create_database() {
    assert_eq!(
        round_trip("CREATE DATABASE telegraf"),
        Statement::CreateDatabase(CreateDatabaseStatement {
            name: "telegraf".into(),
            duration: None,
            replication: None,
            shard_duration: None,
            retention_policy_name: None,
        })
    );
}

#[test]
fn create_database_with_every_option() {
    assert_eq!(
        round_trip(
            "create database db with duration 30d replication 1 shard duration 1d name autogen"
        ),
        Statement::CreateDatabase(CreateDatabaseStatement {
            name: "db".into(),
            duration: Some(30 * 86_400_000_000_000),
            replication: Some(1),
            shard_duration: Some(86_400_000_000_000),
            retention_policy_name: Some("autogen".into()),
        })
    );
    assert_eq!(
        canonical("CREATE DATABASE db WITH DURATION INF NAME forever"),
        "CREATE DATABASE db WITH DURATION INF NAME forever"
    );
    assert_eq!(
        canonical("CREATE DATABASE db WITH SHARD DURATION 1h"),
        "CREATE DATABASE db WITH SHARD DURATION 1h"
    );
}

#[test]
fn create_database_with_nothing_after_with_is_an_error() {
    assert_eq!(
        error("CREATE DATABASE db WITH"),
        "found EOF, expected DURATION, REPLICATION, SHARD, NAME at line 1, char 25"
    );
}

// --- statements and errors ------------------------------------------------------------------

#[test]
fn several_statements() {
    let statements =
        parse_statements("SHOW DATABASES; SELECT v FROM m;;\nSHOW MEASUREMENTS;").unwrap();
    assert_eq!(statements.len(), 3);
    assert_eq!(statements[0], Statement::ShowDatabases);
    assert_eq!(parse_statements("").unwrap(), vec![]);
    assert_eq!(parse_statements(" ; -- nothing\n").unwrap(), vec![]);
}

#[test]
fn statements_need_a_semicolon_between_them() {
    assert_eq!(
        error("SHOW DATABASES SHOW DATABASES"),
        "found SHOW, expected ; at line 1, char 16"
    );
}

#[test]
fn parse_statement_takes_exactly_one() {
    assert_eq!(
        parse_statement("SHOW DATABASES;"),
        Ok(Statement::ShowDatabases)
    );
    assert_eq!(
        parse_statement("SHOW DATABASES; SHOW DATABASES").map_err(|e| e.to_string()),
        Err("found SHOW, expected EOF at line 1, char 17".into())
    );
    assert_eq!(
        parse_statement("").map_err(|e| e.to_string()),
        Err("found EOF, expected SELECT, SHOW, CREATE at line 1, char 2".into())
    );
}

#[test]
fn select_without_fields_is_an_error() {
    assert_eq!(
        error("SELECT FROM cpu"),
        "found FROM, expected identifier, string, number, bool at line 1, char 8"
    );
}

#[test]
fn select_without_from_is_an_error() {
    assert_eq!(
        error("SELECT v"),
        "found EOF, expected FROM at line 1, char 10"
    );
    assert_eq!(
        error("SELECT v FROM"),
        "found EOF, expected identifier, regex at line 1, char 15"
    );
}

#[test]
fn unknown_statement_is_an_error() {
    assert_eq!(
        error("DROP DATABASE x"),
        "found DROP, expected SELECT, SHOW, CREATE at line 1, char 1"
    );
    assert_eq!(
        error("bogus"),
        "found bogus, expected SELECT, SHOW, CREATE at line 1, char 1"
    );
}

#[test]
fn keyword_as_a_bare_name_is_an_error() {
    assert_eq!(
        error("SELECT v FROM key"),
        "found KEY, expected identifier, regex at line 1, char 15"
    );
    round_trip(r#"SELECT v FROM "key""#);
}

#[test]
fn illegal_character_is_an_error() {
    assert_eq!(
        error("SELECT v FROM m WHERE a # 1"),
        "found #, expected ; at line 1, char 25"
    );
    assert_eq!(
        error("SELECT ü FROM m"),
        "found ü, expected identifier, string, number, bool at line 1, char 8"
    );
}

#[test]
fn error_positions_count_lines_and_characters() {
    let query = "SELECT v\nFROM m\nWHERE s = 'ünï' AND";
    let e = parse_statements(query).unwrap_err();
    assert_eq!(e.line, 3);
    assert_eq!(
        e.column, 21,
        "characters, not bytes (and EOF one further, as InfluxDB)"
    );
    assert_eq!(e.offset, query.len());
    assert_eq!(
        e.message,
        "found EOF, expected identifier, string, number, bool"
    );
}

#[test]
fn trailing_garbage_in_clause_is_an_error() {
    assert_eq!(
        error("SELECT v FROM m GROUP host"),
        "found host, expected BY at line 1, char 23"
    );
    assert_eq!(
        error("SELECT v FROM m WHERE"),
        "found EOF, expected identifier, string, number, bool at line 1, char 23"
    );
    assert_eq!(
        error("SELECT v FROM m LIMIT x"),
        "found x, expected integer at line 1, char 23"
    );
}

/// Inputs cut at every byte, and odd fragments: the parser answers, never panics.
#[test]
fn never_panics_on_prefixes_and_fragments() {
    let queries = [
        r#"SELECT mean("v") AS m, /re\/x/, *::tag FROM db..m, (SELECT a::float FROM /x/) WHERE time > now() - 1h30m AND h =~ /a/ GROUP BY time(1m, -5s), * fill(-1.5) ORDER BY time DESC LIMIT 1 OFFSET 2 SLIMIT 3 SOFFSET 4 tz('UTC'); SHOW TAG VALUES WITH KEY IN ("a", b)"#,
        "CREATE DATABASE d WITH DURATION 1w REPLICATION 3 SHARD DURATION 1d NAME r -- c\n/* x */",
        "SELECT 'µ' FROM \"ü\" WHERE $p = 1µ",
    ];
    for q in queries {
        for (end, _) in q.char_indices() {
            // Whatever a prefix parses to must print back to the same trees.
            if let Ok(statements) = parse_statements(&q[..end]) {
                for s in statements {
                    assert_eq!(parse_statement(&s.to_string()), Ok(s.clone()), "{s}");
                }
            }
        }
        assert!(parse_statements(q).is_ok(), "{q}");
    }
    for junk in [
        "/", "*", "'", "\"", "$", "::", "..", "1h1", "--", "/*", "\\", "(((", ")))",
    ] {
        let _ = parse_statements(junk);
        let _ = parse_statements(&format!("SELECT {junk} FROM m"));
    }
}

#[test]
fn canonical_text_is_a_fixed_point() {
    let queries = [
        "SELECT a + b * c - d / e % f FROM m",
        "SELECT (a + b) * (c - d) FROM m",
        "SELECT a & b | c ^ d FROM m",
        "SELECT count(DISTINCT host) FROM m",
        "SELECT top(v, host, 3), bottom(v, 2) FROM m",
        r#"SELECT "a b"::tag, c::integer FROM "x y""#,
        "SELECT v FROM m WHERE a = 1 OR b = 2 OR c = 3 AND d = 4",
        "SELECT v FROM m WHERE NOT_A_KEYWORD = 'x' AND time > -1h",
        r"SELECT v FROM m WHERE s = 'it\'s'",
        "SELECT v FROM m WHERE f = -0.5 AND i = 18446744073709551615",
        "SELECT mean(v) FROM m WHERE time > now() - 7d GROUP BY time(1w, 1d) fill(previous)",
        "SHOW TAG VALUES ON \"my db\" FROM \"my m\" WITH KEY IN (\"a b\", c)",
    ];
    for q in queries {
        let once = canonical(q);
        assert_eq!(canonical(&once), once, "{q}");
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let parens = format!("SELECT {}a FROM m", "(".repeat(100_000));
    assert_eq!(
        error(&parens),
        "query nested too deeply (more than 100 levels) at line 1, char 107"
    );
    let calls = format!("SELECT {}a FROM m", "f(".repeat(10_000));
    assert!(error(&calls).starts_with("query nested too deeply"));
    let subqueries = format!("SELECT a FROM {}", "(SELECT a FROM ".repeat(10_000));
    assert!(error(&subqueries).starts_with("query nested too deeply"));
    // Just under the limit is fine.
    let ok = format!("SELECT {}a{} FROM m", "(".repeat(90), ")".repeat(90));
    round_trip(&ok);
}

#[test]
fn quoted_call_names_keep_their_case() {
    assert_eq!(expr(r#""DISTINCT"(x)"#), call("DISTINCT", vec![var("x")]));
    assert_eq!(expr(r#""my fn"(x)"#).to_string(), r#""my fn"(x)"#);
}

#[test]
fn tsbs_and_grafana_query_shapes_round_trip() {
    let queries = [
        // TSBS `influx` query types.
        "SELECT max(usage_user) from cpu where (hostname = 'host_9') and time >= '2016-01-01T10:00:00Z' and time < '2016-01-01T11:00:00Z' group by time(1m)",
        "SELECT max(usage_user),max(usage_system),max(usage_idle),max(usage_nice),max(usage_iowait) from cpu where (hostname = 'host_1' or hostname = 'host_2') and time >= '2016-01-01T00:00:00Z' and time < '2016-01-01T08:00:00Z' group by time(1h)",
        "SELECT mean(usage_user),mean(usage_system) from cpu where time >= '2016-01-01T00:00:00Z' and time < '2016-01-01T12:00:00Z' group by time(1h),hostname",
        "SELECT * from cpu where usage_user > 90.0 and time >= '2016-01-01T00:00:00Z' and time < '2016-01-01T12:00:00Z'",
        "SELECT * from cpu where usage_user > 90.0 and (hostname = 'host_3') and time >= '2016-01-01T00:00:00Z' and time < '2016-01-01T12:00:00Z'",
        "SELECT last(*) from cpu group by \"hostname\"",
        "SELECT max(usage_user) from cpu where time < '2016-01-01T12:00:00Z' group by time(1m) order by time desc limit 5",
        // Grafana, after macro expansion.
        "SELECT mean(\"value\") FROM \"cpu\" WHERE (\"host\" =~ /^(a|b)$/) AND time >= 1700000000000ms and time <= 1700003600000ms GROUP BY time(10s), \"host\" fill(none)",
        "SELECT non_negative_derivative(mean(\"bytes_recv\"), 1s) * 8 FROM \"net\" WHERE time >= now() - 6h GROUP BY time(1m) fill(null)",
        "SELECT moving_average(mean(v), 3), cumulative_sum(sum(v)), difference(last(v)) FROM m WHERE time > now() - 1d GROUP BY time(1h)",
        "SELECT percentile(\"latency\", 99) AS p99, stddev(latency), spread(latency) FROM http WHERE time > now() - 15m GROUP BY time(30s)",
        "SELECT count(distinct(host)), count(DISTINCT host) FROM m",
        "SELECT top(v, host, 3), bottom(v, 3) FROM m WHERE time > now() - 1h",
        "SELECT v FROM m WHERE time >= '2016-01-01 00:00:00' AND time < '2016-01-02'",
        "SELECT v FROM m WHERE \"host\" = 'a' OR \"host\" = 'b' AND NOT_A_KEYWORD <> 1",
        "SELECT sum(v) / count(v) AS avg FROM m GROUP BY *",
        "SELECT v FROM m WHERE b = true OR b = false",
        "SELECT v::field, t::tag FROM m WHERE t::tag = 'x'",
        "SELECT mean(v) FROM m WHERE time > now() - 1w GROUP BY time(1d, 6h) tz('Europe/Berlin')",
        "SELECT *::field FROM /^cpu|mem$/ LIMIT 10",
    ];
    for q in queries {
        round_trip(q);
    }
}

#[test]
fn comment_markers_inside_strings_and_regexes_are_text() {
    assert_eq!(
        expr("s = 'a -- b /* c */'"),
        bin(
            var("s"),
            BinaryOp::Eq,
            Expr::Literal(Literal::String("a -- b /* c */".into()))
        )
    );
    assert_eq!(expr("s =~ /a--b/").to_string(), "s =~ /a--b/");
}

#[test]
fn regex_directly_after_the_operator() {
    assert_eq!(expr("host=~/^a/").to_string(), "host =~ /^a/");
}

#[test]
fn division_is_not_a_regex() {
    assert_eq!(
        expr("a / b / 2"),
        bin(
            bin(var("a"), BinaryOp::Div, var("b")),
            BinaryOp::Div,
            int(2)
        )
    );
}

#[test]
fn unicode_in_quoted_names_and_strings() {
    assert_eq!(
        canonical("SELECT \"température\" FROM \"météo\" WHERE ville = 'Zürich'"),
        "SELECT \"température\" FROM \"météo\" WHERE ville = 'Zürich'"
    );
}

#[test]
fn fill_without_group_by_still_parses() {
    assert_eq!(select("SELECT v FROM m fill(none)").fill, Some(Fill::None));
}

#[test]
fn group_by_time_with_now_offset_is_not_supported() {
    assert_eq!(
        error("SELECT mean(v) FROM m GROUP BY time(1m, now())"),
        "found now, expected duration at line 1, char 41"
    );
}

#[test]
fn subquery_in_show_from_is_an_error() {
    assert_eq!(
        error("SHOW TAG KEYS FROM (SELECT a FROM m)"),
        "found (, expected identifier, regex at line 1, char 20"
    );
}

#[test]
fn with_measurement_regex_operator_needs_a_regex() {
    assert_eq!(
        error("SHOW MEASUREMENTS WITH MEASUREMENT =~ cpu"),
        "found cpu, expected regex at line 1, char 39"
    );
}

#[test]
fn keyword_names_are_quoted_when_printed() {
    assert_eq!(
        canonical(r#"SHOW TAG VALUES ON "select" FROM "from" WITH KEY = "key""#),
        r#"SHOW TAG VALUES ON "select" FROM "from" WITH KEY = "key""#
    );
    assert_eq!(
        canonical(r#"SELECT "field" AS "as" FROM "name" GROUP BY "tag""#),
        r#"SELECT "field" AS "as" FROM "name" GROUP BY "tag""#
    );
}

#[test]
fn time_is_not_a_keyword() {
    assert_eq!(canonical("SELECT time FROM time"), "SELECT time FROM time");
}

#[test]
fn statements_on_several_lines_report_the_right_line() {
    assert_eq!(
        error("SHOW DATABASES;\nSELECT v\nFROM m\nGROUP BY time(1x)"),
        // `1x` is the integer 1 and the name x: x is no duration unit.
        "found 1, expected duration at line 4, char 15"
    );
}

#[test]
fn bind_param_where_a_duration_is_needed_is_an_error() {
    assert_eq!(
        error("SELECT mean(v) FROM m GROUP BY time($__interval)"),
        "found $__interval, expected duration at line 1, char 37"
    );
}

#[test]
fn limit_beyond_u64_is_an_error() {
    assert_eq!(
        error("SELECT v FROM m LIMIT 99999999999999999999"),
        "integer 99999999999999999999 out of range at line 1, char 23"
    );
}

#[test]
fn mixed_duration_without_a_unit_is_an_error() {
    assert_eq!(
        error("SELECT v FROM m WHERE time > now() - 1h30"),
        "invalid duration 1h30: a number needs a unit at line 1, char 38"
    );
}

#[test]
fn empty_call_arguments_and_trailing_comma() {
    assert_eq!(expr("now()"), call("now", vec![]));
    assert_eq!(
        error("SELECT f(a,) FROM m"),
        "found ), expected identifier, string, number, bool at line 1, char 12"
    );
}
