# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test check area lint install clean histories bench population model migration ingest browser docs nginx

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/python local_stack.py

# The ingest service alone (`make run` starts it too): webhooks → customer_event signals.
ingest: $(STAMP)
	$(BIN)/python -m retention.ingest

# The docs are built first: a broken link, anchor or page fails the build (mkdocs.yml: strict).
# The 20 slowest tests are listed at the end, so a run shows where the suite's time goes.
test: $(STAMP) browser nginx docs
	$(BIN)/python -m pytest -q --durations=20

# The inner loop (docs/testing.md): lint and types, then the unit tests (none that needs a
# Temporal server, a browser or subprocesses, nor the property tests, nor the few marked `slow`)
# on both cores (pytest-xdist), stopping at the first failure; `make area AREA=ingest` runs
# one area's tests.
check: lint
	$(BIN)/python -m pytest -q -x -n 2 \
		-m "not e2e and not browser and not faults and not temporal and not properties and not slow"

# One area's tests, by marker (tests/areas.py maps each test file to its areas); a marker
# expression works too: make area AREA="delivery and not temporal".
area: $(STAMP)
	@test -n "$(AREA)" || { echo "name an area of tests/areas.py: make area AREA=delivery"; exit 2; }
	$(BIN)/python -m pytest -q -m "$(AREA)"

# The docs site (mkdocs.yml, docs/) into site/; open site/index.html, or `$(BIN)/mkdocs serve`.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

# The report's browser test drives Debian's headless Chromium; installed once, only if missing.
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
		apt-get update -q && apt-get install -y -q chromium chromium-driver; \
	fi

# The TLS tests put Debian's nginx in front of the dev server (tests/tls_proxy.py); once, if missing.
nginx:
	@if [ ! -x /usr/sbin/nginx ]; then apt-get update -q && apt-get install -y -q nginx; fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy retention workflows activities cli worker.py starter.py local_stack.py

clean:
	rm -rf $(VENV) var site

# Re-record tests/histories/ after an intended, versioned workflow change (docs/testing.md, "Changing workflow code safely").
# The journey stories, the model retrains and the purge; the scans and the CRM sync of the tests named.
HISTORY_TESTS := tests/test_journey.py tests/test_journey_rules.py tests/test_journey_guardrails.py \
	tests/test_journey_recipients.py \
	tests/test_model_retrain.py tests/test_data_protection.py \
	tests/test_portfolio_scan.py::test_a_scan_replays_from_its_history \
	tests/test_portfolio_scan.py::test_a_parallel_scan_replays_from_its_history \
	tests/test_portfolio_scan.py::test_a_scan_whose_pages_cannot_be_read_fails_named_and_is_recorded_failed \
	tests/test_crm_journey.py::test_the_crm_sync_schedule_pushes_what_a_journey_left_pending
histories: $(STAMP)
	rm -f tests/histories/*.json  # older sets in subfolders stay: running workflows may have them
	RETENTION_RECORD_HISTORIES=1 $(BIN)/python -m pytest -q $(HISTORY_TESTS)

# Benchmarks: each prints one JSON line (figures recorded in bench/RESULTS.md).
bench: $(STAMP)
	$(BIN)/python bench/rules.py
	$(BIN)/python bench/scoring.py
	$(BIN)/python bench/journey_throughput.py
	$(BIN)/python bench/worker_memory.py
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/event_flood.py
	$(BIN)/python bench/journey_cost.py
	$(BIN)/python bench/signal_cost.py
	$(BIN)/python bench/retrain_beside_journeys.py
	$(BIN)/python bench/scan.py  # PostgreSQL at 127.0.0.1:5432

# examples/population.csv: the sample customers as a CSV population (tests check they match).
population: $(STAMP)
	$(BIN)/python -m retention.population examples/customers examples/population.csv

# models/churn-default: the shipped churn model, trained on a generated population with a fixed
# seed. Rebuilding gives the same model files and version (card.json differs in trained_at only).
MODEL_SEED := 1
MODEL_CUSTOMERS := 20000
MODEL_DATA := var/churn-default-population.csv
model: $(STAMP)
	mkdir -p var
	$(BIN)/python starter.py model generate --customers $(MODEL_CUSTOMERS) --seed $(MODEL_SEED) --out $(MODEL_DATA)
	$(BIN)/python starter.py model train --data $(MODEL_DATA) --out models/churn-default --seed $(MODEL_SEED)

# A new schema migration after a change to retention/store/tables.py (docs/development.md, "Database"):
#   make migration NAME="add the csm_tasks table"
MIGRATION_BASE := var/migration-base.db
migration: $(STAMP)
	mkdir -p var && rm -f $(MIGRATION_BASE)
	RETENTION_DATABASE_URL=sqlite:///$(MIGRATION_BASE) $(BIN)/alembic upgrade head
	RETENTION_DATABASE_URL=sqlite:///$(MIGRATION_BASE) $(BIN)/alembic revision --autogenerate -m "$(NAME)"
	$(BIN)/ruff format retention/store/migrations
