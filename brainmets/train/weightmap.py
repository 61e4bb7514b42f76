"""Per-voxel weights of the cross-entropy term that emphasise lesion borders and small lesions.

For a binary lesion mask on a grid with voxel spacing s (mm):

    w(x) = 1 + (w_b + w_s * exp(-V(x) / V_s)) * exp(-d(x)^2 / (2 * sigma^2))

* d(x) (mm): distance from voxel x to the nearest lesion border, measured as the Euclidean distance
  to the nearest voxel centre on the other side of the border minus half the smallest spacing, so the
  voxels on both sides of a border get d = s/2 and the same, largest weight;
* V(x) (mm^3): volume of the lesion nearest to x (26-connected component), so the border zone of a
  small lesion gets up to w_s more weight than that of a large one;
* w_b (border_weight), sigma (border_sigma_mm), w_s (small_lesion_weight) and V_s
  (small_lesion_volume_mm3) come from `train.weight_map` in the configuration.

Far from any lesion w -> 1; without lesions w = 1 everywhere. Hence 1 <= w <= 1 + w_b + w_s.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from brainmets.components import label_lesions, signed_distance_mm
from brainmets.train.settings import WeightMapSettings


def distance_to_border_mm(mask: np.ndarray, spacing_mm: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance (mm) of every voxel to the nearest lesion border, and the index of its nearest lesion voxel."""
    signed, nearest = signed_distance_mm(mask, spacing_mm)
    return np.maximum(np.abs(signed) - 0.5 * min(spacing_mm), 0.0), nearest


def boundary_weight_map(
    label: np.ndarray, spacing_mm: Sequence[float] | np.ndarray, params: WeightMapSettings | None = None
) -> np.ndarray:
    """Cross-entropy weight of every voxel (dimensionless, >= 1) for a lesion mask on a grid of `spacing_mm` mm."""
    p = params or WeightMapSettings()
    mask = np.asarray(label) > 0
    if not mask.any():
        return np.ones(mask.shape, dtype=np.float32)
    components, _ = label_lesions(mask)
    voxel_volume_mm3 = float(np.prod(spacing_mm))
    volume_mm3 = np.bincount(components.ravel()).astype(float) * voxel_volume_mm3
    distance, nearest = distance_to_border_mm(mask, spacing_mm)
    nearest_volume = volume_mm3[components[tuple(nearest)]]
    amplitude = p.border_weight + p.small_lesion_weight * np.exp(-nearest_volume / p.small_lesion_volume_mm3)
    weights = 1.0 + amplitude * np.exp(-(distance**2) / (2.0 * p.border_sigma_mm**2))
    return weights.astype(np.float32)
