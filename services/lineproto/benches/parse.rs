//! Line protocol parsing throughput on TSBS cpu-only data (bytes of input per second).
//!
//! `cargo bench -p ferrite-lineproto` runs, on the same bodies:
//! * `ferrite/next_into`: our parser reusing one `ParsedLine` (the router's hot path);
//! * `ferrite/iter`: our parser through `Iterator` (two small allocations per line);
//! * `influxdb-line-protocol`: the crates.io parser from InfluxDB IOx (v2), for comparison.
//!
//! Inputs: 1,000 hosts × 10 timestamps = 10,000 lines (≈3.3 MB), with TSBS's integer fields
//! (`tsbs-int`) and with two-decimal float fields (`tsbs-float`).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ferrite_lineproto::{FieldValue, ParsedLine, parse_lines};
use ferrite_testkit::tsbs::CpuOnly;

const HOSTS: usize = 1_000;
const ROWS: usize = 10_000;

fn inputs() -> Vec<(&'static str, String)> {
    vec![
        ("tsbs-int", CpuOnly::new(HOSTS, 1).lines(ROWS)),
        (
            "tsbs-float",
            CpuOnly::new(HOSTS, 1).float_fields(true).lines(ROWS),
        ),
    ]
}

/// Touches every parsed value so nothing is optimised away.
fn checksum(line: &ParsedLine<'_>) -> u64 {
    let mut sum = line.measurement.len() as u64 + line.tags.len() as u64;
    for (_, v) in &line.fields {
        sum = sum.wrapping_add(match v {
            FieldValue::I64(v) => *v as u64,
            FieldValue::F64(v) => v.to_bits(),
            FieldValue::U64(v) => *v,
            FieldValue::Bool(v) => u64::from(*v),
            FieldValue::String(s) => s.len() as u64,
        });
    }
    sum.wrapping_add(line.timestamp.unwrap_or(0) as u64)
}

fn bench_parse(c: &mut Criterion) {
    for (name, body) in inputs() {
        // Sanity: every generated line parses, with both parsers.
        assert_eq!(parse_lines(&body).filter(Result::is_ok).count(), ROWS);
        assert_eq!(
            influxdb_line_protocol::parse_lines(&body)
                .filter(Result::is_ok)
                .count(),
            ROWS
        );

        let mut group = c.benchmark_group(format!("parse/{name}"));
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.sample_size(30);

        group.bench_function("ferrite/next_into", |b| {
            let mut line = ParsedLine::default();
            b.iter(|| {
                let mut lines = parse_lines(black_box(&body));
                let mut sum = 0u64;
                while let Some(r) = lines.next_into(&mut line) {
                    if r.is_ok() {
                        sum = sum.wrapping_add(checksum(&line));
                    }
                }
                sum
            })
        });

        group.bench_function("ferrite/iter", |b| {
            b.iter(|| {
                parse_lines(black_box(&body))
                    .flatten()
                    .map(|l| checksum(&l))
                    .fold(0u64, u64::wrapping_add)
            })
        });

        group.bench_function("influxdb-line-protocol", |b| {
            b.iter(|| {
                influxdb_line_protocol::parse_lines(black_box(&body))
                    .flatten()
                    .map(|l| {
                        let mut sum = l.series.measurement.len() as u64
                            + l.series.tag_set.as_ref().map_or(0, |t| t.len()) as u64;
                        for (_, v) in &l.field_set {
                            sum = sum.wrapping_add(match v {
                                influxdb_line_protocol::FieldValue::I64(v) => *v as u64,
                                influxdb_line_protocol::FieldValue::F64(v) => v.to_bits(),
                                influxdb_line_protocol::FieldValue::U64(v) => *v,
                                influxdb_line_protocol::FieldValue::Boolean(v) => u64::from(*v),
                                influxdb_line_protocol::FieldValue::String(s) => s.len() as u64,
                            });
                        }
                        sum.wrapping_add(l.timestamp.unwrap_or(0) as u64)
                    })
                    .fold(0u64, u64::wrapping_add)
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench_parse);
criterion_main!(benches);
