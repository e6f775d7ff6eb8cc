# The two commands of the README: `make run` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
GATEWAY := $(BIN)/gateway
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: run demo test lint bench bigbench soak keys postgres browser systemd clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(STAMP)

keys: $(STAMP)
	$(GATEWAY) keys generate

run: $(STAMP) keys
	$(GATEWAY) serve

demo: $(STAMP) keys
	$(GATEWAY) demo

# PostgreSQL is part of the test suite; start it if this machine has it stopped.
postgres:
	@pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null || \
	  (command -v pg_ctlcluster >/dev/null && \
	   pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql | head -n1) main start && \
	   sleep 2) || echo "warning: PostgreSQL not started (tests decide whether that is fatal)"

# Headless Chromium and its driver for the review-page browser tests (Debian packages;
# a test tool's own browser download does not work here).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  ( (apt-get update -qq && apt-get install -y -qq chromium chromium-driver) >/dev/null 2>&1 || \
	    echo "warning: could not install chromium + chromium-driver (browser tests decide whether that is fatal)")

# systemd-analyze checks docs/deploy/disclosure-gateway.service (Debian package systemd).
systemd:
	@command -v systemd-analyze >/dev/null || \
	  ( (apt-get update -qq && apt-get install -y -qq systemd) >/dev/null 2>&1 || \
	    echo "warning: could not install systemd (the unit test skips without systemd-analyze)")

# One pytest worker per core (TEST_WORKERS=0 for one process); a test file stays on one worker,
# so its module fixtures are built once. Much of the suite waits on subprocesses and sockets.
TEST_WORKERS ?= auto
test: $(TEST_STAMP) postgres browser systemd
	$(GATEWAY) keys generate
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile

lint: $(TEST_STAMP)
	$(BIN)/ruff check gateway gateway_client tests benchmarks examples
	$(BIN)/mypy

# The gateway against a bare proxy (wrk as the load generator where it can be installed;
# benchmarks/loadgen.py otherwise), the same gateway with two local witnesses, decide(), what
# witnessing costs per checkpoint, and the disclosure log at 1,000,000 entries.
bench: $(TEST_STAMP) keys postgres
	@command -v wrk >/dev/null || \
	  ( (apt-get update -qq && apt-get install -y -qq wrk) >/dev/null 2>&1 || \
	    echo "warning: wrk not installed; benchmarks/loadgen.py generates the load")
	$(BIN)/python benchmarks/run.py --workers 2

# The gateway at half its measured maximum for 30 minutes (SOAK_ARGS="--minutes 10" for
# less): RSS growth, p99 drift, errors, open fds, and `gateway log verify` at the end.
soak: $(TEST_STAMP) keys
	$(BIN)/python benchmarks/soak.py $(SOAK_ARGS)

# The ten-million-entry store (issue #20), apart from `make bench`: 10-20 GB a store.
# Fills (or resumes filling) var/big_log/log.db, then times verify, proofs, reports and
# search, and bytes per disclosure. BIG_ENTRIES=1000000 for less; BIG_ARGS for the rest
# (e.g. BIG_ARGS="--store postgresql --dsn postgresql://postgres@127.0.0.1:5432/big").
BIG_ENTRIES ?= 10000000
BIG_ARGS ?= --path var/big_log/log.db
bigbench: $(TEST_STAMP)
	$(BIN)/python benchmarks/big_log.py --entries $(BIG_ENTRIES) $(BIG_ARGS)

clean:
	rm -rf $(VENV) var test-artifacts .pytest_cache .mypy_cache .ruff_cache
