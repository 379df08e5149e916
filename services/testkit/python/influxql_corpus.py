"""The InfluxQL differential corpus: one data set and the queries run against both InfluxDB 1.x
(`influxd`) and ferrite's `/query` (tests/test_influxql_differential.py).

The data set is line protocol generated from fixed seeds, with fixed timestamps from
2024-01-01T00:00:00Z (epoch 1704067200 s), so every run and both servers see the same points:

    weather  20 series (location, region; region absent on 4): temperature float,
             humidity integer, pressure float, station string, raining boolean;
             one row a minute with a few seconds of jitter, 2 h; some rows miss fields
    machine  20 series (host, dc, rack; rack absent on 5): load float, procs integer,
             value INTEGER, state string, healthy boolean; every 30 s, 2 h
    sensor   20 series (id, zone): value FLOAT (the same field name as machine's, another
             type), battery integer, label string, active boolean; every 10 s, 2 h,
             values around zero (negative ones for abs/floor/ceil)
    event    sparse and irregular (source, severity absent on some): value STRING,
             code integer; gaps for fill(previous)/fill(linear)
    cpu      TSBS `cpu-only` shape: 5 hosts with the ten TSBS tags, the ten usage_* floats
             as bounded random walks; one row per host every 10 s, 3 h

A query names the data set's database as `{db}` where it has to be spelled out (SHOW …
ON {db}, fully qualified measurements, CREATE DATABASE); the tests substitute the name.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

T0 = 1_704_067_200  # 2024-01-01T00:00:00Z, in seconds
NS = 1_000_000_000


# --- the data set ------------------------------------------------------------------------------

def _walk(rng: random.Random, value: float, step: float, lo: float, hi: float) -> float:
    """One step of a random walk kept inside [lo, hi] (reflected at the bounds)."""
    value += rng.uniform(-step, step)
    if value < lo:
        value = 2 * lo - value
    if value > hi:
        value = 2 * hi - value
    return value


def _f(x: float) -> str:
    """A float field as line protocol, rounded so that it reads the same everywhere."""
    return repr(round(x, 4))


def weather_lines() -> list[str]:
    rng = random.Random(1)
    out = []
    regions = ["north", "south", "east", "west"]
    for s in range(20):
        loc = f"loc_{s:02d}"
        # Series 16..19 have no region tag at all.
        tags = f"location={loc}" + (f",region={regions[s % 4]}" if s < 16 else "")
        temp = rng.uniform(5, 30)
        hum = rng.randint(30, 80)
        for i in range(120):
            t = T0 + i * 60 + rng.randint(0, 20)  # irregular: a few seconds of jitter
            temp = _walk(rng, temp, 0.8, 0.5, 40)
            hum = max(20, min(99, hum + rng.randint(-2, 2)))
            fields = [f"temperature={_f(temp)}", f"humidity={hum}i"]
            if rng.random() > 0.1:  # ~10 % of rows have no pressure
                fields.append(f"pressure={_f(1000 + rng.uniform(-15, 15))}")
            if i % 7 != 3:  # some rows have no station string
                fields.append(f'station="{rng.choice(["ok", "maint", "degraded"])}"')
            fields.append(f"raining={'true' if rng.random() < 0.3 else 'false'}")
            out.append(f"weather,{tags} {','.join(fields)} {t * NS}")
    return out


def machine_lines() -> list[str]:
    rng = random.Random(2)
    out = []
    for s in range(20):
        tags = f"dc=dc{s % 2 + 1},host=m{s:02d}" + (f",rack=r{s % 3}" if s % 4 != 1 else "")
        load = rng.uniform(0, 4)
        procs = rng.randint(50, 300)
        for i in range(240):
            t = T0 + i * 30
            load = _walk(rng, load, 0.3, 0, 16)
            procs = max(1, procs + rng.randint(-5, 5))
            fields = [f"load={_f(load)}", f"procs={procs}i", f"value={rng.randint(0, 1000)}i"]
            if i % 11 != 5:
                fields.append(f'state="{rng.choice(["running", "idle", "busy"])}"')
            if i % 13 != 7:
                fields.append(f"healthy={'true' if rng.random() < 0.9 else 'false'}")
            out.append(f"machine,{tags} {','.join(fields)} {t * NS}")
    return out


def sensor_lines() -> list[str]:
    rng = random.Random(3)
    out = []
    for s in range(20):
        tags = f"id=s{s:02d},zone=z{s % 5}"
        value = rng.uniform(-20, 20)
        battery = 100
        for i in range(720):
            t = T0 + i * 10
            value = _walk(rng, value, 1.5, -50, 50)
            if i % 60 == 59:
                battery = max(0, battery - 1)
            fields = [f"value={_f(value)}", f"battery={battery}i"]
            if i % 5 == 0:
                fields.append(f'label="{rng.choice(["alpha", "beta", "gamma", "delta"])}"')
            fields.append(f"active={'true' if i % 9 else 'false'}")
            out.append(f"sensor,{tags} {','.join(fields)} {t * NS}")
    return out


def event_lines() -> list[str]:
    rng = random.Random(4)
    out = []
    for source in ["api", "db", "web"]:
        t = T0
        while True:
            t += rng.randint(200, 1500)  # sparse: minutes between events, whole buckets empty
            if t >= T0 + 2 * 3600:
                break
            sev = rng.choice(["info", "warn", "crit", None])
            tags = f"source={source}" + (f",severity={sev}" if sev else "")
            msg = rng.choice(["started", "stopped", "retry", "timeout, giving up"])
            out.append(f'event,{tags} value="{msg}",code={rng.randint(100, 599)}i {t * NS}')
    return out


CPU_FIELDS = ["usage_user", "usage_system", "usage_idle", "usage_nice", "usage_iowait", "usage_irq",
              "usage_softirq", "usage_steal", "usage_guest", "usage_guest_nice"]
CPU_HOSTS = 5
CPU_HOURS = 3


def cpu_lines(hosts: int = CPU_HOSTS, hours: float = CPU_HOURS, seed: int = 5) -> list[str]:
    """TSBS's `cpu-only` use case (devops): the same tag keys and usage_* fields, bounded random
    walks in [0, 100], one row per host every 10 s, hosts interleaved in time order."""
    rng = random.Random(seed)
    regions = [("us-east-1", "us-east-1a"), ("eu-west-1", "eu-west-1b"), ("ap-south-1", "ap-south-1a")]
    out = []
    series = []
    for h in range(hosts):
        region, dc = regions[h % len(regions)]
        tags = (f"hostname=host_{h},region={region},datacenter={dc},rack={rng.randint(0, 99)},"
                f"os=Ubuntu{rng.choice(['15.10', '16.10', '16.04LTS'])},arch={rng.choice(['x64', 'x86'])},"
                f"team={rng.choice(['SF', 'NYC', 'LON', 'CHI'])},service={rng.randint(0, 19)},"
                f"service_version={rng.randint(0, 1)},"
                f"service_environment={rng.choice(['production', 'staging', 'test'])}")
        series.append((tags, [rng.uniform(0, 100) for _ in CPU_FIELDS]))
    for i in range(int(hours * 3600) // 10):
        t = T0 + i * 10
        for tags, values in series:
            for k in range(len(values)):
                values[k] = _walk(rng, values[k], 6.0, 0, 100)
            fields = ",".join(f"{name}={v!r}" for name, v in zip(CPU_FIELDS, values))
            out.append(f"cpu,{tags} {fields} {t * NS}")
    return out


def dataset_lines() -> list[str]:
    """Every line of the data set (about 27 000), in a fixed order."""
    return weather_lines() + machine_lines() + sensor_lines() + event_lines() + cpu_lines()


# --- the queries -------------------------------------------------------------------------------

DATASET = "<dataset>"  # Case.db: the data set's database


@dataclass(frozen=True)
class Case:
    """One request to `/query`.

    `id`: "<feature>/<name>", the test id. `q`: the InfluxQL; `{db}` stands for the data set's
    database. `epoch`: the `epoch` parameter (None: RFC 3339 times). `db`: the `db` parameter —
    DATASET for the data set's database, None for none, else that name. `params`: further
    URL parameters (chunked, chunk_size, pretty, rp, params). `shape_only`: the answer is
    random (sample()): compare everything but the values. `ties_unordered`: rows of several
    series merged into one answer series share timestamps, and InfluxDB's order among such
    rows is an artefact of its plan (`SELECT *` and a field list order them differently):
    rows with the same time are compared in any order. `databases`: for SHOW DATABASES,
    the names to keep in its list (`{db}` substituted): each server also holds other tests'
    databases. `cluster`: also run through the cluster's router."""
    id: str
    q: str
    epoch: str | None = "ns"
    method: str = "GET"
    db: str | None = DATASET
    params: dict = field(default_factory=dict)
    shape_only: bool = False
    ties_unordered: bool = False
    databases: tuple[str, ...] = ()
    cluster: bool = False


