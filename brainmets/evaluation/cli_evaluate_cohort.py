"""`brainmets evaluate-cohort`: pool per-scan metrics into the cohort table, its summary and a figure."""

from __future__ import annotations

import argparse
from pathlib import Path

from brainmets.evaluation.cli_evaluate import add_definition_argument

HELP = "Pool per-scan evaluation tables: cohort table, summary (mean, median, IQR, sensitivity by size), figure."


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the options of `brainmets evaluate-cohort`."""
    parser.add_argument("metrics", nargs="+", type=Path, help="per-scan tables written by `brainmets evaluate`")
    parser.add_argument("--out", required=True, type=Path, help="cohort table, one row per scan (TSV)")
    parser.add_argument("--summary", required=True, type=Path, help="cohort summary, one row per metric (TSV)")
    parser.add_argument("--figure", type=Path, help="sensitivity-by-lesion-size figure (PNG)")
    add_definition_argument(parser, "the definition the per-scan tables were scored with (`brainmets evaluate`)")


def run(args: argparse.Namespace) -> None:
    """Read the per-scan tables and write the cohort table, summary and figure."""
    from brainmets.evaluation.cohort import plot_sensitivity_by_size, read_scan_metrics, summarise_cohort
    from brainmets.io import write_tsv

    scans = read_scan_metrics(args.metrics, args.definition)
    summary = summarise_cohort(scans, args.definition)
    write_tsv(scans, args.out)
    write_tsv(summary, args.summary)
    if args.figure is not None:
        plot_sensitivity_by_size(summary, args.figure, args.definition)
