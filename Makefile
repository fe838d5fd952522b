# Two commands: `make run` and `make test`. Everything else is their plumbing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run serve reload test test-fast lint lock vendor bench clean

# `make run` installs only what the product needs (fast first start);
# `make test` adds the test and benchmark tools on top. Both install the lock
# files: exact versions with their hashes, as tested (`make lock` renews them).
$(RUN_STAMP): requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	touch $(RUN_STAMP)

$(DEV_STAMP): $(RUN_STAMP) requirements-dev.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.lock
	touch $(DEV_STAMP)

# Re-pin after editing requirements*.txt; versions already locked are kept unless
# a new requirement needs another (delete a lock file to take every newest version).
UV_VERSION ?= 0.13.8
LOCK := --quiet --universal --python-version 3.11 --generate-hashes --custom-compile-command "make lock"
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test -x $(BIN)/uv || $(BIN)/python -m pip install --quiet uv==$(UV_VERSION)
	$(BIN)/uv pip compile $(LOCK) requirements.txt -o requirements.lock
	$(BIN)/uv pip compile $(LOCK) requirements-dev.txt -c requirements.lock -o requirements-dev.lock

run: $(RUN_STAMP)
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo
	HOST=$(HOST) PORT=$(PORT) BIN=$(BIN) sh scripts/run.sh

# Production stack in the foreground: nginx on 127.0.0.1:$(SERVE_PORT) in front of
# $(WORKERS) uvicorn workers over PostgreSQL and Redis (see README "Production").
WORKERS ?= 2
SERVE_PORT ?= $(if $(filter command line environment,$(origin PORT)),$(PORT),8080)
# `exec`: serve.py replaces the recipe's shell, so the SIGTERM make passes on reaches it
# (a shell would die of it and leave the stack running).
serve: $(RUN_STAMP)
	exec env WORKERS=$(WORKERS) PORT=$(SERVE_PORT) $(BIN)/python scripts/serve.py

# Replace the workers of a running `make serve` one at a time; returns when all are new.
reload:
	$(BIN)/python scripts/serve.py reload

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# First pass: the embedded default (SQLite + in-memory layer), every test.
# Second pass: PostgreSQL + channels-redis, every test but the browser ones.
# Tests marked one_pass run in the one pass their marker names (root conftest.py).
test: lint
	$(BIN)/pytest
	MC_TEST_SERVICES=1 $(BIN)/pytest -m "not browser"

test-fast: $(DEV_STAMP)
	$(BIN)/pytest -m "not browser and not slow"

# Front-end code is vendored (committed) so `make run` needs neither npm nor a CDN.
# `make vendor` refreshes it from the npm registry: `make vendor UPLOT_VERSION=1.6.32`.
UPLOT_VERSION ?= 1.6.32
VENDOR_TMP := .vendor-tmp
vendor:
	rm -rf $(VENDOR_TMP) && mkdir -p $(VENDOR_TMP) static/vendor/uplot
	cd $(VENDOR_TMP) && npm pack --silent uplot@$(UPLOT_VERSION) >/dev/null
	tar -xzf $(VENDOR_TMP)/uplot-$(UPLOT_VERSION).tgz -C $(VENDOR_TMP)
	cp $(VENDOR_TMP)/package/dist/uPlot.esm.js $(VENDOR_TMP)/package/dist/uPlot.min.css \
	   $(VENDOR_TMP)/package/LICENSE static/vendor/uplot/
	printf 'uPlot %s from the npm registry (npm pack uplot@%s)\nsha256 of the tarball: %s\n' \
	  "$(UPLOT_VERSION)" "$(UPLOT_VERSION)" \
	  "$$(sha256sum $(VENDOR_TMP)/uplot-$(UPLOT_VERSION).tgz | cut -d' ' -f1)" \
	  > static/vendor/uplot/VERSION
	rm -rf $(VENDOR_TMP)

clean:
	rm -rf $(VENV) staticfiles .pytest_cache
