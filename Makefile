# Two commands: `make run` and `make test`. Everything else is their plumbing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test test-fast lint vendor bench clean

# `make run` installs only what the product needs (fast first start);
# `make test` adds the test and benchmark tools on top.
$(RUN_STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $(RUN_STAMP)

$(DEV_STAMP): $(RUN_STAMP) requirements-dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(DEV_STAMP)

run: $(RUN_STAMP)
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo
	HOST=$(HOST) PORT=$(PORT) BIN=$(BIN) sh scripts/run.sh

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# First pass: the embedded default (SQLite + in-memory layer), every test.
# Second pass: PostgreSQL + channels-redis, every test but the browser ones.
test: lint
	$(BIN)/pytest
	MC_TEST_SERVICES=1 $(BIN)/pytest -m "not browser"

test-fast: $(DEV_STAMP)
	$(BIN)/pytest -m "not browser and not slow"

clean:
	rm -rf $(VENV) staticfiles .pytest_cache
