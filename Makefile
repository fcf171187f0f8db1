# The two set-up commands: `make run` and `make test`. Both work on a fresh
# machine that has only python3 and pip.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA_DIR ?= ./var
STAMP := $(VENV)/.installed

.PHONY: run test test-sqlite test-postgres lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade "pip==25.3"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

# The real Bulk Data clients the e2e tests run unmodified (tests/clients): a venv of their
# own, from their own pins, so that their dependencies never reach the project's.
CLIENTS := $(VENV)/clients
CLIENTS_STAMP := $(CLIENTS)/.installed

$(CLIENTS)/bin/python:
	$(PYTHON) -m venv $(CLIENTS)

$(CLIENTS_STAMP): $(CLIENTS)/bin/python tests/clients/requirements.txt
	$(CLIENTS)/bin/python -m pip install --quiet --upgrade "pip==25.3"
	$(CLIENTS)/bin/python -m pip install --quiet -r tests/clients/requirements.txt
	touch $(CLIENTS_STAMP)

## make run: install, initialise ./var, start the platform with three sandbox
## partners, send one exchange to each, then keep serving until Ctrl-C.
run: $(STAMP)
	$(BIN)/payerbridge demo --data-dir $(DATA_DIR)

## make test: the whole suite on SQLite, then again on PostgreSQL when
## PAYERBRIDGE_TEST_DATABASE_URL is set (CI sets it).
test: export PAYERBRIDGE_TEST_SMART_FETCH = $(abspath $(CLIENTS))/bin/smart-fetch
test: $(STAMP) $(CLIENTS_STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python -m pytest tests
	@if [ -n "$$PAYERBRIDGE_TEST_DATABASE_URL" ]; then \
		echo "== again on PostgreSQL"; \
		PAYERBRIDGE_TEST_BACKEND=postgres $(BIN)/python -m pytest tests; \
	fi

clean:
	rm -rf $(VENV) var .pytest_cache
