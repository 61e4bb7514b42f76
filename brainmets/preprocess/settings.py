"""Preprocessing settings: the `preprocess` section of config/config.yaml, validated once."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from brainmets.errors import BrainmetsError
from brainmets.io import float_triple

SKULLSTRIP_METHODS = ("hdbet", "deepbet")
HDBET_MODES = ("fast", "accurate")
DEVICES = ("cpu", "cuda")
#: ANTsPy linear registration presets accepted as stages (run in the order given)
REGISTRATION_STAGES = ("QuickRigid", "Rigid", "DenseRigid", "AffineFast", "Affine")


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


def _choice(section: Mapping[str, Any], key: str, choices: tuple[str, ...], default: str, where: str) -> str:
    """One string setting that must be one of `choices`."""
    value = section.get(key, default)
    if value not in choices:
        raise BrainmetsError(f"{where}.{key} is {value!r}; use one of {', '.join(choices)}")
    return str(value)


def _flag(section: Mapping[str, Any], key: str, default: bool, where: str) -> bool:
    """One true/false setting."""
    value = section.get(key, default)
    if not isinstance(value, bool):
        raise BrainmetsError(f"{where}.{key} is {value!r}; use true or false")
    return value


def _positive_ints(value: Any, key: str, where: str) -> tuple[int, ...]:
    """A non-empty list of positive integers."""
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, int) and v > 0 for v in value):
        raise BrainmetsError(f"{where}.{key} is {value!r}; use a list of positive integers")
    return tuple(int(v) for v in value)


def settings_from_config(config: Mapping[str, Any] | None, source: str = "config") -> PreprocessSettings:
    """Validate the `preprocess` section of a loaded configuration; missing keys take the defaults."""
    where = f"{source}: preprocess"
    section = (config or {}).get("preprocess") or {}
    if not isinstance(section, Mapping):
        raise BrainmetsError(f"{where} must be a mapping of settings, found {type(section).__name__}")
    defaults = PreprocessSettings()
    spacing = section.get("spacing_mm", list(defaults.spacing_mm))
    if isinstance(spacing, (int, float)) and not isinstance(spacing, bool):
        spacing = [spacing] * 3
    if (
        not isinstance(spacing, (list, tuple))
        or len(spacing) != 3
        or not all(isinstance(s, (int, float)) and not isinstance(s, bool) and 0.2 <= s <= 10 for s in spacing)
    ):
        raise BrainmetsError(f"{where}.spacing_mm is {spacing!r}; use three numbers between 0.2 and 10 (mm)")
    strip = section.get("skullstrip") or {}
    if not isinstance(strip, Mapping):
        raise BrainmetsError(f"{where}.skullstrip must be a mapping, found {type(strip).__name__}")
    strip_where = f"{where}.skullstrip"
    skullstrip = SkullStripSettings(
        method=_choice(strip, "method", SKULLSTRIP_METHODS, defaults.skullstrip.method, strip_where),
        mode=_choice(strip, "mode", HDBET_MODES, defaults.skullstrip.mode, strip_where),
        tta=_flag(strip, "tta", defaults.skullstrip.tta, strip_where),
        device=_choice(strip, "device", DEVICES, defaults.skullstrip.device, strip_where),
    )
    skull_stripped = section.get("skull_stripped", "auto")
    if skull_stripped not in ("auto", True, False):
        raise BrainmetsError(f"{where}.skull_stripped is {skull_stripped!r}; use auto, true or false")
    stages = section.get("registration", list(defaults.registration))
    if not isinstance(stages, (list, tuple)) or not stages or any(s not in REGISTRATION_STAGES for s in stages):
        raise BrainmetsError(
            f"{where}.registration is {stages!r}; use a list of stages from {', '.join(REGISTRATION_STAGES)}"
        )
    grid = section.get("registration_grid_mm", defaults.registration_grid_mm)
    if grid is not None and (not isinstance(grid, (int, float)) or isinstance(grid, bool) or not 0.2 <= grid <= 10):
        raise BrainmetsError(f"{where}.registration_grid_mm is {grid!r}; use a number between 0.2 and 10 (mm) or null")
    shrink = section.get("n4_shrink_factor", defaults.n4_shrink_factor)
    margin = section.get("crop_margin_vox", defaults.crop_margin_vox)
    if not isinstance(shrink, int) or isinstance(shrink, bool) or not 1 <= shrink <= 8:
        raise BrainmetsError(f"{where}.n4_shrink_factor is {shrink!r}; use an integer from 1 to 8")
    if not isinstance(margin, int) or isinstance(margin, bool) or margin < 0:
        raise BrainmetsError(f"{where}.crop_margin_vox is {margin!r}; use an integer >= 0")
    return PreprocessSettings(
        spacing_mm=float_triple(spacing),
        n4=_flag(section, "n4", defaults.n4, where),
        n4_shrink_factor=shrink,
        n4_iterations=_positive_ints(
            section.get("n4_iterations", list(defaults.n4_iterations)), "n4_iterations", where
        ),
        skullstrip=skullstrip,
        skull_stripped=None if skull_stripped == "auto" else skull_stripped,
        registration=tuple(stages),
        registration_grid_mm=None if grid is None else float(grid),
        crop_margin_vox=margin,
    )


def load_settings(path: str | os.PathLike[str] | None) -> PreprocessSettings:
    """Read the preprocessing settings from a YAML configuration file (defaults when `path` is None)."""
    from brainmets.io import read_yaml

    if path is None:
        return PreprocessSettings()
    return settings_from_config(read_yaml(path), str(path))
