//! The `time` range a query can touch, read from the filters DataFusion pushes into a scan.
//!
//! By the time filters reach a scan, DataFusion has coerced and folded them: `time >=
//! '2024-01-01T00:00:00Z'` arrives as `time >= TimestampNanosecond(…)`, and `now() - interval
//! '1 hour'` as a timestamp literal (in UTC, so the column may arrive wrapped in a cast to
//! `Timestamp(ns, "+00:00")`, which does not change its value). Anything not understood
//! widens the range, never narrows it: the range is only used to skip data, and the filters
//! themselves are always applied above the scan.

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator};
use ferrite_model::TIME_COLUMN;

/// An inclusive `[min, max]` range of nanosecond timestamps. Empty when `min > max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    /// Smallest time that may match.
    pub min: i64,
    /// Largest time that may match.
    pub max: i64,
}

impl TimeRange {
    /// Every time.
    pub const ALL: Self = Self {
        min: i64::MIN,
        max: i64::MAX,
    };

    /// No time at all.
    pub const EMPTY: Self = Self { min: 1, max: 0 };

    /// The inclusive range `[min, max]`.
    pub fn new(min: i64, max: i64) -> Self {
        Self { min, max }
    }

    /// The range every one of `filters` (ANDed) allows.
    pub fn from_filters(filters: &[Expr]) -> Self {
        filters
            .iter()
            .fold(Self::ALL, |acc, f| acc.intersect(Self::from_expr(f)))
    }

    /// The range a single boolean expression allows.
    pub fn from_expr(expr: &Expr) -> Self {
        match expr {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
                Operator::And => Self::from_expr(left).intersect(Self::from_expr(right)),
                Operator::Or => Self::from_expr(left).hull(Self::from_expr(right)),
                _ => Self::from_comparison(left, *op, right).unwrap_or(Self::ALL),
            },
            Expr::Between(Between {
                expr,
                negated: false,
                low,
                high,
            }) if is_time_column(expr) => match (timestamp_ns(low), timestamp_ns(high)) {
                (Some(low), Some(high)) => Self::new(low, high),
                _ => Self::ALL,
            },
            Expr::InList(list) if !list.negated && is_time_column(&list.expr) => list
                .list
                .iter()
                .map(timestamp_ns)
                .try_fold(Self::EMPTY, |acc, v| v.map(|v| acc.hull(Self::new(v, v))))
                .unwrap_or(Self::ALL),
            _ => Self::ALL,
        }
    }

    fn from_comparison(left: &Expr, op: Operator, right: &Expr) -> Option<Self> {
        let (value, op) = if is_time_column(left) {
            (timestamp_ns(right)?, op)
        } else if is_time_column(right) {
            (timestamp_ns(left)?, op.swap()?)
        } else {
            return None;
        };
        Some(match op {
            Operator::Eq => Self::new(value, value),
            Operator::Gt => match value.checked_add(1) {
                Some(min) => Self::new(min, i64::MAX),
                None => Self::EMPTY,
            },
            Operator::GtEq => Self::new(value, i64::MAX),
            Operator::Lt => match value.checked_sub(1) {
                Some(max) => Self::new(i64::MIN, max),
                None => Self::EMPTY,
            },
            Operator::LtEq => Self::new(i64::MIN, value),
            _ => return None,
        })
    }

    /// True when no time is in the range.
    pub fn is_empty(&self) -> bool {
        self.min > self.max
    }

    /// True when the range does not restrict time at all.
    pub fn is_all(&self) -> bool {
        *self == Self::ALL
    }

    /// Times in both ranges.
    pub fn intersect(self, other: Self) -> Self {
        Self::new(self.min.max(other.min), self.max.min(other.max))
    }

    /// The smallest range holding both ranges.
    pub fn hull(self, other: Self) -> Self {
        if self.is_empty() {
            return other;
        }
        if other.is_empty() {
            return self;
        }
        Self::new(self.min.min(other.min), self.max.max(other.max))
    }

    /// True when some time in `[min, max]` is in the range.
    pub fn overlaps(&self, min: i64, max: i64) -> bool {
        !self.is_empty() && min <= self.max && max >= self.min
    }

    /// The half-open `[min, max)` form of the ingester query API; `None` for every time.
    pub fn to_half_open(self) -> Option<(i64, i64)> {
        if self.is_all() {
            None
        } else {
            // `time < i64::MAX + 1` cannot be written; i64::MAX itself is not a real timestamp.
            Some((self.min, self.max.saturating_add(1)))
        }
    }
}

