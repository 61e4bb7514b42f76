"""Settings of the review stage (config section `review`), built from the checked configuration."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from brainmets.config import checked_section, read_section


@dataclass(frozen=True)
class ReviewSettings:
    """When the review page flags a lesion (config section `review`): entropy in bits, distances in mm."""

    uncertainty_flag_bits: float = 0.75
    measurability_margin_mm: float = 1.0


def settings_from_config(config: Mapping[str, Any] | None, source: str = "config") -> ReviewSettings:
    """ReviewSettings from a configuration mapping's `review` section, checked against the schema."""
    return ReviewSettings(**checked_section(config, "review", source))


def load_settings(path: str | os.PathLike[str] | None) -> ReviewSettings:
    """ReviewSettings from the `review` section of a YAML configuration file (defaults without a file)."""
    return ReviewSettings(**read_section(path, "review"))
