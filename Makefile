# make demo | make test | make local — each creates .venv and installs what it needs first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed-$(shell cat requirements-dev.txt pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install test demo local policies clean

install: $(INSTALLED)

$(INSTALLED): requirements-dev.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	rm -f $(VENV)/.installed-*
	touch $@

test: install
	$(BIN)/python -m pytest -n 2  # two workers, each with its own embedded AWS

demo: install
	$(BIN)/python -m local.demo

local: install
	$(BIN)/python -m local

# Regenerate .chalice/policy-<stage>-<function>.json from what the code declares.
policies: install
	$(BIN)/python -m chalicelib.permissions .chalice

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build
