"""Nothing acknowledged is lost and nothing is counted twice: across a clean restart (SIGTERM
persists to Parquet), a crash (SIGKILL, WAL replay) and mixes of both."""

from __future__ import annotations

import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from influxdb_client_3 import InfluxDBClient3

from ferrite_e2e import (TOKEN, assert_204, flight_sql_query, lines, query_json, snapshot, write_v1, write_v2,
                         write_v3)

pytestmark = pytest.mark.restart

DAY = 86_400
T0 = 1_700_000_000  # 2023-11-14


def seed_rows(srv, db, start: int, n: int, host_prefix: str = "h") -> None:
    """n rows over 3 daily partitions and two tables, through v2, v1 and v3 (default sync)."""
    batch_v2 = lines(*[f"cpu,host={host_prefix}{i} usage={i}.5,n={i}i,u={i}u,ok={'t' if i % 2 else 'f'},"
                       f"s=\"row {i}\" {T0 + (i % 3) * DAY + start + i}" for i in range(0, n, 2)])
    batch_v3 = lines(*[f"cpu,host={host_prefix}{i} usage={i}.5,n={i}i,u={i}u,ok={'t' if i % 2 else 'f'},"
                       f"s=\"row {i}\" {T0 + (i % 3) * DAY + start + i}" for i in range(1, n, 2)])
    assert_204(write_v2(srv, db, batch_v2, precision="s"))
    assert_204(write_v3(srv, db, batch_v3, precision="second"))
    assert_204(write_v1(srv, db, f"mem,host={host_prefix}x used={n}i {T0 + start}", precision="s"))


def counts(srv, db):
    return (query_json(srv, db, "SELECT count(*) AS c FROM cpu")[0]["c"],
            query_json(srv, db, "SELECT count(*) AS c FROM mem")[0]["c"])


def parquet_files(srv):
    return sorted(srv.data_dir.rglob("*.parquet"))


def test_sigterm_persists_and_restart_keeps_everything_once(make_server):
    srv = make_server()
    db = "restart_clean"
    seed_rows(srv, db, 0, 30)
    before = snapshot(srv, db, "cpu")
    before_mem = snapshot(srv, db, "mem")
    assert counts(srv, db) == (30, 1)

    assert srv.stop() == 0, srv.log_tail()
    files = parquet_files(srv)
    assert files, f"no Parquet file under {srv.data_dir} after SIGTERM"
    total = 0
    for f in files:  # every persisted file is valid Parquet with a time column
        t = pq.read_table(f)
        assert "time" in t.schema.names, f
        total += t.num_rows
    assert total == 31, f"persisted rows {total} != 31 written"

    srv.start()
    assert counts(srv, db) == (30, 1)
    assert snapshot(srv, db, "cpu") == before
    assert snapshot(srv, db, "mem") == before_mem
    # types survive the Parquet round trip on the Flight wire
    _, t = flight_sql_query(srv, db, "SELECT host, usage, n, u, ok, s, time FROM cpu LIMIT 1")
    assert [f.type for f in t.schema] == [pa.string(), pa.float64(), pa.int64(), pa.uint64(), pa.bool_(),
                                         pa.string(), pa.timestamp("ns")]
    # the catalog survived too: the old types still bind
    r = write_v2(srv, db, f"cpu,host=h0 usage=1i {T0}", precision="s")
    assert r.status_code == 400 and "usage" in r.json()["message"]

    # a second restart without new writes changes nothing either
    assert srv.stop() == 0
    srv.start()
    assert counts(srv, db) == (30, 1)
    assert snapshot(srv, db, "cpu") == before


def test_sigkill_after_acknowledged_writes_replays_wal(make_server):
    srv = make_server()
    db = "restart_crash"
    seed_rows(srv, db, 0, 40)
    with InfluxDBClient3(host=srv.url, database=db, token=TOKEN) as client:  # a client's write is acked too
        client.write(record=f"cpu,host=client usage=0.25,n=-1i,u=0u,ok=true,s=\"c\" {T0 + 7}",
                     write_precision="s")
    before = snapshot(srv, db, "cpu")
    assert counts(srv, db) == (41, 1)
    assert not parquet_files(srv), "rows were persisted early: this test would not exercise WAL replay"

    assert srv.kill() == -9
    srv.start()
    assert counts(srv, db) == (41, 1)
    assert snapshot(srv, db, "cpu") == before

    # crash again right after the replay: still exactly once
    assert srv.kill() == -9
    srv.start()
    assert counts(srv, db) == (41, 1)
    assert snapshot(srv, db, "cpu") == before


