"""Voxel-wise ensemble uncertainty and the per-lesion summary table.

For an ensemble of M members (folds x mirrorings) with lesion probabilities p_m at a voxel:
total predictive entropy H(mean p), expected entropy mean H(p_m) (the aleatoric part; the only map
the published system wrote) and mutual information total - expected (the epistemic part, members
disagreeing). Entropies are binary entropies in bits, so each map lies in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage
from scipy.special import entr
from skimage.morphology import remove_small_objects

from brainmets.components import label_lesions
from brainmets.errors import BrainmetsError
from brainmets.io import voxel_volume_ml

#: names of the uncertainty maps, in the order they are written and tabulated
UNCERTAINTY_MAPS = ("total_entropy", "expected_entropy", "mutual_information")


def binary_entropy_bits(probability: np.ndarray) -> np.ndarray:
    """Binary entropy (bits, 0..1) of lesion probabilities in [0, 1]; 0 at p = 0 and p = 1."""
    p = np.clip(np.asarray(probability, dtype=np.float64), 0.0, 1.0)
    return (entr(p) + entr(1.0 - p)) / math.log(2.0)


@dataclass(frozen=True)
class EnsembleMaps:
    """Mean lesion probability and the three uncertainty maps (bits) of one scan, float32.

    `label` is the recipe's own lesion label (uint8) where it does not threshold the probability
    (the published recipe: mean fold logit > 0); None means probability > 0.5.
    """

    probability: np.ndarray
    total_entropy: np.ndarray
    expected_entropy: np.ndarray
    mutual_information: np.ndarray
    label: np.ndarray | None = None

    def uncertainty(self) -> dict[str, np.ndarray]:
        """The uncertainty maps by name (see UNCERTAINTY_MAPS)."""
        return {name: getattr(self, name) for name in UNCERTAINTY_MAPS}


class EnsembleAccumulator:
    """Running sums over ensemble members, so that no member's map has to be kept."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        """Start empty sums for volumes of `shape`."""
        self.shape = tuple(shape)
        self.members = 0
        self._sum_probability = np.zeros(self.shape, dtype=np.float64)
        self._sum_entropy = np.zeros(self.shape, dtype=np.float64)

    def add(self, probability: np.ndarray) -> None:
        """Add one member's lesion probability map (values in [0, 1])."""
        if probability.shape != self.shape:
            raise BrainmetsError(f"ensemble member map of shape {probability.shape} differs from {self.shape}")
        self._sum_probability += probability
        self._sum_entropy += binary_entropy_bits(probability)
        self.members += 1

    def result(self) -> EnsembleMaps:
        """Mean probability, total entropy, expected entropy and mutual information (bits) of the members."""
        if self.members == 0:
            raise BrainmetsError("the ensemble has no members; the model directory lists no folds")
        mean_p = self._sum_probability / self.members
        total = binary_entropy_bits(mean_p)
        expected = np.minimum(self._sum_entropy / self.members, total)  # H is concave: mean H(p_m) <= H(mean p)
        return EnsembleMaps(
            probability=mean_p.astype(np.float32),
            total_entropy=total.astype(np.float32),
            expected_entropy=expected.astype(np.float32),
            mutual_information=(total - expected).astype(np.float32),
        )


def min_lesion_voxels(min_volume_ml: float, spacing_mm: tuple[float, float, float]) -> int:
    """Smallest number of voxels a lesion of at least `min_volume_ml` millilitres occupies at `spacing_mm`."""
    if min_volume_ml < 0:
        raise BrainmetsError(f"inference.min_lesion_ml is {min_volume_ml}; it must be 0 (keep all) or positive")
    return math.ceil(round(min_volume_ml / voxel_volume_ml(spacing_mm), 9))


def threshold_lesions(
    probability: np.ndarray, spacing_mm: tuple[float, float, float], min_volume_ml: float = 0.0
) -> np.ndarray:
    """Binary lesion label (uint8) = probability > 0.5, without 26-connected lesions under `min_volume_ml` mL."""
    label = np.asarray(probability) > 0.5
    min_voxels = min_lesion_voxels(min_volume_ml, spacing_mm)
    if min_voxels > 1:
        label = remove_small_objects(label, max_size=min_voxels - 1, connectivity=3)
    return label.astype(np.uint8)


def lesion_table(
    label: np.ndarray,
    probability: np.ndarray,
    uncertainty: Mapping[str, np.ndarray],
    spacing_mm: tuple[float, float, float],
) -> pd.DataFrame:
    """One row per 26-connected lesion (`component` 1..n) with its size, centroid and map statistics.

    Columns: size (voxels, mL), centroid (voxel indices), mean probability, mean and max of each map.
    """
    components, count = label_lesions(label)
    ids = np.arange(1, count + 1)
    voxels = ndimage.sum_labels(np.ones(components.shape), components, ids) if count else np.zeros(0)
    table = pd.DataFrame(
        {
            "component": ids,
            "voxels": voxels.astype(int),
            "volume_ml": voxels * voxel_volume_ml(spacing_mm),
        }
    )
    centroids = np.array(ndimage.center_of_mass(components > 0, components, ids)).reshape(-1, 3)
    for axis in range(3):
        table[f"centroid_{'ijk'[axis]}"] = centroids[:, axis]
    table["mean_probability"] = ndimage.mean(probability, components, ids) if count else []
    for name, values in uncertainty.items():
        table[f"{name}_mean"] = ndimage.mean(values, components, ids) if count else []
        table[f"{name}_max"] = ndimage.maximum(values, components, ids) if count else []
    return table
