"""One scan's predicted mask file against its truth mask file, by a scoring definition of the settings."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from brainmets.evaluation.brats2025 import evaluate_brats2025
from brainmets.evaluation.metrics import evaluate_segmentation
from brainmets.evaluation.settings import EvaluationSettings
from brainmets.io import check_same_grid, float_triple, load_mask, voxel_spacing_mm

#: two grids are the same when their voxel corners lie within this fraction of the smallest voxel edge
GRID_TOLERANCE_VOXELS = 0.01
#: what to do about a prediction that is not on the truth's grid
SAME_GRID_FIX = "evaluate both on the same grid (both native, or the truth mapped to patient space)"

#: identifying columns that precede the metrics in every row
ID_COLUMNS = ["patient_id", "timepoint", "truth", "pred"]


def evaluate_files(
    truth_path: str | os.PathLike[str],
    pred_path: str | os.PathLike[str],
    settings: EvaluationSettings,
) -> tuple[dict[str, float], pd.DataFrame]:
    """Scores and lesion table of a predicted mask file against a truth mask file on one grid (mm from the affine)."""
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
    spacing = float_triple(voxel_spacing_mm(truth_img.affine))
    if settings.definition == "brats2025":
        return evaluate_brats2025(truth, pred, spacing)
    metrics, match = evaluate_segmentation(truth, pred, spacing)
    return metrics, match.lesions
