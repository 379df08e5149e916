"""InfluxQL, differentially: every query of influxql_corpus.CORPUS goes to a real InfluxDB 1.x
(`influxd`) and to ferrite's `/query`, loaded with the same line protocol, and the answers
must agree.

How answers are compared (influxql_corpus.differences):
- the HTTP status, then the body's content type, then each JSON document (one, or one per
  chunk with `chunked=true`);
- a request-level `error` (parse errors, 400) and a statement's `error` by their exact text;
- per statement the series list in InfluxDB's order (by measurement, then tag set): name,
  tags, columns, and the rows in order — except, for the queries marked `ties_unordered`,
  among rows with equal times: rows of several series merged into one answer series, whose
  order InfluxDB leaves to its plan (it differs between `SELECT *` and a field list);
- cells: integers exactly; floats within 1e-9 relative (1e-9 absolute near zero) — InfluxDB's
  JSON prints the float 3.0 as `3`, so an integer and a float compare as numbers; booleans,
  strings and null exactly;
- times exactly: epoch integers (most queries ask `epoch=ns`), or RFC 3339 strings for the
  handful of queries that check time formatting;
- sample() is random: only its shape (series, columns, row counts) is compared;
- SHOW DATABASES lists only this module's databases on each side.

KNOWN_DIFFERENCES (in the corpus module) lists queries ferrite answers differently, with the
reason; for those the test asserts the answers still differ, so the list cannot go stale.

Each side gets a database of this module's own. The queries run against `ferrite serve`; the
ones marked `cluster` also through the local cluster's router.

FERRITE_INFLUXQL_SELF_CHECK=1 compares influxd with a second influxd instead of ferrite: a
check of the harness itself (the data set loads the same way twice, the comparison is
deterministic), usable without a ferrite binary.
"""

from __future__ import annotations

import os

import pytest

from ferrite_e2e import TOKEN, assert_204, unique_db, write_v1
from influxd import Answer, InfluxD, find_influxd, query_url
from influxql_corpus import CORPUS, DATASET, KNOWN_DIFFERENCES, Case, dataset_lines, differences, keep_databases

SELF_CHECK = os.environ.get("FERRITE_INFLUXQL_SELF_CHECK") == "1"
WRITE_BATCH_LINES = 5000
FERRITE_AUTH = {"Authorization": f"Token {TOKEN}"}


class Side:
    """Where one side's `/query` lives and how to reach it."""

    def __init__(self, name: str, url: str, headers: dict | None = None):
        self.name = name
        self.url = url
        self.headers = headers or {}

    def ask(self, case: Case, db: str) -> Answer:
        """`case` against this side, with the data set's database `db`."""
        answer = query_url(self.url, case.q.replace("{db}", db),
                           db=db if case.db == DATASET else case.db, epoch=case.epoch,
                           method=case.method, params=case.params, headers=self.headers)
        if case.databases and answer.documents:
            names = {n.replace("{db}", db) for n in case.databases}
            answer.documents = [keep_databases(d, names) for d in answer.documents]
        return answer


def batches(lines: list[str]):
    for i in range(0, len(lines), WRITE_BATCH_LINES):
        yield "\n".join(lines[i:i + WRITE_BATCH_LINES]) + "\n"


def load_influxd(ref: InfluxD, db: str) -> None:
    status, body = ref.query(None, f'CREATE DATABASE "{db}"', method="POST")
    assert status == 200 and "error" not in body["results"][0], body
    for body in batches(dataset_lines()):
        ref.write(db, body)


def load_ferrite(srv, db: str) -> None:
    """ferrite creates the database on the first write."""
    for body in batches(dataset_lines()):
        assert_204(write_v1(srv, db, body))


@pytest.fixture(scope="module")
def dataset_db(influxd) -> str:
    """The data set's database name, the same on every side; loaded into influxd."""
    db = unique_db("influxql")
    load_influxd(influxd, db)
    return db


@pytest.fixture(scope="module")
def reference(influxd) -> Side:
    return Side("influxd", influxd.url)


@pytest.fixture(scope="module")
def serve_side(request, dataset_db, tmp_path_factory) -> Side:
    """ferrite serve with the data set (in self-check mode: a second influxd)."""
    if SELF_CHECK:
        twin = InfluxD(find_influxd(), tmp_path_factory.mktemp("influxd-twin"))
        twin.start()
        request.addfinalizer(twin.stop)
        load_influxd(twin, dataset_db)
        return Side("influxd twin", twin.url)
    srv = request.getfixturevalue("server")
    load_ferrite(srv, dataset_db)
    return Side("ferrite serve", srv.url, FERRITE_AUTH)


@pytest.fixture(scope="module")
def cluster_side(request, dataset_db) -> Side:
    """The local cluster's router with the data set."""
    if SELF_CHECK:
        pytest.skip("FERRITE_INFLUXQL_SELF_CHECK: no cluster")
    c = request.getfixturevalue("cluster")
    load_ferrite(c, dataset_db)
    return Side("ferrite cluster", c.url, FERRITE_AUTH)


def check_same(case: Case, reference: Side, side: Side, db: str) -> None:
    want = reference.ask(case, db)
    got = side.ask(case, db)
    diffs = differences(want, got, shape_only=case.shape_only, ties_unordered=case.ties_unordered)
    if case.id in KNOWN_DIFFERENCES:
        assert diffs, (f"{case.id} is in KNOWN_DIFFERENCES ({KNOWN_DIFFERENCES[case.id]!r}) but "
                       f"{side.name} now answers like influxd: remove the entry")
        return
    if diffs:
        pytest.fail(
            f"{side.name} differs from influxd on {case.id} (influxd's != {side.name}'s)\n  q: {case.q}\n"
            + "\n".join(f"  - {d}" for d in diffs)
            + f"\n  influxd: {want.status} {want.text[:1500]}\n  {side.name}: {got.status} {got.text[:1500]}",
            pytrace=False)


def test_influxd_answers_the_corpus_without_surprises(reference, dataset_db):
    """The harness itself: outside the `errors/` group, influxd answers every query with 200 and
    no error (a typo in the corpus would otherwise only be "the same error on both sides")."""
    bad = []
    for case in CORPUS:
        if case.id.startswith("errors/"):
            continue
        answer = reference.ask(case, dataset_db)
        docs = answer.documents or []
        errors = [r["error"] for d in docs for r in d.get("results", []) if "error" in r]
        errors += [d["error"] for d in docs if "error" in d]
        if answer.status != 200 or not docs or (errors and not case.id.startswith("multi/error")):
            bad.append(f"{case.id}: {answer.status} {answer.text[:200]}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("case", CORPUS, ids=[c.id for c in CORPUS])
def test_influxql_matches_influxd(case, reference, serve_side, dataset_db):
    check_same(case, reference, serve_side, dataset_db)


CLUSTER_CASES = [c for c in CORPUS if c.cluster]


@pytest.mark.parametrize("case", CLUSTER_CASES, ids=[c.id for c in CLUSTER_CASES])
def test_influxql_matches_influxd_through_router(case, reference, cluster_side, dataset_db):
    check_same(case, reference, cluster_side, dataset_db)
