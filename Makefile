# CitizenWatt: `make run` starts everything on the simulator, `make test` runs the test suite.
# `make run` installs only what running needs; the test toolchain (Chromium, the AVR compiler, Docker,
# TimescaleDB's build tools) comes with `make test` alone.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test bench lint setup setup-test lock clean-data

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.run-installed: pyproject.toml tools/install-system-deps.sh tools/apt-install.sh | $(PY)
	bash tools/install-system-deps.sh run
	$(PY) -m pip install -q -e '.[run]'
	touch $@

$(VENV)/.test-installed: pyproject.toml tools/install-system-deps.sh tools/apt-install.sh | $(PY)
	bash tools/install-system-deps.sh test
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

setup: $(VENV)/.run-installed
setup-test: $(VENV)/.test-installed

run: setup
	$(PY) -m tools.run_local

# The whole suite: unit, service, fault and browser tests on plain PostgreSQL and on TimescaleDB, the
# images' installability on arm64 and armv7, and the compose stack built and run in Docker.
# Three phases (tests/conftest.py says which test goes where): the tests that can share the machine,
# two at a time, a file per worker (a browser module's tests share one stack and run in file
# order: split across workers, each half failed); the two long fault suites (the Docker stack, the local one) side by side; then the
# tests that time what they see (fault windows in a browser, timings, memory) alone. All phases
# always run; any failing fails the target. TimescaleDB's tree is built (or found in its cache) once,
# before the workers start.
test: setup-test
	-bash tools/build-timescaledb.sh >/dev/null
	status=0; \
	$(PY) -m pytest -q -n 2 --dist loadfile -m "not serial and not paired" || status=$$?; \
	$(PY) -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder -m paired || status=$$?; \
	$(PY) -m pytest -q -m serial || status=$$?; \
	exit $$status

bench: setup-test
	$(PY) -m bench

lint: setup-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# Re-pin the images' Python packages (docker/requirements/) after changing a dependency.
lock: setup-test
	$(PY) -m tools.lock_requirements

clean-data:
	rm -rf var
