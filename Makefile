# Every target sets up .venv itself (scripts/bootstrap.sh: CPU torch only, never the CUDA build).
PY := .venv/bin/python
# Prepared datasets: $BENCH_DATA_DIR, else ./data, else ../shared/data (this project's checkout layout).
BENCH_DATA_DIR ?= $(firstword $(wildcard data) $(wildcard ../shared/data) data)
export BENCH_DATA_DIR
# Offline by default here (no hub); users with the hub can run `HF_HUB_OFFLINE=0 make run`.
HF_HUB_OFFLINE ?= 1
export HF_HUB_OFFLINE
ARGS ?=
PYTEST_ARGS ?=

.PHONY: install run test test-fast lint format report perf-check perf-save clean

.venv/.installed: pyproject.toml scripts/bootstrap.sh
	bash scripts/bootstrap.sh
	touch $@

install: .venv/.installed

run: .venv/.installed  ## python -m bench run --all on the default dataset (sst2)
	$(PY) -m bench run --all $(ARGS)

test: .venv/.installed  ## the whole test suite, slow real-data tests included
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: .venv/.installed  ## unit tests only
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

lint: .venv/.installed  ## ruff: lint and formatting check (what CI enforces)
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

format: .venv/.installed  ## ruff: fix what can be fixed and format
	.venv/bin/ruff check --fix .
	.venv/bin/ruff format .

report: .venv/.installed
	$(PY) -m bench report $(ARGS)

perf-check: .venv/.installed  ## latency regression gate against perf/baseline.json
	$(PY) -m bench perf --check $(ARGS)

perf-save: .venv/.installed  ## store this machine kind's latency baseline (on an idle machine), then commit perf/baseline.json
	$(PY) -m bench perf --save --runs 3 $(ARGS)

clean:
	rm -rf .venv .pytest_cache .hypothesis
