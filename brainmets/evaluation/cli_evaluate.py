"""`brainmets evaluate`: one scan's predicted mask against its ground truth, as a one-row metrics table.

`--definition brats2023` (default) writes the BraTS-2023 scorer's voxel and lesion-wise scores with the
detection sensitivity by lesion size, and the per-lesion table; `brats2025` writes the BraTS-2025 scorer's
numbers under its own names (`brainmets.evaluation.brats2025`).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pandas as pd

from brainmets.evaluation.brats2025 import evaluate_brats2025
from brainmets.evaluation.metrics import evaluate_segmentation
from brainmets.io import check_same_grid, load_mask, voxel_spacing_mm, write_tsv

HELP = "Score a predicted lesion mask against the ground truth (BraTS-2023 or BraTS-2025 lesion-wise scores)."

#: the scoring definitions: the official scorer each one equals
DEFINITIONS = {
    "brats2023": "BraTS-2023 lesion-wise code (dilation matching, surface-distance HD95)",
    "brats2025": "BraTS-evaluation package (panoptica: one-to-one matching, DSC, NSD, HD95)",
}
DEFAULT_DEFINITION = "brats2023"

#: two grids are the same when their voxel corners lie within this fraction of the smallest voxel edge
GRID_TOLERANCE_VOXELS = 0.01
#: what to do about a prediction that is not on the truth's grid
SAME_GRID_FIX = "evaluate both on the same grid (both native, or the truth mapped to patient space)"

#: identifying columns that precede the metrics in every row
ID_COLUMNS = ["patient_id", "timepoint", "truth", "pred"]


def evaluate_files(
    truth_path: str | os.PathLike[str],
    pred_path: str | os.PathLike[str],
    definition: str = DEFAULT_DEFINITION,
) -> tuple[dict[str, float], pd.DataFrame]:
    """Scores of a predicted mask file against a truth mask file on one grid (mm from the affine), and the lesion table."""
    truth_path, pred_path = Path(truth_path), Path(pred_path)
    (truth, truth_img), (pred, pred_img) = load_mask(truth_path, labels=True), load_mask(pred_path, labels=True)
    check_same_grid(
        truth_img,
        pred_img,
        truth_path,
        pred_path,
        SAME_GRID_FIX,
        tolerance_mm=GRID_TOLERANCE_VOXELS * voxel_spacing_mm(truth_img.affine).min(),
    )
    spacing = tuple(float(s) for s in voxel_spacing_mm(truth_img.affine))
    if definition == "brats2025":
        return evaluate_brats2025(truth, pred, spacing)
    metrics, match = evaluate_segmentation(truth, pred, spacing)
    return metrics, match.lesions


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the options of `brainmets evaluate`."""
    parser.add_argument("--truth", required=True, type=Path, help="ground-truth mask or label map (NIfTI, 0 = none)")
    parser.add_argument("--pred", required=True, type=Path, help="predicted mask on the same grid (NIfTI, 0 = none)")
    parser.add_argument("--out", required=True, type=Path, help="metrics table to write (TSV, one row)")
    parser.add_argument("--lesions", type=Path, help="also write the per-lesion table here (TSV)")
    parser.add_argument("--patient", default="", help="patient id written into the row")
    parser.add_argument("--timepoint", default="", help="timepoint written into the row")
    parser.add_argument(
        "--definition",
        choices=list(DEFINITIONS),
        default=DEFAULT_DEFINITION,
        help="; ".join(f"{name}: {text}" for name, text in DEFINITIONS.items()) + f" (default {DEFAULT_DEFINITION})",
    )


def run(args: argparse.Namespace) -> None:
    """Evaluate one scan and write its metrics row (and optionally its lesion table)."""
    metrics, lesions = evaluate_files(args.truth, args.pred, args.definition)
    ids = {"patient_id": args.patient, "timepoint": args.timepoint, "truth": str(args.truth), "pred": str(args.pred)}
    write_tsv(pd.DataFrame([{**ids, **metrics}]), args.out)
    if args.lesions is not None:
        write_tsv(lesions, args.lesions)
