//! The selectors' [`GroupsAccumulator`]: every group's candidate in flat vectors indexed by
//! group, so hash aggregation over many groups (TSBS "lastpoint": one group per host) updates
//! them in one pass per batch instead of slicing the batch per group.
//!
//! ```text
//!   group index   0      1      2     …
//!   values        V[0]   V[1]   V[2]       (typed: Vec<i64>, Vec<f64>, Vec<String>, …)
//!   times         t[0]   t[1]   t[2]
//!   seen          true   false  true       (false: no usable row yet → NULL result)
//! ```
//!
//! It selects exactly as [`super::SelectorAccumulator`] does: rows are considered in order
//! and replace their group's candidate only when they strictly beat it
//! ([`Selection::beats`]), so among equals the row seen first stays (in a batch the earlier
//! row, in a merge the state already held). Rows with a NULL value or time, or that the
//! aggregate's `FILTER` rejects, are skipped. The partial state is the same `(value, time)`
//! pair, both NULL for a group without a candidate, so either accumulator's partial states
//! merge into the other.

use std::cmp::Ordering;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, ArrowNativeTypeOp, ArrowPrimitiveType, AsArray, BooleanArray,
    LargeStringArray, PrimitiveArray, StringArray, StringViewArray, StructArray,
    TimestampNanosecondArray,
};
use arrow::buffer::{BooleanBuffer, NullBuffer};
use arrow::compute::nullif;
use arrow::datatypes::{
    DataType, Fields, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
    TimestampNanosecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};

use super::{Selection, result_fields};

/// Whether [`accumulator`] handles values of `value_type`; others use the per-group
/// [`super::SelectorAccumulator`].
pub(super) fn supports(value_type: &DataType) -> bool {
    matches!(
        value_type,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Float32
            | DataType::Float64
            | DataType::Boolean
            | DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
    )
}

/// The groups accumulator of `selection` over values of `value_type` (one [`supports`]) and
/// times of `time_type` (nanosecond timestamps).
pub(super) fn accumulator(
    selection: Selection,
    value_type: &DataType,
    time_type: &DataType,
) -> Result<Box<dyn GroupsAccumulator>> {
    fn boxed<V: GroupValues>(
        selection: Selection,
        values: V,
        value_type: &DataType,
        time_type: &DataType,
    ) -> Box<dyn GroupsAccumulator> {
        Box::new(SelectorGroups {
            selection,
            values,
            times: Vec::new(),
            seen: Vec::new(),
            time_type: time_type.clone(),
            fields: result_fields(value_type, time_type),
        })
    }
    macro_rules! primitive {
        ($t:ty) => {
            boxed(
                selection,
                PrimitiveValues::<$t>::new(value_type.clone()),
                value_type,
                time_type,
            )
        };
    }
    Ok(match value_type {
        DataType::Int8 => primitive!(Int8Type),
        DataType::Int16 => primitive!(Int16Type),
        DataType::Int32 => primitive!(Int32Type),
        DataType::Int64 => primitive!(Int64Type),
        DataType::UInt8 => primitive!(UInt8Type),
        DataType::UInt16 => primitive!(UInt16Type),
        DataType::UInt32 => primitive!(UInt32Type),
        DataType::UInt64 => primitive!(UInt64Type),
        DataType::Float32 => primitive!(Float32Type),
        DataType::Float64 => primitive!(Float64Type),
        DataType::Boolean => boxed(selection, BooleanValues::default(), value_type, time_type),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => boxed(
            selection,
            StringValues::new(value_type.clone()),
            value_type,
            time_type,
        ),
        other => {
            return Err(DataFusionError::Internal(format!(
                "{} has no groups accumulator for {other} values",
                selection.name()
            )));
        }
    })
}

