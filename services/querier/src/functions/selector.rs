//! Selectors: aggregates that pick one row of a group and return its value together with the
//! time it was recorded, as InfluxDB 3 does.
//!
//! ```text
//!   selector_first(value, time) ─► {value: <value's type>, time: Timestamp(ns)}
//!   selector_last / selector_min / selector_max: same shape
//!   SELECT selector_max(usage, time)['time'] FROM cpu GROUP BY host
//! ```
//!
//! Which row wins:
//! - `first`: the earliest time; `last`: the latest time;
//! - `min` / `max`: the smallest / largest value, and among equal values the earliest time;
//! - rows whose value or time is NULL never win; a group without any other row returns NULL
//!   (and so do both of its fields);
//! - `first`/`last` rows that share the winning time: the first one seen wins (rows of one
//!   series never share a time once deduplicated, so this only matters across series).
//!
//! Every selector keeps one candidate `(value, time)`, which is also its partial-aggregation
//! state: merging partial states is the same selection over the candidates, so DataFusion may
//! split an aggregate into partial and final phases freely.
//!
//! Grouped by many keys, hash aggregation uses the [`groups`] accumulator (one candidate per
//! group index in flat vectors) for the common value types, and [`SelectorAccumulator`] per
//! group for the rest; both select the same rows and share the partial state's shape.

mod groups;

use std::cmp::Ordering;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StructArray, make_comparator};
use arrow::compute::SortOptions;
use arrow::datatypes::{DataType, Field, FieldRef, Fields, TimeUnit, TimestampNanosecondType};
use datafusion::common::{ScalarValue, plan_err};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, GroupsAccumulator, Signature, Volatility,
};

/// Name of the value field of a selector's result.
pub(crate) const VALUE_FIELD: &str = "value";
/// Name of the time field of a selector's result.
pub(crate) const TIME_FIELD: &str = "time";

/// Which row of a group a selector returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Selection {
    /// The earliest time.
    First,
    /// The latest time.
    Last,
    /// The smallest value (earliest time among equals).
    Min,
    /// The largest value (earliest time among equals).
    Max,
}

impl Selection {
    fn name(self) -> &'static str {
        match self {
            Self::First => "selector_first",
            Self::Last => "selector_last",
            Self::Min => "selector_min",
            Self::Max => "selector_max",
        }
    }

    /// Does a row with `time` (and value ordered `value_order` against the incumbent's) beat
    /// the incumbent recorded at `best_time`? Strict, so the first of equals stays.
    fn beats(self, value_order: impl FnOnce() -> Ordering, time: i64, best_time: i64) -> bool {
        match self {
            Self::First => time < best_time,
            Self::Last => time > best_time,
            Self::Min => match value_order() {
                Ordering::Less => true,
                Ordering::Equal => time < best_time,
                Ordering::Greater => false,
            },
            Self::Max => match value_order() {
                Ordering::Greater => true,
                Ordering::Equal => time < best_time,
                Ordering::Less => false,
            },
        }
    }
}

/// The four selector aggregates.
pub(crate) fn udafs() -> Vec<Arc<AggregateUDF>> {
    [
        Selection::First,
        Selection::Last,
        Selection::Min,
        Selection::Max,
    ]
    .into_iter()
    .map(|selection| Arc::new(AggregateUDF::new_from_impl(Selector::new(selection))))
    .collect()
}

/// One selector aggregate.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Selector {
    selection: Selection,
    signature: Signature,
}

