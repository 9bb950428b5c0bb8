PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-only lint fmt bench bench-quick screenshots clean

$(STAMP): requirements.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) on PATH (or: make PYTHON=python3 ...)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

## Set up, migrate, seed the demo and start web + worker + beat + fake FCM + simulator.
run: $(STAMP)
	$(PY) -m config.embedded run -- $(PY) -m config.launch

## Lint, then the whole test suite on PostgreSQL + Redis (embedded unless DATABASE_URL/REDIS_URL are set).
test: $(STAMP) lint test-only

test-only: $(STAMP)
	$(PY) -m config.embedded run -- $(PY) -m pytest $(PYTEST_ARGS)

## Re-take the README's dashboard screenshots (docs/screenshots) with the browser tests.
screenshots: $(STAMP)
	PUSHWATCH_SCREENSHOT_DIR=$(CURDIR)/docs/screenshots $(PY) -m config.embedded run -- $(PY) -m pytest -m browser tests/dashboard

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

fmt: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

## Every benchmark, full size (bench-quick: each within 60 s).
bench: $(STAMP)
	$(PY) -m config.embedded run -- $(PY) -m bench

bench-quick: $(STAMP)
	$(PY) -m config.embedded run -- $(PY) -m bench --quick

clean:
	$(PY) -m config.embedded stop || true
	rm -rf var
