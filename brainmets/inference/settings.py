"""Settings of the inference stage (config section `inference`), built from the checked configuration."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

from brainmets.config import checked_section, read_section


@dataclasses.dataclass(frozen=True)
class InferenceSettings:
    """How a trained model is run over a scan (config section `inference`; see config/README.md)."""

    overlap: float = 0.5
    mirror_axes: tuple[int, ...] = (0, 1, 2)
    min_lesion_ml: float = 0.0
    batch_size: int | str = "auto"
    device: str = "auto"
    jit_compile: str | bool = "auto"
    weights: str = "best"
    recipe: str = "default"
    precision: str = "auto"


def _from_section(section: Mapping[str, Any]) -> InferenceSettings:
    """InferenceSettings from a checked `inference` section (lists become tuples)."""
    return InferenceSettings(**{**section, "mirror_axes": tuple(section["mirror_axes"])})


def settings_from_config(config: Mapping[str, Any] | None, source: str = "config") -> InferenceSettings:
    """InferenceSettings from a configuration mapping's `inference` section, checked against the schema."""
    return _from_section(checked_section(config, "inference", source))


def load_settings(path: str | os.PathLike[str] | None) -> InferenceSettings:
    """InferenceSettings from the `inference` section of a YAML configuration file (defaults without a file)."""
    return _from_section(read_section(path, "inference"))
