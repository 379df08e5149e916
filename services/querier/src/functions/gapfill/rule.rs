//! The analyzer rule that turns `date_bin_gapfill` / `locf` / `interpolate` into a
//! [`GapFill`] node (see the parent module for the plan shapes).
//!
//! It runs after DataFusion's type coercion, so function arguments and WHERE comparisons
//! already carry their final types: `time >= '2024-01-01T00:00:00Z'` reads `time >=
//! CAST(Utf8(..) AS Timestamp(ns))`, and `time >= now() - INTERVAL '1 hour'` may compare
//! `CAST(time AS Timestamp(ns, "+00:00"))`. Bounds stay expressions until physical
//! planning, where they are evaluated with the query's own start time.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchema};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{
    Aggregate, Between, BinaryExpr, Expr, Extension, LogicalPlan, Operator, Projection,
};
use datafusion::optimizer::AnalyzerRule;

use super::{DATE_BIN_GAPFILL, Fill, GapFill, GapFillError, GapFillParams, TimeBound};

/// Rewrites aggregates grouped by `date_bin_gapfill` into `GapFill(Aggregate(date_bin))`,
/// and fails queries that use any of the gap-filling functions elsewhere.
#[derive(Debug, Default)]
pub(crate) struct GapFillRule;

impl AnalyzerRule for GapFillRule {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        // Bottom-up: an aggregate becomes GapFill before its parent projection is visited,
        // so the projection can hand its locf/interpolate calls to the node below.
        let plan = plan
            .transform_up_with_subqueries(|node| match node {
                LogicalPlan::Aggregate(aggregate) => gapfill_aggregate(aggregate),
                LogicalPlan::Projection(projection) => move_fills_into_gapfill(projection),
                other => Ok(Transformed::no(other)),
            })?
            .data;
        reject_leftovers(&plan)?;
        Ok(plan)
    }

    fn name(&self) -> &str {
        "ferrite_gapfill"
    }
}

/// The `date_bin_gapfill(..)` call `expr` is (under any aliases), if it is one.
fn as_gapfill_call(expr: &Expr) -> Option<&ScalarFunction> {
    match expr {
        Expr::Alias(alias) => as_gapfill_call(&alias.expr),
        Expr::ScalarFunction(f) if f.func.name() == DATE_BIN_GAPFILL => Some(f),
        _ => None,
    }
}

fn contains_gapfill(expr: &Expr) -> bool {
    expr.exists(|e| Ok(matches!(e, Expr::ScalarFunction(f) if f.func.name() == DATE_BIN_GAPFILL)))
        .unwrap_or(false)
}

