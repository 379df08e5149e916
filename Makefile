# ferrite — developer entry points. `make test` on a fresh Debian machine installs what it needs.

CARGO_TARGET_DIR ?= $(HOME)/.cache/ferrite-target
export CARGO_TARGET_DIR
VENV := .venv
PYTEST := $(VENV)/bin/python -m pytest
FERRITE_BIN ?= $(CARGO_TARGET_DIR)/debug/ferrite

.PHONY: cluster cluster-down help setup setup-build build run image test test-rust test-clients test-python test-k8s bench bench-lineproto bench-selectors bench-e2e bench-auth bench-compaction bench-influxql bench-peers fmt lint clean

help:
	@echo "make run     - ferrite serve on 127.0.0.1:8181 with data in ~/.ferrite"
	@echo "make test    - lint (rustfmt, clippy -D warnings) and every test (installs PostgreSQL, MinIO, Helm, a Kubernetes control plane, the clients)"
	@echo "make bench   - parser, ingest and query benchmarks (see docs/benchmarks.md)"
	@echo "make image   - the container image (deploy/Dockerfile) with docker, podman or buildah"

setup:
	bash deploy/dev/setup.sh

# What building ferrite needs and nothing more (the linker): `make run` on a fresh machine
# does not install the test servers and clients.
setup-build:
	bash deploy/dev/setup.sh --build-only

build: setup
	cargo test --workspace --no-run

run: setup-build
	cargo run --release --bin ferrite -- serve

# lint first: a formatting or clippy finding fails fast, before the long test run.
test: setup lint test-rust test-clients test-python test-k8s

test-rust:
	cargo test --workspace --no-fail-fast

# Unit tests of the client programs the end-to-end tests drive (Grafana macro expansion).
test-clients:
	cd services/testkit/clients/go && GOTOOLCHAIN=local GOFLAGS=-mod=readonly go test ./...

# The same cargo invocation as test-rust (one feature set, so nothing is rebuilt): it also
# builds target/debug/ferrite, which the Python suite drives.
test-python:
	cargo test --workspace --no-run
	cargo build -p ferrite-testkit --bins
	FERRITE_BIN=$(FERRITE_BIN) $(PYTEST) services/testkit/python -q

# Static tests of the Helm chart (helm/ferrite): helm lint and helm template of several value
# sets, checked against `ferrite run <tier> --help`, so they need the debug binary too.
# The chart: static checks, and its objects on a real control plane (ferrite-test-kube).
test-k8s:
	cargo test --workspace --no-run
	cargo build -p ferrite-testkit --bins
	FERRITE_BIN=$(FERRITE_BIN) $(PYTEST) k8s-tests -q

bench: setup bench-lineproto bench-selectors bench-e2e bench-auth bench-compaction bench-influxql

bench-lineproto:
	cargo bench -p ferrite-lineproto --bench parse

# -p ferrite-server -p ferrite-testkit: resolve features as bench-e2e's release build does, so
# the bench reuses its compiled DataFusion instead of rebuilding it (log/std differs otherwise).
bench-selectors:
	cargo bench -p ferrite-querier -p ferrite-server -p ferrite-testkit --bench selectors

bench-e2e:
	cargo build --release -p ferrite-server -p ferrite-testkit --bin ferrite --bin ferrite-bench
	$(CARGO_TARGET_DIR)/release/ferrite-bench --ferrite $(CARGO_TARGET_DIR)/release/ferrite

# The compactor: throughput, and queries over overlapping files before and after.
bench-compaction:
	cargo build --release -p ferrite-server -p ferrite-testkit --bin ferrite --bin ferrite-bench
	$(CARGO_TARGET_DIR)/release/ferrite-bench --ferrite $(CARGO_TARGET_DIR)/release/ferrite --compaction

# What token checking costs: the check alone (criterion), then ingest with and without it.
bench-auth:
	cargo bench -p ferrite-auth -p ferrite-server -p ferrite-testkit --bench check
	cargo build --release -p ferrite-server -p ferrite-testkit --bin ferrite --bin ferrite-bench
	$(CARGO_TARGET_DIR)/release/ferrite-bench --ferrite $(CARGO_TARGET_DIR)/release/ferrite --compare-auth 8

# The TSBS `influx` query types through InfluxQL, on ferrite and on influxd 1.x (installed by
# setup) loaded with the same data; every answer is compared.
bench-influxql:
	cargo build --release -p ferrite-server -p ferrite-testkit --bin ferrite
	$(VENV)/bin/python services/testkit/python/bench/influxql_tsbs.py --ferrite $(CARGO_TARGET_DIR)/release/ferrite

# ferrite (serve and the local cluster) beside InfluxDB 1.x, QuestDB and VictoriaMetrics: load
# rate until queryable, bytes per value, the TSBS query types in SQL and InfluxQL with every
# answer compared; writes its report into docs/benchmarks.md. Not part of `make bench`.
bench-peers: setup
	cargo build --release -p ferrite-server -p ferrite-testkit --bin ferrite --bin ferrite-bench --bin ferrite-test-cluster
	bash deploy/dev/install-influxd.sh
	bash deploy/dev/install-questdb.sh
	bash deploy/dev/install-victoriametrics.sh
	$(VENV)/bin/python services/testkit/python/bench/peers.py --ferrite $(CARGO_TARGET_DIR)/release/ferrite --write-docs

fmt:
	cargo fmt --all

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

clean:
	cargo clean

# The container image, tagged as the Helm chart expects by default (ferrite:<version>).
# CONTAINER_ENGINE=docker|podman|buildah picks one; otherwise the first that works.
IMAGE ?= ferrite:$(shell sed -n 's/^version = "\([^"]*\)"$$/\1/p' Cargo.toml | head -n 1)
image:
	@engine="$(CONTAINER_ENGINE)"; \
	if [ -z "$$engine" ]; then \
		if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then engine=docker; \
		elif command -v podman >/dev/null 2>&1; then engine=podman; \
		elif command -v buildah >/dev/null 2>&1; then engine=buildah; \
		elif command -v docker >/dev/null 2>&1; then \
			echo "make image: docker is installed but its daemon does not answer (docker info failed), and there is no podman or buildah" >&2; exit 1; \
		else \
			echo "make image: no container engine: install docker, podman or buildah" >&2; exit 1; \
		fi; \
	fi; \
	echo "make image: $$engine build -f deploy/Dockerfile -t $(IMAGE) ."; \
	$$engine build -f deploy/Dockerfile -t $(IMAGE) .

cluster: setup
	bash deploy/cluster/up.sh

cluster-down:
	bash deploy/cluster/down.sh
