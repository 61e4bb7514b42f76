"""Running a trained Keras network fast: device, arithmetic precision and one compiled call per window shape.

The network's call is traced once into a TensorFlow graph with a fixed window shape (no Keras
`predict` machinery per call, no retracing). The folds of an ensemble share one such graph: each fold's
weights are copied into it when that fold's turn comes, so a scan pays for one tracing, not one per fold
(1.7 s of a demo fold's 4.5 s on one AVX2 core). XLA (`jit_compile`) pays off on GPUs only: on the CPU
its 3-D convolutions are several times slower than oneDNN's (measured here on the paper network at
64^3: 1.3 CPU-seconds per window as a graph against 8.1 with XLA), so `auto` enables it on GPUs only.

bfloat16 halves the bytes every convolution moves and, on hardware with bfloat16 arithmetic
(x86 CPUs with AMX-BF16 or AVX512-BF16, GPUs of compute capability 8.0 or later), roughly halves the
time of a forward pass; elsewhere it is emulated and slower than float32, so `auto` picks it only
where it is native. The weights stay float32; only the layers' computations run in bfloat16.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from brainmets.errors import BrainmetsError
from brainmets.network.sliding import BatchPredictor

if TYPE_CHECKING:
    import keras

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "gpu")
PRECISIONS = ("auto", "float32", "bfloat16")
#: CPU flags (as in /proc/cpuinfo) of native bfloat16 arithmetic
BFLOAT16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
#: the first GPU generation with bfloat16 tensor cores (Ampere)
BFLOAT16_GPU_CAPABILITY = (8, 0)
#: Keras' dtype policy for each precision
DTYPE_POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16"}


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


def cpu_flags(cpuinfo: str | os.PathLike[str] = "/proc/cpuinfo") -> frozenset[str]:
    """The instruction-set flags of the first processor listed in `cpuinfo` (empty where it cannot be read)."""
    try:
        with open(cpuinfo, encoding="ascii", errors="replace") as lines:
            for line in lines:
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()


def native_bfloat16(device: str) -> bool:
    """Whether `device` ('/CPU:0' or '/GPU:0') computes in bfloat16 natively (CPU flags or GPU compute capability)."""
    if device.startswith("/GPU"):
        import tensorflow as tf

        details = tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[0])
        return tuple(details.get("compute_capability") or (0, 0)) >= BFLOAT16_GPU_CAPABILITY
    return any(flag in cpu_flags() for flag in BFLOAT16_CPU_FLAGS)


def resolve_precision(precision: str, device: str, recipe: str = "default") -> str:
    """'float32' or 'bfloat16' for `inference.precision` auto | float32 | bfloat16 on `device`; logs the choice.

    Under the `published` recipe `auto` stays float32 (its outputs reproduce the published code's);
    bfloat16 is used there only when asked for by name.
    """
    if precision not in PRECISIONS:
        raise BrainmetsError(f"inference.precision is {precision!r}; use one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        log.info("precision %s (asked for) on %s", precision, device)
        return precision
    if recipe == "published":
        log.info("precision float32 (auto under the published recipe) on %s", device)
        return "float32"
    chosen = "bfloat16" if native_bfloat16(device) else "float32"
    log.info(
        "precision %s (auto: %s bfloat16 arithmetic on %s)",
        chosen,
        "native" if chosen == "bfloat16" else "no native",
        device,
    )
    return chosen


@contextlib.contextmanager
def dtype_policy(precision: str) -> Iterator[None]:
    """Build Keras layers inside this block with float32 weights computing in `precision` (float32 | bfloat16)."""
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(DTYPE_POLICIES[precision])
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


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

    # autograph=False: the body has no Python control flow to convert, and converting it cost about 0.2 CPU
    # seconds of each fold's tracing (AVX2 EPYC); the graph and its results are the same
    @tf.function(input_signature=signature, jit_compile=jit_compile, reduce_retracing=True, autograph=False)
    def forward(batch: Any) -> Any:
        output = model(batch, training=False)
        return tf.cast(output[0] if isinstance(output, (list, tuple)) else output, tf.float32)

    def predict(batch: np.ndarray) -> np.ndarray:
        with tf.device(device):
            return forward(tf.constant(batch, dtype=tf.float32)).numpy()

    return predict


def compile_fold_predictors(
    model: keras.Model,
    fold_weights: Sequence[Sequence[np.ndarray]],
    patch_size: Sequence[int],
    *,
    device: str = "/CPU:0",
    jit_compile: bool = False,
) -> list[BatchPredictor]:
    """One numpy batch predictor per fold, all running `model`'s graph compiled once (see the module notes).

    `fold_weights[k]` is fold k's `get_weights()` for this network. A predictor loads its fold's weights into
    the graph when it is called after another fold's, so calls should come fold by fold, as the ensembles
    make them. The weights are kept on `device`.
    """
    import tensorflow as tf

    shapes = [tuple(v.shape) for v in model.weights]
    with tf.device(device):
        folds = []
        for index, weights in enumerate(fold_weights):
            if [tuple(np.shape(w)) for w in weights] != shapes:
                raise BrainmetsError(
                    f"the weights of fold {index} do not fit the network; the folds must share one network"
                )
            folds.append([tf.constant(w) for w in weights])
    compiled = compile_predictor(model, patch_size, device=device, jit_compile=jit_compile)
    loaded: list[int | None] = [None]

    def fold_predictor(index: int) -> BatchPredictor:
        """The predictor of fold `index`."""

        def predict(batch: np.ndarray) -> np.ndarray:
            if loaded[0] != index:
                with tf.device(device):
                    for variable, value in zip(model.weights, folds[index], strict=True):
                        variable.assign(value)
                loaded[0] = index
            return compiled(batch)

        return predict

    return [fold_predictor(index) for index in range(len(folds))]