/// Every group's candidate value, for one Arrow type.
trait GroupValues: Send + 'static {
    /// An input column, downcast once per batch.
    type Input<'a>: Copy;

    fn input(array: &dyn Array) -> Result<Self::Input<'_>>;

    /// Makes room for groups `0..total` (new groups hold a placeholder until `set`).
    fn resize(&mut self, total: usize);

    /// `input[row]` ordered against `group`'s candidate, as Arrow's sort kernels order them
    /// (floats by `total_cmp`, strings bytewise, `false < true`).
    fn cmp(&self, input: Self::Input<'_>, row: usize, group: usize) -> Ordering;

    /// Makes `input[row]` `group`'s candidate.
    fn set(&mut self, group: usize, input: Self::Input<'_>, row: usize);

    /// Removes the groups `emit_to` names and returns their values, NULL where `nulls` says.
    fn take(&mut self, emit_to: EmitTo, nulls: Option<NullBuffer>) -> ArrayRef;

    /// Bytes held.
    fn size(&self) -> usize;
}

struct PrimitiveValues<T: ArrowPrimitiveType> {
    values: Vec<T::Native>,
    /// Kept for the output array (the same physical type may carry different metadata).
    data_type: DataType,
}

impl<T: ArrowPrimitiveType> PrimitiveValues<T> {
    fn new(data_type: DataType) -> Self {
        Self {
            values: Vec::new(),
            data_type,
        }
    }
}

impl<T: ArrowPrimitiveType> GroupValues for PrimitiveValues<T> {
    type Input<'a> = &'a [T::Native];

    fn input(array: &dyn Array) -> Result<Self::Input<'_>> {
        array
            .as_primitive_opt::<T>()
            .map(|a| a.values().as_ref())
            .ok_or_else(|| unexpected_type(&T::DATA_TYPE, array))
    }

    fn resize(&mut self, total: usize) {
        self.values.resize(total, T::Native::default());
    }

    fn cmp(&self, input: Self::Input<'_>, row: usize, group: usize) -> Ordering {
        input[row].compare(self.values[group])
    }

    fn set(&mut self, group: usize, input: Self::Input<'_>, row: usize) {
        self.values[group] = input[row];
    }

    fn take(&mut self, emit_to: EmitTo, nulls: Option<NullBuffer>) -> ArrayRef {
        let values = emit_to.take_needed(&mut self.values);
        Arc::new(
            PrimitiveArray::<T>::new(values.into(), nulls).with_data_type(self.data_type.clone()),
        )
    }

    fn size(&self) -> usize {
        self.values.capacity() * size_of::<T::Native>()
    }
}

#[derive(Default)]
struct BooleanValues {
    values: Vec<bool>,
}

impl GroupValues for BooleanValues {
    type Input<'a> = &'a BooleanArray;

    fn input(array: &dyn Array) -> Result<Self::Input<'_>> {
        array
            .as_boolean_opt()
            .ok_or_else(|| unexpected_type(&DataType::Boolean, array))
    }

    fn resize(&mut self, total: usize) {
        self.values.resize(total, false);
    }

    fn cmp(&self, input: Self::Input<'_>, row: usize, group: usize) -> Ordering {
        input.value(row).cmp(&self.values[group])
    }

    fn set(&mut self, group: usize, input: Self::Input<'_>, row: usize) {
        self.values[group] = input.value(row);
    }

    fn take(&mut self, emit_to: EmitTo, nulls: Option<NullBuffer>) -> ArrayRef {
        let values = emit_to.take_needed(&mut self.values);
        Arc::new(BooleanArray::new(
            values.into_iter().collect::<BooleanBuffer>(),
            nulls,
        ))
    }

    fn size(&self) -> usize {
        self.values.capacity()
    }
}

