"""Training of one cross-validation fold: SGD with poly decay, checkpoints, resume, CSV log, validation Dice.

After every epoch the fold directory receives `latest.weights.h5` + `latest.optimizer.npz` (then
`state.json`, written last), `best.weights.h5` when the validation Dice improved, and one row of
`log.csv`. A rerun of a killed job restores the latest checkpoint and continues with the next epoch;
each epoch's DALI pipeline is seeded from (seed, fold, epoch), so a resumed run draws the same patches
as an uninterrupted one would.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from brainmets.errors import BrainmetsError
from brainmets.io import atomic_path, read_json, reading, table_records, write_json
from brainmets.network.model import build_unet
from brainmets.network.modeldir import fold_dir
from brainmets.network.sliding import BatchPredictor
from brainmets.train.cases import Case, list_cases, read_image_and_label
from brainmets.train.folds import fold_cases
from brainmets.train.losses import hard_dice, segmentation_loss
from brainmets.train.settings import TrainSettings

LOG_COLUMNS = ["epoch", "step", "loss", "train_dice", "val_dice", "learning_rate", "seconds"]
#: settings a fold cannot change between an interrupted run and its resumption
FIXED_ON_RESUME = ("network", "patch_size", "spacing_mm", "train_cases", "validation_cases")


def resolve_device(setting: str) -> str:
    """'gpu' or 'cpu' for train.device auto|cpu|gpu, checking that a requested GPU is visible to TensorFlow."""
    gpus = tf.config.list_physical_devices("GPU")
    if setting == "cpu":
        if gpus:
            tf.config.set_visible_devices([], "GPU")
        return "cpu"
    if setting == "gpu" and not gpus:
        raise BrainmetsError(
            "train.device is gpu but TensorFlow sees no GPU; install tensorflow[and-cuda] or set train.device: cpu"
        )
    return "gpu" if gpus else "cpu"


def _switch(value: str | bool, device: str) -> bool:
    """An auto|true|false setting: auto means on for a GPU."""
    return device == "gpu" if value == "auto" else bool(value)


def make_optimizer(settings: TrainSettings, mixed_precision: bool) -> keras.optimizers.Optimizer:
    """SGD with Nesterov momentum, weight decay, poly learning-rate decay to 0 and global gradient clipping."""
    opt = settings.optimizer
    total_steps = settings.epochs * settings.iterations_per_epoch
    schedule = keras.optimizers.schedules.PolynomialDecay(
        float(opt["learning_rate"]), decay_steps=total_steps, end_learning_rate=0.0, power=float(opt["poly_power"])
    )
    sgd = keras.optimizers.SGD(
        learning_rate=schedule,
        momentum=float(opt["momentum"]),
        nesterov=bool(opt["nesterov"]),
        weight_decay=float(opt["weight_decay"]),
        global_clipnorm=float(opt["clip_norm"]),
    )
    return keras.optimizers.LossScaleOptimizer(sgd) if mixed_precision else sgd


def build_training_model(settings: TrainSettings, mixed_precision: bool) -> keras.Model:
    """The U-Net of the preset, with float16 compute (float32 logits) when mixed precision is on."""
    previous = keras.config.dtype_policy()
    if mixed_precision:
        keras.config.set_dtype_policy("mixed_float16")
    try:
        return build_unet(**settings.network)
    finally:
        keras.config.set_dtype_policy(previous)


def make_train_step(
    model: keras.Model, optimizer: keras.optimizers.Optimizer, settings: TrainSettings, jit_compile: bool = False
) -> Any:
    """A compiled (image, label, weights) -> (loss, full-resolution Dice) function that updates the model."""
    smooth = float(settings.loss["dice_smooth"])
    ds_weights = [float(w) for w in settings.loss["deep_supervision_weights"]]

    @tf.function(jit_compile=jit_compile, autograph=False)
    def train_step(image: tf.Tensor, label: tf.Tensor, weights: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        with tf.GradientTape() as tape:
            outputs = model(image, training=True)
            loss = segmentation_loss(outputs, label, weights, smooth, ds_weights)
            scaled = optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss, hard_dice(outputs[0], label)

    return train_step


def dice(prediction: np.ndarray, truth: np.ndarray) -> float:
    """Dice overlap of two binary masks (1.0 when both are empty)."""
    prediction, truth = prediction.astype(bool), truth.astype(bool)
    total = prediction.sum() + truth.sum()
    return 1.0 if total == 0 else float(2.0 * np.logical_and(prediction, truth).sum() / total)


def validation_predictor(model: keras.Model, patch_size: Sequence[int]) -> BatchPredictor:
    """Windows (batch, *patch_size, 1) -> the model's full-resolution logits (inference mode), traced once per fold."""

    @tf.function(input_signature=[tf.TensorSpec((None, *patch_size, 1), tf.float32)], autograph=False)
    def full_resolution_logits(x: tf.Tensor) -> tf.Tensor:
        return tf.cast(model(x, training=False)[0], tf.float32)

    return lambda batch: full_resolution_logits(batch).numpy()


