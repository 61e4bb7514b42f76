# brainmets: two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CORES  ?= all
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: env scorers demo test lock clean

env: $(STAMP)

# Idempotent: rebuilt only when the lock or the package metadata change.
$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q pip==26.3
	$(BIN)/python -m pip install -q -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

# The whole workflow on the demo cohort, then its HTML report. The default profile (not found by
# Snakemake on its own, the Snakefile being at the root) limits concurrent GPU jobs.
PROFILE := --workflow-profile workflow/profiles/default
demo: env
	$(BIN)/snakemake $(PROFILE) --cores $(CORES)
	$(BIN)/snakemake $(PROFILE) --cores $(CORES) --report results/report.html

# The official BraTS-2025 scorer (BraTS-evaluation, panoptica) for the tests that compare brainmets
# with it: its own environment, as panoptica pins numpy < 2.3; rebuilt only when its lock changes.
SCORERS := .venv-scorers
scorers: $(SCORERS)/.installed
$(SCORERS)/.installed: requirements-scorers.lock
	test -x $(SCORERS)/bin/python || $(PYTHON) -m venv $(SCORERS)
	$(SCORERS)/bin/python -m pip install -q pip==26.3
	$(SCORERS)/bin/python -m pip install -q -r requirements-scorers.lock
	touch $@

test: env scorers
	$(BIN)/python -m pytest

# Re-resolve the direct requirements into the exact lock (run after editing requirements.in).
lock:
	rm -rf .lockenv && $(PYTHON) -m venv .lockenv && .lockenv/bin/python -m pip install -q pip==26.3
	.lockenv/bin/python -m pip install -q -r requirements.in
	.lockenv/bin/python -m pip freeze --exclude-editable | sort > requirements.lock
	rm -rf .lockenv

clean:
	rm -rf results/* .snakemake resources && touch results/.gitkeep