/// A string column of any of Arrow's three layouts.
#[derive(Clone, Copy)]
enum Strings<'a> {
    Utf8(&'a StringArray),
    LargeUtf8(&'a LargeStringArray),
    Utf8View(&'a StringViewArray),
}

impl<'a> Strings<'a> {
    fn value(self, row: usize) -> &'a str {
        match self {
            Self::Utf8(a) => a.value(row),
            Self::LargeUtf8(a) => a.value(row),
            Self::Utf8View(a) => a.value(row),
        }
    }
}

/// One owned string per group: a candidate replaced often (`last` over time-ordered rows)
/// reuses its allocation.
struct StringValues {
    values: Vec<String>,
    /// Sum of the strings' capacities, kept as they change so `size` stays O(1).
    heap: usize,
    data_type: DataType,
}

impl StringValues {
    fn new(data_type: DataType) -> Self {
        Self {
            values: Vec::new(),
            heap: 0,
            data_type,
        }
    }
}

impl GroupValues for StringValues {
    type Input<'a> = Strings<'a>;

    fn input(array: &dyn Array) -> Result<Self::Input<'_>> {
        match array.data_type() {
            DataType::Utf8 => Ok(Strings::Utf8(array.as_string::<i32>())),
            DataType::LargeUtf8 => Ok(Strings::LargeUtf8(array.as_string::<i64>())),
            DataType::Utf8View => Ok(Strings::Utf8View(array.as_string_view())),
            _ => Err(unexpected_type(&DataType::Utf8, array)),
        }
    }

    fn resize(&mut self, total: usize) {
        self.values.resize_with(total, String::new);
    }

    fn cmp(&self, input: Self::Input<'_>, row: usize, group: usize) -> Ordering {
        input.value(row).cmp(self.values[group].as_str())
    }

    fn set(&mut self, group: usize, input: Self::Input<'_>, row: usize) {
        let candidate = &mut self.values[group];
        self.heap -= candidate.capacity();
        candidate.clear();
        candidate.push_str(input.value(row));
        self.heap += candidate.capacity();
    }

    fn take(&mut self, emit_to: EmitTo, nulls: Option<NullBuffer>) -> ArrayRef {
        let values = emit_to.take_needed(&mut self.values);
        self.heap -= values.iter().map(String::capacity).sum::<usize>();
        let strings = values
            .iter()
            .enumerate()
            .map(|(i, s)| nulls.as_ref().is_none_or(|n| n.is_valid(i)).then_some(s));
        match self.data_type {
            DataType::LargeUtf8 => Arc::new(strings.collect::<LargeStringArray>()),
            DataType::Utf8View => Arc::new(strings.collect::<StringViewArray>()),
            _ => Arc::new(strings.collect::<StringArray>()),
        }
    }

    fn size(&self) -> usize {
        self.values.capacity() * size_of::<String>() + self.heap
    }
}

fn unexpected_type(expected: &DataType, array: &dyn Array) -> DataFusionError {
    DataFusionError::Internal(format!(
        "selector expected {expected} values, got {}",
        array.data_type()
    ))
}

struct SelectorGroups<V> {
    selection: Selection,
    values: V,
    /// Candidates' times in nanoseconds; meaningful where `seen`.
    times: Vec<i64>,
    /// Whether the group has a candidate.
    seen: Vec<bool>,
    time_type: DataType,
    /// The result struct's fields.
    fields: Fields,
}

impl<V: GroupValues> SelectorGroups<V> {
    /// Considers every usable row of `values` / `times` (input rows or partial states alike)
    /// for its group, in row order.
    fn select(
        &mut self,
        values: &ArrayRef,
        times: &ArrayRef,
        group_indices: &[usize],
        filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.values.resize(total_num_groups);
        self.times.resize(total_num_groups, 0);
        self.seen.resize(total_num_groups, false);
        let input = V::input(values.as_ref())?;
        let usable = usable_rows(values.as_ref(), times.as_ref(), filter);
        let times = nanoseconds(times, self.selection)?.values();
        for (row, &group) in group_indices.iter().enumerate() {
            if usable.as_ref().is_some_and(|usable| !usable.value(row)) {
                continue;
            }
            let time = times[row];
            let wins = !self.seen[group]
                || self.selection.beats(
                    || self.values.cmp(input, row, group),
                    time,
                    self.times[group],
                );
            if wins {
                self.values.set(group, input, row);
                self.times[group] = time;
                self.seen[group] = true;
            }
        }
        Ok(())
    }

