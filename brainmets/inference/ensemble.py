"""Fold ensemble with test-time mirroring over a whole scan.

Every (fold, mirroring) pair is one ensemble member: the scan is flipped along the mirroring's axes,
predicted by the fold's network with the sliding window, flipped back and turned into a probability
with the sigmoid. The members' probabilities are averaged (probability = mean of the members'
sigmoids) and their spread gives the uncertainty maps. Members are run one after the other and folded
into running sums, so memory does not grow with the number of members.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Sequence

import numpy as np
from scipy.special import expit

from brainmets.errors import BrainmetsError
from brainmets.inference.uncertainty import EnsembleAccumulator, EnsembleMaps
from brainmets.network.sliding import BatchPredictor, sliding_window_predict
from brainmets.terminal import interactive, progress

log = logging.getLogger(__name__)


def mirror_combinations(mirror_axes: Sequence[int]) -> list[tuple[int, ...]]:
    """Every subset of the mirroring axes, the identity () first: 8 flips for axes (0, 1, 2)."""
    axes = tuple(sorted({int(a) for a in mirror_axes}))
    if any(a not in (0, 1, 2) for a in axes):
        raise BrainmetsError(f"inference.mirror_axes {list(mirror_axes)} may only name array axes 0, 1 and 2")
    return [combo for r in range(len(axes) + 1) for combo in itertools.combinations(axes, r)]


def predict_ensemble(
    image: np.ndarray,
    predictors: Sequence[BatchPredictor],
    patch_size: Sequence[int],
    *,
    overlap: float,
    mirror_axes: Sequence[int],
    brain_mask: np.ndarray | None = None,
    batch_size: int = 1,
) -> EnsembleMaps:
    """Mean lesion probability and uncertainty maps (bits) of all folds x mirrorings on a z-scored volume.

    Each predictor maps a batch of windows to logits. With a `brain_mask`, windows without brain are
    skipped and every voxel outside the mask is background (probability 0, no uncertainty).
    """
    if not predictors:
        raise BrainmetsError("the model has no fold networks to predict with")
    flips = mirror_combinations(mirror_axes)
    accumulator = EnsembleAccumulator(image.shape)
    members = [(fold, predictor, flip) for fold, predictor in enumerate(predictors) for flip in flips]
    # a progress bar with the time left on a terminal, a line per member in logs
    for fold, predictor, flip in progress(members, "ensemble members"):
        started = time.perf_counter()
        flipped_mask = None if brain_mask is None else np.flip(brain_mask, flip)
        logits = sliding_window_predict(
            np.flip(image, flip),
            predictor,
            patch_size,
            overlap=overlap,
            batch_size=batch_size,
            brain_mask=flipped_mask,
            fill_value=-np.inf,
        )
        probability = expit(np.flip(logits, flip).astype(np.float64))
        if brain_mask is not None:
            probability[~brain_mask.astype(bool)] = 0.0
        accumulator.add(probability)
        if not interactive():
            log.info("member fold %d, mirror axes %s: %.1f s", fold, flip or "none", time.perf_counter() - started)
    return accumulator.result()