fn gapfill_aggregate(aggregate: Aggregate) -> Result<Transformed<LogicalPlan>> {
    let positions = aggregate
        .group_expr
        .iter()
        .enumerate()
        .filter(|(_, e)| as_gapfill_call(e).is_some())
        .map(|(i, _)| i)
        .collect::<Vec<_>>();
    let position = match positions.as_slice() {
        [] => {
            if aggregate
                .group_expr
                .iter()
                .any(|e| matches!(e, Expr::GroupingSet(_)) && contains_gapfill(e))
            {
                return Err(GapFillError::GroupingSets.into());
            }
            return Ok(Transformed::no(LogicalPlan::Aggregate(aggregate)));
        }
        [one] => *one,
        _ => return Err(GapFillError::SeveralGapfills.into()),
    };
    let call = as_gapfill_call(&aggregate.group_expr[position])
        .expect("position was found by as_gapfill_call");
    let (stride, time, origin) = match call.args.as_slice() {
        [stride, time] => (stride, time, None),
        [stride, time, origin] => (stride, time, Some(origin)),
        // The signature (date_bin's) admits nothing else.
        other => {
            return Err(DataFusionError::Internal(format!(
                "date_bin_gapfill with {} arguments",
                other.len()
            )));
        }
    };
    for (what, expr) in [("stride", Some(stride)), ("origin", origin)] {
        if let Some(expr) = expr
            && !is_constant(expr)
        {
            return Err(GapFillError::NotConstant {
                what,
                expr: expr.to_string(),
            }
            .into());
        }
    }
    let time_name = time_column(time)
        .ok_or_else(|| GapFillError::TimeNotAColumn(time.to_string()))?
        .name
        .clone();
    let (lower, upper) = time_bounds(&aggregate.input, &time_name);
    match (lower.is_empty(), upper.is_empty()) {
        (false, false) => {}
        (true, false) => Err(GapFillError::MissingTimeBound {
            missing: "lower bound",
        })?,
        (false, true) => Err(GapFillError::MissingTimeBound {
            missing: "upper bound",
        })?,
        (true, true) => Err(GapFillError::MissingTimeBound {
            missing: "lower and upper bound",
        })?,
    }
    let params = GapFillParams {
        stride: stride.clone(),
        origin: origin.cloned(),
        lower,
        upper,
    };

    // Group by plain date_bin under the old name, so every column above keeps resolving.
    let date_bin = datafusion::functions::datetime::date_bin();
    let mut group_expr = aggregate.group_expr.clone();
    let original = &aggregate.group_expr[position];
    group_expr[position] = original
        .clone()
        .transform_up(|e| match e {
            Expr::ScalarFunction(f) if f.func.name() == DATE_BIN_GAPFILL => Ok(Transformed::yes(
                Expr::ScalarFunction(ScalarFunction::new_udf(Arc::clone(&date_bin), f.args)),
            )),
            other => Ok(Transformed::no(other)),
        })?
        .data
        .alias_if_changed(original.schema_name().to_string())?;
    let group_len = group_expr.len();
    let binned = Aggregate::try_new(
        Arc::clone(&aggregate.input),
        group_expr,
        aggregate.aggr_expr.clone(),
    )?;
    let schema = Arc::clone(&binned.schema);
    let column = |i: usize| Column::from(schema.qualified_field(i));
    let series = (0..group_len)
        .filter(|i| *i != position)
        .map(column)
        .collect();
    let aggregates = (group_len..schema.fields().len())
        .map(|i| (column(i), None))
        .collect();
    let node = GapFill::try_new(
        Arc::new(LogicalPlan::Aggregate(binned)),
        series,
        column(position),
        aggregates,
        params,
    )?;
    Ok(Transformed::yes(LogicalPlan::Extension(Extension {
        node: Arc::new(node),
    })))
}

/// An expression with one value for the whole query: no columns, subqueries, placeholders
/// or aggregates, and not volatile (`now()` is stable, so allowed).
fn is_constant(expr: &Expr) -> bool {
    let refers_to_rows = expr
        .exists(|e| {
            Ok(matches!(
                e,
                Expr::Column(_)
                    | Expr::OuterReferenceColumn(..)
                    | Expr::ScalarSubquery(_)
                    | Expr::Exists(_)
                    | Expr::InSubquery(_)
                    | Expr::SetComparison(_)
                    | Expr::Placeholder(_)
                    | Expr::AggregateFunction(_)
                    | Expr::WindowFunction(_)
                    | Expr::Unnest(_)
                    | Expr::LambdaVariable(_)
            ))
        })
        .unwrap_or(true);
    !refers_to_rows && !expr.is_volatile()
}

/// The column under `expr`'s casts, if `expr` is a (cast) column.
fn time_column(expr: &Expr) -> Option<&Column> {
    match expr {
        Expr::Column(c) => Some(c),
        Expr::Cast(c) => time_column(&c.expr),
        Expr::TryCast(c) => time_column(&c.expr),
        _ => None,
    }
}

/// `expr` is the time column named `name`, possibly cast to another timestamp type (the
/// coercion of a comparison with a time-zoned literal).
fn is_time(expr: &Expr, name: &str) -> bool {
    match expr {
        Expr::Column(c) => c.name == name,
        Expr::Cast(c) => c.field.data_type().is_temporal() && is_time(&c.expr, name),
        Expr::TryCast(c) => c.field.data_type().is_temporal() && is_time(&c.expr, name),
        _ => false,
    }
}

