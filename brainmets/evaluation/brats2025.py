"""Lesion-wise scores of the BraTS-2025 metastasis scorer (`brats2025`): the `BraTS-evaluation` package.

That package runs panoptica (`brats-evaluate --config mets`) and then `brats-parse-metrics mets` with its
default thresholds. On a binary lesion mask, scored as the enhancing-tumour group:
- instances are 26-connected components of truth and prediction;
- they are matched one to one by maximum bipartite matching of their Dice (any overlap can match; the
  assignment minimises the summed 1 - Dice over overlapping pairs);
- each matched pair has a Dice, an HD95 (mm; 95th percentile of the pooled distances between MedPy
  surface voxels) and an NSD (normalised surface Dice; tolerance the smallest voxel edge);
- `all_instance_*`: matched pairs are true positives; precision, recall and F1 (0 with no match);
- ground-truth lesions of at least 20 mm^3 are large, the others small. Large: a matched lesion whose
  Dice reaches 0.1 is a true positive, any other a false negative; its scores, and Dice 0, NSD 0 and
  HD95 373 mm for each missed large lesion and each false-positive component, make the lesion-wise
  means and (population) standard deviations, NaN when no large lesion exists. Small: a matched lesion
  whose Dice reaches 0.1 is a true positive, every other small lesion a false negative;
- `global_*`: Dice, NSD and HD95 of the whole masks; without any overlap Dice 0, NSD 0, HD95 373 mm;
- both masks empty: true positives, false positives and false negatives 0, every score NaN.

Where the official command line departs from physical units, this module keeps them: it reads the NIfTI
spacing through SimpleITK and applies it to reversed axes, and its global HD95 and NSD ignore the spacing
(HD95 in voxels, NSD tolerance half a voxel). Here every distance is in mm on the right axes and the
global NSD tolerance is half the smallest voxel edge, so the numbers are equal on 1 mm isotropic grids.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from brainmets.components import label_lesions
from brainmets.evaluation.surface import voxel_surface_distances
from brainmets.io import float_triple

#: HD95 (mm) given to a missed large lesion, a false-positive component, or masks that do not overlap
HD95_PENALTY_MM = 373.0

#: ground-truth lesions of at least this volume (mm^3) are large (`brats-parse-metrics mets --vol_threshold`)
LARGE_LESION_MM3 = 20.0

#: lowest Dice of a matched lesion that counts as detected (`brats-parse-metrics mets --overlap_threshold`)
DETECTION_DICE = 0.1

#: lowest Dice of a pair that may be matched (the `mets` configuration's matching threshold)
MATCHING_DICE = 1e-6

#: columns of the per-scan row, in the order `brats-parse-metrics mets` writes them (region suffix dropped)
COLUMNS = [
    *(f"all_instance_{k}" for k in ("tp", "fp", "fn", "prec", "rec", "f1")),
    *(f"large_instance_{k}" for k in ("tp", "fp", "fn", "prec", "rec", "f1")),
    *(f"lesionwise_{m}_{s}" for m in ("dsc", "hd95", "nsd") for s in ("mean", "std")),
    *(f"small_instance_{k}" for k in ("tp", "fn", "fp", "prec", "rec", "f1")),
    "global_dsc",
    "global_nsd",
    "global_hd95",
]


#: columns of the per-lesion table
_LESION_COLUMNS = ["lesion", "voxels", "volume_mm3", "large", "matched", "detected", "dice", "hd95_mm", "nsd"]


def _ratio(numerator: float, denominator: float, empty: float) -> float:
    """numerator / denominator, or `empty` when the denominator is 0."""
    return numerator / denominator if denominator else empty


def _surface_scores(
    truth: np.ndarray, pred: np.ndarray, spacing: tuple[float, float, float], tolerance_mm: float
) -> tuple[float, float]:
    """HD95 (mm, pooled surface-voxel distances) and NSD (0-1) at `tolerance_mm` of two non-empty masks."""
    truth_to_pred, pred_to_truth = voxel_surface_distances(truth, pred, spacing)
    hd95 = float(np.percentile(np.hstack((truth_to_pred, pred_to_truth)), 95))
    near_truth = np.count_nonzero(truth_to_pred <= tolerance_mm) / truth_to_pred.size
    near_pred = np.count_nonzero(pred_to_truth <= tolerance_mm) / pred_to_truth.size
    far_truth = np.count_nonzero(truth_to_pred > tolerance_mm) / truth_to_pred.size
    far_pred = np.count_nonzero(pred_to_truth > tolerance_mm) / pred_to_truth.size
    nsd = (near_truth + near_pred) / (near_truth + near_pred + far_truth + far_pred + sys.float_info.min)
    return hd95, float(nsd)


def _detection(tp: int, fp: int, fn: int, prefix: str) -> dict[str, float]:
    """Counts, precision, recall and F1 (0 when undefined) of one lesion class, as `brats-parse-metrics` writes them."""
    return {
        f"{prefix}_tp": tp,
        f"{prefix}_fp": fp,
        f"{prefix}_fn": fn,
        f"{prefix}_prec": _ratio(tp, tp + fp, 0.0),
        f"{prefix}_rec": _ratio(tp, tp + fn, 0.0),
        f"{prefix}_f1": _ratio(2 * tp, 2 * tp + fp + fn, 0.0),
    }


def _global_scores(truth: np.ndarray, pred: np.ndarray, spacing: tuple[float, float, float]) -> dict[str, float]:
    """Dice, NSD (tolerance half the smallest voxel edge) and HD95 (mm) of the whole masks."""
    if not truth.any() and not pred.any():
        return {"global_dsc": math.nan, "global_nsd": math.nan, "global_hd95": math.nan}
    overlap = np.count_nonzero(truth & pred)
    if overlap == 0:
        return {"global_dsc": 0.0, "global_nsd": 0.0, "global_hd95": HD95_PENALTY_MM}
    hd95, nsd = _surface_scores(truth, pred, spacing, 0.5 * min(spacing))
    dsc = 2.0 * overlap / (np.count_nonzero(truth) + np.count_nonzero(pred))
    return {"global_dsc": dsc, "global_nsd": nsd, "global_hd95": hd95}


def evaluate_brats2025(
    truth: np.ndarray, pred: np.ndarray, spacing_mm: tuple[float, float, float]
) -> tuple[dict[str, float], pd.DataFrame]:
    """The BraTS-2025 metastasis scores of one scan (counts, 0-1 ratios, HD95 in mm) under their official names.

    Also returns one row per ground-truth lesion: lesion, voxels, volume_mm3, large, matched, detected,
    dice, and for large matched lesions hd95_mm and nsd.
    """
    t, p = np.asarray(truth).astype(bool), np.asarray(pred).astype(bool)
    spacing = float_triple(spacing_mm)
    references, n_ref = label_lesions(t)
    components, n_pred = label_lesions(p)

    # Dice of every overlapping (lesion, component) pair, then the one-to-one assignment of least 1 - Dice
    both = (references > 0) & (components > 0)
    pairs, shared = np.unique(references[both].astype(np.int64) * (n_pred + 1) + components[both], return_counts=True)
    pair_ref, pair_pred = np.divmod(pairs, n_pred + 1)
    ref_voxels = np.bincount(references.ravel(), minlength=n_ref + 1)
    pred_voxels = np.bincount(components.ravel(), minlength=n_pred + 1)
    pair_dice = 2.0 * shared / (ref_voxels[pair_ref] + pred_voxels[pair_pred])
    cost = np.full((n_ref, n_pred), 1.0 + 1e-6)
    eligible = pair_dice >= MATCHING_DICE
    cost[pair_ref[eligible] - 1, pair_pred[eligible] - 1] = 1.0 - pair_dice[eligible]
    rows, cols = linear_sum_assignment(cost)
    matched = {int(r) + 1: int(c) + 1 for r, c in zip(rows, cols, strict=True) if cost[r, c] < 1.0}

    tp = len(matched)
    row: dict[str, float] = {
        "all_instance_tp": tp,
        "all_instance_fp": n_pred - tp,
        "all_instance_fn": n_ref - tp,
        "all_instance_prec": _ratio(tp, n_pred, math.nan),
        "all_instance_rec": _ratio(tp, n_ref, math.nan),
        "all_instance_f1": _ratio(tp, tp + 0.5 * (n_pred - tp) + 0.5 * (n_ref - tp), math.nan),
    }
    voxel_mm3 = spacing[0] * spacing[1] * spacing[2]
    false_positives = n_pred - tp
    dice, hd95, nsd = [], [], []  # of large lesions, then false positives
    large = {"tp": 0, "fn": 0}
    small = {"tp": 0, "fn": 0}
    lesions = []
    for lesion in range(1, n_ref + 1):
        volume_mm3 = ref_voxels[lesion] * voxel_mm3
        is_large = volume_mm3 >= LARGE_LESION_MM3
        counts = large if is_large else small
        lesion_dice, lesion_hd95, lesion_nsd = 0.0, math.nan, math.nan
        if lesion in matched:
            lesion_dice = float(pair_dice[(pair_ref == lesion) & (pair_pred == matched[lesion])][0])
            if is_large:
                lesion_hd95, lesion_nsd = _surface_scores(
                    references == lesion, components == matched[lesion], spacing, min(spacing)
                )
        elif is_large:
            lesion_hd95, lesion_nsd = HD95_PENALTY_MM, 0.0
        detected = lesion in matched and lesion_dice >= DETECTION_DICE
        counts["tp" if detected else "fn"] += 1
        if is_large:
            dice.append(lesion_dice)
            hd95.append(lesion_hd95)
            nsd.append(lesion_nsd)
        lesions.append(
            {
                "lesion": lesion,
                "voxels": int(ref_voxels[lesion]),
                "volume_mm3": float(volume_mm3),
                "large": bool(is_large),
                "matched": lesion in matched,
                "detected": detected,
                "dice": lesion_dice,
                "hd95_mm": lesion_hd95,
                "nsd": lesion_nsd,
            }
        )
    dice += [0.0] * false_positives
    hd95 += [HD95_PENALTY_MM] * false_positives
    nsd += [0.0] * false_positives

    has_large = large["tp"] + large["fn"] > 0
    has_small = small["tp"] + small["fn"] > 0
    if has_large:
        row.update(_detection(large["tp"], false_positives, large["fn"], "large_instance"))
    else:
        row.update({f"large_instance_{k}": math.nan for k in ("tp", "fp", "fn", "prec", "rec", "f1")})
    for name, values in (("dsc", dice), ("hd95", hd95), ("nsd", nsd)):
        row[f"lesionwise_{name}_mean"] = float(np.mean(values)) if has_large else math.nan
        row[f"lesionwise_{name}_std"] = float(np.std(values)) if has_large else math.nan
    if has_small:
        row.update(_detection(small["tp"], false_positives, small["fn"], "small_instance"))
    else:
        row.update({f"small_instance_{k}": math.nan for k in ("tp", "fp", "fn", "prec", "rec", "f1")})
    row.update(_global_scores(t, p, spacing))
    return {column: row[column] for column in COLUMNS}, pd.DataFrame(lesions, columns=_LESION_COLUMNS)
