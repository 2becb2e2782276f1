# inpaint-bench: `make bench` runs benchmark.yaml; `make test` runs the test suite.
PYTHON  ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
PROFILE ?= auto
CONFIG  ?= benchmark.yaml

.PHONY: install bench test lint sample-data docs clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,docker,models]'
	touch $@

install: $(VENV)/.installed

bench: install
	$(BIN)/inpaint-bench run --config $(CONFIG) --profile $(PROFILE)

test: install
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check harness tests images contracts docs
	$(BIN)/ruff format --check harness tests images contracts docs
	$(BIN)/mypy

sample-data: install
	$(BIN)/inpaint-bench data sample --config $(CONFIG) --overwrite
	$(BIN)/inpaint-bench data check --config $(CONFIG) --profile sample

docs: install
	$(BIN)/python docs/gen_cli.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