# Time ranges used throughout: the weather/machine/sensor/event data covers 00:00–02:00 on
# 2024-01-01 (UTC), cpu 00:00–03:00.
RANGE_1H = "time >= '2024-01-01T00:00:00Z' AND time < '2024-01-01T01:00:00Z'"
RANGE_2H = "time >= '2024-01-01T00:00:00Z' AND time < '2024-01-01T02:00:00Z'"
RANGE_10M = "time >= '2024-01-01T00:30:00Z' AND time < '2024-01-01T00:40:00Z'"

CORPUS: list[Case] = [
    # --- select: raw projections of fields, tags and `*` --------------------------------------
    Case("select/fields", "SELECT temperature, humidity FROM weather "
         "WHERE location = 'loc_00' AND time < '2024-01-01T00:20:00Z'", cluster=True),
    Case("select/field_and_tags", "SELECT temperature, location, region FROM weather "
         "WHERE time < '2024-01-01T00:03:00Z'", ties_unordered=True),
    Case("select/star", "SELECT * FROM weather WHERE location = 'loc_01' AND time < '2024-01-01T00:30:00Z'"),
    # rows where some fields are missing come back with nulls
    Case("select/star_missing_fields", "SELECT * FROM weather WHERE location = 'loc_02'"),
    # rows of several series at the same timestamps
    Case("select/star_series_ties", "SELECT * FROM machine WHERE time < '2024-01-01T00:01:00Z'",
         ties_unordered=True),
    # a tag alone selects no field: an empty result
    Case("select/tag_only", "SELECT location FROM weather"),
    Case("select/whole_measurement", "SELECT * FROM event"),
    Case("select/string_and_integer", "SELECT value, code FROM event WHERE source = 'api'"),
    Case("select/boolean", "SELECT healthy FROM machine WHERE host = 'm00' AND time < '2024-01-01T00:10:00Z'"),
    Case("select/time_column", "SELECT time, temperature FROM weather WHERE location = 'loc_00' LIMIT 3"),
    Case("select/same_field_twice", "SELECT temperature, temperature FROM weather WHERE location = 'loc_00' LIMIT 2"),
    Case("select/quoted_identifiers", 'SELECT "temperature" AS "temp °C" FROM "weather" '
         "WHERE \"location\" = 'loc_05' LIMIT 3"),
    Case("select/fully_qualified", 'SELECT temperature FROM "{db}"."autogen"."weather" '
         "WHERE location = 'loc_04' LIMIT 5"),
    Case("select/rp_qualified", "SELECT temperature FROM autogen.weather WHERE location = 'loc_04' LIMIT 5"),
    Case("select/two_measurements", "SELECT code, load FROM event, machine WHERE host = 'm03' OR source = 'db'",
         ties_unordered=True),
    # FROM /regex/: one series per measurement
    Case("select/regex_measurement", "SELECT * FROM /^(event|weather)$/ WHERE time < '2024-01-01T00:20:00Z' "
         "AND (location = 'loc_00' OR source = 'web')"),
    # `value` is an integer in machine, a float in sensor, a string in event
    Case("select/regex_measurement_mixed_types", "SELECT value FROM /.*/ "
         "WHERE time >= '2024-01-01T01:00:00Z' AND time < '2024-01-01T01:00:30Z'", ties_unordered=True),
    # SELECT /regex/: every matching field
    Case("select/regex_fields", "SELECT /^usage_(user|system)$/ FROM cpu "
         "WHERE hostname = 'host_1' AND time < '2024-01-01T00:05:00Z'"),
    Case("select/regex_fields_and_tag", "SELECT /temp|hum/, region FROM weather WHERE location = 'loc_03' LIMIT 10"),

    # --- arithmetic ----------------------------------------------------------------------------
    Case("arithmetic/float_plus_int_times_2", "SELECT temperature + humidity * 2 FROM weather "
         "WHERE location = 'loc_00' LIMIT 10"),
    Case("arithmetic/int_plus_int", "SELECT procs + value FROM machine WHERE host = 'm01' LIMIT 10"),
    # integer division gives a float in InfluxQL
    Case("arithmetic/int_division", "SELECT procs / 7 FROM machine WHERE host = 'm01' LIMIT 5"),
    Case("arithmetic/modulo", "SELECT procs % 7, load % 1.5 FROM machine WHERE host = 'm01' LIMIT 5"),
    Case("arithmetic/parentheses_alias", "SELECT (temperature - 32) * 5 / 9 AS celsius FROM weather "
         "WHERE location = 'loc_06' LIMIT 5"),
    Case("arithmetic/negation", "SELECT -value, value * -1.5 FROM sensor WHERE id = 's00' LIMIT 5"),
    Case("arithmetic/bitwise", "SELECT procs & 255, procs | 1, procs ^ 3 FROM machine WHERE host = 'm02' LIMIT 3"),
    # a row missing one operand gives null
    Case("arithmetic/missing_operand", "SELECT temperature + pressure FROM weather WHERE location = 'loc_00' LIMIT 30"),
    Case("arithmetic/on_aggregates", "SELECT max(temperature) - min(temperature) AS spread_by_hand FROM weather "
         "GROUP BY location"),
    Case("arithmetic/aggregate_times_constant", "SELECT mean(usage_user) * 2 FROM cpu "
         "WHERE time >= '2024-01-01T00:00:00Z' AND time < '2024-01-01T03:00:00Z' GROUP BY time(30m)"),
    Case("arithmetic/two_aggregates", "SELECT sum(procs) / count(procs) FROM machine GROUP BY dc"),

    # --- aliases and default column names -------------------------------------------------------
    Case("alias/fields", "SELECT temperature AS t, humidity AS h FROM weather WHERE location = 'loc_07' LIMIT 3"),
    Case("alias/aggregates", "SELECT mean(temperature) AS avg_t, max(temperature) AS max_t FROM weather"),
    # mean, mean_1: InfluxDB's names for duplicate function columns
    Case("alias/default_duplicate_names", "SELECT mean(temperature), mean(humidity) FROM weather"),

    # --- ::field and ::tag casts ---------------------------------------------------------------
    Case("cast/field_and_tag", "SELECT value::field, zone::tag FROM sensor WHERE id = 's01' LIMIT 3"),
    Case("cast/float_to_integer", "SELECT value::integer FROM sensor WHERE id = 's01' LIMIT 5"),
    Case("cast/integer_to_float", "SELECT procs::float FROM machine WHERE host = 'm04' LIMIT 3"),
    Case("cast/in_where", "SELECT temperature FROM weather "
         "WHERE location::tag = 'loc_00' AND temperature::field > 5 LIMIT 5"),

    # --- aggregates ----------------------------------------------------------------------------
    Case("aggregates/count", "SELECT count(temperature) FROM weather", cluster=True),
    Case("aggregates/count_missing_fields", "SELECT count(pressure), count(station) FROM weather"),
    Case("aggregates/count_star", "SELECT count(*) FROM weather"),
    Case("aggregates/count_distinct", "SELECT count(distinct(state)) FROM machine"),
    Case("aggregates/count_group_by_tag", "SELECT count(value) FROM sensor GROUP BY zone"),
    Case("aggregates/distinct_string", "SELECT distinct(station) FROM weather"),
    Case("aggregates/distinct_integer", "SELECT distinct(battery) FROM sensor WHERE id = 's00'"),
    Case("aggregates/integral", "SELECT integral(value) FROM sensor WHERE id = 's02'"),
    # one series each: influxd returns integral()'s series in random order when grouped by tag
    Case("aggregates/integral_unit", "SELECT integral(load, 1m) FROM machine WHERE host = 'm03'"),
    # without GROUP BY time InfluxDB gives integral() the time 0, not the range's start
    Case("aggregates/integral_over_time_range", f"SELECT integral(value, 1m) FROM sensor WHERE id = 's05' "
         f"AND {RANGE_1H}"),
    Case("aggregates/integral_group_by_time", f"SELECT integral(value, 1m) FROM sensor WHERE id = 's05' AND {RANGE_1H} "
         "GROUP BY time(20m)"),
    Case("aggregates/mean", "SELECT mean(temperature) FROM weather"),
    Case("aggregates/mean_integer", "SELECT mean(humidity) FROM weather"),
    Case("aggregates/mean_star", "SELECT mean(*) FROM weather"),
    Case("aggregates/mean_group_by_time", f"SELECT mean(temperature) FROM weather WHERE {RANGE_2H} "
         "GROUP BY time(10m)"),
    Case("aggregates/mean_group_by_time_and_tag", f"SELECT mean(value) FROM sensor WHERE {RANGE_1H} "
         "GROUP BY time(15m), zone", cluster=True),
    Case("aggregates/median", "SELECT median(temperature) FROM weather GROUP BY region"),
    Case("aggregates/median_integer", "SELECT median(procs) FROM machine"),
    Case("aggregates/mode_integer", "SELECT mode(humidity) FROM weather GROUP BY location"),
    Case("aggregates/mode_string", "SELECT mode(state) FROM machine GROUP BY dc"),
    Case("aggregates/spread", "SELECT spread(value) FROM sensor GROUP BY id"),
    Case("aggregates/spread_integer", "SELECT spread(procs) FROM machine"),
    Case("aggregates/stddev", "SELECT stddev(load) FROM machine GROUP BY host"),
    Case("aggregates/sum_float", "SELECT sum(value) FROM sensor"),
    Case("aggregates/sum_integer", "SELECT sum(battery) FROM sensor GROUP BY zone"),
    Case("aggregates/several", "SELECT count(value), mean(value), min(value), max(value), sum(value) "
         "FROM sensor GROUP BY zone"),
    Case("aggregates/count_boolean_and_string", "SELECT count(healthy), count(state) FROM machine"),
    Case("aggregates/over_time_range", f"SELECT count(load), mean(load) FROM machine WHERE {RANGE_10M}"),
    Case("aggregates/no_points_in_range", "SELECT mean(temperature) FROM weather WHERE time > '2030-01-01T00:00:00Z'"),

    # --- selectors -----------------------------------------------------------------------------
    Case("selectors/max", "SELECT max(temperature) FROM weather", cluster=True),
    Case("selectors/min", "SELECT min(value) FROM sensor GROUP BY zone"),
    Case("selectors/max_with_tag_and_field", "SELECT max(load), host, procs FROM machine"),
    Case("selectors/first", "SELECT first(temperature) FROM weather GROUP BY location"),
    Case("selectors/last", "SELECT last(value) FROM sensor GROUP BY id"),
    Case("selectors/first_last_string", "SELECT first(value), last(value) FROM event GROUP BY source"),
    Case("selectors/last_boolean", "SELECT last(healthy) FROM machine GROUP BY host"),
    # several series share every timestamp: on equal times first() and last() keep the greater value
    Case("selectors/first_last_time_ties", "SELECT first(value), last(value) FROM sensor GROUP BY zone"),
    # among equal values max() and min() keep the earliest point
    Case("selectors/max_value_ties", "SELECT max(battery) FROM sensor"),
    Case("selectors/min_value_ties", "SELECT min(battery) FROM sensor WHERE id = 's00'"),
    # with GROUP BY time a selector's time is the bucket's start
    Case("selectors/max_group_by_time", f"SELECT max(temperature) FROM weather WHERE {RANGE_1H} GROUP BY time(20m)"),
    Case("selectors/top", "SELECT top(temperature, 3) FROM weather"),
    Case("selectors/top_with_tag", "SELECT top(temperature, location, 4) FROM weather"),
    Case("selectors/top_with_tag_and_field", "SELECT top(load, host, 3), procs FROM machine"),
    Case("selectors/top_group_by_tag", "SELECT top(value, 2) FROM sensor GROUP BY zone"),
    Case("selectors/bottom", "SELECT bottom(value, 3) FROM sensor"),
    Case("selectors/bottom_with_tag", "SELECT bottom(load, dc, 2) FROM machine"),
    Case("selectors/bottom_group_by_time", f"SELECT bottom(temperature, 2) FROM weather WHERE {RANGE_1H} "
         "GROUP BY time(30m)"),
    Case("selectors/percentile", "SELECT percentile(temperature, 95) FROM weather"),
    # (by time bucket: which of several points with the median value is picked is not defined)
    Case("selectors/percentile_integer", f"SELECT percentile(procs, 50) FROM machine WHERE {RANGE_1H} "
         "GROUP BY time(30m), dc"),
    # a percentile above 100 selects nothing
    Case("selectors/percentile_above_100", "SELECT percentile(value, 101) FROM sensor"),
    Case("selectors/percentile_group_by_time", f"SELECT percentile(value, 10) FROM sensor WHERE {RANGE_1H} "
         "GROUP BY time(20m)"),
    # sample() picks points at random: only the shape is compared
    Case("selectors/sample", "SELECT sample(temperature, 5) FROM weather", shape_only=True),
    Case("selectors/sample_group_by_tag", "SELECT sample(value, 2) FROM sensor GROUP BY zone", shape_only=True),

    # --- transformations, raw and over aggregates ----------------------------------------------
    Case("transform/abs", "SELECT abs(value) FROM sensor WHERE id = 's03' LIMIT 10"),
    Case("transform/ceil_floor_round", "SELECT ceil(value), floor(value), round(value) FROM sensor "
         "WHERE id = 's03' LIMIT 10"),
    Case("transform/difference", "SELECT difference(temperature) FROM weather WHERE location = 'loc_00' LIMIT 10"),
    Case("transform/difference_integer", "SELECT difference(procs) FROM machine WHERE host = 'm05' LIMIT 10"),
    Case("transform/non_negative_difference", "SELECT non_negative_difference(value) FROM sensor "
         "WHERE id = 's04' LIMIT 20"),
    Case("transform/derivative", "SELECT derivative(value) FROM sensor WHERE id = 's04' LIMIT 10"),
    Case("transform/derivative_unit", "SELECT derivative(temperature, 1m) FROM weather "
         "WHERE location = 'loc_01' LIMIT 10"),
    Case("transform/non_negative_derivative", "SELECT non_negative_derivative(load, 1s) FROM machine "
         "WHERE host = 'm06' LIMIT 20"),
    Case("transform/moving_average", "SELECT moving_average(value, 3) FROM sensor WHERE id = 's05' LIMIT 10"),
    Case("transform/cumulative_sum", "SELECT cumulative_sum(procs) FROM machine WHERE host = 'm07' LIMIT 10"),
    Case("transform/elapsed", "SELECT elapsed(temperature) FROM weather WHERE location = 'loc_02' LIMIT 10"),
    Case("transform/elapsed_unit", "SELECT elapsed(value, 1s) FROM event WHERE source = 'web'"),
    Case("transform/math_sqrt_pow", "SELECT sqrt(humidity), pow(temperature, 2) FROM weather "
         "WHERE location = 'loc_03' LIMIT 5"),
    Case("transform/math_ln_log", "SELECT ln(temperature), log(humidity, 10), log2(humidity), log10(temperature) "
         "FROM weather WHERE location = 'loc_03' LIMIT 5"),
    Case("transform/math_exp_trig", "SELECT exp(value / 50), sin(value), cos(value), atan2(value, 10) FROM sensor "
         "WHERE id = 's06' LIMIT 5"),
    Case("transform/group_by_tag", "SELECT difference(value) FROM sensor WHERE zone = 'z1' "
         "AND time < '2024-01-01T00:01:00Z' GROUP BY id"),
    Case("transform/derivative_of_mean", f"SELECT derivative(mean(temperature), 1m) FROM weather WHERE {RANGE_2H} "
         "GROUP BY time(10m)"),
    Case("transform/non_negative_derivative_of_max", f"SELECT non_negative_derivative(max(value), 1m) FROM sensor "
         f"WHERE {RANGE_2H} GROUP BY time(10m), id SLIMIT 3"),
    Case("transform/difference_of_max", f"SELECT difference(max(load)) FROM machine WHERE {RANGE_1H} "
         "GROUP BY time(10m)"),
    Case("transform/moving_average_of_mean", f"SELECT moving_average(mean(value), 2) FROM sensor WHERE {RANGE_1H} "
         "GROUP BY time(10m)"),
    Case("transform/cumulative_sum_of_sum", f"SELECT cumulative_sum(sum(procs)) FROM machine WHERE {RANGE_1H} "
         "GROUP BY time(15m), dc"),
    Case("transform/elapsed_of_mean", f"SELECT elapsed(mean(value)) FROM sensor WHERE {RANGE_1H} GROUP BY time(20m)"),
    Case("transform/round_of_mean", f"SELECT round(mean(temperature)), abs(min(temperature)) FROM weather "
         f"WHERE {RANGE_1H} GROUP BY time(30m)"),
    Case("transform/derivative_with_fill", "SELECT derivative(mean(code), 10m) FROM event "
         f"WHERE {RANGE_2H} GROUP BY time(10m) fill(previous)"),

    # --- WHERE: time ranges ---------------------------------------------------------------------
    Case("where/rfc3339_range", "SELECT temperature FROM weather WHERE location = 'loc_00' "
         "AND time >= '2024-01-01T00:30:00Z' AND time <= '2024-01-01T00:35:00Z'"),
    Case("where/rfc3339_fraction_and_offset", "SELECT temperature FROM weather WHERE location = 'loc_00' "
         "AND time >= '2024-01-01T01:30:00.500+01:00' AND time < '2024-01-01T00:40:00.000000001Z'"),
    Case("where/date_only_and_space", "SELECT count(temperature) FROM weather "
         "WHERE time >= '2024-01-01' AND time < '2024-01-01 00:30:00'"),
    # (raw rows: an aggregate's time would be the range's start, now() - 100000d)
    Case("where/now_minus_days", "SELECT value FROM sensor WHERE id = 's00' AND time > now() - 100000d LIMIT 3"),
    Case("where/now_minus_days_before_data", "SELECT count(value) FROM sensor WHERE time < now() - 100000d"),
    Case("where/epoch_seconds", "SELECT value FROM sensor WHERE id = 's07' "
         "AND time >= 1704067200s AND time < 1704067260s"),
    Case("where/epoch_milliseconds", "SELECT value FROM sensor WHERE id = 's07' "
         "AND time >= 1704067200000ms AND time < 1704067260000ms"),
    Case("where/epoch_microseconds", "SELECT value FROM sensor WHERE id = 's07' "
         "AND time >= 1704067200000000u AND time < 1704067260000000u"),
    Case("where/epoch_nanoseconds", "SELECT value FROM sensor WHERE id = 's07' "
         "AND time >= 1704067200000000000 AND time < 1704067260000000000"),
    Case("where/time_arithmetic", "SELECT value FROM sensor WHERE id = 's07' "
         "AND time >= '2024-01-01T00:00:00Z' + 10m AND time < '2024-01-01T00:11:00Z' - 10s"),
    Case("where/exact_time", "SELECT * FROM machine WHERE host = 'm00' AND time = '2024-01-01T00:01:00Z'"),

    # --- WHERE: tags and fields -----------------------------------------------------------------
    Case("where/tag_equal", "SELECT count(load) FROM machine WHERE dc = 'dc1'"),
    Case("where/tag_not_equal", "SELECT count(load) FROM machine WHERE dc != 'dc1'"),
    Case("where/tag_not_equal_sql_style", "SELECT count(load) FROM machine WHERE dc <> 'dc1' GROUP BY dc"),
    Case("where/tag_absent", "SELECT count(temperature) FROM weather WHERE region = '' GROUP BY location"),
    Case("where/tag_present", "SELECT count(temperature) FROM weather WHERE region != '' GROUP BY region"),
    Case("where/tag_absent_on_some_series", "SELECT count(load) FROM machine WHERE rack = 'r1' GROUP BY host"),
    Case("where/float_comparison", "SELECT temperature FROM weather WHERE temperature > 31", ties_unordered=True),
    Case("where/integer_comparison", "SELECT procs FROM machine WHERE procs >= 330 AND procs <= 340",
         ties_unordered=True),
    Case("where/string_field_equal", "SELECT count(state) FROM machine WHERE state = 'busy' GROUP BY dc"),
    Case("where/boolean_field", "SELECT healthy FROM machine WHERE healthy = false AND time < '2024-01-01T00:20:00Z'"),
    Case("where/field_vs_field", "SELECT temperature, humidity FROM weather WHERE temperature * 3 > humidity "
         "AND location = 'loc_07' LIMIT 5"),
    Case("where/tag_regex", "SELECT count(temperature) FROM weather WHERE location =~ /^loc_0[0-3]$/ "
         "GROUP BY location"),
    Case("where/tag_regex_negated", "SELECT count(temperature) FROM weather WHERE location !~ /^loc_0/ "
         "GROUP BY location"),
    Case("where/field_regex", "SELECT count(state) FROM machine WHERE state =~ /^b/"),
    Case("where/field_regex_negated", "SELECT value FROM event WHERE value !~ /^(started|stopped)$/ AND source = 'db'"),
    Case("where/and_or_parentheses", "SELECT temperature FROM weather "
         "WHERE (location = 'loc_00' OR location = 'loc_01') AND temperature > 17 AND time < '2024-01-01T00:30:00Z'"),
    Case("where/or_of_tag_and_field", "SELECT count(value) FROM sensor WHERE zone = 'z0' OR value > 45"),
    Case("where/nested_parentheses", "SELECT count(load) FROM machine "
         "WHERE ((dc = 'dc1' AND load > 2) OR (dc = 'dc2' AND load < 1)) AND (rack = 'r0' OR rack = 'r2')"),
    Case("where/unknown_tag", "SELECT count(load) FROM machine WHERE nosuchtag = 'x'"),
    # an aggregate's tag = 'v' runs as the plain comparison (it prunes); a missing tag still
    # equals only ''
    Case("where/missing_tag_or_field_aggregate",
         "SELECT count(code) FROM event WHERE severity = 'warn' OR code > 500 GROUP BY source"),
    Case("where/missing_tag_is_empty_aggregate", "SELECT count(code) FROM event WHERE severity = '' GROUP BY source"),
    Case("where/string_quotes", "SELECT code FROM event WHERE value = 'timeout, giving up' AND source = 'api'"),

    # --- GROUP BY ------------------------------------------------------------------------------
    Case("group_by/time", f"SELECT count(load) FROM machine WHERE {RANGE_2H} GROUP BY time(30m)"),
    Case("group_by/time_offset", f"SELECT count(load) FROM machine WHERE {RANGE_2H} GROUP BY time(30m, 10m)"),
    Case("group_by/time_negative_offset", f"SELECT mean(value) FROM sensor WHERE {RANGE_1H} GROUP BY time(20m, -5m)"),
    # a range that does not start on a bucket boundary
    Case("group_by/time_unaligned_range", "SELECT count(value) FROM sensor "
         "WHERE time >= '2024-01-01T00:07:00Z' AND time < '2024-01-01T00:52:00Z' GROUP BY time(15m)"),
    Case("group_by/tag", "SELECT mean(load) FROM machine GROUP BY dc"),
    Case("group_by/two_tags", "SELECT max(load) FROM machine GROUP BY dc, rack"),
    Case("group_by/star", "SELECT count(temperature) FROM weather GROUP BY *"),
    Case("group_by/time_and_star", f"SELECT count(code) FROM event WHERE {RANGE_2H} GROUP BY time(1h), *"),
    Case("group_by/regex_tag_keys", "SELECT count(load) FROM machine GROUP BY /^(dc|rack)$/"),
    Case("group_by/raw_by_tag", "SELECT temperature FROM weather WHERE time < '2024-01-01T00:02:00Z' GROUP BY region",
         ties_unordered=True),
    Case("group_by/unknown_tag", "SELECT count(load) FROM machine GROUP BY nosuchtag"),
    Case("group_by/time_no_bounds_fill_none", "SELECT count(value) FROM event GROUP BY time(30m) fill(none)"),

    # --- fill() --------------------------------------------------------------------------------
    Case("fill/default_null", f"SELECT mean(code) FROM event WHERE source = 'api' AND {RANGE_2H} GROUP BY time(5m)"),
    Case("fill/null", f"SELECT mean(code) FROM event WHERE source = 'api' AND {RANGE_2H} GROUP BY time(5m) fill(null)"),
    Case("fill/none", f"SELECT mean(code) FROM event WHERE source = 'api' AND {RANGE_2H} GROUP BY time(5m) fill(none)"),
    Case("fill/zero", f"SELECT count(code) FROM event WHERE {RANGE_2H} GROUP BY time(5m), source fill(0)"),
    Case("fill/previous", f"SELECT last(code) FROM event WHERE source = 'db' AND {RANGE_2H} "
         "GROUP BY time(5m) fill(previous)"),
    Case("fill/linear", f"SELECT mean(code) FROM event WHERE source = 'web' AND {RANGE_2H} "
         "GROUP BY time(5m) fill(linear)"),
    Case("fill/value", f"SELECT max(code) FROM event WHERE source = 'web' AND {RANGE_2H} GROUP BY time(5m) fill(123)"),
    Case("fill/value_float_field", "SELECT mean(temperature) FROM weather WHERE location = 'loc_00' "
         "AND time >= '2023-12-31T23:30:00Z' AND time < '2024-01-01T00:30:00Z' GROUP BY time(10m) fill(-1.5)"),
    # without GROUP BY time fill() has nothing to fill
    Case("fill/without_group_by_time", "SELECT mean(value) FROM sensor fill(0)"),
    # buckets before and after the data
    Case("fill/outside_data", "SELECT count(value) FROM sensor WHERE id = 's00' "
         "AND time >= '2023-12-31T23:00:00Z' AND time < '2024-01-01T03:00:00Z' GROUP BY time(30m)"),
    Case("fill/several_aggregates", f"SELECT count(code), mean(code) FROM event WHERE source = 'api' AND {RANGE_1H} "
         "GROUP BY time(10m) fill(0)"),

    # --- ORDER BY, LIMIT, OFFSET, SLIMIT, SOFFSET ----------------------------------------------
    Case("order_limit/order_desc_raw", "SELECT value FROM sensor WHERE id = 's08' ORDER BY time DESC LIMIT 5"),
    Case("order_limit/order_desc_group_by_time", f"SELECT mean(load) FROM machine WHERE {RANGE_1H} "
         "GROUP BY time(10m) ORDER BY time DESC"),
    # DESC also reverses the order of the series
    Case("order_limit/order_desc_series", "SELECT last(value) FROM sensor WHERE zone = 'z1' GROUP BY id "
         "ORDER BY time DESC"),
    Case("order_limit/order_asc", "SELECT value FROM sensor WHERE id = 's08' ORDER BY time ASC LIMIT 3"),
    # (4: the fifth row would be one of two at the same time)
    Case("order_limit/limit", "SELECT * FROM weather LIMIT 4", ties_unordered=True),
    Case("order_limit/limit_offset", "SELECT value FROM sensor WHERE id = 's09' LIMIT 4 OFFSET 10"),
    Case("order_limit/limit_per_series", "SELECT value FROM sensor GROUP BY id LIMIT 2"),
    Case("order_limit/limit_group_by_time", f"SELECT count(value) FROM sensor WHERE {RANGE_2H} "
         "GROUP BY time(10m) LIMIT 3 OFFSET 2"),
    Case("order_limit/slimit", "SELECT count(value) FROM sensor GROUP BY id SLIMIT 3"),
    Case("order_limit/slimit_soffset", "SELECT count(value) FROM sensor GROUP BY id SLIMIT 3 SOFFSET 15"),
    Case("order_limit/limit_and_slimit", "SELECT temperature FROM weather GROUP BY location "
         "LIMIT 2 SLIMIT 2 SOFFSET 1"),
    # raw queries with a LIMIT and no condition read only each group's first (last) points:
    # a sparse field (the points without it do not count), DESC with OFFSET, GROUP BY *, two
    # measurements at once (groups of several series: order_limit/limit and tsbs/lastpoint)
    Case("order_limit/limit_sparse_field_desc", "SELECT pressure FROM weather GROUP BY location "
         "ORDER BY time DESC LIMIT 3 OFFSET 2"),
    Case("order_limit/limit_group_by_star_desc", "SELECT * FROM machine GROUP BY * ORDER BY time DESC "
         "LIMIT 2"),
    Case("order_limit/limit_two_measurements", "SELECT humidity, load FROM weather, machine "
         "GROUP BY * LIMIT 1"),
    Case("order_limit/offset_past_end", "SELECT code FROM event WHERE source = 'api' LIMIT 5 OFFSET 1000"),

    # --- time zones ----------------------------------------------------------------------------
    Case("tz/group_by_day_chicago", "SELECT count(value) FROM sensor "
         "WHERE time >= '2023-12-30T00:00:00Z' AND time < '2024-01-02T00:00:00Z' "
         "GROUP BY time(1d) tz('America/Chicago')"),
    Case("tz/group_by_day_chicago_rfc3339", "SELECT count(value) FROM sensor "
         "WHERE time >= '2023-12-30T00:00:00Z' AND time < '2024-01-02T00:00:00Z' "
         "GROUP BY time(1d) tz('America/Chicago')",
         epoch=None),
    Case("tz/raw_rfc3339", "SELECT value FROM sensor WHERE id = 's10' LIMIT 3 tz('Asia/Kolkata')", epoch=None),
    Case("tz/group_by_hour_utc", f"SELECT max(value) FROM sensor WHERE {RANGE_2H} GROUP BY time(1h) tz('UTC')"),

    # --- subqueries ----------------------------------------------------------------------------
    Case("subquery/max_of_means", f"SELECT max(m) FROM (SELECT mean(load) AS m FROM machine WHERE {RANGE_2H} "
         "GROUP BY time(10m), host)", cluster=True),
    Case("subquery/max_of_means_by_host", f"SELECT max(m) FROM (SELECT mean(load) AS m FROM machine WHERE {RANGE_2H} "
         "GROUP BY time(10m), host) GROUP BY host"),
    Case("subquery/mean_of_max_by_zone", f"SELECT mean(mx) FROM (SELECT max(value) AS mx FROM sensor "
         f"WHERE {RANGE_1H} GROUP BY time(10m), id) WHERE {RANGE_1H} GROUP BY time(30m), zone"),
    Case("subquery/outer_where", "SELECT d FROM (SELECT difference(battery) AS d FROM sensor WHERE id = 's00') "
         "WHERE d != 0"),
    Case("subquery/sum_of_differences", "SELECT sum(d) FROM (SELECT difference(battery) AS d FROM sensor GROUP BY id)"),
    Case("subquery/nested_two_levels", f"SELECT count(x) FROM (SELECT max(m) AS x FROM (SELECT mean(value) AS m "
         f"FROM sensor WHERE {RANGE_1H} GROUP BY time(5m), id) GROUP BY id)"),
    Case("subquery/raw_fields", "SELECT temperature, humidity FROM (SELECT * FROM weather WHERE location = 'loc_09') "
         "LIMIT 5"),

    # --- several statements in one request -------------------------------------------------------
    Case("multi/two_selects", "SELECT count(temperature) FROM weather; SELECT count(value) FROM sensor", cluster=True),
    Case("multi/select_and_show", "SHOW MEASUREMENTS; SELECT max(load) FROM machine GROUP BY dc"),
    # after a failed statement the rest are "not executed"
    Case("multi/error_in_the_middle", "SELECT count(code) FROM event; SELECT top(code) FROM event; "
         "SELECT count(value) FROM sensor"),
    Case("multi/trailing_semicolon", "SELECT count(code) FROM event;"),

    # --- meta queries --------------------------------------------------------------------------
    Case("meta/show_databases", "SHOW DATABASES", databases=("{db}",), cluster=True),
    Case("meta/show_measurements", "SHOW MEASUREMENTS", cluster=True),
    Case("meta/show_measurements_on", "SHOW MEASUREMENTS ON {db}", db=None),
    Case("meta/show_measurements_regex", "SHOW MEASUREMENTS WITH MEASUREMENT =~ /^(cpu|event)$/"),
    Case("meta/show_measurements_equal", "SHOW MEASUREMENTS WITH MEASUREMENT = weather"),
    Case("meta/show_measurements_limit_offset", "SHOW MEASUREMENTS LIMIT 2 OFFSET 1"),
    Case("meta/show_measurements_where_tag", "SHOW MEASUREMENTS WHERE dc = 'dc1'"),
    Case("meta/show_tag_keys", "SHOW TAG KEYS"),
    Case("meta/show_tag_keys_from", "SHOW TAG KEYS FROM weather"),
    Case("meta/show_tag_keys_from_regex", "SHOW TAG KEYS FROM /^(machine|event)$/"),
    Case("meta/show_tag_values", 'SHOW TAG VALUES WITH KEY = "region"'),
    Case("meta/show_tag_values_from", 'SHOW TAG VALUES FROM weather WITH KEY = "location"'),
    Case("meta/show_tag_values_key_in", 'SHOW TAG VALUES FROM machine WITH KEY IN ("dc", "rack")'),
    Case("meta/show_tag_values_key_regex", "SHOW TAG VALUES FROM sensor WITH KEY =~ /^(id|zone)$/"),
    Case("meta/show_tag_values_where", "SHOW TAG VALUES FROM cpu WITH KEY = \"hostname\" WHERE region = 'us-east-1'"),
    Case("meta/show_tag_values_limit", 'SHOW TAG VALUES FROM sensor WITH KEY = "id" LIMIT 3'),
    Case("meta/show_field_keys", "SHOW FIELD KEYS"),
    Case("meta/show_field_keys_from", "SHOW FIELD KEYS FROM machine", cluster=True),
    Case("meta/show_field_keys_from_sensor", "SHOW FIELD KEYS FROM sensor"),
    Case("meta/show_series", "SHOW SERIES"),
    Case("meta/show_series_from", "SHOW SERIES FROM event"),
    Case("meta/show_series_where", "SHOW SERIES FROM machine WHERE dc = 'dc1'"),
    Case("meta/show_series_limit", "SHOW SERIES FROM cpu LIMIT 2"),
    Case("meta/show_retention_policies", "SHOW RETENTION POLICIES"),
    Case("meta/show_retention_policies_on", "SHOW RETENTION POLICIES ON {db}", db=None),
    Case("meta/show_field_keys_on", "SHOW FIELD KEYS ON {db} FROM event", db=None),

    # --- CREATE DATABASE -------------------------------------------------------------------------
    Case("create/database", 'CREATE DATABASE "{db}_created"', method="POST", cluster=True),
    # creating an existing database is not an error
    Case("create/database_existing", 'CREATE DATABASE "{db}"', method="POST"),
    Case("create/database_then_show", 'CREATE DATABASE "{db}_shown"; SHOW DATABASES', method="POST",
         databases=("{db}", "{db}_shown")),
    Case("create/database_without_db_param", "CREATE DATABASE {db}_nodb", method="POST", db=None),

    # --- errors --------------------------------------------------------------------------------
    # parse errors: the whole request fails with 400 and InfluxDB's message
    Case("errors/parse_incomplete_select", "SELECT", cluster=True),
    Case("errors/parse_misspelled_keyword", "SELECT * FORM weather"),
    Case("errors/parse_unknown_statement", "SELEC * FROM weather"),
    Case("errors/parse_unclosed_paren", "SELECT mean(temperature FROM weather"),
    Case("errors/parse_group_by_time_unclosed", "SELECT mean(temperature) FROM weather GROUP BY time("),
    Case("errors/parse_bad_duration", "SELECT derivative(temperature, 1x) FROM weather"),
    Case("errors/parse_unterminated_string", "SELECT * FROM weather WHERE location = 'loc_00"),
    Case("errors/parse_bad_regex", "SELECT * FROM weather WHERE location =~ /(/"),
    Case("errors/parse_second_statement", "SELECT count(value) FROM sensor; SELECT FROM"),
    Case("errors/empty_query", ""),
    # statement errors: 200 with the error in the statement's result
    Case("errors/missing_measurement", "SELECT * FROM nosuchmeasurement", cluster=True),
    Case("errors/missing_field", "SELECT nosuchfield FROM weather"),
    Case("errors/missing_database", "SELECT * FROM weather", db="nosuchdb_influxql", cluster=True),
    Case("errors/no_database", "SELECT * FROM weather", db=None),
    Case("errors/mixing_aggregate_and_raw", "SELECT mean(temperature), humidity FROM weather"),
    Case("errors/group_by_time_without_aggregate", f"SELECT temperature FROM weather WHERE {RANGE_1H} "
         "GROUP BY time(10m)"),
    Case("errors/top_arity", "SELECT top(temperature) FROM weather"),
    Case("errors/undefined_function", "SELECT foo(temperature) FROM weather"),
    Case("errors/mean_of_string", "SELECT mean(station) FROM weather"),
    Case("errors/string_comparison_with_time", "SELECT * FROM weather WHERE time > 'not a time'"),
    Case("errors/unknown_time_zone", "SELECT count(value) FROM sensor tz('Mars/Olympus_Mons')"),
    Case("errors/derivative_of_aggregate_without_group_by", "SELECT derivative(mean(value)) FROM sensor"),

    # --- response formats: epoch precisions, RFC 3339, chunking, pretty, POST, bound parameters --
    Case("format/rfc3339_raw", "SELECT temperature FROM weather WHERE location = 'loc_11' LIMIT 5", epoch=None),
    Case("format/rfc3339_group_by_time", f"SELECT mean(value) FROM sensor WHERE {RANGE_1H} GROUP BY time(20m)",
         epoch=None, cluster=True),
    Case("format/rfc3339_fraction", "SELECT value FROM event WHERE source = 'api' LIMIT 3 OFFSET 1", epoch=None),
    Case("format/rfc3339_aggregate_without_group_by", "SELECT count(value) FROM sensor", epoch=None),
    Case("format/epoch_ms", "SELECT value FROM sensor WHERE id = 's11' LIMIT 3", epoch="ms"),
    Case("format/epoch_s", "SELECT value FROM sensor WHERE id = 's11' LIMIT 3", epoch="s"),
    Case("format/epoch_us", "SELECT value FROM sensor WHERE id = 's11' LIMIT 3", epoch="u"),
    Case("format/epoch_m", "SELECT value FROM sensor WHERE id = 's11' LIMIT 3", epoch="m"),
    Case("format/epoch_h", f"SELECT count(value) FROM sensor WHERE {RANGE_2H} GROUP BY time(1h)", epoch="h"),
    Case("format/post", "SELECT max(value) FROM sensor GROUP BY zone", method="POST"),
    Case("format/pretty", "SELECT last(value) FROM sensor WHERE zone = 'z3' GROUP BY id", params={"pretty": "true"}),
    Case("format/chunked", "SELECT value FROM sensor WHERE zone = 'z2' AND time < '2024-01-01T00:05:00Z' GROUP BY id",
         params={"chunked": "true"}),
    Case("format/chunked_small_chunks", "SELECT value FROM sensor WHERE id = 's12' AND time < '2024-01-01T00:10:00Z'",
         params={"chunked": "true", "chunk_size": "25"}),
    Case("format/rp_parameter", "SELECT count(temperature) FROM weather", params={"rp": "autogen"}),
    Case("format/bound_parameters", "SELECT temperature FROM weather WHERE location = $loc AND temperature > $min "
         "LIMIT 3", params={"params": '{"loc": "loc_12", "min": 1.5}'}),

    # --- TSBS `influx` query types on the cpu data (spans scaled to the 3 h of data) --------------
    # single-groupby-M-H-T: M fields, H hosts, T hours, by minute
    Case("tsbs/single-groupby-1-1-1", "SELECT max(usage_user) FROM cpu WHERE (hostname = 'host_0') "
         "AND time >= '2024-01-01T01:10:00Z' AND time < '2024-01-01T02:10:00Z' GROUP BY time(1m)", cluster=True),
    Case("tsbs/single-groupby-1-1-12", "SELECT max(usage_user) FROM cpu WHERE (hostname = 'host_1') "
         "AND time >= '2024-01-01T00:00:00Z' AND time < '2024-01-01T03:00:00Z' GROUP BY time(1m)"),
    Case("tsbs/single-groupby-1-8-1", "SELECT max(usage_user) FROM cpu WHERE (hostname = 'host_0' "
         "OR hostname = 'host_1' OR hostname = 'host_2' OR hostname = 'host_3' OR hostname = 'host_4') "
         "AND time >= '2024-01-01T00:20:00Z' AND time < '2024-01-01T01:20:00Z' GROUP BY time(1m)"),
    Case("tsbs/single-groupby-5-1-1", "SELECT max(usage_user),max(usage_system),max(usage_idle),max(usage_nice),"
         "max(usage_iowait) FROM cpu WHERE (hostname = 'host_2') "
         "AND time >= '2024-01-01T01:45:00Z' AND time < '2024-01-01T02:45:00Z' GROUP BY time(1m)"),
    Case("tsbs/single-groupby-5-1-12", "SELECT max(usage_user),max(usage_system),max(usage_idle),max(usage_nice),"
         "max(usage_iowait) FROM cpu WHERE (hostname = 'host_3') "
         "AND time >= '2024-01-01T00:00:00Z' AND time < '2024-01-01T03:00:00Z' GROUP BY time(1m)"),
    Case("tsbs/single-groupby-5-8-1", "SELECT max(usage_user),max(usage_system),max(usage_idle),max(usage_nice),"
         "max(usage_iowait) FROM cpu WHERE (hostname = 'host_4' OR hostname = 'host_0' OR hostname = 'host_3') "
         "AND time >= '2024-01-01T00:05:00Z' AND time < '2024-01-01T01:05:00Z' GROUP BY time(1m)"),
    # cpu-max-all-H: every field's max, H hosts, 8 h (here 3 h), by hour
    Case("tsbs/cpu-max-all-1", "SELECT max(usage_user),max(usage_system),max(usage_idle),max(usage_nice),"
         "max(usage_iowait),max(usage_irq),max(usage_softirq),max(usage_steal),max(usage_guest),"
         "max(usage_guest_nice) FROM cpu WHERE (hostname = 'host_1') "
         "AND time >= '2024-01-01T00:00:00Z' AND time < '2024-01-01T03:00:00Z' GROUP BY time(1h)"),
    Case("tsbs/cpu-max-all-8", "SELECT max(usage_user),max(usage_system),max(usage_idle),max(usage_nice),"
         "max(usage_iowait),max(usage_irq),max(usage_softirq),max(usage_steal),max(usage_guest),"
         "max(usage_guest_nice) FROM cpu WHERE (hostname = 'host_0' OR hostname = 'host_1' OR hostname = 'host_2' "
         "OR hostname = 'host_3' OR hostname = 'host_4') "
         "AND time >= '2024-01-01T00:00:00Z' AND time < '2024-01-01T03:00:00Z' GROUP BY time(1h)"),
    # double-groupby-M: mean of M fields by hour and host, 12 h (here 3 h)
    Case("tsbs/double-groupby-1", "SELECT mean(usage_user) FROM cpu "
         "WHERE time >= '2024-01-01T00:00:00Z' AND time < '2024-01-01T03:00:00Z' GROUP BY time(1h),hostname"),
    Case("tsbs/double-groupby-5", "SELECT mean(usage_user),mean(usage_system),mean(usage_idle),mean(usage_nice),"
         "mean(usage_iowait) FROM cpu "
         "WHERE time >= '2024-01-01T00:00:00Z' AND time < '2024-01-01T03:00:00Z' GROUP BY time(1h),hostname"),
    Case("tsbs/double-groupby-all", "SELECT mean(usage_user),mean(usage_system),mean(usage_idle),mean(usage_nice),"
         "mean(usage_iowait),mean(usage_irq),mean(usage_softirq),mean(usage_steal),mean(usage_guest),"
         "mean(usage_guest_nice) FROM cpu "
         "WHERE time >= '2024-01-01T00:00:00Z' AND time < '2024-01-01T03:00:00Z' GROUP BY time(1h),hostname"),
    # high-cpu-H: every row above a threshold, one host or all
    Case("tsbs/high-cpu-1", "SELECT * FROM cpu WHERE usage_user > 90.0 AND (hostname = 'host_3') "
         "AND time >= '2024-01-01T00:00:00Z' AND time < '2024-01-01T03:00:00Z'"),
    Case("tsbs/high-cpu-all", "SELECT * FROM cpu WHERE usage_user > 90.0 "
         "AND time >= '2024-01-01T00:30:00Z' AND time < '2024-01-01T01:30:00Z'", ties_unordered=True),
    # lastpoint: each host's latest row
    Case("tsbs/lastpoint", 'SELECT * FROM cpu GROUP BY "hostname" ORDER BY time DESC LIMIT 1', cluster=True),
    # groupby-orderby-limit: the last 5 minutes before a time, no lower bound
    Case("tsbs/groupby-orderby-limit", "SELECT max(usage_user) FROM cpu WHERE time < '2024-01-01T02:00:00Z' "
         "GROUP BY time(1m) ORDER BY time DESC LIMIT 5"),
    Case("tsbs/groupby-orderby-limit-asc", "SELECT max(usage_user) FROM cpu WHERE time < '2024-01-01T02:00:00Z' "
         "GROUP BY time(1m) LIMIT 5"),
]


