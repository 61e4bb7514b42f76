"""Masks: connected components (one 26-connectivity for lesions and brain masks in every stage) and distances."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

#: 26-connectivity in 3-D: voxels touching by a face, an edge or a corner belong to one component
CONNECTIVITY_26 = np.ones((3, 3, 3), dtype=bool)


def label_lesions(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Label the 26-connected components of a mask (nonzero = lesion); returns (labels 1..n, n)."""
    lesion = np.asarray(mask) != 0
    labels = np.zeros(lesion.shape, dtype=np.int32)
    if not lesion.any():
        return labels, 0
    # label inside the bounding box of the lesion voxels only: masks are mostly background
    box = tuple(
        slice(int(np.flatnonzero(hit)[0]), int(np.flatnonzero(hit)[-1]) + 1)
        for hit in (lesion.any(axis=(1, 2)), lesion.any(axis=(0, 2)), lesion.any(axis=(0, 1)))
    )
    n = ndimage.label(lesion[box], structure=CONNECTIVITY_26, output=labels[box])
    return labels, int(n)


def signed_distance_mm(mask: np.ndarray, spacing_mm: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Signed distance (mm) of each voxel centre to the mask border (negative inside), and its nearest mask voxel.

    The second array holds, per voxel, the indices of the nearest voxel inside the mask.
    """
    mask = np.asarray(mask, dtype=bool)
    spacing = np.asarray(spacing_mm, dtype=float)
    outside, nearest = ndimage.distance_transform_edt(~mask, sampling=spacing, return_indices=True)
    inside = ndimage.distance_transform_edt(mask, sampling=spacing) if (~mask).any() else np.full(mask.shape, np.inf)
    return np.where(mask, -inside, outside), nearest


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 26-connected component of a boolean mask (all False when the mask is empty)."""
    labels, count = label_lesions(mask)
    if count == 0:
        return np.zeros(np.shape(mask), bool)
    return labels == np.argmax(np.bincount(labels.ravel())[1:]) + 1
