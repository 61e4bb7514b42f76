"""The model directory: `model.json` plus one sub-directory of weights per cross-validation fold.

    MODEL_DIR/model.json                 metadata (MODEL_SCHEMA)
    MODEL_DIR/fold_<k>/best.weights.h5   weights with the best validation Dice
    MODEL_DIR/fold_<k>/latest.weights.h5 weights at the end of the last finished epoch
    MODEL_DIR/fold_<k>/latest.optimizer.npz  optimiser state to resume from
    MODEL_DIR/fold_<k>/log.csv           one row per epoch
    MODEL_DIR/fold_<k>/state.json        progress, best Dice, the fold's cases and its settings

An imported model (`brainmets import-model`) has only `best.weights.h5` per fold; its model.json adds
`source` (the source format and, per fold, the checkpoint and the sha256 of each of its data files) and
its `network` holds every setting that differs from the preset (e.g. `norm_epsilon`).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema
import numpy as np

from brainmets import __version__
from brainmets.errors import BrainmetsError, raise_if_fault
from brainmets.io import read_json, write_json

if TYPE_CHECKING:
    import keras

FORMAT = "brainmets-model"
FORMAT_VERSION = 1
NORMALISATION = "zscore-brain"

MODEL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": [
        "format",
        "format_version",
        "brainmets_version",
        "preset",
        "network",
        "patch_size",
        "spacing_mm",
        "normalisation",
        "folds",
    ],
    "properties": {
        "format": {"const": FORMAT},
        "format_version": {"const": FORMAT_VERSION},
        "brainmets_version": {"type": "string"},
        "preset": {"type": "string"},
        "network": {
            "type": "object",
            "required": ["filters"],
            "properties": {"filters": {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 2}},
        },
        "patch_size": {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 3, "maxItems": 3},
        "spacing_mm": {
            "type": "array",
            "items": {"type": "number", "exclusiveMinimum": 0},
            "minItems": 3,
            "maxItems": 3,
        },
        "normalisation": {"const": NORMALISATION},
        "folds": {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1, "uniqueItems": True},
        # imported models only: where each fold's weights came from (brainmets.train.published_import)
        "source": {
            "type": "object",
            "required": ["format", "folds"],
            "properties": {
                "format": {"type": "string"},
                "folds": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "required": ["checkpoint", "data_files"],
                        "properties": {
                            "checkpoint": {"type": "string"},
                            "data_files": {
                                "type": "array",
                                "minItems": 1,
                                "items": {
                                    "type": "object",
                                    "required": ["file", "sha256"],
                                    "properties": {
                                        "file": {"type": "string"},
                                        "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}


def fold_dir(model_dir: str | os.PathLike[str], fold: int) -> Path:
    """The directory that holds one fold's checkpoints, log and state."""
    return Path(model_dir) / f"fold_{fold}"


def model_metadata(
    preset: str, network: dict[str, Any], patch_size: list[int], spacing_mm: list[float], folds: list[int]
) -> dict[str, Any]:
    """The model.json document for a trained model (patch in voxels, spacing in mm)."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "brainmets_version": __version__,
        "preset": preset,
        "network": dict(network),
        "patch_size": [int(v) for v in patch_size],
        "spacing_mm": [float(v) for v in spacing_mm],
        "normalisation": NORMALISATION,
        "folds": sorted(int(f) for f in folds),
    }


def validate_metadata(meta: dict[str, Any], source: str) -> dict[str, Any]:
    """Check a model.json document against MODEL_SCHEMA; returns it or raises BrainmetsError."""
    try:
        jsonschema.validate(meta, MODEL_SCHEMA)
    except jsonschema.ValidationError as error:
        where = "/".join(str(p) for p in error.absolute_path) or "top level"
        raise BrainmetsError(
            f"{source}: not a valid brainmets model description at {where}: {error.message}; "
            "retrain or run `brainmets finalise-model` again"
        ) from None
    return meta


def finalise_model_dir(model_dir: str | os.PathLike[str], folds: list[int] | None = None) -> Path:
    """Write MODEL_DIR/model.json from the folds' state files once every requested fold has finished."""
    root = Path(model_dir)
    if folds is None:
        folds = sorted(int(p.name.split("_", 1)[1]) for p in root.glob("fold_*") if p.name.split("_", 1)[1].isdigit())
    if not folds:
        raise BrainmetsError(f"{root}: no fold_<k> directories; run `brainmets train` for each fold first")
    states = []
    for fold in folds:
        state_path = fold_dir(root, fold) / "state.json"
        state = read_json(state_path)
        if not state.get("finished") or not (fold_dir(root, fold) / "best.weights.h5").is_file():
            raise BrainmetsError(
                f"{state_path}: fold {fold} has not finished training; rerun `brainmets train --fold {fold}`"
            )
        states.append(state)
    first = states[0]
    for fold, state in zip(folds, states, strict=True):
        for key in ("preset", "network", "patch_size", "spacing_mm"):
            if state[key] != first[key]:
                raise BrainmetsError(
                    f"{fold_dir(root, fold) / 'state.json'}: {key} differs from fold {folds[0]}'s; "
                    "all folds must be trained with the same settings"
                )
    meta = model_metadata(first["preset"], first["network"], first["patch_size"], first["spacing_mm"], folds)
    return write_json(validate_metadata(meta, str(root / "model.json")), root / "model.json")