    /// Removes the groups `emit_to` names and returns their `(value, time)` columns, both NULL
    /// for groups without a candidate, with that validity.
    fn take(&mut self, emit_to: EmitTo) -> (ArrayRef, ArrayRef, Option<NullBuffer>) {
        let nulls = NullBuffer::from(emit_to.take_needed(&mut self.seen));
        let nulls = (nulls.null_count() > 0).then_some(nulls);
        let times = TimestampNanosecondArray::new(
            emit_to.take_needed(&mut self.times).into(),
            nulls.clone(),
        )
        .with_data_type(self.time_type.clone());
        let values = self.values.take(emit_to, nulls.clone());
        (values, Arc::new(times), nulls)
    }
}

/// The `(value, time)` columns an accumulator was given.
fn value_and_time(selection: Selection, columns: &[ArrayRef]) -> Result<(&ArrayRef, &ArrayRef)> {
    match columns {
        [value, time] => Ok((value, time)),
        _ => Err(DataFusionError::Internal(format!(
            "{} got {} input columns, expected 2",
            selection.name(),
            columns.len()
        ))),
    }
}

fn nanoseconds(times: &ArrayRef, selection: Selection) -> Result<&TimestampNanosecondArray> {
    times
        .as_primitive_opt::<TimestampNanosecondType>()
        .ok_or_else(|| {
            DataFusionError::Internal(format!(
                "{} expects nanosecond times, got {}",
                selection.name(),
                times.data_type()
            ))
        })
}

/// Rows that may win: value and time not NULL and, with a filter, the filter true. `None`
/// when every row may.
fn usable_rows(
    values: &dyn Array,
    times: &dyn Array,
    filter: Option<&BooleanArray>,
) -> Option<BooleanBuffer> {
    let valid = NullBuffer::union(values.nulls(), times.nulls()).map(NullBuffer::into_inner);
    let passed = filter.map(|filter| match filter.nulls() {
        Some(nulls) => filter.values() & nulls.inner(),
        None => filter.values().clone(),
    });
    match (valid, passed) {
        (Some(valid), Some(passed)) => Some(&valid & &passed),
        (valid, passed) => valid.or(passed),
    }
}

