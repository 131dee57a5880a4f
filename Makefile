# Kolony: `make up` runs a hub on this machine; `make test` runs every test.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: up test lint typecheck pytest bench chaos schemas install install-dev clean

$(BIN)/python:
	@echo "creating $(VENV) with $$($(PYTHON) --version)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# pip shows its progress: a first install downloads about 150 MB (Java included).
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	@echo "installing Kolony and its dependencies into $(VENV) ..."
	$(BIN)/pip install -e ".[server]"
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	@echo "installing Kolony with its test and development tools into $(VENV) ..."
	$(BIN)/pip install -e ".[server,test,dev]"
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

## up: install and start the hub (embedded broker unless KOLONY_BOOTSTRAP_SERVERS is set)
up: install
	$(BIN)/kolony up

## test: lint, type-check and run the whole suite (on Apache Kafka, started by the tests)
test: install-dev lint typecheck pytest

lint: install-dev
	$(BIN)/ruff check .

typecheck: install-dev
	$(BIN)/mypy

# pytest exits 5 when it ran no test: that is a failure here, never a pass.
pytest: install-dev
	$(BIN)/pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest ran no test: failing" >&2; exit 1; fi; exit $$rc

## chaos: kill -9 the worker, gateway, an SDK agent and a broker of three, in turn, under load; then audit the log (about 10 min)
chaos: install-dev
	$(BIN)/python -m bench.chaos

## bench: throughput and latency next to raw-Kafka floors (writes bench/results/)
bench: install-dev
	$(BIN)/python -m bench

## schemas: regenerate docs/schemas from the pydantic models
schemas: install
	$(BIN)/kolony schemas export --out docs/schemas

clean:
	rm -rf $(VENV) .kolony .pytest_cache .mypy_cache .ruff_cache