# Query ids on which ferrite's answer is known to differ from InfluxDB's, with the reason.
# The differential test asserts that these still differ: fix ferrite, then remove the entry.
KNOWN_DIFFERENCES: dict[str, str] = {
    "aggregates/integral_group_by_time":
        "InfluxDB adds the area interpolated up to each bucket's boundary; ferrite integrates "
        "the points inside each bucket only",
    "selectors/first_last_time_ties":
        "points of one timestamp in several series: InfluxDB's pick depends on its iterator "
        "order, ferrite keeps the greater value",
    "errors/parse_unknown_statement":
        "ferrite lists only the statements it supports after 'expected'",
    "errors/parse_bad_duration":
        "ferrite reports the unexpected token after the number, not 'invalid duration'",
    "errors/parse_unterminated_string":
        "ferrite reports the unterminated string; InfluxDB the token before it",
    "errors/parse_bad_regex":
        "both answer 400, but with Go's and Rust's regex error texts",
}


# --- comparing answers ---------------------------------------------------------------------------

FLOAT_TOLERANCE = 1e-9  # relative, and absolute near zero
MAX_REPORTED = 12


def keep_databases(doc: dict, names: set[str]) -> dict:
    """A copy of a `/query` document whose `databases` series (SHOW DATABASES) lists only
    `names`: each server also holds databases of other tests."""
    out = dict(doc)
    results = []
    for result in doc.get("results", []):
        result = dict(result)
        if "series" in result:
            series = []
            for s in result["series"]:
                if s.get("name") == "databases":
                    s = dict(s, values=[row for row in s.get("values", []) if row[0] in names])
                series.append(s)
            result["series"] = series
        results.append(result)
    if "results" in doc:
        out["results"] = results
    return out


