"""How well lesion-level uncertainty separates false-positive lesions from true ones (benchmarks/review_flags.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from brainmets.components import label_lesions
from scipy import ndimage
from sklearn.metrics import roc_auc_score


def lesion_uncertainty(prediction: np.ndarray, entropy: np.ndarray, truth: np.ndarray) -> pd.DataFrame:
    """One row per predicted lesion (26-connected): voxels, mean entropy (bits), false_positive (no truth voxel)."""
    components, count = label_lesions(prediction > 0)
    ids = np.arange(1, count + 1)
    if not count:
        return pd.DataFrame({"voxels": [], "mean_entropy_bits": [], "false_positive": []})
    hits = ndimage.maximum((truth > 0).astype(np.uint8), components, ids)
    return pd.DataFrame(
        {
            "voxels": ndimage.sum_labels(np.ones(components.shape), components, ids).astype(int),
            "mean_entropy_bits": ndimage.mean(entropy.astype(np.float64), components, ids),
            "false_positive": np.asarray(hits) == 0,
        }
    )


def flag_figures(lesions: pd.DataFrame, threshold_bits: float) -> dict[str, float]:
    """AUROC of mean entropy for false vs true lesions, and what a flag at `threshold_bits` catches and costs.

    sensitivity: false positives flagged / false positives; flagged_true: true lesions flagged / true lesions;
    AUROC is NaN unless both kinds of lesion are present.
    """
    fp = lesions["false_positive"].to_numpy(bool)
    score = lesions["mean_entropy_bits"].to_numpy(float)
    flagged = score >= threshold_bits
    both = fp.any() and (~fp).any()
    return {
        "lesions": float(len(lesions)),
        "false_positives": float(fp.sum()),
        "auroc": float(roc_auc_score(fp, score)) if both else float("nan"),
        "sensitivity": float(flagged[fp].mean()) if fp.any() else float("nan"),
        "flagged_true": float(flagged[~fp].mean()) if (~fp).any() else float("nan"),
    }


def threshold_for_sensitivity(lesions: pd.DataFrame, sensitivity: float) -> float:
    """The highest entropy threshold (bits) flagging at least `sensitivity` of the false positives (NaN without any)."""
    scores = np.sort(lesions.loc[lesions["false_positive"].astype(bool), "mean_entropy_bits"].to_numpy(float))[::-1]
    if not scores.size:
        return float("nan")
    needed = int(np.ceil(sensitivity * scores.size))
    return float(scores[max(needed, 1) - 1])
