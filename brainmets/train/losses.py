"""Training loss: soft Dice + boundary-weighted binary cross-entropy, summed over deep-supervision outputs.

For each output i (logits at 1/2**i of the patch size) the label and the weight map are downsampled by
taking every 2**i-th voxel (nearest neighbour), and

    L_i = (1 - (2 sum(p g) + smooth) / (sum(p) + sum(g) + smooth)) + mean(w * BCE(logit, g))

with p = sigmoid(logit), sums over the whole batch and all voxels (batch Dice). The total is
sum_i c_i L_i with c = deep_supervision_weights (1, 0.5, 0.25) normalised to sum to 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf


def soft_dice_loss(logits: tf.Tensor, target: tf.Tensor, smooth: float = 1e-5) -> tf.Tensor:
    """1 - soft Dice of sigmoid(logits) against a binary target, over batch and voxels (dimensionless)."""
    probs = tf.sigmoid(tf.cast(logits, tf.float32))
    target = tf.cast(target, tf.float32)
    intersection = tf.reduce_sum(probs * target)
    return 1.0 - (2.0 * intersection + smooth) / (tf.reduce_sum(probs) + tf.reduce_sum(target) + smooth)


def weighted_bce(logits: tf.Tensor, target: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
    """Mean over voxels of weight x binary cross-entropy (nats) of the logits against a binary target."""
    logits = tf.cast(logits, tf.float32)
    bce = tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.cast(target, tf.float32), logits=logits)
    return tf.reduce_mean(tf.cast(weights, tf.float32) * bce)


def downsample(volume: tf.Tensor, factor: int) -> tf.Tensor:
    """Every `factor`-th voxel along each spatial axis of a (batch, axis0, axis1, axis2, channel) tensor."""
    return volume[:, ::factor, ::factor, ::factor, :] if factor > 1 else volume


def deep_supervision_weights(n_outputs: int, weights: Sequence[float] = (1.0, 0.5, 0.25)) -> list[float]:
    """The first `n_outputs` loss weights, normalised to sum to 1."""
    if n_outputs > len(weights):
        raise ValueError(f"{n_outputs} network outputs but only {len(weights)} deep-supervision weights")
    chosen = [float(w) for w in weights[:n_outputs]]
    return [w / sum(chosen) for w in chosen]


def segmentation_loss(
    outputs: Sequence[tf.Tensor],
    label: tf.Tensor,
    weights: tf.Tensor,
    smooth: float = 1e-5,
    ds_weights: Sequence[float] = (1.0, 0.5, 0.25),
) -> tf.Tensor:
    """Deep-supervised soft Dice + weighted BCE of the network's outputs (full resolution first)."""
    total = tf.constant(0.0, tf.float32)
    for i, (logits, c) in enumerate(zip(outputs, deep_supervision_weights(len(outputs), ds_weights), strict=True)):
        target = downsample(label, 2**i)
        total += c * (soft_dice_loss(logits, target, smooth) + weighted_bce(logits, target, downsample(weights, 2**i)))
    return total


def hard_dice(logits: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    """Dice of (sigmoid(logits) > 0.5) against a binary target over the batch; 1 when both are empty."""
    pred = tf.cast(logits > 0, tf.float32)
    target = tf.cast(target > 0.5, tf.float32)
    denominator = tf.reduce_sum(pred) + tf.reduce_sum(target)
    return tf.where(denominator > 0, 2.0 * tf.reduce_sum(pred * target) / tf.maximum(denominator, 1.0), 1.0)
