# `make test` builds .venv from pyproject.toml (again whenever it changes) and runs every check.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: test lint typecheck pytest browser demo bench clean

test: lint typecheck pytest

$(BIN)/.installed: pyproject.toml
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

lint: $(BIN)/.installed
	$(BIN)/ruff check statemachine tests benchmarks
	$(BIN)/ruff format --check statemachine tests benchmarks

typecheck: $(BIN)/.installed
	$(BIN)/mypy

# The suite waits on fsyncs, PostgreSQL and child processes more than on the CPU: twice as many
# pytest workers as cores keep both cores busy. Every test has a fresh file or schema of its own.
# For a quick run: .venv/bin/pytest -n 4 -m 'not slow'.
PYTEST_WORKERS ?= 4

pytest: $(BIN)/.installed browser
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist worksteal

# One test renders the HTML report in Debian's chromium; where it cannot be installed
# (not root, no apt), that test skips and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  { apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 || \
	    { apt-get update -qq >/dev/null 2>&1 && \
	      apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1; }; }; } || \
	  echo "chromium is not installed: the report-rendering test will skip"

demo: $(BIN)/.installed
	rm -f demo.sqlite demo.sqlite-wal demo.sqlite-shm
	$(BIN)/statemachine replay specs/examples/car-loans-month.jsonl --db demo.sqlite

bench: $(BIN)/.installed
	cd benchmarks && ../$(BIN)/python bench_core.py && ../$(BIN)/python bench_store.py && ../$(BIN)/python bench_replay.py && ../$(BIN)/python bench_growth.py && ../$(BIN)/python bench_xes.py \
		&& ../$(BIN)/python bench_dispatch.py $${STATEMACHINE_PG_DSN:+--postgres} \
		&& ../$(BIN)/python bench_serve.py
	if [ -n "$$STATEMACHINE_PG_DSN" ]; then cd benchmarks && ../$(BIN)/python bench_postgres.py; fi

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
