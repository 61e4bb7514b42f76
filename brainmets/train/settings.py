"""Training settings: the model preset named in the configuration, with the `train` section's overrides."""

from __future__ import annotations

import dataclasses
import os
from importlib import resources
from typing import Any

import yaml

from brainmets.errors import BrainmetsError
from brainmets.io import read_yaml

#: `train.*` keys that, when not null, replace the preset's value
PRESET_OVERRIDES = (
    "epochs",
    "iterations_per_epoch",
    "batch_size",
    "patch_size",
    "validate_every",
    "validation_overlap",
)
CHOICES = {"device": ("auto", "cpu", "gpu"), "dali_device": ("auto", "cpu", "gpu")}
SWITCHES = ("mixed_precision", "xla")


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
    validate_every: int = 1
    validation_overlap: float = 0.5
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


def settings_from_config(config: dict[str, Any], source: str = "config") -> TrainSettings:
    """Merge the preset named by `model.preset` with the `train` section of a configuration mapping."""
    model = config.get("model") or {}
    train = dict(config.get("train") or {})
    preset_name = str(model.get("preset", "demo"))
    preset = dict(load_preset(preset_name))
    for key in PRESET_OVERRIDES:
        if train.get(key) is not None:
            preset[key] = train[key]
    for key, allowed in CHOICES.items():
        if train.get(key, "auto") not in allowed:
            raise BrainmetsError(f"{source}: train.{key} is {train[key]!r}; use one of {', '.join(allowed)}")
    for key in SWITCHES:
        if train.get(key, "auto") not in ("auto", True, False):
            raise BrainmetsError(f"{source}: train.{key} is {train[key]!r}; use auto, true or false")
    try:
        weight_map = WeightMapSettings(**(train.get("weight_map") or {}))
        settings = TrainSettings(
            preset=preset_name,
            network=dict(preset["network"]),
            patch_size=tuple(int(v) for v in preset["patch_size"]),
            batch_size=int(preset["batch_size"]),
            epochs=int(preset["epochs"]),
            iterations_per_epoch=int(preset["iterations_per_epoch"]),
            optimizer=dict(preset["optimizer"]),
            loss=dict(preset["loss"]),
            augmentation=dict(preset["augmentation"]),
            validate_every=int(preset.get("validate_every", 1)),
            validation_overlap=float(preset.get("validation_overlap", 0.5)),
            folds=int(train.get("folds", 5)),
            seed=int(train.get("seed", 0)),
            device=train.get("device", "auto"),
            dali_device=train.get("dali_device", "auto"),
            mixed_precision=train.get("mixed_precision", "auto"),
            xla=train.get("xla", "auto"),
            gpu_lock_dir=train.get("gpu_lock_dir"),
            weight_map=weight_map,
        )
    except (KeyError, TypeError, ValueError) as error:
        raise BrainmetsError(f"{source}: incomplete or invalid model preset / train section ({error})") from None
    divisor = 2 ** (len(settings.network["filters"]) - 1)
    if len(settings.patch_size) != 3 or any(p % divisor for p in settings.patch_size):
        raise BrainmetsError(
            f"{source}: patch_size {list(settings.patch_size)} must be 3 multiples of {divisor} for this network"
        )
    if settings.folds < 2:
        raise BrainmetsError(f"{source}: train.folds is {settings.folds}; cross-validation needs at least 2")
    return settings


def load_settings(config_path: str | os.PathLike[str]) -> TrainSettings:
    """Training settings from a configuration file (config/config.yaml)."""
    return settings_from_config(read_yaml(config_path), source=str(config_path))