def validation_dice(
    predictor: BatchPredictor, cases: Sequence[Case], patch_size: Sequence[int], overlap: float, batch_size: int = 2
) -> float:
    """Mean over cases of the Dice of (logits > 0), predicted by a sliding window over the brain as at inference."""
    from brainmets.network.sliding import sliding_window_predict

    scores = []
    for case in cases:
        image, label = read_image_and_label(case)
        logits = sliding_window_predict(
            image,
            predictor,
            patch_size,
            overlap=overlap,
            batch_size=batch_size,
            brain_mask=image != 0,
            fill_value=-1.0,
        )
        scores.append(dice(logits > 0, label))
    return float(np.mean(scores))


def _epoch_seed(seed: int, fold: int, epoch: int) -> int:
    """The DALI seed of one epoch of one fold."""
    return int((seed * 1_000_003 + fold * 10_007 + epoch) % (2**31 - 1))


def _batches(pipe: Any, device: str, patch: Sequence[int], batch_size: int) -> Any:
    """Iterate the pipeline's batches as tensors, through the DALI TF plugin on a GPU when it is installed."""
    from brainmets.train.dali import numpy_batches

    if device == "gpu":
        try:
            from nvidia.dali.plugin import tf as dali_tf
        except ImportError:  # without the plugin: numpy batches, as on the CPU
            pass
        else:
            shape = (batch_size, *patch, 1)
            with tf.device("/gpu:0"):
                dataset = dali_tf.DALIDataset(
                    pipeline=pipe,
                    batch_size=batch_size,
                    output_shapes=(shape,) * 3,
                    output_dtypes=(tf.float32,) * 3,
                    device_id=0,
                )
            return iter(dataset)
    return numpy_batches(pipe)


def _save_optimizer(optimizer: keras.optimizers.Optimizer, path: Path) -> None:
    """Write every optimiser variable (step, momenta, loss scale) to an .npz file, atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, *[np.asarray(v.numpy()) for v in optimizer.variables])


def _load_optimizer(optimizer: keras.optimizers.Optimizer, model: keras.Model, path: Path) -> None:
    """Restore the optimiser variables written by _save_optimizer."""
    optimizer.build(model.trainable_variables)
    with reading(path), np.load(path) as stored:
        values = [stored[f"arr_{i}"] for i in range(len(stored.files))]
    if len(values) != len(optimizer.variables):
        raise BrainmetsError(
            f"{path}: optimiser state does not match this network; delete the fold directory to restart"
        )
    for variable, value in zip(optimizer.variables, values, strict=True):
        variable.assign(value)


def _write_log(rows: list[dict[str, Any]], path: Path) -> None:
    """Rewrite the fold's CSV log atomically."""
    with atomic_path(path) as tmp:
        pd.DataFrame(rows, columns=LOG_COLUMNS).to_csv(tmp, index=False)


