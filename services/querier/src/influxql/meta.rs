//! `SHOW …` and `CREATE DATABASE`, answered in InfluxDB 1.x's shapes from the catalog's
//! schema; tag values and series come from scans of the tag columns.

use std::collections::{BTreeMap, BTreeSet};

use ferrite_auth::Caller;
use ferrite_catalog::Action;
use ferrite_influxql::{
    CreateDatabaseStatement, Expr, MeasurementName, QualifiedMeasurementName,
    ShowFieldKeysStatement, ShowMeasurementsStatement, ShowSeriesStatement, ShowTagKeysStatement,
    ShowTagValuesKey, ShowTagValuesStatement,
};

use super::eval::{self, PointRef};
use super::select::Reader;
use super::source::{Scan, Source};
use super::value::Value;
use super::{DbReader, Error, Result, Series};
use crate::engine::QueryEngine;

fn series(name: &str, columns: &[&str], values: Vec<Vec<Value>>) -> Vec<Series> {
    if values.is_empty() {
        return Vec::new();
    }
    vec![Series {
        name: name.to_string(),
        tags: BTreeMap::new(),
        columns: columns.iter().map(|c| (*c).to_string()).collect(),
        values,
        timezone: None,
    }]
}

fn text(s: impl Into<String>) -> Value {
    Value::String(s.into())
}

/// `OFFSET` then `LIMIT` over `values`.
fn page<T>(values: Vec<T>, limit: Option<u64>, offset: Option<u64>) -> Vec<T> {
    let mut v: Vec<T> = values
        .into_iter()
        .skip(offset.unwrap_or(0) as usize)
        .collect();
    if let Some(l) = limit
        && l > 0
    {
        v.truncate(l as usize);
    }
    v
}

/// `SHOW DATABASES`: the databases the caller may read.
pub async fn show_databases(engine: &QueryEngine, caller: &Caller) -> Result<Vec<Series>> {
    let databases = engine
        .catalog()
        .list_databases()
        .await
        .map_err(|e| Error::Engine(e.into()))?;
    let values = databases
        .into_iter()
        .filter(|d| caller.may(Action::Read, d.id))
        .map(|d| vec![text(d.name)])
        .collect();
    Ok(series("databases", &["name"], values))
}

/// `CREATE DATABASE name`: creates it unless it exists (a token that may write to it may).
pub async fn create_database(
    engine: &QueryEngine,
    caller: &Caller,
    create: &CreateDatabaseStatement,
) -> Result<Vec<Series>> {
    if create.duration.is_some()
        || create.replication.is_some()
        || create.shard_duration.is_some()
        || create.retention_policy_name.is_some()
    {
        return Err(Error::query(
            "CREATE DATABASE ... WITH is not supported: ferrite has one retention policy per \
             database (autogen); set the retention period with ferritectl",
        ));
    }
    caller
        .require(Action::Write, &create.name)
        .await
        .map_err(|e| Error::Engine(e.into()))?;
    ferrite_model::validate_database_name(&create.name).map_err(|e| Error::query(e.to_string()))?;
    engine
        .catalog()
        .create_database(&create.name)
        .await
        .map_err(|e| Error::Engine(e.into()))?;
    Ok(Vec::new())
}

/// `SHOW RETENTION POLICIES`: ferrite's one policy per database, `autogen`.
pub async fn show_retention_policies(
    engine: &QueryEngine,
    caller: &Caller,
    database: &str,
) -> Result<Vec<Series>> {
    caller
        .require(Action::Read, database)
        .await
        .map_err(|e| Error::Engine(e.into()))?;
    let (_, schema) = engine.session_and_schema(database).await?;
    let duration = go_duration(schema.limits.retention_period_ns);
    Ok(series(
        "",
        &[
            "name",
            "duration",
            "shardGroupDuration",
            "replicaN",
            "futureWriteLimit",
            "pastWriteLimit",
            "default",
        ],
        vec![vec![
            text("autogen"),
            text(duration),
            text("168h0m0s"),
            Value::Integer(1),
            text("0s"),
            text("0s"),
            Value::Boolean(true),
        ]],
    ))
}

