# Every install step lives here: a fresh machine needs only Python 3.11+.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PY     := $(BIN)/python

.PHONY: install demo test test-fast lint unit schemas check-schemas validate-desired dist bench clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## demo: start the local server, plan, apply, plan again, write reports under demo-out/
demo: $(STAMP)
	$(PY) -m reconcile.emulator.demo desired/ --out demo-out

## test: lint, schema freshness, validate desired/, and the whole suite
test: lint check-schemas validate-desired unit

unit: $(STAMP)
	$(BIN)/pytest -q -n 2

## test-fast: the suite without the tests marked slow or network (under a minute on 2 cores)
test-fast: $(STAMP)
	$(BIN)/pytest -q -n 2 -m "not slow and not network"

lint: $(STAMP)
	$(BIN)/ruff check reconcile tests bench
	$(BIN)/ruff format --check reconcile tests bench
	$(BIN)/mypy reconcile
	$(BIN)/lint-imports --no-cache
	# The action and workflows: GitHub's schemas (vendored in check-jsonschema) and zizmor, offline.
	$(BIN)/check-jsonschema --builtin-schema vendor.github-actions action.yml
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	$(BIN)/check-jsonschema --builtin-schema custom.github-workflows-require-timeout .github/workflows/*.yml
	$(BIN)/zizmor --offline --min-severity medium action.yml .github/workflows

schemas: $(STAMP)
	$(PY) -m reconcile.schemas.generate --write

check-schemas: $(STAMP)
	$(PY) -m reconcile.schemas.generate --check

validate-desired: $(STAMP)
	$(BIN)/descope-reconcile validate desired/

## dist: the sdist and wheel in dist/ (version from the git tag), checked as PyPI will read them
dist: $(STAMP)
	rm -rf dist
	$(PY) -m build --outdir dist
	$(BIN)/twine check --strict dist/*

$(VENV)/.bench-installed: $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $@

## bench: measured speed, request economy and scale (see README, Performance); under 10 minutes
bench: $(VENV)/.bench-installed
	$(PY) -m bench

clean:
	rm -rf $(VENV) demo-out dist .mypy_cache .pytest_cache .ruff_cache
