"""Settings of the demo stage (config section `demo`), built from the checked configuration."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from brainmets.config import checked_section


@dataclass(frozen=True)
class DemoSettings:
    """The synthetic cohort (config section `demo`): its size, random seed and voxel-size multiplier."""

    enabled: bool = False
    out: str = "resources/demo"
    patients: int = 4
    timepoints: int = 3
    train: int = 12
    seed: int = 0
    scale: float = 1.0


def settings_from_config(config: Mapping[str, Any] | None, source: str = "config") -> DemoSettings:
    """DemoSettings from a configuration mapping's `demo` section, checked against the schema."""
    return DemoSettings(**checked_section(config, "demo", source))
