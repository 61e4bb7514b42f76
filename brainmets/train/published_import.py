"""Import the published Brain-Mets-Seg fold checkpoints into a brainmets model directory.

The published system (a TensorFlow 2 nnU-Net) saves each fold as an object-based checkpoint in
`Model_<k>/`: a `checkpoint` state file naming the newest `ckpt-best-<epoch>`, its `.index` and its
`.data-*` shards. Its network is the `paper` preset's U-Net layer for layer; only the instance-norm
epsilon differs (tensorflow_addons' default 1e-3 instead of 1e-5), so the imported model records
`norm_epsilon: 0.001` in model.json. Every network variable under the checkpoint's `model/` object
path is mapped onto the Keras layer that plays its part (see `checkpoint_variable_map`); optimizer,
step and metric variables are ignored. The result is an ordinary model directory whose per-fold
weights `predict`, `segment` and the workflow's `model.dir` read as they are.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from brainmets.errors import BrainmetsError, raise_if_fault, storage_error
from brainmets.io import temporary_folder, write_json
from brainmets.network.modeldir import fold_dir, model_metadata, validate_metadata

SOURCE_FORMAT = "brain-mets-seg"
#: tensorflow_addons InstanceNormalization's default epsilon, which the published network keeps
PUBLISHED_NORM_EPSILON = 1e-3
#: LeakyReLU slope of the published network (predict.py: negative_slope = 0.01)
PUBLISHED_NEGATIVE_SLOPE = 0.01
#: the published network's window (voxels) and spacing (mm)
PUBLISHED_PATCH_SIZE = [128, 128, 128]
PUBLISHED_SPACING_MM = [1.0, 1.0, 1.0]
#: the `paper` preset's levels; an import with these filters is recorded as that preset
PAPER_FILTERS = [32, 64, 128, 256, 320, 320]

NETWORK_ROOT = "model/model/"
VALUE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
FOLD_FOLDER = re.compile(r"Model_(\d+)")
STATE_LINE = re.compile(r'^\s*model_checkpoint_path:\s*"(.*)"\s*$', re.MULTILINE)


def checkpoint_key(path: str) -> str:
    """The checkpoint key of a network variable given by its object path below `model/model/`."""
    return f"{NETWORK_ROOT}{path}{VALUE_SUFFIX}"


def checkpoint_variable_map(n_levels: int, deep_supervision_heads: int) -> dict[str, tuple[str, str]]:
    """Checkpoint key of every published network variable -> (build_unet layer name, weight attribute).

    The published encoder is `input_block`, `downsamples/0..n-3` and `bottleneck` (levels 0..n-1, each
    two conv -> norm -> LeakyReLU layers `conv1`, `conv2`); its decoder `upsamples/j` climbs from level
    n-2 to 0 (`transp_conv`, then `conv_block/conv1`, `conv2` on [upsampled, skip]); `output_block` gives
    the logits and `deep_supervision_heads/k` those of level k + 1.
    """
    blocks = {"input_block": "enc0", "bottleneck": f"enc{n_levels - 1}"}
    blocks.update({f"downsamples/{i}": f"enc{i + 1}" for i in range(n_levels - 2)})
    blocks.update({f"upsamples/{j}/conv_block": f"dec{n_levels - 2 - j}" for j in range(n_levels - 1)})
    mapping: dict[str, tuple[str, str]] = {}
    for path, name in blocks.items():
        for conv, half in (("conv1", "a"), ("conv2", "b")):
            for weight in ("kernel", "bias"):
                mapping[checkpoint_key(f"{path}/{conv}/conv/{weight}")] = (f"{name}_{half}_conv", weight)
            for weight in ("gamma", "beta"):
                mapping[checkpoint_key(f"{path}/{conv}/norm/{weight}")] = (f"{name}_{half}_norm", weight)
    heads = {"output_block/conv": "logits_0"}
    heads.update({f"deep_supervision_heads/{k}/conv": f"logits_{k + 1}" for k in range(deep_supervision_heads)})
    heads.update({f"upsamples/{j}/transp_conv": f"dec{n_levels - 2 - j}_up" for j in range(n_levels - 1)})
    for path, name in heads.items():
        for weight in ("kernel", "bias"):
            mapping[checkpoint_key(f"{path}/{weight}")] = (name, weight)
    return mapping


def is_network_variable(key: str) -> bool:
    """Whether a checkpoint key is a variable of the network (not an optimizer slot, step or metric)."""
    return key.startswith("model/") and key.endswith(VALUE_SUFFIX) and ".OPTIMIZER_SLOT" not in key


def _indices(keys: list[str], prefix: str) -> list[int]:
    """The distinct list indices that follow `prefix` in the keys (e.g. downsamples/<i>/...)."""
    found = {int(m.group(1)) for key in keys if (m := re.match(re.escape(prefix) + r"(\d+)/", key))}
    return sorted(found)


def network_settings(shapes: dict[str, list[int]], source: str) -> dict[str, Any]:
    """build_unet keyword arguments of the network a checkpoint holds, read from its kernel shapes."""
    keys = [k for k in shapes if is_network_variable(k)]
    n_levels = len(_indices(keys, NETWORK_ROOT + "downsamples/")) + 2
    kernel_paths = ["input_block/conv1/conv/kernel"]
    kernel_paths += [f"downsamples/{i}/conv1/conv/kernel" for i in range(n_levels - 2)]
    kernel_paths += ["bottleneck/conv1/conv/kernel"]
    for path in [*kernel_paths, "output_block/conv/kernel"]:
        if checkpoint_key(path) not in shapes:
            raise BrainmetsError(f"{source}: network variable {checkpoint_key(path)} is missing")
    first = shapes[checkpoint_key(kernel_paths[0])]
    if len(first) != 5:
        raise BrainmetsError(
            f"{source}: {checkpoint_key(kernel_paths[0])} has shape {first}, not a 3-D convolution kernel"
        )
    return {
        "filters": [int(shapes[checkpoint_key(p)][-1]) for p in kernel_paths],
        "in_channels": int(first[3]),
        "out_channels": int(shapes[checkpoint_key("output_block/conv/kernel")][-1]),
        "kernel_size": int(first[0]),
        "conv_bias": True,
        "norm_epsilon": PUBLISHED_NORM_EPSILON,
        "negative_slope": PUBLISHED_NEGATIVE_SLOPE,
        "deep_supervision_heads": len(_indices(keys, NETWORK_ROOT + "deep_supervision_heads/")),
    }


def checkpoint_prefix(folder: Path) -> Path:
    """The checkpoint prefix (`<folder>/ckpt-best-<N>`) named by a fold folder's `checkpoint` state file."""
    state_file = folder / "checkpoint"
    if not state_file.is_file():
        raise BrainmetsError(f"{state_file}: checkpoint state file not found; give a published Model_<k> folder")
    try:
        match = STATE_LINE.search(state_file.read_text())
    except (OSError, UnicodeDecodeError) as error:
        raise_if_fault(error, state_file, "cannot read")
        raise BrainmetsError(f"{state_file}: unreadable checkpoint state file ({error})") from None
    if match is None:
        raise BrainmetsError(f"{state_file}: no model_checkpoint_path line; not a TensorFlow checkpoint state file")
    # the state file may hold the absolute path of the machine that trained it: the files sit beside it
    prefix = folder / Path(match.group(1).replace("\\", "/")).name
    if not prefix.with_name(prefix.name + ".index").is_file():
        raise BrainmetsError(f"{state_file}: names {prefix.name}, but {prefix.name}.index is not in {folder}")
    return prefix


