# CitizenWatt: `make run` starts everything on the simulator, `make test` runs the test suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test bench lint setup clean-data

$(VENV)/.installed: pyproject.toml tools/install-system-deps.sh
	bash tools/install-system-deps.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

run: setup
	$(PY) -m tools.run_local

test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) -m bench

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

clean-data:
	rm -rf var