/// The lower and upper bounds on time that every row reaching `plan` satisfies: the
/// conjuncts of the filters (and scan filters) below it, through projections and aliases
/// that pass the time column on unchanged.
fn time_bounds(plan: &LogicalPlan, time: &str) -> (Vec<TimeBound>, Vec<TimeBound>) {
    let mut lower = Vec::new();
    let mut upper = Vec::new();
    let mut add = |predicate: &Expr| {
        for conjunct in split_conjunction(predicate) {
            add_bounds(conjunct, time, &mut lower, &mut upper);
        }
    };
    let mut plan = plan;
    loop {
        match plan {
            LogicalPlan::Filter(filter) => {
                add(&filter.predicate);
                plan = &filter.input;
            }
            LogicalPlan::SubqueryAlias(alias) => plan = &alias.input,
            LogicalPlan::Projection(projection)
                if projection
                    .expr
                    .iter()
                    .any(|e| matches!(e, Expr::Column(c) if c.name == time)) =>
            {
                plan = &projection.input;
            }
            LogicalPlan::TableScan(scan) => {
                scan.filters.iter().for_each(&mut add);
                break;
            }
            _ => break,
        }
    }
    (lower, upper)
}

/// Record the bounds one conjunct puts on `time`, if any.
fn add_bounds(conjunct: &Expr, time: &str, lower: &mut Vec<TimeBound>, upper: &mut Vec<TimeBound>) {
    let bound = |expr: &Expr, inclusive| TimeBound {
        expr: expr.clone(),
        inclusive,
    };
    match conjunct {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let (value, op) = if is_time(left, time) && is_constant(right) {
                (right.as_ref(), *op)
            } else if is_time(right, time) && is_constant(left) {
                match op.swap() {
                    Some(op) => (left.as_ref(), op),
                    None => return,
                }
            } else {
                return;
            };
            match op {
                Operator::Gt => lower.push(bound(value, false)),
                Operator::GtEq => lower.push(bound(value, true)),
                Operator::Lt => upper.push(bound(value, false)),
                Operator::LtEq => upper.push(bound(value, true)),
                Operator::Eq => {
                    lower.push(bound(value, true));
                    upper.push(bound(value, true));
                }
                _ => {}
            }
        }
        Expr::Between(Between {
            expr,
            negated: false,
            low,
            high,
        }) if is_time(expr, time) && is_constant(low) && is_constant(high) => {
            lower.push(bound(low, true));
            upper.push(bound(high, true));
        }
        _ => {}
    }
}

