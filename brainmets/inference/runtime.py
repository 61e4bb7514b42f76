"""Running a trained Keras network fast: device choice and one compiled call per window shape.

The network's call is traced once into a TensorFlow graph with a fixed window shape (no Keras
`predict` machinery per call, no retracing). XLA (`jit_compile`) pays off on GPUs only: on the CPU
its 3-D convolutions are several times slower than oneDNN's (measured here on the paper network at
64^3: 1.3 CPU-seconds per window as a graph against 8.1 with XLA), so `auto` enables it on GPUs only.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from brainmets.errors import BrainmetsError
from brainmets.inference.sliding import BatchPredictor

if TYPE_CHECKING:
    import keras

DEVICES = ("auto", "cpu", "gpu")


def resolve_device(device: str) -> str:
    """TensorFlow device string ('/GPU:0' or '/CPU:0') for `inference.device` auto | cpu | gpu."""
    import tensorflow as tf

    if device not in DEVICES:
        raise BrainmetsError(f"inference.device is {device!r}; use one of {', '.join(DEVICES)}")
    gpus = tf.config.list_physical_devices("GPU")
    if device == "gpu" and not gpus:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "unset")
        raise BrainmetsError(
            f"inference.device is gpu but TensorFlow sees no GPU (CUDA_VISIBLE_DEVICES={visible}); "
            "install the GPU build (pip install .[gpu]) or set inference.device: cpu"
        )
    return "/GPU:0" if gpus and device != "cpu" else "/CPU:0"


def compile_predictor(
    model: keras.Model,
    patch_size: Sequence[int],
    *,
    device: str = "/CPU:0",
    jit_compile: bool = False,
) -> BatchPredictor:
    """A numpy batch predictor (windows in, full-resolution logits out) compiled once as a TF graph."""
    import tensorflow as tf

    signature = [tf.TensorSpec((None, *[int(p) for p in patch_size], 1), tf.float32)]

    @tf.function(input_signature=signature, jit_compile=jit_compile, reduce_retracing=True)
    def forward(batch: Any) -> Any:
        output = model(batch, training=False)
        return tf.cast(output[0] if isinstance(output, (list, tuple)) else output, tf.float32)

    def predict(batch: np.ndarray) -> np.ndarray:
        with tf.device(device):
            return forward(tf.constant(batch, dtype=tf.float32)).numpy()

    return predict
