# The two entry points: `make demo` and `make test`. Both set up what they need first.
PYTHON_HOST ?= /usr/bin/python3
VENV        ?= .venv
PY          := $(VENV)/bin/python
STAMP       := $(VENV)/.installed
PYTEST_ARGS ?=
# Two pytest-xdist workers (QEMU guests use one core each: two at once on two cores), test
# groups as tests/parallel.py makes them, longest first. Serial: PYTEST_ARGS=-n0.
PYTEST_XDIST ?= -n 2 --dist loadgroup

.PHONY: all setup host venv demo test lint typecheck unit bench clean

all: test

host:
	./scripts/setup-host

$(STAMP): pyproject.toml | host
	$(PYTHON_HOST) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

venv: host $(STAMP)

setup: venv

# Build the default rescue media for this machine and boot it in QEMU.
demo: setup
	$(VENV)/bin/mkmedia demo

lint: setup
	$(VENV)/bin/ruff check mkmedia rescue_runtime tests bench
	$(VENV)/bin/ruff format --check mkmedia rescue_runtime tests bench

typecheck: setup
	$(VENV)/bin/mypy

# The whole suite: lint, types, unit, integration and QEMU boot tests.
test: lint typecheck
	$(PY) -m pytest $(PYTEST_XDIST) $(PYTEST_ARGS)

unit: setup
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

bench: setup
	$(PY) -m bench $(BENCH)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