def data_files(prefix: Path) -> list[Path]:
    """The data shards (`<prefix>.data-<i>-of-<n>`) of a checkpoint, or BrainmetsError if any is missing."""
    shards = sorted(prefix.parent.glob(prefix.name + ".data-*-of-*"))
    counts = {re.sub(r".*-of-", "", p.name) for p in shards}
    if not shards or len(counts) != 1 or len(shards) != int(counts.pop()):
        raise BrainmetsError(f"{prefix}.index: data shards {prefix.name}.data-*-of-* missing or incomplete")
    return shards


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_network_arrays(prefix: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The network settings and every network variable (key -> float32 array) of one checkpoint."""
    import tensorflow as tf

    index = f"{prefix}.index"
    try:
        reader = tf.train.load_checkpoint(str(prefix))
        shapes = {k: list(v) for k, v in reader.get_variable_to_shape_map().items()}
    except (tf.errors.OpError, ValueError, IndexError, RuntimeError) as error:  # all seen on damaged files
        raise_if_fault(error, index, "cannot read")
        raise BrainmetsError(f"{index}: unreadable checkpoint ({str(error).splitlines()[0]})") from None
    settings = network_settings(shapes, index)
    expected = checkpoint_variable_map(len(settings["filters"]), settings["deep_supervision_heads"])
    present = {k for k in shapes if is_network_variable(k)}
    missing = sorted(set(expected) - present)
    if missing:
        raise BrainmetsError(f"{index}: network variable {missing[0]} is missing ({len(missing)} in all)")
    extra = sorted(present - set(expected))
    if extra:
        raise BrainmetsError(
            f"{index}: network variable {extra[0]} has no place in the published U-Net ({len(extra)} left over)"
        )
    arrays = {}
    for key in sorted(expected):
        try:
            arrays[key] = np.asarray(reader.get_tensor(key), dtype=np.float32)
        except (tf.errors.OpError, ValueError, IndexError, RuntimeError) as error:  # all seen on damaged files
            raise_if_fault(error, f"{prefix}.data", "cannot read")
            raise BrainmetsError(
                f"{prefix}.data: variable {key} cannot be read ({str(error).splitlines()[0]}); "
                "the checkpoint is damaged"
            ) from None
    return settings, arrays


def load_into_network(network: Any, settings: dict[str, Any], arrays: dict[str, np.ndarray], source: str) -> None:
    """Assign every mapped checkpoint array to its Keras weight; BrainmetsError naming a variable of the wrong shape."""
    mapping = checkpoint_variable_map(len(settings["filters"]), settings["deep_supervision_heads"])
    for key, (layer_name, attribute) in mapping.items():
        weight = getattr(network.get_layer(layer_name), attribute)
        value = arrays[key]
        if tuple(weight.shape) != value.shape:
            raise BrainmetsError(
                f"{source}: variable {key} has shape {list(value.shape)}, the network needs {list(weight.shape)}"
            )
        weight.assign(value)


def fold_folders(src: Path) -> dict[int, Path]:
    """Fold number -> folder: SRC itself when it is one Model_<k> folder, else its Model_<k> sub-folders."""
    if not src.is_dir():
        raise BrainmetsError(
            f"{src}: folder not found; give the published trained_models folder or one Model_<k> in it"
        )
    if (src / "checkpoint").is_file():
        match = FOLD_FOLDER.fullmatch(src.name)
        return {int(match.group(1)) if match else 0: src}
    folders = {int(m.group(1)): p for p in src.iterdir() if p.is_dir() and (m := FOLD_FOLDER.fullmatch(p.name))}
    if not folders:
        raise BrainmetsError(f"{src}: holds neither a checkpoint state file nor Model_<k> folders")
    return dict(sorted(folders.items()))


def import_brain_mets_seg(src: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> Path:
    """Import published fold checkpoints from SRC into a new model directory OUT_DIR; returns OUT_DIR.

    Every fold is read and checked before anything is written; the directory appears complete or not
    at all, and an existing non-empty OUT_DIR is refused.
    """
    from brainmets.network.model import build_unet

    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BrainmetsError(f"{out}: already exists and is not an empty folder; choose a new model directory")
    folds = fold_folders(Path(src))
    settings, sources, weights = None, {}, {}
    for fold, folder in folds.items():
        prefix = checkpoint_prefix(folder)
        shards = data_files(prefix)
        fold_settings, arrays = read_network_arrays(prefix)
        if settings is not None and fold_settings != settings:
            raise BrainmetsError(
                f"{prefix}.index: network differs from fold {next(iter(folds))}'s ({fold_settings['filters']})"
            )
        settings = fold_settings
        try:
            network = build_unet(**settings)
        except ValueError as error:
            raise BrainmetsError(
                f"{prefix}.index: the checkpoint's layers do not form the published U-Net ({error})"
            ) from None
        load_into_network(network, settings, arrays, f"{prefix}.index")
        weights[fold] = network
        sources[str(fold)] = {
            "checkpoint": str(prefix.resolve()),
            "data_files": [{"file": shard.name, "sha256": sha256_file(shard)} for shard in shards],
        }
    assert settings is not None
    preset = "paper" if settings["filters"] == PAPER_FILTERS else "custom"
    meta = model_metadata(preset, settings, PUBLISHED_PATCH_SIZE, PUBLISHED_SPACING_MM, list(folds))
    meta["source"] = {"format": SOURCE_FORMAT, "folds": sources}
    validate_metadata(meta, str(out / "model.json"))

    # the folders are made as mkdir makes them (0777 minus the umask), so the renamed folder is not 0700
    staging = temporary_folder(out.parent, f".{out.name}.")
    try:
        for fold, network in weights.items():
            fold_dir(staging, fold).mkdir()
            network.save_weights(str(fold_dir(staging, fold) / "best.weights.h5"))
        write_json(meta, staging / "model.json")
        os.replace(staging, out)  # onto an empty folder (checked above) too, so that it stays until replaced
    except Exception as error:  # a full disk while the weights are written: named after the model folder
        fault = storage_error(error, out, temporary=staging, action="cannot write the model folder")
        if fault is None:
            raise
        raise fault from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out