impl Selector {
    fn new(selection: Selection) -> Self {
        Self {
            selection,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

/// The result struct's fields for a value of `value_type` and a time of `time_type`.
fn result_fields(value_type: &DataType, time_type: &DataType) -> Fields {
    Fields::from(vec![
        Field::new(VALUE_FIELD, value_type.clone(), true),
        Field::new(TIME_FIELD, time_type.clone(), true),
    ])
}

/// The `(value, time)` field types inside a selector's result struct.
fn split_result_type(data_type: &DataType) -> Result<(DataType, DataType)> {
    match data_type {
        DataType::Struct(fields) if fields.len() == 2 => {
            Ok((fields[0].data_type().clone(), fields[1].data_type().clone()))
        }
        other => Err(DataFusionError::Internal(format!(
            "selector result must be a struct of value and time, got {other}"
        ))),
    }
}

impl AggregateUDFImpl for Selector {
    fn name(&self) -> &str {
        self.selection.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let name = self.name();
        let [value, time] = arg_types else {
            return plan_err!(
                "{name} takes two arguments, a value and the time column: {name}(value, time)"
            );
        };
        // Tags may arrive dictionary-encoded; the result carries the plain value.
        let value = match value {
            DataType::Dictionary(_, inner) => inner.as_ref().clone(),
            other => other.clone(),
        };
        if matches!(self.selection, Selection::Min | Selection::Max)
            && !value.is_primitive()
            && !matches!(
                value,
                DataType::Utf8
                    | DataType::LargeUtf8
                    | DataType::Utf8View
                    | DataType::Boolean
                    | DataType::Binary
                    | DataType::LargeBinary
                    | DataType::BinaryView
            )
        {
            return plan_err!("{name} cannot order values of type {value}");
        }
        let time = match time {
            DataType::Timestamp(_, tz) => DataType::Timestamp(TimeUnit::Nanosecond, tz.clone()),
            other => {
                return plan_err!(
                    "{name}'s second argument must be a timestamp (the time column), got {other}"
                );
            }
        };
        Ok(vec![value, time])
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        let [value, time] = arg_types else {
            return plan_err!("{} takes two arguments", self.name());
        };
        Ok(DataType::Struct(result_fields(value, time)))
    }

    fn accumulator(&self, args: AccumulatorArgs<'_>) -> Result<Box<dyn Accumulator>> {
        let (value_type, time_type) = split_result_type(args.return_type())?;
        Ok(Box::new(SelectorAccumulator::new(
            self.selection,
            value_type,
            time_type,
        )))
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs<'_>) -> bool {
        split_result_type(args.return_type())
            .is_ok_and(|(value_type, _)| groups::supports(&value_type))
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs<'_>,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        let (value_type, time_type) = split_result_type(args.return_type())?;
        groups::accumulator(self.selection, &value_type, &time_type)
    }

    fn state_fields(&self, args: StateFieldsArgs<'_>) -> Result<Vec<FieldRef>> {
        let (value_type, time_type) = split_result_type(args.return_type())?;
        Ok(vec![
            Arc::new(Field::new(
                format_state_name(args.name, VALUE_FIELD),
                value_type,
                true,
            )),
            Arc::new(Field::new(
                format_state_name(args.name, TIME_FIELD),
                time_type,
                true,
            )),
        ])
    }
}

/// The candidate row so far: its value as a one-element array (so any Arrow type compares
/// with the same kernel) and its time in nanoseconds.
#[derive(Debug)]
struct Candidate {
    value: ArrayRef,
    time: i64,
}

#[derive(Debug)]
struct SelectorAccumulator {
    selection: Selection,
    value_type: DataType,
    time_type: DataType,
    best: Option<Candidate>,
}

impl SelectorAccumulator {
    fn new(selection: Selection, value_type: DataType, time_type: DataType) -> Self {
        Self {
            selection,
            value_type,
            time_type,
            best: None,
        }
    }

    /// Consider every row of `values` / `times` (input rows or partial states alike).
    fn select(&mut self, values: &ArrayRef, times: &ArrayRef) -> Result<()> {
        let times = times
            .as_primitive_opt::<TimestampNanosecondType>()
            .ok_or_else(|| {
                DataFusionError::Internal(format!(
                    "{} expects nanosecond times, got {}",
                    self.selection.name(),
                    times.data_type()
                ))
            })?;
        let options = SortOptions::default();
        // Best row of this batch first (one comparator over the batch), then one comparison
        // against the incumbent.
        let within = make_comparator(values.as_ref(), values.as_ref(), options)?;
        let mut batch_best: Option<usize> = None;
        for row in 0..values.len() {
            if values.is_null(row) || times.is_null(row) {
                continue;
            }
            let better = match batch_best {
                None => true,
                Some(best) => {
                    self.selection
                        .beats(|| within(row, best), times.value(row), times.value(best))
                }
            };
            if better {
                batch_best = Some(row);
            }
        }
        let Some(row) = batch_best else {
            return Ok(());
        };
        let time = times.value(row);
        let better = match &self.best {
            None => true,
            Some(best) => {
                let across = make_comparator(values.as_ref(), best.value.as_ref(), options)?;
                self.selection.beats(|| across(row, 0), time, best.time)
            }
        };
        if better {
            self.best = Some(Candidate {
                value: values.slice(row, 1),
                time,
            });
        }
        Ok(())
    }

    fn value_scalar(&self) -> Result<ScalarValue> {
        match &self.best {
            Some(best) => ScalarValue::try_from_array(&best.value, 0),
            None => ScalarValue::try_from(&self.value_type),
        }
    }

    fn time_scalar(&self) -> Result<ScalarValue> {
        let tz = match &self.time_type {
            DataType::Timestamp(_, tz) => tz.clone(),
            other => {
                return Err(DataFusionError::Internal(format!(
                    "selector time must be a timestamp, got {other}"
                )));
            }
        };
        Ok(ScalarValue::TimestampNanosecond(
            self.best.as_ref().map(|b| b.time),
            tz,
        ))
    }
}

impl Accumulator for SelectorAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let [value, time] = values else {
            return Err(DataFusionError::Internal(format!(
                "{} got {} input columns, expected 2",
                self.selection.name(),
                values.len()
            )));
        };
        self.select(value, time)
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        // A partial state is a candidate row: merging is selecting among candidates.
        self.update_batch(states)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![self.value_scalar()?, self.time_scalar()?])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let fields = result_fields(&self.value_type, &self.time_type);
        if self.best.is_none() {
            // NULL rather than a struct of NULLs, so locf treats the group as missing.
            return ScalarValue::try_from(&DataType::Struct(fields));
        }
        let value = self.value_scalar()?.to_array()?;
        let time = self.time_scalar()?.to_array()?;
        let result = StructArray::try_new(fields, vec![value, time], None)?;
        Ok(ScalarValue::Struct(Arc::new(result)))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self
                .best
                .as_ref()
                .map_or(0, |b| b.value.get_array_memory_size())
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::TimestampNanosecondArray;

    use super::*;

    /// Run `selection` over batches of `(value, time)` as a partial/final pair: every batch
    /// goes to its own partial accumulator and the states are merged.
    fn select_in_two_phases(
        selection: Selection,
        batches: Vec<(ArrayRef, Vec<Option<i64>>)>,
    ) -> ScalarValue {
        let value_type = batches[0].0.data_type().clone();
        let time_type = DataType::Timestamp(TimeUnit::Nanosecond, None);
        let mut finals = SelectorAccumulator::new(selection, value_type.clone(), time_type.clone());
        for (values, times) in batches {
            let mut partial =
                SelectorAccumulator::new(selection, value_type.clone(), time_type.clone());
            let times: ArrayRef = Arc::new(TimestampNanosecondArray::from(times));
            partial.update_batch(&[values, times]).unwrap();
            let state = partial
                .state()
                .unwrap()
                .into_iter()
                .map(|s| s.to_array().unwrap())
                .collect::<Vec<_>>();
            finals.merge_batch(&state).unwrap();
        }
        finals.evaluate().unwrap()
    }

    fn fields_of(result: &ScalarValue) -> (ScalarValue, ScalarValue) {
        let ScalarValue::Struct(s) = result else {
            panic!("not a struct: {result:?}")
        };
        (
            ScalarValue::try_from_array(s.column(0), 0).unwrap(),
            ScalarValue::try_from_array(s.column(1), 0).unwrap(),
        )
    }

    #[test]
    fn min_prefers_the_earliest_time_among_equal_values_across_partial_states() {
        let result = select_in_two_phases(
            Selection::Min,
            vec![
                (
                    Arc::new(arrow::array::Int64Array::from(vec![Some(3), Some(1), None])),
                    vec![Some(10), Some(30), Some(5)],
                ),
                (
                    Arc::new(arrow::array::Int64Array::from(vec![Some(1), Some(2)])),
                    vec![Some(20), Some(1)],
                ),
            ],
        );
        assert_eq!(
            fields_of(&result),
            (
                ScalarValue::Int64(Some(1)),
                ScalarValue::TimestampNanosecond(Some(20), None)
            )
        );
    }

    #[test]
    fn rows_without_a_value_or_time_never_win_and_empty_groups_give_null() {
        let result = select_in_two_phases(
            Selection::Last,
            vec![(
                Arc::new(arrow::array::StringArray::from(vec![
                    Some("a"),
                    None,
                    Some("c"),
                ])),
                vec![Some(1), Some(9), None],
            )],
        );
        assert_eq!(
            fields_of(&result),
            (
                ScalarValue::Utf8(Some("a".into())),
                ScalarValue::TimestampNanosecond(Some(1), None)
            )
        );
        let empty = select_in_two_phases(
            Selection::First,
            vec![(
                Arc::new(arrow::array::Float64Array::from(vec![None::<f64>])),
                vec![Some(1)],
            )],
        );
        assert!(empty.is_null(), "{empty:?}");
    }
}