def _same_value(want: Any, got: Any) -> bool:
    """InfluxDB's JSON gives no type to a number (Go prints the float 3.0 as `3`): two
    integers must be equal, a float on either side equal within FLOAT_TOLERANCE. Booleans,
    strings and null must be identical."""
    number = (int, float)
    if isinstance(want, bool) or isinstance(got, bool):
        return type(want) is type(got) and want == got
    if isinstance(want, number) and isinstance(got, number):
        if isinstance(want, int) and isinstance(got, int):
            return want == got
        return math.isclose(want, got, rel_tol=FLOAT_TOLERANCE, abs_tol=FLOAT_TOLERANCE)
    return type(want) is type(got) and want == got


def _diff_keys(path: str, want: dict, got: dict, out: list[str]) -> None:
    if set(want) != set(got):
        out.append(f"{path}: keys {sorted(want)} != {sorted(got)}")


def _sort_ties(rows: list, time_index: int) -> list:
    """The rows with each run of equal times in a canonical order (the runs stay in place)."""
    def key(row):
        return [(type(v).__name__, repr(v)) for v in row]
    out, start = [], 0
    for i in range(1, len(rows) + 1):
        if i == len(rows) or rows[i][time_index] != rows[start][time_index]:
            out += sorted(rows[start:i], key=key)
            start = i
    return out


