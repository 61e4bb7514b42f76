"""Figures of merit that tests and benchmarks compute on the pipeline's results (not part of the pipeline)."""

from __future__ import annotations

import numpy as np
from scipy.stats import mannwhitneyu


def misclassification_auroc(
    uncertainty: np.ndarray, label: np.ndarray, truth: np.ndarray, brain_mask: np.ndarray
) -> float:
    """AUROC (0..1) with which an uncertainty map ranks misclassified above correct brain voxels; NaN if none."""
    brain = np.asarray(brain_mask, dtype=bool)
    wrong = (np.asarray(label) > 0)[brain] != (np.asarray(truth) > 0)[brain]
    values = np.asarray(uncertainty, dtype=np.float64)[brain]
    if wrong.all() or not wrong.any():
        return float("nan")
    # the Mann-Whitney U of the misclassified group over the correct one, normalised, is the AUROC (ties count 1/2)
    u = mannwhitneyu(values[wrong], values[~wrong], alternative="two-sided", method="asymptotic").statistic
    return float(u / (wrong.sum() * (~wrong).sum()))


def mean_displacement_mm(matrix_a: np.ndarray, matrix_b: np.ndarray, points_ras_mm: np.ndarray) -> float:
    """Mean distance (mm) between where two 4x4 RAS affines send the same (N, 3) RAS points (mm)."""
    points = np.asarray(points_ras_mm, dtype=float)
    a = points @ np.asarray(matrix_a)[:3, :3].T + np.asarray(matrix_a)[:3, 3]
    b = points @ np.asarray(matrix_b)[:3, :3].T + np.asarray(matrix_b)[:3, 3]
    return float(np.linalg.norm(a - b, axis=1).mean())
