"""`brainmets evaluate`: one scan's predicted mask against its ground truth, as a one-row metrics table."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pandas as pd

from brainmets.errors import BrainmetsError
from brainmets.evaluation.metrics import MIN_LESION_VOXELS, LesionMatch, evaluate_segmentation
from brainmets.io import check_same_grid, load_mask, voxel_spacing_mm, write_tsv

HELP = "Score a predicted lesion mask against the ground truth (voxel and BraTS-METS lesion-wise metrics)."

#: two grids are the same when their voxel corners lie within this fraction of the smallest voxel edge
GRID_TOLERANCE_VOXELS = 0.01
#: what to do about a prediction that is not on the truth's grid
SAME_GRID_FIX = "evaluate both on the same grid (both native, or the truth mapped to patient space)"

#: identifying columns that precede the metrics in every row
ID_COLUMNS = ["patient_id", "timepoint", "truth", "pred"]


def evaluate_files(
    truth_path: str | os.PathLike[str],
    pred_path: str | os.PathLike[str],
    min_lesion_voxels: int = MIN_LESION_VOXELS,
) -> tuple[dict[str, float], LesionMatch]:
    """Metrics of a predicted mask file against a truth mask file on the same grid (spacing from the affine)."""
    truth_path, pred_path = Path(truth_path), Path(pred_path)
    (truth, truth_img), (pred, pred_img) = load_mask(truth_path, labels=True), load_mask(pred_path, labels=True)
    check_same_grid(truth_img, pred_img, truth_path, pred_path, SAME_GRID_FIX,
                    tolerance_mm=GRID_TOLERANCE_VOXELS * voxel_spacing_mm(truth_img.affine).min())
    spacing = tuple(float(s) for s in voxel_spacing_mm(truth_img.affine))
    return evaluate_segmentation(truth, pred, spacing, min_lesion_voxels)


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the options of `brainmets evaluate`."""
    parser.add_argument("--truth", required=True, type=Path, help="ground-truth mask or label map (NIfTI, 0 = none)")
    parser.add_argument("--pred", required=True, type=Path, help="predicted mask on the same grid (NIfTI, 0 = none)")
    parser.add_argument("--out", required=True, type=Path, help="metrics table to write (TSV, one row)")
    parser.add_argument("--lesions", type=Path, help="also write the per-lesion table here (TSV)")
    parser.add_argument("--patient", default="", help="patient id written into the row")
    parser.add_argument("--timepoint", default="", help="timepoint written into the row")
    parser.add_argument(
        "--min-lesion-voxels",
        type=int,
        default=MIN_LESION_VOXELS,
        help=f"ground-truth lesions with fewer voxels are not scored (default {MIN_LESION_VOXELS})",
    )


def run(args: argparse.Namespace) -> None:
    """Evaluate one scan and write its metrics row (and optionally its lesion table)."""
    if args.min_lesion_voxels < 1:
        raise BrainmetsError(f"--min-lesion-voxels must be at least 1, got {args.min_lesion_voxels}")
    metrics, match = evaluate_files(args.truth, args.pred, args.min_lesion_voxels)
    ids = {"patient_id": args.patient, "timepoint": args.timepoint, "truth": str(args.truth), "pred": str(args.pred)}
    write_tsv(pd.DataFrame([{**ids, **metrics}]), args.out)
    if args.lesions is not None:
        write_tsv(match.lesions, args.lesions)
