"""The published system's inference recipe (Brain-Mets-Seg `predict.py`), selected by `inference.recipe: published`.

For one z-scored volume and the fold networks it computes what the published code computes:

1. crop to the bounding box of the nonzero voxels, zero-pad each axis to the patch (floor/ceil split);
2. per fold and per flip (identity, then axes 0, 1, 2, 01, 02, 12, 012), flip the volume and run its
   sliding window: windows start at 0 every int(patch x (1 - 0.75)) voxels, plus one flush with the far
   edge; each window's logits are weighted by the importance map (the product of three Gaussians with
   sigma = patch / 8, raised to 1/3, scaled to a maximum of 1), and the weighted sum is divided by
   1 + the summed weights (the published code starts its weight sum at one, not zero);
3. average the 8 flipped-back logit maps of a fold (test-time augmentation in logit space), then
   undo the padding and place them in the full grid (zero elsewhere);
4. label = mean fold logit > 0; probability = mean of the per-fold sigmoids; its uncertainty = mean of
   the per-fold binary entropies (bits); all three zero outside the bounding box.

brainmets' total entropy and mutual information are derived from the same per-fold probabilities.
Differences from the default recipe (brainmets.inference.ensemble) are listed in the README.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence

import numpy as np
from scipy.signal.windows import gaussian
from scipy.special import expit

from brainmets.errors import BrainmetsError
from brainmets.inference.uncertainty import EnsembleAccumulator, EnsembleMaps
from brainmets.network.sliding import BatchPredictor
from brainmets.terminal import interactive, progress

log = logging.getLogger(__name__)

#: predict.py's settings
PUBLISHED_OVERLAP = 0.75
PUBLISHED_SIGMA_SCALE = 0.125
#: the identity, then runtime/utils.get_tta_flips(3) as volume axes (the published axes 1, 2, 3 of a batch)
PUBLISHED_FLIPS: tuple[tuple[int, ...], ...] = ((), (0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2))


def published_window_starts(size: int, patch: int, overlap: float = PUBLISHED_OVERLAP) -> list[int]:
    """Window starts (voxels) along an axis of `size` >= `patch`: every int(patch * (1 - overlap)), one flush end."""
    step = patch if patch == size else int(patch * (1.0 - overlap))
    if step < 1:
        raise BrainmetsError(f"published sliding window: overlap {overlap} leaves no step for a {patch}-voxel patch")
    starts = list(range(0, size - patch + 1, step))
    if starts[-1] + patch < size:
        starts.append(size - patch)
    return starts


def published_importance_map(patch_size: Sequence[int], sigma_scale: float = PUBLISHED_SIGMA_SCALE) -> np.ndarray:
    """The published window weight (float32): product of per-axis Gaussians (sigma = scale x edge) ** (1/3), max 1."""
    weights = np.ones((), dtype=np.float64)
    for edge in patch_size:
        weights = np.multiply.outer(weights, gaussian(int(edge), std=sigma_scale * int(edge)))
    weights = np.power(weights, 1.0 / len(patch_size))
    return (weights / weights.max()).astype(np.float32)


def published_sliding_window(
    volume: np.ndarray,
    predict_batch: BatchPredictor,
    patch_size: Sequence[int],
    *,
    overlap: float = PUBLISHED_OVERLAP,
    batch_size: int = 1,
) -> np.ndarray:
    """Blended logits (float32) of a volume at least the patch size: sum(w x logits) / (1 + sum(w))."""
    patch = tuple(int(p) for p in patch_size)
    if any(s < p for s, p in zip(volume.shape, patch, strict=True)):
        raise BrainmetsError(f"published sliding window: volume {volume.shape} is smaller than the patch {patch}")
    starts = [published_window_starts(int(s), p, overlap) for s, p in zip(volume.shape, patch, strict=True)]
    windows = [
        tuple(slice(b, b + p) for b, p in zip(begin, patch, strict=True))
        for begin in ((i, j, k) for i in starts[0] for j in starts[1] for k in starts[2])
    ]
    importance = published_importance_map(patch)
    total = np.zeros(volume.shape, dtype=np.float64)
    weight = np.ones(volume.shape, dtype=np.float64)
    for first in range(0, len(windows), batch_size):
        batch = windows[first : first + batch_size]
        outputs = np.asarray(predict_batch(np.stack([volume[w] for w in batch])[..., None]))
        for w, out in zip(batch, outputs[..., 0], strict=True):
            total[w] += (out.astype(np.float32) * importance).astype(np.float64)
            weight[w] += importance
    return (total / weight).astype(np.float32)


def nonzero_box(image: np.ndarray) -> tuple[slice, ...]:
    """Bounding box (slices) of the nonzero voxels; the whole volume when every voxel is zero."""
    nonzero = np.nonzero(image)
    if nonzero[0].size == 0:
        return tuple(slice(0, n) for n in image.shape)
    return tuple(slice(int(idx.min()), int(idx.max()) + 1) for idx in nonzero)


def published_fold_logits(
    image: np.ndarray,
    predict_batch: BatchPredictor,
    patch_size: Sequence[int],
    *,
    overlap: float = PUBLISHED_OVERLAP,
    flips: Sequence[tuple[int, ...]] = PUBLISHED_FLIPS,
    batch_size: int = 1,
) -> np.ndarray:
    """One fold's test-time-augmented logits on the image's grid (float32; 0 outside the nonzero bounding box)."""
    box = nonzero_box(image)
    crop = np.asarray(image[box], dtype=np.float32)
    pads = [
        (max(int(p) - n, 0) // 2, max(int(p) - n, 0) - max(int(p) - n, 0) // 2)
        for n, p in zip(crop.shape, patch_size, strict=True)
    ]
    volume = np.pad(crop, pads, mode="constant")
    summed = np.zeros(volume.shape, dtype=np.float64)
    for flip in flips:
        started = time.perf_counter()
        logits = published_sliding_window(
            np.ascontiguousarray(np.flip(volume, flip)),
            predict_batch,
            patch_size,
            overlap=overlap,
            batch_size=batch_size,
        )
        summed += np.flip(logits, flip)
        if not interactive():
            log.info("flip %s: %.1f s", flip or "none", time.perf_counter() - started)
    mean = (summed / len(flips)).astype(np.float32)
    unpadded = mean[tuple(slice(before, n - after) for (before, after), n in zip(pads, volume.shape, strict=True))]
    full = np.zeros(image.shape, dtype=np.float32)
    full[box] = unpadded
    return full


def predict_published(
    image: np.ndarray,
    predictors: Sequence[BatchPredictor],
    patch_size: Sequence[int],
    *,
    overlap: float = PUBLISHED_OVERLAP,
    flips: Sequence[tuple[int, ...]] = PUBLISHED_FLIPS,
    batch_size: int = 1,
) -> EnsembleMaps:
    """The published label, probability and expected entropy (bits) of a z-scored volume, with brainmets' other maps."""
    if not predictors:
        raise BrainmetsError("the model has no fold networks to predict with")
    if image.ndim != 3:
        raise BrainmetsError(f"published recipe needs a 3-D volume, got shape {image.shape}")
    box = nonzero_box(image)
    background = np.ones(image.shape, dtype=bool)
    background[box] = False
    accumulator = EnsembleAccumulator(image.shape)
    sum_logits = np.zeros(image.shape, dtype=np.float64)
    for fold, predictor in progress(list(enumerate(predictors)), "ensemble members (folds)"):
        started = time.perf_counter()
        logits = published_fold_logits(
            image, predictor, patch_size, overlap=overlap, flips=flips, batch_size=batch_size
        ).astype(np.float64)
        sum_logits += logits
        probability = expit(logits)
        probability[background] = 0.0  # background is certain: entropy 0 there, as the published maps
        accumulator.add(probability)
        if not interactive():
            log.info("fold %d (%d flips): %.1f s", fold, len(flips), time.perf_counter() - started)
    label = (sum_logits / len(predictors) > 0) & ~background
    return dataclasses.replace(accumulator.result(), label=label.astype(np.uint8))
