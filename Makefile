# Developer entry points. Every target installs what it needs first (a .venv from pyproject.toml).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= config.toml

.PHONY: install run test lint bench clean

install: $(VENV)/.install-stamp

$(VENV)/.install-stamp: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "invsync needs Python 3.11 or newer")'
	@echo "invsync: installing invsync and its dependencies into $(VENV) (first run, or pyproject.toml changed; about a minute) ..."
	@$(PYTHON) -m venv $(VENV)
	@# pip's own output goes to $(VENV)/install.log, shown only when the install fails.
	@{ $(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip \
	   && $(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'; \
	 } > $(VENV)/install.log 2>&1 || { cat $(VENV)/install.log; echo "invsync: the install failed (log: $(VENV)/install.log)"; exit 1; }
	@echo "invsync: installed $$($(BIN)/python -m pip --disable-pip-version-check list 2>/dev/null | tail -n +3 | wc -l | tr -d ' ') packages into $(VENV) (pip's log: $(VENV)/install.log)"
	@touch $@

# The daemon on $(CONFIG) next to the local marketplace simulators (`invsync simulate`), with
# development credentials and the demo stock (deploy/run-dev.sh says how). Ctrl-C stops both.
run: install
	@sh deploy/run-dev.sh $(BIN) $(CONFIG)

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy .
	$(BIN)/lint-imports

# Extra pytest arguments: make test ARGS="-k shopify -x". Progress as a count of tests run
# ([ 120/1084]), a line per skip/failure (-ra, in pyproject) and the 15 slowest at the end.
ARGS ?=
test: install lint
	$(BIN)/python -m pytest -o console_output_style=count --durations=15 $(ARGS)

bench: install
	$(BIN)/invsync bench reserve -c $(CONFIG)
	$(BIN)/invsync bench propagate -c $(CONFIG)
	$(BIN)/invsync bench channels -c $(CONFIG)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
