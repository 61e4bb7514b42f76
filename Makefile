# brainmets: two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NIIVUE := viewer/node_modules/@niivue/niivue/dist/niivue.umd.js
CORES  ?= all
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: env scorers demo lint test test-fast lock clean

env: $(STAMP) $(NIIVUE)

# Idempotent: rebuilt only when the lock or the package metadata change.
$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || { rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install -q pip==26.3
	$(BIN)/python -m pip install -q -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

# The review pages' viewer: NiiVue from npm, pinned with its integrity hash in viewer/package-lock.json; the
# pages inline its browser bundle, so nothing is fetched when one opens. Reinstalled only when the lock changes.
$(NIIVUE): viewer/package-lock.json
	@command -v npm >/dev/null || { echo "make env: npm not found: install Node.js and npm (Debian: apt-get install npm), which fetch the review page's viewer (viewer/package-lock.json)" >&2; exit 1; }
	npm ci --prefix viewer --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $@

# The whole workflow on the demo cohort, then its HTML report: the plain commands of the README.
# Snakemake applies profiles/default (the limit on concurrent GPU jobs) by itself.
demo: env
	$(BIN)/snakemake --cores $(CORES)
	$(BIN)/snakemake --cores $(CORES) --report results/report.html

# The official BraTS-2025 scorer (BraTS-evaluation, panoptica) for the tests that compare brainmets
# with it: its own environment, as panoptica pins numpy < 2.3; rebuilt only when its lock changes.
SCORERS := .venv-scorers
scorers: $(SCORERS)/.installed
$(SCORERS)/.installed: requirements-scorers.lock
	test -x $(SCORERS)/bin/python || { rm -rf $(SCORERS) && $(PYTHON) -m venv $(SCORERS); }
	$(SCORERS)/bin/python -m pip install -q pip==26.3
	$(SCORERS)/bin/python -m pip install -q -r requirements-scorers.lock
	touch $@

# Style and types, as CI checks them: lint and import order, formatting, mypy on the package, Snakefile
# formatting (settings in pyproject.toml).
lint: env
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy brainmets
	$(BIN)/snakefmt --check Snakefile rules

# Leaves the machine as it was: tests that install packages, write /etc or start daemons (the SLURM
# cluster) are skipped unless BRAINMETS_SYSTEM_TESTS=1 (.ci/run sets it).
test: env scorers
	$(BIN)/python -m pytest

# The fast part, for development: no training, real preprocessing, Snakemake runs or system tests.
test-fast: env
	$(BIN)/python -m pytest -m "not slow and not workflow and not system"

# Re-resolve the direct requirements into the exact lock (run after editing requirements.in).
lock:
	rm -rf .lockenv && $(PYTHON) -m venv .lockenv && .lockenv/bin/python -m pip install -q pip==26.3
	.lockenv/bin/python -m pip install -q -r requirements.in
	.lockenv/bin/python -m pip freeze --exclude-editable | sort > requirements.lock
	rm -rf .lockenv

clean:
	rm -rf results/* .snakemake resources && touch results/.gitkeep