def _diff_series(path: str, want: dict, got: dict, shape_only: bool, ties_unordered: bool,
                 out: list[str]) -> None:
    _diff_keys(path, want, got, out)
    for key in sorted(set(want) & set(got) - {"values"}):
        if want[key] != got[key]:
            out.append(f"{path}.{key}: {want[key]!r} != {got[key]!r}")
    wrows, grows = want.get("values", []), got.get("values", [])
    if len(wrows) != len(grows):
        out.append(f"{path}.values: {len(wrows)} rows != {len(grows)} rows")
    if shape_only:
        return
    columns = want.get("columns", [])
    if ties_unordered and "time" in columns and len(wrows) == len(grows):
        wrows, grows = _sort_ties(wrows, columns.index("time")), _sort_ties(grows, columns.index("time"))
    for i, (wrow, grow) in enumerate(zip(wrows, grows)):
        if len(wrow) != len(grow):
            out.append(f"{path}.values[{i}]: {wrow!r} != {grow!r}")
            continue
        for j, (w, g) in enumerate(zip(wrow, grow)):
            column = columns[j] if j < len(columns) else None
            # Times are exact: integers with `epoch`, RFC 3339 strings without.
            same = (type(w) is type(g) and w == g) if column == "time" else _same_value(w, g)
            if not same:
                out.append(f"{path}.values[{i}][{j}] ({column}): {w!r} != {g!r}")