/// `time`, possibly qualified, possibly cast to another nanosecond timestamp type (a change of
/// time zone label only, never of value).
fn is_time_column(expr: &Expr) -> bool {
    match expr {
        Expr::Column(c) => c.name == TIME_COLUMN,
        Expr::Cast(c) => is_ns_timestamp(c.field.data_type()) && is_time_column(&c.expr),
        Expr::TryCast(c) => is_ns_timestamp(c.field.data_type()) && is_time_column(&c.expr),
        _ => false,
    }
}

fn is_ns_timestamp(data_type: &DataType) -> bool {
    matches!(data_type, DataType::Timestamp(TimeUnit::Nanosecond, _))
}

/// The nanosecond value of a timestamp literal of any unit; `None` for anything else or on
/// overflow.
fn timestamp_ns(expr: &Expr) -> Option<i64> {
    let Expr::Literal(value, _) = expr else {
        return None;
    };
    match value {
        ScalarValue::TimestampNanosecond(Some(v), _) => Some(*v),
        ScalarValue::TimestampMicrosecond(Some(v), _) => v.checked_mul(1_000),
        ScalarValue::TimestampMillisecond(Some(v), _) => v.checked_mul(1_000_000),
        ScalarValue::TimestampSecond(Some(v), _) => v.checked_mul(1_000_000_000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use async_trait::async_trait;
    use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
    use datafusion::catalog::{Session, TableProvider};
    use datafusion::datasource::TableType;
    use datafusion::logical_expr::TableProviderFilterPushDown;
    use datafusion::physical_plan::ExecutionPlan;
    use datafusion::physical_plan::empty::EmptyExec;
    use datafusion::prelude::SessionContext;

    use super::*;

    /// A table that records the filters DataFusion hands to its scan.
    #[derive(Debug)]
    struct FilterSpy {
        schema: SchemaRef,
        seen: Mutex<Vec<Expr>>,
    }

    #[async_trait]
    impl TableProvider for FilterSpy {
        fn schema(&self) -> SchemaRef {
            Arc::clone(&self.schema)
        }
        fn table_type(&self) -> TableType {
            TableType::Base
        }
        fn supports_filters_pushdown(
            &self,
            filters: &[&Expr],
        ) -> datafusion::error::Result<Vec<TableProviderFilterPushDown>> {
            Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
        }
        async fn scan(
            &self,
            _state: &dyn Session,
            projection: Option<&Vec<usize>>,
            filters: &[Expr],
            _limit: Option<usize>,
        ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
            self.seen.lock().unwrap().extend(filters.iter().cloned());
            Ok(Arc::new(EmptyExec::new(Arc::new(self.schema.project(
                projection.map(|p| p.as_slice()).unwrap_or(&[0, 1]),
            )?))))
        }
    }

    /// The range the scan of `SELECT * FROM t WHERE <predicate>` sees, after DataFusion's own
    /// coercion and simplification.
    async fn range_of(predicate: &str) -> TimeRange {
        let spy = Arc::new(FilterSpy {
            schema: Arc::new(Schema::new(vec![
                Field::new("host", DataType::Utf8, true),
                Field::new(
                    "time",
                    DataType::Timestamp(TimeUnit::Nanosecond, None),
                    false,
                ),
            ])),
            seen: Mutex::new(vec![]),
        });
        let ctx = SessionContext::new();
        ctx.register_table("t", Arc::clone(&spy) as _).unwrap();
        let df = ctx
            .sql(&format!("SELECT * FROM t WHERE {predicate}"))
            .await
            .unwrap();
        df.create_physical_plan().await.unwrap();
        let seen = spy.seen.lock().unwrap().clone();
        TimeRange::from_filters(&seen)
    }

    const JAN1: i64 = 1_704_067_200_000_000_000; // 2024-01-01T00:00:00Z
    const HOUR: i64 = 3_600_000_000_000;

    #[tokio::test]
    async fn rfc3339_string_comparisons_bound_the_range() {
        assert_eq!(
            range_of("time >= '2024-01-01T00:00:00Z'").await,
            TimeRange::new(JAN1, i64::MAX)
        );
        assert_eq!(
            range_of("time > '2024-01-01T00:00:00Z' AND time < '2024-01-01T01:00:00Z'").await,
            TimeRange::new(JAN1 + 1, JAN1 + HOUR - 1)
        );
        assert_eq!(
            range_of("'2024-01-01T00:00:00Z' >= time").await,
            TimeRange::new(i64::MIN, JAN1)
        );
    }

    #[tokio::test]
    async fn between_and_in_lists_bound_the_range() {
        assert_eq!(
            range_of("time BETWEEN '2024-01-01T00:00:00Z' AND '2024-01-01T01:00:00Z'").await,
            TimeRange::new(JAN1, JAN1 + HOUR)
        );
        assert_eq!(
            range_of("time IN (TIMESTAMP '2024-01-01T00:00:00', TIMESTAMP '2024-01-01T01:00:00')")
                .await,
            TimeRange::new(JAN1, JAN1 + HOUR)
        );
    }

    #[tokio::test]
    async fn now_minus_interval_is_folded_to_a_bound() {
        let before = chrono::Utc::now().timestamp_nanos_opt().unwrap();
        let range = range_of("time >= now() - interval '1 hour'").await;
        let after = chrono::Utc::now().timestamp_nanos_opt().unwrap();
        assert_eq!(range.max, i64::MAX);
        assert!(
            range.min >= before - HOUR && range.min <= after - HOUR,
            "{range:?}"
        );
    }

    #[tokio::test]
    async fn other_literal_types_and_casts_bound_the_range() {
        assert_eq!(
            range_of("time = to_timestamp_seconds(1704067200)").await,
            TimeRange::new(JAN1, JAN1)
        );
        assert_eq!(
            range_of("time < to_timestamp_millis(1704067200000)").await,
            TimeRange::new(i64::MIN, JAN1 - 1)
        );
    }

    #[tokio::test]
    async fn or_takes_the_hull_and_unknown_predicates_do_not_narrow() {
        assert_eq!(
            range_of(
                "(time >= '2024-01-01T00:00:00Z' AND time < '2024-01-01T01:00:00Z') \
                 OR (time >= '2024-01-01T05:00:00Z' AND time < '2024-01-01T06:00:00Z')"
            )
            .await,
            TimeRange::new(JAN1, JAN1 + 6 * HOUR - 1)
        );
        assert_eq!(
            range_of("time >= '2024-01-01T00:00:00Z' OR host = 'a'").await,
            TimeRange::ALL
        );
        assert_eq!(range_of("host = 'a'").await, TimeRange::ALL);
        assert_eq!(
            range_of("NOT (time >= '2024-01-01T00:00:00Z')").await,
            TimeRange::new(i64::MIN, JAN1 - 1)
        );
        assert_eq!(
            range_of("date_trunc('hour', time) = '2024-01-01T00:00:00Z'").await,
            TimeRange::ALL
        );
    }

    #[tokio::test]
    async fn contradictions_are_empty() {
        assert!(
            range_of("time > '2024-01-01T01:00:00Z' AND time < '2024-01-01T00:00:00Z'")
                .await
                .is_empty()
        );
    }

    #[test]
    fn range_algebra() {
        let a = TimeRange::new(0, 10);
        assert!(a.overlaps(10, 20));
        assert!(!a.overlaps(11, 20));
        assert!(!TimeRange::EMPTY.overlaps(i64::MIN, i64::MAX));
        assert_eq!(TimeRange::EMPTY.hull(a), a);
        assert_eq!(a.to_half_open(), Some((0, 11)));
        assert_eq!(TimeRange::ALL.to_half_open(), None);
    }
}
