"""Settings of the train stage: the model preset named in section `model`, with the `train` section's values."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from importlib import resources
from typing import Any

import yaml

from brainmets.config import checked_section
from brainmets.errors import BrainmetsError
from brainmets.io import int_triple, read_yaml

#: `train.*` keys that, when not null, replace the preset's value
PRESET_OVERRIDES = (
    "epochs",
    "iterations_per_epoch",
    "batch_size",
    "patch_size",
    "validate_every",
    "validation_overlap",
)


#: what a preset file may leave out: validate after every epoch, with the sliding-window overlap of inference
PRESET_OPTIONAL = {"validate_every": 1, "validation_overlap": 0.5}


@dataclasses.dataclass(frozen=True)
class WeightMapSettings:
    """Parameters of the boundary-weight map (see brainmets.train.weightmap)."""

    border_weight: float = 2.0
    border_sigma_mm: float = 2.0
    small_lesion_weight: float = 3.0
    small_lesion_volume_mm3: float = 500.0


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """Everything one fold's training needs: network, patch, schedule, optimiser, loss, augmentation, devices."""

    preset: str
    network: dict[str, Any]
    patch_size: tuple[int, int, int]
    batch_size: int
    epochs: int
    iterations_per_epoch: int
    optimizer: dict[str, Any]
    loss: dict[str, Any]
    augmentation: dict[str, Any]
    validate_every: int
    validation_overlap: float
    folds: int = 5
    seed: int = 0
    device: str = "auto"
    dali_device: str = "auto"
    mixed_precision: str | bool = "auto"
    xla: str | bool = "auto"
    gpu_lock_dir: str | None = None
    weight_map: WeightMapSettings = dataclasses.field(default_factory=WeightMapSettings)

    def replace(self, **changes: Any) -> TrainSettings:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


def load_preset(name: str) -> dict[str, Any]:
    """The preset called `name` from the packaged presets.yaml, or read from `name` if it is a YAML file."""
    if name.endswith((".yaml", ".yml")):
        return read_yaml(name)
    presets = yaml.safe_load(resources.files("brainmets.network").joinpath("presets.yaml").read_text())
    if name not in presets:
        raise BrainmetsError(
            f"model.preset: unknown preset {name!r}; choose one of {', '.join(presets)} or a .yaml file"
        )
    return presets[name]


def settings_from_config(config: Mapping[str, Any] | None, source: str = "config") -> TrainSettings:
    """The preset named by `model.preset` with the `train` section's values, both sections checked by the schema."""
    model, train = checked_section(config, "model", source), checked_section(config, "train", source)
    preset = {**PRESET_OPTIONAL, **load_preset(model["preset"])}
    preset.update({key: train[key] for key in PRESET_OVERRIDES if train[key] is not None})
    own = {key: value for key, value in train.items() if key not in PRESET_OVERRIDES}
    try:
        settings = TrainSettings(
            preset=model["preset"],
            network=dict(preset["network"]),
            patch_size=int_triple(preset["patch_size"]),
            batch_size=int(preset["batch_size"]),
            epochs=int(preset["epochs"]),
            iterations_per_epoch=int(preset["iterations_per_epoch"]),
            optimizer=dict(preset["optimizer"]),
            loss=dict(preset["loss"]),
            augmentation=dict(preset["augmentation"]),
            validate_every=int(preset["validate_every"]),
            validation_overlap=float(preset["validation_overlap"]),
            **{**own, "weight_map": WeightMapSettings(**own["weight_map"])},
        )
    except (KeyError, TypeError, ValueError) as error:
        raise BrainmetsError(f"{source}: incomplete or invalid model preset {model['preset']!r} ({error})") from None
    divisor = 2 ** (len(settings.network["filters"]) - 1)
    if len(settings.patch_size) != 3 or any(p % divisor for p in settings.patch_size):
        raise BrainmetsError(
            f"{source}: patch_size {list(settings.patch_size)} must be 3 multiples of {divisor} for this network"
        )
    return settings


def load_settings(path: str | os.PathLike[str] | None) -> TrainSettings:
    """Training settings from the `model` and `train` sections of a YAML configuration file (defaults without one)."""
    return settings_from_config(read_yaml(path, allow_empty=True) if path is not None else {}, str(path))