/// A duration as Go prints it (`0s`, `168h0m0s`, `1h30m0s`).
fn go_duration(ns: i64) -> String {
    if ns <= 0 {
        return "0s".to_string();
    }
    let secs = ns / 1_000_000_000;
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

/// The measurements `sources` names (all when empty), sorted, that exist.
fn measurements(reader: &DbReader, sources: &[QualifiedMeasurementName]) -> Result<Vec<String>> {
    let all = reader.measurements();
    if sources.is_empty() {
        return Ok(all);
    }
    let mut out = BTreeSet::new();
    for s in sources {
        match &s.name {
            MeasurementName::Name(n) => {
                if all.contains(n) {
                    out.insert(n.clone());
                }
            }
            MeasurementName::Regex(re) => {
                let re = eval::compile_regex(re)?;
                out.extend(all.iter().filter(|m| re.is_match(m)).cloned());
            }
        }
    }
    Ok(out.into_iter().collect())
}

/// The tag sets of `measurement` with a point meeting `condition` (time bounds included).
async fn tag_sets(
    reader: &DbReader,
    measurement: &str,
    condition: Option<&Expr>,
    now: i64,
) -> Result<Vec<BTreeMap<String, String>>> {
    let (range, rest) = match condition {
        Some(c) => eval::split_time(c, now)?,
        None => (eval::TimeRange::default(), None),
    };
    // Conditions on tags only: no field is read.
    let Some(source): Option<Source> = reader
        .scan(
            measurement,
            Scan {
                fields: Some(BTreeSet::new()),
                min_time: range.min,
                max_time: range.max,
                tag_equals: Vec::new(),
                filter: None,
                limit: None,
            },
        )
        .await?
    else {
        return Ok(Vec::new());
    };
    let condition = rest.map(|c| eval::compile(&c, &source, now)).transpose()?;
    Ok(source
        .series
        .into_iter()
        .filter(|s| {
            condition.as_ref().is_none_or(|c| {
                s.points.iter().any(|p| {
                    c.matches(PointRef {
                        time: p.time,
                        tags: &s.tags,
                        values: &p.values,
                    })
                })
            })
        })
        .map(|s| s.tags)
        .collect())
}

/// `SHOW MEASUREMENTS [WITH MEASUREMENT …] [WHERE …]`.
pub async fn show_measurements(
    reader: &DbReader,
    show: &ShowMeasurementsStatement,
    now: i64,
) -> Result<Vec<Series>> {
    let mut names = reader.measurements();
    if let Some(m) = &show.with_measurement {
        match m {
            MeasurementName::Name(n) => names.retain(|x| x == n),
            MeasurementName::Regex(re) => {
                let re = eval::compile_regex(re)?;
                names.retain(|x| re.is_match(x));
            }
        }
    }
    let mut kept = Vec::new();
    for name in names {
        if show.condition.is_none()
            || !tag_sets(reader, &name, show.condition.as_ref(), now)
                .await?
                .is_empty()
        {
            kept.push(vec![text(name)]);
        }
    }
    Ok(series(
        "measurements",
        &["name"],
        page(kept, show.limit, show.offset),
    ))
}

/// `SHOW TAG KEYS [FROM …] [WHERE …]`: per measurement, its tag keys.
pub async fn show_tag_keys(
    reader: &DbReader,
    show: &ShowTagKeysStatement,
    now: i64,
) -> Result<Vec<Series>> {
    let mut out = Vec::new();
    for name in measurements(reader, &show.sources)? {
        let keys: BTreeSet<String> = if show.condition.is_some() {
            tag_sets(reader, &name, show.condition.as_ref(), now)
                .await?
                .into_iter()
                .flat_map(|t| t.into_keys())
                .collect()
        } else {
            reader.shell(&name).map(|s| s.tag_keys).unwrap_or_default()
        };
        let values = keys.into_iter().map(|k| vec![text(k)]).collect();
        out.extend(series(
            &name,
            &["tagKey"],
            page(values, show.limit, show.offset),
        ));
    }
    Ok(out)
}

/// `SHOW TAG VALUES [FROM …] WITH KEY … [WHERE …]`.
pub async fn show_tag_values(
    reader: &DbReader,
    show: &ShowTagValuesStatement,
    now: i64,
) -> Result<Vec<Series>> {
    let key_matches: Box<dyn Fn(&str) -> bool + Send + Sync> = match &show.key {
        ShowTagValuesKey::Eq(k) => {
            let k = k.clone();
            Box::new(move |x| x == k)
        }
        ShowTagValuesKey::NotEq(k) => {
            let k = k.clone();
            Box::new(move |x| x != k)
        }
        ShowTagValuesKey::EqRegex(re) => {
            let re = eval::compile_regex(re)?;
            Box::new(move |x| re.is_match(x))
        }
        ShowTagValuesKey::NotEqRegex(re) => {
            let re = eval::compile_regex(re)?;
            Box::new(move |x| !re.is_match(x))
        }
        ShowTagValuesKey::In(keys) => {
            let keys = keys.clone();
            Box::new(move |x| keys.iter().any(|k| k == x))
        }
    };
    let mut out = Vec::new();
    for name in measurements(reader, &show.sources)? {
        let mut pairs = BTreeSet::new();
        for tags in tag_sets(reader, &name, show.condition.as_ref(), now).await? {
            for (k, v) in tags {
                if key_matches(&k) {
                    pairs.insert((k, v));
                }
            }
        }
        let values = pairs
            .into_iter()
            .map(|(k, v)| vec![text(k), text(v)])
            .collect();
        out.extend(series(
            &name,
            &["key", "value"],
            page(values, show.limit, show.offset),
        ));
    }
    Ok(out)
}

/// `SHOW FIELD KEYS [FROM …]`: per measurement, its fields and their types.
pub fn show_field_keys(reader: &DbReader, show: &ShowFieldKeysStatement) -> Result<Vec<Series>> {
    let mut out = Vec::new();
    for name in measurements(reader, &show.sources)? {
        let Some(table) = reader.schema.tables.get(&name) else {
            continue;
        };
        let values = table
            .columns
            .iter()
            .filter_map(|(c, (_, t))| {
                super::source::field_type(*t).map(|f| vec![text(c.clone()), text(f.name())])
            })
            .collect();
        out.extend(series(
            &name,
            &["fieldKey", "fieldType"],
            page(values, show.limit, show.offset),
        ));
    }
    Ok(out)
}

/// `SHOW SERIES [FROM …] [WHERE …]`: every series key, `measurement,tag=value,…`.
pub async fn show_series(
    reader: &DbReader,
    show: &ShowSeriesStatement,
    now: i64,
) -> Result<Vec<Series>> {
    let mut keys = Vec::new();
    for name in measurements(reader, &show.sources)? {
        for tags in tag_sets(reader, &name, show.condition.as_ref(), now).await? {
            let mut key = escape(&name, false);
            for (k, v) in tags {
                key.push(',');
                key.push_str(&escape(&k, true));
                key.push('=');
                key.push_str(&escape(&v, true));
            }
            keys.push(key);
        }
    }
    keys.sort();
    let values = keys.into_iter().map(|k| vec![text(k)]).collect();
    Ok(series("", &["key"], page(values, show.limit, show.offset)))
}

/// Line-protocol escaping of a series key part.
fn escape(s: &str, tag: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == ',' || c == ' ' || (tag && c == '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