impl<V: GroupValues> GroupsAccumulator for SelectorGroups<V> {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        let (value, time) = value_and_time(self.selection, values)?;
        self.select(value, time, group_indices, opt_filter, total_num_groups)
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        // A partial state is a candidate row: merging is selecting among candidates.
        let (value, time) = value_and_time(self.selection, values)?;
        self.select(value, time, group_indices, None, total_num_groups)
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        // A group without a candidate is a NULL struct (not a struct of NULLs), as in
        // `SelectorAccumulator::evaluate`, so locf treats it as missing.
        let (values, times, nulls) = self.take(emit_to);
        Ok(Arc::new(StructArray::try_new(
            self.fields.clone(),
            vec![values, times],
            nulls,
        )?))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let (values, times, _) = self.take(emit_to);
        Ok(vec![values, times])
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        // Each row is its own candidate; one that may not win becomes (NULL, NULL), the
        // state of a group without a candidate.
        let (value, time) = value_and_time(self.selection, values)?;
        match usable_rows(value.as_ref(), time.as_ref(), opt_filter) {
            None => Ok(vec![Arc::clone(value), Arc::clone(time)]),
            Some(usable) => {
                let unusable = BooleanArray::new(!&usable, None);
                Ok(vec![nullif(value, &unusable)?, nullif(time, &unusable)?])
            }
        }
    }

    fn size(&self) -> usize {
        self.values.size() + self.times.capacity() * size_of::<i64>() + self.seen.capacity()
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Float64Array, Int64Array};
    use arrow::datatypes::TimeUnit;
    use datafusion::common::ScalarValue;
    use datafusion::logical_expr::Accumulator;

    use super::super::SelectorAccumulator;
    use super::*;

    fn time_type() -> DataType {
        DataType::Timestamp(TimeUnit::Nanosecond, None)
    }

    fn groups_of(selection: Selection, value_type: &DataType) -> Box<dyn GroupsAccumulator> {
        accumulator(selection, value_type, &time_type()).unwrap()
    }

    fn times(times: &[Option<i64>]) -> ArrayRef {
        Arc::new(TimestampNanosecondArray::from(times.to_vec()))
    }

    /// Each group's `(value, time)`, `None` for a NULL struct.
    fn rows(result: &ArrayRef) -> Vec<Option<(ScalarValue, ScalarValue)>> {
        let result = result.as_struct();
        (0..result.len())
            .map(|row| {
                result.is_valid(row).then(|| {
                    (
                        ScalarValue::try_from_array(result.column(0), row).unwrap(),
                        ScalarValue::try_from_array(result.column(1), row).unwrap(),
                    )
                })
            })
            .collect()
    }

    fn f(value: f64, time: i64) -> Option<(ScalarValue, ScalarValue)> {
        Some((
            ScalarValue::Float64(Some(value)),
            ScalarValue::TimestampNanosecond(Some(time), None),
        ))
    }

    #[test]
    fn emit_first_returns_the_first_groups_and_renumbers_the_rest() {
        let mut acc = groups_of(Selection::Max, &DataType::Float64);
        let values: ArrayRef = Arc::new(Float64Array::from(vec![1.0, 5.0, 2.0, 7.0]));
        acc.update_batch(
            &[values, times(&[Some(1), Some(2), Some(3), Some(4)])],
            &[0, 1, 2, 2],
            None,
            3,
        )
        .unwrap();
        let first = acc.evaluate(EmitTo::First(2)).unwrap();
        assert_eq!(rows(&first), vec![f(1.0, 1), f(5.0, 2)]);

        // Old group 2 is now group 0; group 1 is new.
        let values: ArrayRef = Arc::new(Float64Array::from(vec![3.0, 9.0]));
        acc.update_batch(&[values, times(&[Some(5), Some(6)])], &[0, 1], None, 2)
            .unwrap();
        let rest = acc.evaluate(EmitTo::All).unwrap();
        assert_eq!(rows(&rest), vec![f(7.0, 4), f(9.0, 6)]);
    }

    #[test]
    fn state_emit_first_keeps_the_remaining_groups_candidates() {
        let mut acc = groups_of(Selection::First, &DataType::Utf8);
        let values: ArrayRef = Arc::new(StringArray::from(vec!["a", "b", "c"]));
        acc.update_batch(
            &[values, times(&[Some(1), Some(2), Some(3)])],
            &[0, 1, 2],
            None,
            3,
        )
        .unwrap();
        let state = acc.state(EmitTo::First(1)).unwrap();
        assert_eq!(state[0].as_string::<i32>().value(0), "a");
        assert_eq!(state[0].len(), 1);
        let rest = acc.evaluate(EmitTo::All).unwrap();
        assert_eq!(rest.as_struct().column(0).as_string::<i32>().value(1), "c");
        assert_eq!(rest.len(), 2);
    }

    #[test]
    fn rows_the_filter_rejects_or_leaves_null_never_win() {
        let mut acc = groups_of(Selection::Last, &DataType::Float64);
        let values: ArrayRef = Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0, 4.0]));
        let filter = BooleanArray::from(vec![Some(true), Some(false), None, Some(false)]);
        acc.update_batch(
            &[values, times(&[Some(1), Some(2), Some(3), Some(4)])],
            &[0, 0, 0, 1],
            Some(&filter),
            2,
        )
        .unwrap();
        let result = acc.evaluate(EmitTo::All).unwrap();
        assert_eq!(rows(&result), vec![f(1.0, 1), None]);
        // A group without a candidate is a NULL struct whose fields are NULL too.
        let result = result.as_struct();
        assert!(result.column(0).is_null(1) && result.column(1).is_null(1));
    }

    #[test]
    fn equal_times_keep_the_row_seen_first_in_a_batch_and_the_held_state_in_a_merge() {
        for selection in [Selection::First, Selection::Last] {
            let mut acc = groups_of(selection, &DataType::Int64);
            let values: ArrayRef = Arc::new(Int64Array::from(vec![10, 20]));
            acc.update_batch(&[values, times(&[Some(5), Some(5)])], &[0, 0], None, 1)
                .unwrap();
            let other: ArrayRef = Arc::new(Int64Array::from(vec![30]));
            acc.merge_batch(&[other, times(&[Some(5)])], &[0], 1)
                .unwrap();
            let result = acc.evaluate(EmitTo::All).unwrap();
            assert_eq!(
                rows(&result)[0].as_ref().unwrap().0,
                ScalarValue::Int64(Some(10)),
                "{selection:?}"
            );
        }
    }

    #[test]
    fn converted_states_merge_to_the_same_result_as_the_rows() {
        let values: ArrayRef = Arc::new(BooleanArray::from(vec![
            Some(true),
            None,
            Some(false),
            Some(false),
            Some(true),
        ]));
        let time = times(&[Some(1), Some(2), None, Some(4), Some(0)]);
        let filter = BooleanArray::from(vec![true, true, true, true, false]);
        let groups = [0, 0, 0, 0, 0];

        let mut direct = groups_of(Selection::Min, &DataType::Boolean);
        direct
            .update_batch(
                &[Arc::clone(&values), Arc::clone(&time)],
                &groups,
                Some(&filter),
                1,
            )
            .unwrap();
        let mut merged = groups_of(Selection::Min, &DataType::Boolean);
        let state = merged
            .convert_to_state(&[values, time], Some(&filter))
            .unwrap();
        merged.merge_batch(&state, &groups, 1).unwrap();

        let expected = vec![Some((
            ScalarValue::Boolean(Some(false)),
            ScalarValue::TimestampNanosecond(Some(4), None),
        ))];
        assert_eq!(rows(&direct.evaluate(EmitTo::All).unwrap()), expected);
        assert_eq!(rows(&merged.evaluate(EmitTo::All).unwrap()), expected);
    }

    #[test]
    fn partial_states_interoperate_with_the_per_group_accumulator() {
        let values: ArrayRef = Arc::new(StringArray::from(vec![Some("m"), Some("b"), None]));
        let time = times(&[Some(1), Some(2), Some(3)]);

        // Groups → per-group accumulator.
        let mut groups = groups_of(Selection::Min, &DataType::Utf8);
        groups
            .update_batch(
                &[Arc::clone(&values), Arc::clone(&time)],
                &[0, 0, 1],
                None,
                2,
            )
            .unwrap();
        let state = groups.state(EmitTo::All).unwrap();
        let mut single = SelectorAccumulator::new(Selection::Min, DataType::Utf8, time_type());
        single
            .merge_batch(&[state[0].slice(0, 1), state[1].slice(0, 1)])
            .unwrap();
        let expected = ScalarValue::Utf8(Some("b".into()));
        assert_eq!(single.state().unwrap()[0], expected);

        // Per-group accumulator (one with a candidate, one without) → groups.
        let mut empty = SelectorAccumulator::new(Selection::Min, DataType::Utf8, time_type());
        let mut states = [single.state().unwrap(), empty.state().unwrap()];
        let columns: Vec<ArrayRef> = (0..2)
            .map(|i| ScalarValue::iter_to_array(states.iter_mut().map(|s| s[i].clone())).unwrap())
            .collect();
        let mut groups = groups_of(Selection::Min, &DataType::Utf8);
        groups.merge_batch(&columns, &[0, 1], 2).unwrap();
        let result = groups.evaluate(EmitTo::All).unwrap();
        assert_eq!(
            rows(&result),
            vec![
                Some((expected, ScalarValue::TimestampNanosecond(Some(2), None))),
                None
            ]
        );
    }
}
