"""`brainmets evaluate`: one scan's predicted mask against its ground truth, as a one-row metrics table."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from brainmets.errors import BrainmetsError
from brainmets.evaluation.metrics import MIN_LESION_VOXELS, LesionMatch, evaluate_segmentation
from brainmets.io import load_nifti, voxel_spacing_mm, write_tsv

HELP = "Score a predicted lesion mask against the ground truth (voxel and BraTS-METS lesion-wise metrics)."

#: two grids are the same when their voxel corners lie within this fraction of the smallest voxel edge
GRID_TOLERANCE_VOXELS = 0.01

#: identifying columns that precede the metrics in every row
ID_COLUMNS = ["patient_id", "timepoint", "truth", "pred"]


def load_mask(path: str | os.PathLike[str]) -> tuple[np.ndarray, nib.Nifti1Image]:
    """Load a lesion mask or label map (0 = background, positive integers = lesion) as (boolean array, image)."""
    img = load_nifti(path, allow_constant=True)
    data = np.asanyarray(img.dataobj)
    valid = (data >= 0) & (data == np.round(data))
    if not valid.all():
        values = np.unique(data[~valid])
        shown = ", ".join(f"{v:g}" for v in values[:5]) + (", ..." if values.size > 5 else "")
        raise BrainmetsError(
            f"{path}: a mask must hold 0 (background) and positive integers (lesion), found {shown}; "
            "threshold probability maps (e.g. > 0.5) before evaluating"
        )
    return data > 0, img


def check_same_grid(truth: nib.Nifti1Image, pred: nib.Nifti1Image, truth_path: Path, pred_path: Path) -> None:
    """Refuse two masks whose shapes differ or whose voxel corners lie further apart than the tolerance (mm)."""
    if truth.shape != pred.shape:
        raise BrainmetsError(
            f"{pred_path}: shape {tuple(pred.shape)} differs from the truth {truth_path} {tuple(truth.shape)}; "
            "evaluate both on the same grid (both native, or the truth mapped to patient space)"
        )
    corners = np.array(np.meshgrid(*[[0, n - 1] for n in truth.shape], indexing="ij")).reshape(3, -1).T
    offset_mm = np.linalg.norm(
        nib.affines.apply_affine(truth.affine, corners) - nib.affines.apply_affine(pred.affine, corners), axis=1
    ).max()
    tolerance_mm = GRID_TOLERANCE_VOXELS * voxel_spacing_mm(truth.affine).min()
    if offset_mm > tolerance_mm:
        raise BrainmetsError(
            f"{pred_path}: its affine places voxels up to {offset_mm:.3g} mm away from those of the truth "
            f"{truth_path}; evaluate both on the same grid (both native, or the truth mapped to patient space)"
        )


def evaluate_files(
    truth_path: str | os.PathLike[str],
    pred_path: str | os.PathLike[str],
    min_lesion_voxels: int = MIN_LESION_VOXELS,
) -> tuple[dict[str, float], LesionMatch]:
    """Metrics of a predicted mask file against a truth mask file on the same grid (spacing from the affine)."""
    truth_path, pred_path = Path(truth_path), Path(pred_path)
    (truth, truth_img), (pred, pred_img) = load_mask(truth_path), load_mask(pred_path)
    check_same_grid(truth_img, pred_img, truth_path, pred_path)
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
