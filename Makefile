# Every install step lives here: a fresh machine needs only Python 3.11+.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PY     := $(BIN)/python

.PHONY: install demo test test-fast checks niced-checks lint lint-style lint-types lint-layers lint-workflows unit schemas check-schemas docs validate-desired dist constraints bench clean

# uv installs the set in seconds where pip took 35 s (parallel downloads, no byte-compiling of every
# file). The interpreter's own pip brings it (22.3+ installs into another environment: --python);
# one without that pip gets pip into the venv first (ensurepip, 7 s). Asking pip itself took 1.5 s.
export PIP_HAS_PYTHON_OPTION := import pip, sys; sys.exit(tuple(map(int, pip.__version__.split(".")[:2])) < (22, 3))
$(STAMP): pyproject.toml Makefile
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	$(PYTHON) -m venv --without-pip $(VENV)
	test -x $(BIN)/uv || if $(PYTHON) -c "$$PIP_HAS_PYTHON_OPTION" 2>/dev/null; \
	  then $(PYTHON) -m pip --python $(PY) install --quiet uv; \
	  else $(PY) -m ensurepip --default-pip >/dev/null && $(BIN)/pip install --quiet uv; fi
	$(BIN)/uv pip install --quiet --python $(PY) -e '.[dev]' pip
	touch $(STAMP)

install: $(STAMP)

## demo: start the local server, plan, apply, plan again, write reports under demo-out/
demo: $(STAMP)
	$(PY) -m reconcile.emulator.demo desired/ --out demo-out

## test: lint, schema freshness, validate desired/, and the whole suite; the checks run beside the
## suite (much of the suite waits on rate limits and processes: they fill the wait)
test: $(STAMP)
	@$(MAKE) --no-print-directory -j2 niced-checks unit || { test ! -s $(VENV)/checks.failed || \
	  { printf '\nmake test: the checks failed:\n'; cat $(VENV)/checks.failed; }; exit 2; }

checks: lint check-schemas validate-desired

# Beside the suite, the checks take only the CPU its workers leave (they wait on much of it). Every
# check runs (-k); the output of any that fails is shown when they end, and again at the very end.
niced-checks: $(STAMP)
	@rm -f $(VENV)/checks.failed
	@if nice -n 19 $(MAKE) --no-print-directory -k checks > $(VENV)/checks.log 2>&1; \
	then printf "\nchecks passed: ruff, mypy, import contracts, action and workflows, schemas, desired/\n"; \
	else mv $(VENV)/checks.log $(VENV)/checks.failed; cat $(VENV)/checks.failed; exit 1; fi

# Why bytecode is written, 6 workers and one collection first: docs/testing.md.
PYTEST := env -u PYTHONDONTWRITEBYTECODE $(BIN)/pytest -q -n 6 --dist loadgroup

# Two collections, each of half the test files, one per core; a failure shows again in the run itself.
COLLECT := env -u PYTHONDONTWRITEBYTECODE $(BIN)/pytest -q --collect-only -p no:xdist
WARM := test -d tests/__pycache__ || { \
	  $(COLLECT) $$(ls tests/test_*.py | awk 'NR % 2') >/dev/null 2>&1 & \
	  $(COLLECT) $$(ls tests/test_*.py | awk 'NR % 2 == 0') >/dev/null 2>&1; wait; }

unit: $(STAMP)
	@$(WARM)
	$(PYTEST)

## test-fast: the suite without the tests marked slow or network (under a minute on 2 cores)
test-fast: $(STAMP)
	@$(WARM)
	$(PYTEST) -m "not slow and not network"

lint: lint-style lint-types lint-layers lint-workflows

lint-style: $(STAMP)
	$(BIN)/ruff check reconcile tests bench
	$(BIN)/ruff format --check reconcile tests bench

lint-types: $(STAMP)
	$(BIN)/mypy reconcile

lint-layers: $(STAMP)
	$(BIN)/lint-imports --no-cache

# The action and workflows: GitHub's schemas (vendored in check-jsonschema) and zizmor, offline.
lint-workflows: $(STAMP)
	$(BIN)/check-jsonschema --builtin-schema vendor.github-actions action.yml
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	$(BIN)/check-jsonschema --builtin-schema custom.github-workflows-require-timeout .github/workflows/*.yml
	$(BIN)/zizmor --offline --min-severity medium action.yml .github/workflows

schemas: $(STAMP)
	$(PY) -m reconcile.schemas.generate --write

check-schemas: $(STAMP)
	$(PY) -m reconcile.schemas.generate --check

## docs: the exit-code and environment tables in docs/ again, from the code (tests/test_reference.py checks them)
docs: $(STAMP)
	$(PY) -m reconcile.reference --write

validate-desired: $(STAMP)
	$(BIN)/descope-reconcile validate desired/

## dist: the sdist and wheel in dist/ (version from the git tag), checked as PyPI will read them, and
## the hashed constraints the action installs from (constraints/descope-reconcile-VERSION.txt: commit it)
dist: $(STAMP)
	rm -rf dist
	$(BIN)/uv build --quiet --python $(PY) --out-dir dist
	$(BIN)/twine check --strict dist/*
	$(MAKE) --no-print-directory constraints DIST=dist

# The wheel in $(DIST) and its whole dependency set resolved for every platform and Python 3.11+ (uv),
# each pinned with the hash of every file it has; outside dist/, which PyPI would be sent.
DIST        ?= dist
CONSTRAINTS ?= constraints
constraints: $(STAMP)
	@wheel=$$(ls $(DIST)/descope_reconcile-*-py3-none-any.whl) && \
	version=$$(basename "$$wheel" | cut -d- -f2) && \
	out="$(CONSTRAINTS)/descope-reconcile-$$version.txt" && mkdir -p "$(CONSTRAINTS)" && \
	{ echo "# descope-reconcile $$version and every package it needs, every file hashed: made by make dist."; \
	  echo "# The action installs exactly these: pip install --require-hashes --only-binary :all: -r <this file>"; \
	  printf 'descope-reconcile==%s \\\n' "$$version"; \
	  $(BIN)/pip hash "$$wheel" | sed -n 's/^--hash=/    --hash=/p'; \
	  $(BIN)/uv pip compile pyproject.toml --quiet --universal --python-version 3.11 --generate-hashes \
	    --no-header --no-annotate; \
	} > "$$out.tmp" && mv "$$out.tmp" "$$out" && echo "wrote $$out"

$(VENV)/.bench-installed: $(STAMP)
	$(BIN)/uv pip install --quiet --python $(PY) -e '.[dev,bench]'
	touch $@

## bench: measured speed, request economy and scale, into docs/performance.md; under 10 minutes
bench: $(VENV)/.bench-installed
	$(PY) -m bench

clean:
	rm -rf $(VENV) demo-out dist .mypy_cache .pytest_cache .ruff_cache
