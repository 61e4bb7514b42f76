"""Intensity steps: N4 bias-field correction (ANTs) and z-score normalisation over the brain."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from brainmets.errors import BrainmetsError

if TYPE_CHECKING:
    import ants


def n4_correct(
    image: ants.ANTsImage,
    mask: ants.ANTsImage | None = None,
    *,
    shrink_factor: int = 4,
    iterations: tuple[int, ...] = (20, 20, 10),
) -> ants.ANTsImage:
    """N4 bias-field-corrected copy of an image, the field fitted inside `mask` (whole image if None)."""
    import ants

    return ants.n4_bias_field_correction(
        image, mask=mask, shrink_factor=shrink_factor, convergence={"iters": list(iterations), "tol": 1e-6}
    )


def zscore_over_brain(image: np.ndarray, brain: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Image z-scored with the mean and standard deviation of brain voxels, background 0; also (mean, std)."""
    inside = np.asarray(brain, dtype=bool)
    if not inside.any():
        raise BrainmetsError("the brain mask is empty; cannot normalise intensities")
    values = image[inside].astype(np.float64)
    mean, std = float(values.mean()), float(values.std())
    if std == 0:
        raise BrainmetsError("the brain region has constant intensity; cannot normalise intensities")
    out = np.zeros(image.shape, dtype=np.float32)
    out[inside] = ((values - mean) / std).astype(np.float32)
    return out, mean, std
