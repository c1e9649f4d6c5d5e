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

# The daemon on $(CONFIG) next to the local marketplace simulators (`invsync simulate`), with
# development credentials and the demo stock (deploy/run-dev.sh says how). Ctrl-C stops both.
run: install
	@sh deploy/run-dev.sh $(BIN) $(CONFIG)

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy .
	$(BIN)/lint-imports

# Extra pytest arguments: make test ARGS="-k shopify -x"
ARGS ?=
test: install lint
	$(BIN)/python -m pytest $(ARGS)

bench: install
	$(BIN)/invsync bench reserve -c $(CONFIG)
	$(BIN)/invsync bench propagate -c $(CONFIG)
	$(BIN)/invsync bench channels -c $(CONFIG)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
