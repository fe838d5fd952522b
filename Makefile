# Two commands: `make run` and `make test`. Everything else is their plumbing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test test-fast lint vendor bench clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo
	HOST=$(HOST) PORT=$(PORT) BIN=$(BIN) sh scripts/run.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# First pass: the embedded default (SQLite + in-memory layer), every test.
# Second pass: PostgreSQL + channels-redis, every test but the browser ones.
test: lint
	$(BIN)/pytest
	MC_TEST_SERVICES=1 $(BIN)/pytest -m "not browser"

test-fast: $(STAMP)
	$(BIN)/pytest -m "not browser and not slow"

clean:
	rm -rf $(VENV) staticfiles .pytest_cache
