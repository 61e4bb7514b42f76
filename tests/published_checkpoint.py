"""Synthetic checkpoints in the published Brain-Mets-Seg layout, for tests and benchmarks.

The published system keeps its U-Net as `NNUnet.model` (a Keras model) and saves it with
`tf.train.Checkpoint(model=NNUnet)` through a CheckpointManager named `ckpt-best`, so every network
variable sits at `model/model/<layer path>/<weight>`. The layer paths follow its UNet class:
`input_block`, `downsamples/<i>`, `bottleneck`, `upsamples/<j>` (`transp_conv`, `conv_block`),
`output_block` and `deep_supervision_heads/<k>`; each conv block holds `conv1` and `conv2`, each a
`conv` (kernel, bias) and an instance `norm` (gamma, beta). The weights written here are random, with
norm scales and offsets away from their defaults, so that a wrongly placed variable changes the output.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

#: the published network's channels per level (min(2 ** (5 + level), 320))
PUBLISHED_FILTERS = (32, 64, 128, 256, 320, 320)


def published_variable_shapes(
    filters: tuple[int, ...] = PUBLISHED_FILTERS,
    in_channels: int = 1,
    out_channels: int = 1,
    kernel_size: int = 3,
    deep_supervision_heads: int = 2,
) -> dict[str, tuple[int, ...]]:
    """Object path (below `model/model/`) -> shape of every network variable of the published U-Net."""
    k = (kernel_size,) * 3
    shapes: dict[str, tuple[int, ...]] = {}

    def conv_block(path: str, channels_in: int, channels: int) -> None:
        for conv, c_in in (("conv1", channels_in), ("conv2", channels)):
            shapes[f"{path}/{conv}/conv/kernel"] = (*k, c_in, channels)
            shapes[f"{path}/{conv}/conv/bias"] = (channels,)
            shapes[f"{path}/{conv}/norm/gamma"] = (channels,)
            shapes[f"{path}/{conv}/norm/beta"] = (channels,)

    conv_block("input_block", in_channels, filters[0])
    for i in range(len(filters) - 2):
        conv_block(f"downsamples/{i}", filters[i], filters[i + 1])
    conv_block("bottleneck", filters[-2], filters[-1])
    below = filters[-1]
    for j, level in enumerate(range(len(filters) - 2, -1, -1)):
        # a transposed convolution's kernel is (k, k, k, out, in)
        shapes[f"upsamples/{j}/transp_conv/kernel"] = (2, 2, 2, filters[level], below)
        shapes[f"upsamples/{j}/transp_conv/bias"] = (filters[level],)
        conv_block(f"upsamples/{j}/conv_block", 2 * filters[level], filters[level])
        below = filters[level]
    shapes["output_block/conv/kernel"] = (1, 1, 1, filters[0], out_channels)
    shapes["output_block/conv/bias"] = (out_channels,)
    for head in range(deep_supervision_heads):
        shapes[f"deep_supervision_heads/{head}/conv/kernel"] = (1, 1, 1, filters[head + 1], out_channels)
        shapes[f"deep_supervision_heads/{head}/conv/bias"] = (out_channels,)
    return shapes


def random_published_weights(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, np.ndarray]:
    """Random float32 weights for each path.

    Kernels are He-scaled, biases ~N(0, 0.1), normalisation gamma ~U(0.5, 1.5) and beta ~N(0, 0.2).
    """
    rng = np.random.default_rng(seed)
    weights = {}
    for path, shape in shapes.items():
        name = path.rsplit("/", 1)[1]
        if name == "kernel":
            fan_in = int(np.prod(shape[:3])) * shape[-1 if "transp_conv" in path else -2]
            value = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
        elif name == "gamma":
            value = rng.uniform(0.5, 1.5, shape)
        elif name == "beta":
            value = rng.normal(0.0, 0.2, shape)
        else:
            value = rng.normal(0.0, 0.1, shape)
        weights[path] = value.astype(np.float32)
    return weights


def _tracked_tree(node: dict) -> object:
    """Nested dicts of variables -> nested tf.Modules (lists where every key is an index), as Keras tracks layers."""
    import tensorflow as tf

    if all(key.isdigit() for key in node):
        return [_tracked_tree(node[str(i)]) for i in range(len(node))]
    module = tf.Module()
    for key, child in node.items():
        setattr(module, key, tf.Variable(child) if isinstance(child, np.ndarray) else _tracked_tree(child))
    return module


def write_published_checkpoint(
    folder: str | os.PathLike[str], weights: dict[str, np.ndarray], epoch: int = 1, step: int = 1000
) -> Path:
    """Save `weights` (path below model/model/ -> array) as `<folder>/ckpt-best-<epoch>`; returns the prefix.

    The state file `checkpoint` beside it names the latest save, as tf.train.CheckpointManager writes it.

    Like the published training, the checkpoint also holds variables outside the network (a step
    counter and an optimizer iteration count), which an import must ignore.
    """
    import tensorflow as tf

    tree: dict = {}
    for path, value in weights.items():
        node = tree
        *parents, leaf = path.split("/")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    outer = tf.Module()
    outer.model = _tracked_tree(tree)
    optimizer = tf.Module()
    optimizer.iterations = tf.Variable(step, dtype=tf.int64)
    checkpoint = tf.train.Checkpoint(model=outer, optimizer=optimizer, step=tf.Variable(step, dtype=tf.int64))
    manager = tf.train.CheckpointManager(checkpoint, str(folder), max_to_keep=1, checkpoint_name="ckpt-best")
    return Path(manager.save(checkpoint_number=epoch))