def _common_spacing(cases: Sequence[Case]) -> list[float]:
    """The voxel spacing (mm) shared by all cases, or BrainmetsError naming the first that differs."""
    spacing = np.asarray(cases[0].spacing_mm)
    for case in cases[1:]:
        if not np.allclose(case.spacing_mm, spacing, atol=1e-3):
            raise BrainmetsError(
                f"{case.path}: spacing {case.spacing_mm} mm differs from {cases[0].name}'s {tuple(spacing)} mm; "
                "preprocess every training case to preprocess.spacing_mm"
            )
    return [float(s) for s in spacing]


def _resume(
    out: Path, state: dict[str, Any], model: keras.Model, optimizer: keras.optimizers.Optimizer, epochs: int
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """Restore an interrupted fold into model, optimizer and state; returns (finished state or None, log rows)."""
    state_path = out / "state.json"
    if not (state_path.is_file() and (out / "latest.weights.h5").is_file()):
        return None, []
    saved = read_json(state_path)
    for key in FIXED_ON_RESUME:
        if saved.get(key) != state[key]:
            raise BrainmetsError(
                f"{state_path}: {key} differs from the interrupted run's; delete {out} to start this fold afresh"
            )
    if saved.get("finished") and saved.get("epochs") == epochs:
        return saved, []
    model.load_weights(str(out / "latest.weights.h5"))
    _load_optimizer(optimizer, model, out / "latest.optimizer.npz")
    state.update({k: saved[k] for k in ("epoch", "step", "best_dice", "best_epoch")})
    rows = []
    if (out / "log.csv").is_file():
        rows = [r for r in table_records(pd.read_csv(out / "log.csv")) if r["epoch"] < state["epoch"]]
    return None, rows


def _run_epoch(train_step: Any, batches: Any, iterations: int, verbose: int) -> tuple[float, float]:
    """Run `iterations` training steps with a progress bar; returns the epoch's mean loss and mean batch Dice."""
    # a live bar on a terminal, one line per epoch in log files
    bar = keras.utils.Progbar(
        iterations, verbose=(1 if sys.stdout.isatty() else 2) if verbose else 0, stateful_metrics=["loss", "dice"]
    )
    losses, dices = [], []
    for iteration in range(iterations):
        loss, batch_dice = train_step(*next(batches))
        losses.append(float(loss))
        dices.append(float(batch_dice))
        bar.update(iteration + 1, [("loss", float(np.mean(losses))), ("dice", float(np.mean(dices)))])
    return float(np.mean(losses)), float(np.mean(dices))


def _save_checkpoint(out: Path, model: keras.Model, optimizer: keras.optimizers.Optimizer, improved: bool) -> None:
    """Write latest weights and optimiser state, and the best weights when the validation Dice improved."""
    targets = ["best", "latest"] if improved else ["latest"]
    for name in targets:
        with atomic_path(out / f"{name}.weights.h5") as tmp:
            model.save_weights(str(tmp))
    _save_optimizer(optimizer, out / "latest.optimizer.npz")


def train_fold(
    cases_dir: str | os.PathLike[str],
    fold: int,
    model_dir: str | os.PathLike[str],
    settings: TrainSettings,
    verbose: int = 1,
    threads: int | None = None,
) -> dict[str, Any]:
    """Train (or resume) one fold on the prepared cases; returns the fold's final state.json contents.

    `threads` is the augmentation pipeline's CPU threads (None: every core, at most 8); TensorFlow's own
    are set by the caller before TensorFlow starts (brainmets.network.threads).
    """
    from brainmets.train.dali import build_pipeline

    cases = list_cases(cases_dir)
    train_cases, val_cases = fold_cases(cases, fold, settings.folds, settings.seed)
    out = fold_dir(model_dir, fold)
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(settings.device)
    dali_device = device if settings.dali_device == "auto" else settings.dali_device
    mixed, xla = _switch(settings.mixed_precision, device), _switch(settings.xla, device)
    state: dict[str, Any] = {
        "fold": fold,
        "epoch": 0,
        "step": 0,
        "best_dice": -1.0,
        "best_epoch": -1,
        "finished": False,
        "preset": settings.preset,
        "network": settings.network,
        "patch_size": list(settings.patch_size),
        "spacing_mm": _common_spacing(cases),
        "seed": settings.seed,
        "folds": settings.folds,
        "epochs": settings.epochs,
        "iterations_per_epoch": settings.iterations_per_epoch,
        "batch_size": settings.batch_size,
        "device": device,
        "mixed_precision": mixed,
        "xla": xla,
        "train_cases": [c.name for c in train_cases],
        "validation_cases": [c.name for c in val_cases],
    }
    keras.utils.set_random_seed(settings.seed + fold)
    model = build_training_model(settings, mixed)
    optimizer = make_optimizer(settings, mixed)
    finished, rows = _resume(out, state, model, optimizer, settings.epochs)
    if finished is not None:
        return finished
    if verbose and state["epoch"]:
        print(
            f"fold {fold}: resuming after epoch {state['epoch']} (step {state['step']}) "
            f"from {out / 'latest.weights.h5'}"
        )
    elif verbose:
        print(
            f"fold {fold}: {len(train_cases)} training / {len(val_cases)} validation cases, {device}, "
            f"mixed precision {'on' if mixed else 'off'}, XLA {'on' if xla else 'off'}"
        )

    if not optimizer.built:  # eagerly: built inside the first step, its variables made TensorFlow trace it twice
        optimizer.build(model.trainable_variables)
    train_step = make_train_step(model, optimizer, settings, jit_compile=xla)
    validate = validation_predictor(model, settings.patch_size)
    threads = threads or max(1, min(8, os.cpu_count() or 1))
    for epoch in range(state["epoch"], settings.epochs):
        started = time.perf_counter()
        if verbose:
            print(f"epoch {epoch + 1}/{settings.epochs}")
        pipe = build_pipeline(
            train_cases,
            settings.patch_size,
            settings.batch_size,
            settings.augmentation,
            seed=_epoch_seed(settings.seed, fold, epoch),
            device=dali_device,
            num_threads=threads,
        )
        loss, train_dice = _run_epoch(
            train_step,
            _batches(pipe, dali_device, settings.patch_size, settings.batch_size),
            settings.iterations_per_epoch,
            verbose,
        )
        del pipe
        last = epoch + 1 == settings.epochs
        due = (epoch + 1) % settings.validate_every == 0 or last
        val = float("nan")
        if due:
            val = validation_dice(validate, val_cases, settings.patch_size, settings.validation_overlap)
        improved = bool(np.isfinite(val) and val > state["best_dice"])
        state.update(epoch=epoch + 1, step=int(optimizer.iterations.numpy()), finished=last)
        if improved:
            state["best_dice"], state["best_epoch"] = val, epoch + 1
        _save_checkpoint(out, model, optimizer, improved)
        rows.append(
            {
                "epoch": epoch,
                "step": state["step"],
                "loss": loss,
                "train_dice": train_dice,
                "val_dice": val,
                "learning_rate": float(optimizer.learning_rate.numpy()),
                "seconds": round(time.perf_counter() - started, 3),
            }
        )
        _write_log(rows, out / "log.csv")
        write_json(state, out / "state.json")  # last: a checkpoint counts only once its state is written
        if verbose:
            print(
                f"epoch {epoch + 1}: loss {loss:.4f}, train Dice {train_dice:.3f}, validation Dice {val:.3f} "
                f"(best {state['best_dice']:.3f} at epoch {state['best_epoch']})"
            )
    if not state["finished"]:  # resumed with fewer epochs than already done
        state["finished"] = True
        write_json(state, out / "state.json")
    return state