def _read_weights(network: keras.Model, weights_path: Path) -> None:
    """Load a fold's weights file into `network`, refusing a file that does not fit it (BrainmetsError)."""
    try:
        with warnings.catch_warnings():
            # Keras only warns when parts of a file do not match; a partial load must not pass
            warnings.simplefilter("error")
            network.load_weights(str(weights_path))
    except Exception as error:  # h5py and Keras raise several types for mismatched or corrupt files
        raise_if_fault(error, weights_path, "cannot read")
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise BrainmetsError(f"{weights_path}: weights do not fit the network in model.json ({message})") from None


def model_files(path: str | os.PathLike[str], weights: str = "best") -> tuple[dict[str, Any], list[Path]]:
    """A model directory's validated model.json and each fold's weights file, refused when any is missing."""
    root = Path(path)
    if not root.is_dir():
        raise BrainmetsError(f"{root}: model directory not found; train a model or set model.dir")
    meta = validate_metadata(read_json(root / "model.json"), str(root / "model.json"))
    files = []
    for fold in meta["folds"]:
        weights_path = fold_dir(root, fold) / f"{weights}.weights.h5"
        if not weights_path.is_file():
            raise BrainmetsError(f"{weights_path}: missing weights of fold {fold} listed in model.json")
        files.append(weights_path)
    return meta, files


def _fold_networks(
    path: str | os.PathLike[str], weights: str, shared: bool
) -> tuple[dict[str, Any], list[keras.Model], list[Path]]:
    """Validated metadata, freshly built networks (one per fold, or one to share) and each fold's weights file."""
    from brainmets.network.model import build_unet

    root = Path(path)
    meta, files = model_files(root, weights)
    try:
        networks = [build_unet(**meta["network"]) for _ in range(1 if shared else len(files))]
    except (TypeError, ValueError) as error:
        raise BrainmetsError(f"{root / 'model.json'}: network settings cannot build the U-Net ({error})") from None
    return meta, networks, files


def load_model_dir(path: str | os.PathLike[str], weights: str = "best") -> tuple[dict[str, Any], list[keras.Model]]:
    """Validate a model directory; returns its metadata and one full-resolution inference model per fold."""
    from brainmets.network.model import full_resolution_model

    meta, networks, files = _fold_networks(path, weights, shared=False)
    for network, weights_path in zip(networks, files, strict=True):
        _read_weights(network, weights_path)
    return meta, [full_resolution_model(network) for network in networks]


def load_fold_weights(
    path: str | os.PathLike[str], weights: str = "best"
) -> tuple[dict[str, Any], keras.Model, list[list[np.ndarray]]]:
    """Validate a model directory; returns its metadata, one full-resolution network and every fold's weights.

    The network is built once (0.5-0.6 s per build of the demo U-Net on one AVX2 core) and each fold's file is
    read into it in turn; it holds the last fold's weights on return.
    """
    from brainmets.network.model import full_resolution_model

    meta, (network,), files = _fold_networks(path, weights, shared=True)
    full = full_resolution_model(network)  # shares the layers: no deep-supervision heads
    fold_weights = []
    for weights_path in files:
        _read_weights(network, weights_path)
        fold_weights.append([np.asarray(w) for w in full.get_weights()])
    return meta, full, fold_weights
