"""Fixtures: one shared `ferrite serve` for the session, per-test database names, and a
factory for tests that need their own server (restart, crash, small request limit)."""

from __future__ import annotations

import pytest

from ferrite_cluster import FerriteCluster, find_launcher
from ferrite_e2e import (FerriteBinaryMissing, FerriteServer, assert_no_secret_in,
                         find_ferrite_bin, unique_db)
from influxd import InfluxD, InfluxDMissing, find_influxd


@pytest.fixture(scope="session", autouse=True)
def no_secret_in_any_log(tmp_path_factory):
    """After the whole run (every server stopped): no log line holds a token secret the
    suite created."""
    yield
    base = tmp_path_factory.getbasetemp()
    assert_no_secret_in(p for p in base.rglob("*") if p.suffix == ".log")


@pytest.fixture(scope="session")
def ferrite_bin():
    try:
        return find_ferrite_bin()
    except FerriteBinaryMissing as e:
        pytest.exit(f"ferrite e2e: {e}", returncode=3)


@pytest.fixture(scope="session")
def server(ferrite_bin, tmp_path_factory):
    """The shared server. Teardown: SIGTERM, and it must exit 0."""
    base = tmp_path_factory.mktemp("ferrite-shared")
    srv = FerriteServer(ferrite_bin, base / "data", base / "ferrite.log")
    srv.start()
    yield srv
    code = srv.stop()
    assert code == 0, f"shared ferrite exited {code} after SIGTERM\n{srv.log_tail()}"


@pytest.fixture(scope="session")
def cluster(ferrite_bin, tmp_path_factory):
    """A local cluster (PostgreSQL, MinIO, catalog, 2 ingesters, querier, router) for the
    session, started on first use."""
    try:
        launcher = find_launcher(ferrite_bin)
    except FileNotFoundError as e:
        pytest.exit(f"ferrite e2e: {e}", returncode=3)
    base = tmp_path_factory.mktemp("ferrite-cluster")
    c = FerriteCluster(launcher, ferrite_bin, base / "launcher.log")
    c.start()
    yield c
    # The services' logs go with the cluster: check them for secrets before it stops.
    assert_no_secret_in(c.service_logs)
    code = c.stop()
    assert code == 0, f"ferrite-test-cluster exited {code}\n{c.log_tail()}"


@pytest.fixture(scope="session")
def influxd(tmp_path_factory):
    """A real InfluxDB 1.x for the session, the reference of the InfluxQL tests (no auth).
    Teardown: SIGTERM, and it must exit 0."""
    try:
        binary = find_influxd()
    except InfluxDMissing as e:
        pytest.exit(f"ferrite e2e: {e}", returncode=3)
    ref = InfluxD(binary, tmp_path_factory.mktemp("influxd"))
    ref.start()
    yield ref
    code = ref.stop()
    assert code == 0, f"influxd exited {code} after SIGTERM\n{ref.log_tail()}"


@pytest.fixture(scope="session", params=["serve", "cluster"])
def front_door(request):
    """The one address clients use, for every deployment: `ferrite serve`, and the local
    cluster (router in front of ingesters and a querier). Has `.url` (http://host:port),
    `.port`, `.flight_uri` (grpc+tcp://host:port) and `.log_tail()`."""
    return request.getfixturevalue({"serve": "server", "cluster": "cluster"}[request.param])


@pytest.fixture
def db(request):
    """A database name of this test's own (databases are created on first write)."""
    return unique_db(request.node.name.replace("test_", "", 1))


@pytest.fixture
def make_server(ferrite_bin, tmp_path):
    """Start extra servers: `make_server(*args)`; each is SIGTERMed at teardown if still up
    (and must then exit 0). Data lives under this test's tmp_path."""
    servers: list[FerriteServer] = []

    def make(*args: str, name: str | None = None, start: bool = True) -> FerriteServer:
        name = name or f"srv{len(servers)}"
        srv = FerriteServer(ferrite_bin, tmp_path / name / "data", tmp_path / name / "ferrite.log", args)
        (tmp_path / name).mkdir(parents=True, exist_ok=True)
        servers.append(srv)
        if start:
            srv.start()
        return srv

    yield make
    failures = []
    for srv in servers:
        if srv.running():
            code = srv.stop()
            if code != 0:
                failures.append(f"{srv.data_dir}: exit {code}\n{srv.log_tail()}")
    assert not failures, "ferrite did not exit 0 on SIGTERM:\n" + "\n".join(failures)


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On a failure, attach the tail of the shared server's log to the report."""
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call" and rep.failed:
        funcargs = item.funcargs if hasattr(item, "funcargs") else {}
        srv = funcargs.get("front_door") or funcargs.get("server")
        if isinstance(srv, (FerriteServer, FerriteCluster)):
            rep.sections.append(("ferrite log", srv.log_tail(40)))
