# inpaint-bench: `make bench` runs benchmark.yaml; `make test` runs the test suite.
PYTHON  ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
PROFILE ?= auto
RUNNER  ?= auto
CONFIG  ?= benchmark.yaml

.PHONY: install bench test lint perf sample-data docs clean

# Two stages: the harness alone (all `make bench` needs: models and metrics run in their images
# or in the local runner's environments, which share one torch per host, see docs/running.md),
# then the test and model packages (torch included) for the tests, lint and benchmarks.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[docker]'
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[dev,docker,models]'
	touch $@

install: $(VENV)/.installed-dev

bench: $(VENV)/.installed
	$(BIN)/inpaint-bench run --config $(CONFIG) --profile $(PROFILE) --runner $(RUNNER)

test: install
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check harness tests images contracts docs benchmarks
	$(BIN)/ruff format --check harness tests images contracts docs benchmarks
	$(BIN)/mypy

# Performance benchmarks (docs/performance.md): each compares inside one run and prints its
# ratios and targets; results in benchmarks/results/. P3 needs INPAINT_UPSTREAM_<MODEL> checkouts.
PERF := p1_scoring p2_budget p3_step_rate scaling p4_make_bench report_stats p5_slots p6_ledger
perf: install
	@rc=0; for b in $(PERF); do echo "== $$b"; $(BIN)/python benchmarks/$$b.py || rc=1; done; exit $$rc

sample-data: $(VENV)/.installed
	$(BIN)/inpaint-bench data sample --config $(CONFIG) --overwrite
	$(BIN)/inpaint-bench data check --config $(CONFIG) --profile sample

docs: install
	$(BIN)/python docs/gen_cli.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