def test_persist_then_crash_mix(make_server):
    """Rows in Parquet (clean stop) plus rows only in the WAL (crash), with an upsert across the two."""
    srv = make_server()
    db = "restart_mix"
    seed_rows(srv, db, 0, 20, host_prefix="a")
    assert srv.stop() == 0
    srv.start()
    seed_rows(srv, db, 1000, 20, host_prefix="b")
    # overwrite one persisted key field by field: usage changes, n stays
    first = query_json(srv, db, "SELECT host, CAST(time AS BIGINT) AS t FROM cpu WHERE host = 'a0'")[0]
    assert_204(write_v2(srv, db, f"cpu,host=a0 usage=99.5 {first['t']}", precision="ns"))
    before = snapshot(srv, db, "cpu")
    assert counts(srv, db) == (40, 2)

    assert srv.kill() == -9
    srv.start()
    assert counts(srv, db) == (40, 2)
    assert snapshot(srv, db, "cpu") == before
    assert query_json(srv, db, "SELECT usage, n FROM cpu WHERE host = 'a0'") == [{"usage": 99.5, "n": 0}]

    assert srv.stop() == 0
    srv.start()
    assert counts(srv, db) == (40, 2)
    assert snapshot(srv, db, "cpu") == before


def test_age_based_persist_then_crash(make_server):
    """Partitions persisted by age while running, then more writes, then a crash."""
    srv = make_server("--persist-age-seconds", "1")
    db = "restart_age"
    seed_rows(srv, db, 0, 12)
    deadline = time.monotonic() + 20
    while not parquet_files(srv) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert parquet_files(srv), f"nothing persisted after --persist-age-seconds 1\n{srv.log_tail()}"
    assert counts(srv, db) == (12, 1)  # buffer + Parquet, not double counted
    # upsert a persisted key while running: Parquet row + buffered row merge field by field
    first = query_json(srv, db, "SELECT CAST(time AS BIGINT) AS t FROM cpu WHERE host = 'h3'")[0]
    assert_204(write_v2(srv, db, f"cpu,host=h3 usage=42.5 {first['t']}", precision="ns"))
    assert query_json(srv, db, "SELECT usage, n, s FROM cpu WHERE host = 'h3'") == [
        {"usage": 42.5, "n": 3, "s": "row 3"}]
    seed_rows(srv, db, 500, 12, host_prefix="late")
    before = snapshot(srv, db, "cpu")
    assert counts(srv, db) == (24, 2)

    assert srv.kill() == -9
    srv.start()
    assert counts(srv, db) == (24, 2)
    assert snapshot(srv, db, "cpu") == before


def test_no_sync_writes_survive_clean_shutdown(make_server):
    srv = make_server()
    db = "restart_nosync"
    for i in range(5):
        assert_204(write_v3(srv, db, f"ns,k=k{i} v={i}i {T0 + i}", precision="second", no_sync=True))
    assert query_json(srv, db, "SELECT count(*) AS c FROM ns") == [{"c": 5}]
    assert srv.stop() == 0
    srv.start()
    assert query_json(srv, db, "SELECT k, v FROM ns ORDER BY k") == [{"k": f"k{i}", "v": i} for i in range(5)]


def test_rejected_writes_not_resurrected_by_replay(make_server):
    """Rejected lines never reach the WAL: a crash must not bring them back."""
    srv = make_server()
    db = "restart_rejected"
    assert_204(write_v2(srv, db, f"cpu,host=ok usage=1 {T0}", precision="s"))
    assert write_v2(srv, db, lines(f"cpu,host=bad1 usage=2 {T0}", "broken"), precision="s").status_code == 400
    assert write_v3(srv, db, lines(f"cpu,host=bad2 usage=3 {T0}", "broken"), precision="second",
                    accept_partial=False).status_code == 400
    assert write_v2(srv, db, f"cpu,host=bad3 usage=4i {T0}", precision="s").status_code == 400
    assert srv.kill() == -9
    srv.start()
    assert query_json(srv, db, "SELECT host FROM cpu") == [{"host": "ok"}]
