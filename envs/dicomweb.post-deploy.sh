#!/usr/bin/env bash
# Snakemake runs this once after creating the environment: install brainmets itself (the workflow's
# commands) without touching the pinned packages above. Run from the repository root.
set -euo pipefail
pip install --no-deps -e .
