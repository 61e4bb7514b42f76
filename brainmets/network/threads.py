"""TensorFlow's CPU thread pools, limited to a job's share of the cores (`--threads` of train and predict)."""

from __future__ import annotations

import logging

from brainmets.errors import BrainmetsError

log = logging.getLogger(__name__)


def set_tensorflow_threads(threads: int | None) -> None:
    """Run TensorFlow's CPU kernels on `threads` threads, one op at a time (before it starts); None keeps all cores.

    One op at a time (inter-op 1): a job that claims N cores then uses N, where TensorFlow's own default
    runs several ops side by side on every core and, beside a second such job, oversubscribes the cores.
    """
    if threads is None:
        return
    if threads < 1:
        raise BrainmetsError(f"--threads is {threads}; use 1 or more")
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(int(threads))
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow already running in this process (library use): keep its threads
        log.warning("TensorFlow is already initialised; --threads %d ignored", threads)
