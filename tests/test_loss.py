"""Loss values against numbers computed by hand on tiny tensors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf
from brainmets.train.losses import (
    deep_supervision_weights,
    hard_dice,
    segmentation_loss,
    soft_dice_loss,
    weighted_bce,
)


def _t(values, shape):
    return tf.constant(np.asarray(values, dtype=np.float32).reshape(shape))


def test_soft_dice_by_hand():
    # p = sigmoid(0) = 0.5 on background, sigmoid(ln 3) = 0.75 on the lesion voxel
    logits, target = _t([0.0, math.log(3.0)], (1, 2, 1, 1, 1)), _t([0, 1], (1, 2, 1, 1, 1))
    smooth = 1e-5
    expected = 1 - (2 * 0.75 + smooth) / (0.5 + 0.75 + 1 + smooth)
    assert float(soft_dice_loss(logits, target, smooth)) == pytest.approx(expected, rel=1e-6)


def test_soft_dice_of_a_perfect_confident_prediction_is_near_zero():
    target = _t([0, 1, 1, 0], (1, 4, 1, 1, 1))
    assert float(soft_dice_loss(target * 40 - 20, target)) == pytest.approx(0.0, abs=1e-6)


def test_weighted_bce_by_hand():
    logits, target = _t([0.0, math.log(3.0)], (1, 2, 1, 1, 1)), _t([0, 1], (1, 2, 1, 1, 1))
    weights = _t([1.0, 3.0], (1, 2, 1, 1, 1))
    expected = (math.log(2.0) + 3.0 * -math.log(0.75)) / 2
    assert float(weighted_bce(logits, target, weights)) == pytest.approx(expected, rel=1e-6)


def test_deep_supervision_weights_are_normalised():
    assert deep_supervision_weights(3) == pytest.approx([1 / 1.75, 0.5 / 1.75, 0.25 / 1.75])
    assert deep_supervision_weights(2) == pytest.approx([2 / 3, 1 / 3])


def test_deep_supervision_downsamples_targets_and_combines_by_hand():
    # full resolution 2x2x2 with one lesion voxel at the origin; half resolution 1x1x1 takes voxel (0, 0, 0)
    label = np.zeros((1, 2, 2, 2, 1), np.float32)
    label[0, 0, 0, 0, 0] = 1
    weights = np.ones_like(label)
    weights[0, 0, 0, 0, 0] = 2.0
    full = tf.zeros((1, 2, 2, 2, 1))  # p = 0.5 everywhere
    half = tf.fill((1, 1, 1, 1, 1), math.log(3.0))  # p = 0.75 on the downsampled lesion voxel
    smooth = 1e-5
    dice_full = 1 - (2 * 0.5 + smooth) / (8 * 0.5 + 1 + smooth)
    bce_full = (2 * math.log(2) + 7 * math.log(2)) / 8
    dice_half = 1 - (2 * 0.75 + smooth) / (0.75 + 1 + smooth)
    bce_half = 2 * -math.log(0.75)
    expected = (2 / 3) * (dice_full + bce_full) + (1 / 3) * (dice_half + bce_half)
    got = segmentation_loss([full, half], tf.constant(label), tf.constant(weights), smooth)
    assert float(got) == pytest.approx(expected, rel=1e-6)


def test_hard_dice():
    target = _t([1, 1, 0, 0], (1, 4, 1, 1, 1))
    assert float(hard_dice(_t([5, -5, 5, -5], (1, 4, 1, 1, 1)), target)) == pytest.approx(0.5)
    assert float(hard_dice(_t([-5, -5, -5, -5], (1, 4, 1, 1, 1)), tf.zeros((1, 4, 1, 1, 1)))) == 1.0