/// `Projection(.. locf(x) ..)` directly over a GapFill: drop the calls and make them fills of
/// the GapFill, keeping every output name.
fn move_fills_into_gapfill(projection: Projection) -> Result<Transformed<LogicalPlan>> {
    let input = projection.input.as_ref();
    if let LogicalPlan::Filter(having) = input
        && as_gapfill(&having.input).is_some()
        && let Some(fill) = first_fill(&projection.expr)
    {
        // The filter would see values before filling, the SELECT list after: refuse rather
        // than pick one.
        return Err(GapFillError::FillWithHaving {
            function: fill.name(),
        }
        .into());
    }
    let Some(gapfill) = as_gapfill(input) else {
        return Ok(Transformed::no(LogicalPlan::Projection(projection)));
    };
    let is_aggregate = |c: &Column| gapfill.aggregates.iter().any(|(a, _)| a == c);
    let mut fills: HashMap<Column, Fill> = HashMap::new();
    let mut unfilled: Vec<Column> = Vec::new();
    let mut exprs = Vec::with_capacity(projection.expr.len());
    for expr in &projection.expr {
        let name = expr.schema_name().to_string();
        let rewritten = expr.clone().transform_down(|e| match e {
            Expr::ScalarFunction(f) => match Fill::from_name(f.func.name()) {
                Some(fill) => {
                    let column = match f.args.as_slice() {
                        [Expr::Column(c)] if is_aggregate(c) => c.clone(),
                        args => {
                            let arg = args
                                .iter()
                                .map(ToString::to_string)
                                .collect::<Vec<_>>()
                                .join(", ");
                            return Err(GapFillError::FillNotOnAggregate {
                                function: fill.name(),
                                arg,
                            }
                            .into());
                        }
                    };
                    if let Some(previous) = fills.insert(column.clone(), fill)
                        && previous != fill
                    {
                        return Err(GapFillError::ConflictingFills {
                            column: column.name.clone(),
                            first: previous.name(),
                            second: fill.name(),
                        }
                        .into());
                    }
                    // Replaced by the column; transform_down does not revisit it below.
                    Ok(Transformed::new(
                        Expr::Column(column),
                        true,
                        TreeNodeRecursion::Jump,
                    ))
                }
                None => Ok(Transformed::no(Expr::ScalarFunction(f))),
            },
            Expr::Column(c) => {
                if is_aggregate(&c) {
                    unfilled.push(c.clone());
                }
                Ok(Transformed::no(Expr::Column(c)))
            }
            other => Ok(Transformed::no(other)),
        })?;
        exprs.push(if rewritten.transformed {
            rewritten.data.alias_if_changed(name)?
        } else {
            rewritten.data
        });
    }
    if fills.is_empty() {
        return Ok(Transformed::no(LogicalPlan::Projection(projection)));
    }
    if let Some(column) = unfilled.iter().find(|c| fills.contains_key(c)) {
        return Err(GapFillError::ConflictingFills {
            column: column.name.clone(),
            first: "no fill",
            second: fills[column].name(),
        }
        .into());
    }
    let mut node = gapfill.clone();
    for (column, fill) in &fills {
        if *fill == Fill::Interpolate {
            check_interpolatable(gapfill.input.schema(), column)?;
        }
        node = node.with_fill(column, *fill);
    }
    let input = Arc::new(LogicalPlan::Extension(Extension {
        node: Arc::new(node),
    }));
    Ok(Transformed::yes(LogicalPlan::Projection(
        Projection::try_new(exprs, input)?,
    )))
}

/// The GapFill node `plan` is, if it is one.
fn as_gapfill(plan: &LogicalPlan) -> Option<&GapFill> {
    match plan {
        LogicalPlan::Extension(extension) => extension.node.as_any().downcast_ref::<GapFill>(),
        _ => None,
    }
}

/// The first fill function called anywhere in `exprs`.
fn first_fill(exprs: &[Expr]) -> Option<Fill> {
    let mut found = None;
    for expr in exprs {
        let _ = expr.apply(|e| {
            if let Expr::ScalarFunction(f) = e
                && let Some(fill) = Fill::from_name(f.func.name())
            {
                found = Some(fill);
                return Ok(TreeNodeRecursion::Stop);
            }
            Ok(TreeNodeRecursion::Continue)
        });
        if found.is_some() {
            break;
        }
    }
    found
}

fn check_interpolatable(schema: &DFSchema, column: &Column) -> Result<()> {
    let (_, field) = schema.qualified_field_from_column(column)?;
    let data_type = field.data_type();
    if super::exec::can_interpolate(data_type) {
        Ok(())
    } else {
        Err(GapFillError::InterpolateNotNumeric {
            column: column.name.clone(),
            data_type: data_type.clone(),
        }
        .into())
    }
}

/// Fail on any gap-filling function the rewrite did not consume.
fn reject_leftovers(plan: &LogicalPlan) -> Result<()> {
    plan.apply_with_subqueries(|node| {
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                if let Expr::ScalarFunction(f) = e {
                    let name = f.func.name();
                    if name == DATE_BIN_GAPFILL {
                        return Err(GapFillError::GapfillOutsideGroupBy.into());
                    }
                    if let Some(fill) = Fill::from_name(name) {
                        return Err(GapFillError::FillOutsideGapfill {
                            function: fill.name(),
                        }
                        .into());
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    })
    .map(|_| ())
}
