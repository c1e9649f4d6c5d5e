# Developer entry points. Every target installs what it needs first (a .venv from pyproject.toml).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= config.toml

.PHONY: install run test lint bench clean

install: $(VENV)/.install-stamp

$(VENV)/.install-stamp: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "invsync needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@

# A development secret for the wholesale webhook channel of the shipped config.toml (production
# passes secrets through the service's environment file, see docs/operations.md).
run: install
	INVSYNC_WHOLESALE_SECRET=$${INVSYNC_WHOLESALE_SECRET:-dev-secret} $(BIN)/invsync run -c $(CONFIG)

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy .

test: install lint
	$(BIN)/python -m pytest

bench: install
	$(BIN)/invsync bench reserve -c $(CONFIG)
	$(BIN)/invsync bench propagate -c $(CONFIG)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
