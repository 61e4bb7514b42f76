"""Settings of the rano stage (config section `rano`), built from the checked configuration."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from brainmets.config import checked_section, read_section


@dataclass(frozen=True)
class RanoSettings:
    """RANO-BM thresholds (config section `rano`); diameters in mm, volumes in mL, times in days."""

    measurable_min_ld_mm: float = 10.0
    measurable_min_pd_mm: float = 5.0
    measurable_min_slices: int = 2
    max_targets: int = 5
    pd_relative: float = 0.20
    pd_absolute_mm: float = 5.0
    pr_relative: float = 0.30
    new_lesion_min_ld_mm: float = 5.0
    nontarget_pd_volume_ratio: float = 1.728
    nontarget_pd_min_increase_ml: float = 0.1
    confirmation_days: int = 28
    #: after the first progression: `stop` ends the assessment, `rebaseline` opens a new period
    after_progression: str = "stop"


def settings_from_config(config: Mapping[str, Any] | None, source: str = "config") -> RanoSettings:
    """RanoSettings from a configuration mapping's `rano` section, checked against the schema."""
    return RanoSettings(**checked_section(config, "rano", source))


def load_settings(path: str | os.PathLike[str] | None) -> RanoSettings:
    """RanoSettings from the `rano` section of a YAML configuration file (defaults without a file)."""
    return RanoSettings(**read_section(path, "rano"))
