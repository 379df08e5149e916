"""Latency of small requests through a running ferrite front door (a cluster's router or
`ferrite serve`): a Flight DoGet of a one-row query, as influxdb3-python and Grafana's Flight
SQL data source send it, and a one-line write over HTTP.

    .venv/bin/python services/testkit/python/bench/front_door_latency.py [URL] [RUNS]

URL defaults to http://127.0.0.1:8181 (`make cluster`), RUNS to 60. The token comes from
FERRITE_TOKEN, else `.cluster/admin-token` (written by `make cluster`). Writes to the database
`latency_bench`. Prints p50 and p95 of each, in milliseconds, after one warm-up request.
"""

import json
import os
import statistics
import sys
import time
from urllib.parse import urlparse

import pyarrow.flight as flight
import requests

DB = "latency_bench"


def percentiles(samples):
    samples = sorted(samples)
    return statistics.median(samples), samples[int((len(samples) - 1) * 0.95)]


def timed(runs, call):
    call()  # warm-up
    out = []
    for i in range(runs):
        start = time.perf_counter()
        call(i)
        out.append((time.perf_counter() - start) * 1000)
    return percentiles(out)


def token():
    if os.environ.get("FERRITE_TOKEN"):
        return os.environ["FERRITE_TOKEN"]
    with open(".cluster/admin-token") as f:
        return f.read().strip()


def main():
    url = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8181"
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 60
    auth = {"Authorization": f"Bearer {token()}"}
    write_url = f"{url}/api/v3/write_lp?db={DB}&precision=second"
    requests.post(write_url, data="m,host=a v=1i 1\n", headers=auth).raise_for_status()

    parsed = urlparse(url)
    client = flight.FlightClient(f"grpc://{parsed.hostname}:{parsed.port}")
    ticket = flight.Ticket(json.dumps({"database": DB, "sql_query": "SELECT count(*) FROM m"}).encode())
    options = flight.FlightCallOptions(headers=[(b"authorization", auth["Authorization"].encode())])

    def do_get(_=0):
        client.do_get(ticket, options).read_all()

    def write(i=0):
        requests.post(write_url, data=f"m,host=a v={i}i {i + 2}\n", headers=auth).raise_for_status()

    get50, get95 = timed(runs, do_get)
    w50, w95 = timed(runs, write)
    print(f"Flight DoGet (one-row query): p50 {get50:.1f} ms, p95 {get95:.1f} ms over {runs} runs")
    print(f"one-line write over HTTP:    p50 {w50:.1f} ms, p95 {w95:.1f} ms over {runs} runs")


if __name__ == "__main__":
    main()