def _names(series: list) -> list:
    """The first few (name, tags) of a series list, to show which ones are missing."""
    return [(s.get("name"), s.get("tags")) for s in series[:6] if isinstance(s, dict)]


def _diff_document(path: str, want: Any, got: Any, shape_only: bool, ties_unordered: bool,
                   out: list[str]) -> None:
    if not (isinstance(want, dict) and isinstance(got, dict)):
        if want != got:
            out.append(f"{path}: {want!r} != {got!r}")
        return
    _diff_keys(path, want, got, out)
    for key in sorted(set(want) & set(got) - {"results"}):
        if want[key] != got[key]:
            out.append(f"{path}.{key}: {want[key]!r} != {got[key]!r}")
    wres, gres = want.get("results", []), got.get("results", [])
    if len(wres) != len(gres):
        out.append(f"{path}.results: {len(wres)} statements != {len(gres)}")
    for i, (w, g) in enumerate(zip(wres, gres)):
        rpath = f"{path}.results[{i}]"
        if not (isinstance(w, dict) and isinstance(g, dict)):
            out.append(f"{rpath}: {w!r} != {g!r}")
            continue
        _diff_keys(rpath, w, g, out)
        for key in sorted(set(w) & set(g) - {"series"}):
            if w[key] != g[key]:
                out.append(f"{rpath}.{key}: {w[key]!r} != {g[key]!r}")
        wser, gser = w.get("series", []), g.get("series", [])
        if len(wser) != len(gser):
            out.append(f"{rpath}.series: {len(wser)} series {_names(wser)} != {len(gser)} {_names(gser)}")
        for k, (ws, gs) in enumerate(zip(wser, gser)):
            _diff_series(f"{rpath}.series[{k}]", ws, gs, shape_only, ties_unordered, out)


