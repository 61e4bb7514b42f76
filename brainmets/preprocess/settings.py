"""Settings of the preprocess stage (config section `preprocess`), built from the checked configuration."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from brainmets.config import checked_section, read_section


@dataclass(frozen=True)
class SkullStripSettings:
    """How the brain is extracted: method hdbet|deepbet, HD-BET mode and mirroring, torch device."""

    method: str = "hdbet"
    mode: str = "fast"
    tta: bool = False
    device: str = "cpu"


@dataclass(frozen=True)
class PreprocessSettings:
    """Every knob of per-scan preprocessing (spacings in mm)."""

    spacing_mm: tuple[float, float, float] = (1.0, 1.0, 1.0)
    n4: bool = True
    n4_shrink_factor: int = 4
    n4_iterations: tuple[int, ...] = (20, 20, 10)
    skullstrip: SkullStripSettings = field(default_factory=SkullStripSettings)
    #: input already skull-stripped: True (take its brain as given), False (strip it), None (auto: detect it)
    skull_stripped: bool | None = None
    registration: tuple[str, ...] = ("QuickRigid", "AffineFast")
    registration_grid_mm: float | None = 2.0
    crop_margin_vox: int = 0


def settings_from_config(config: Mapping[str, Any] | None, source: str = "config") -> PreprocessSettings:
    """PreprocessSettings from a configuration mapping's `preprocess` section, checked against the schema."""
    return _from_section(checked_section(config, "preprocess", source))


def load_settings(path: str | os.PathLike[str] | None) -> PreprocessSettings:
    """PreprocessSettings from the `preprocess` section of a YAML configuration file (defaults without a file)."""
    return _from_section(read_section(path, "preprocess"))


def _from_section(section: Mapping[str, Any]) -> PreprocessSettings:
    """PreprocessSettings from a checked `preprocess` section: one spacing for all axes, `auto` as None, tuples."""
    spacing = section["spacing_mm"]
    return PreprocessSettings(
        **{
            **section,
            "spacing_mm": tuple(float(s) for s in ([spacing] * 3 if isinstance(spacing, (int, float)) else spacing)),
            "n4_iterations": tuple(section["n4_iterations"]),
            "skullstrip": SkullStripSettings(**section["skullstrip"]),
            "skull_stripped": None if section["skull_stripped"] == "auto" else section["skull_stripped"],
            "registration": tuple(section["registration"]),
        }
    )
