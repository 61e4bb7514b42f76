"""`brainmets evaluate`: one scan's predicted mask against its ground truth, as a one-row metrics table.

`--definition brats2023` (default) writes the BraTS-2023 scorer's voxel and lesion-wise scores with the
detection sensitivity by lesion size, and the per-lesion table; `brats2025` writes the BraTS-2025 scorer's
numbers under its own names (`brainmets.evaluation.brats2025`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from brainmets.evaluation.settings import DEFINITIONS, EvaluationSettings

HELP = "Score a predicted lesion mask against the ground truth (BraTS-2023 or BraTS-2025 lesion-wise scores)."


def add_definition_argument(parser: argparse.ArgumentParser, what: str) -> None:
    """Declare `--definition` (the scoring definition; default that of `EvaluationSettings`)."""
    default = EvaluationSettings().definition
    parser.add_argument("--definition", choices=list(DEFINITIONS), default=default, help=f"{what} (default {default})")


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the options of `brainmets evaluate`."""
    parser.add_argument("--truth", required=True, type=Path, help="ground-truth mask or label map (NIfTI, 0 = none)")
    parser.add_argument("--pred", required=True, type=Path, help="predicted mask on the same grid (NIfTI, 0 = none)")
    parser.add_argument("--out", required=True, type=Path, help="metrics table to write (TSV, one row)")
    parser.add_argument("--lesions", type=Path, help="also write the per-lesion table here (TSV)")
    parser.add_argument("--patient", default="", help="patient id written into the row")
    parser.add_argument("--timepoint", default="", help="timepoint written into the row")
    add_definition_argument(parser, "; ".join(f"{name}: {text}" for name, text in DEFINITIONS.items()))


def run(args: argparse.Namespace) -> None:
    """Evaluate one scan and write its metrics row (and optionally its lesion table)."""
    import pandas as pd

    from brainmets.evaluation.scan import evaluate_files
    from brainmets.io import write_tsv

    metrics, lesions = evaluate_files(args.truth, args.pred, EvaluationSettings(definition=args.definition))
    ids = {"patient_id": args.patient, "timepoint": args.timepoint, "truth": str(args.truth), "pred": str(args.pred)}
    write_tsv(pd.DataFrame([{**ids, **metrics}]), args.out)
    if args.lesions is not None:
        write_tsv(lesions, args.lesions)