def differences(want, got, shape_only: bool = False, ties_unordered: bool = False) -> list[str]:
    """How `got` (ferrite's `/query` Answer) differs from `want` (influxd's), as readable lines;
    empty when they agree. Compared in order: status, content type, then each JSON document:
    the request's `error`, or per statement its `error` text or its series (name, tags,
    columns, rows in order; see _same_value for the cells). `shape_only` skips the cells;
    `ties_unordered` compares rows with equal times in any order (see Case)."""
    out: list[str] = []
    if want.status != got.status:
        out.append(f"status: {want.status} != {got.status}")
    if want.documents is None or got.documents is None:
        if want.text != got.text:
            out.append(f"body: {want.text[:300]!r} != {got.text[:300]!r}")
        return out
    if want.content_type != got.content_type:
        out.append(f"content type: {want.content_type!r} != {got.content_type!r}")
    if len(want.documents) != len(got.documents):
        out.append(f"documents (chunks): {len(want.documents)} != {len(got.documents)}")
    for d, (w, g) in enumerate(zip(want.documents, got.documents)):
        _diff_document(f"[{d}]" if len(want.documents) > 1 else "", w, g, shape_only, ties_unordered, out)
    if len(out) > MAX_REPORTED:
        out = out[:MAX_REPORTED] + [f"... and {len(out) - MAX_REPORTED} more"]
    return out
