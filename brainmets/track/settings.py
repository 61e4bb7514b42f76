"""Settings of the track stage (config section `track`), built from the checked configuration."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from brainmets.config import checked_section, read_section


@dataclass(frozen=True)
class TrackSettings:
    """How lesions are matched between visits (config section `track`), in mm."""

    dilation_mm: float = 1.5
    centroid_radius_mm: float = 10.0


def settings_from_config(config: Mapping[str, Any] | None, source: str = "config") -> TrackSettings:
    """TrackSettings from a configuration mapping's `track` section, checked against the schema."""
    return TrackSettings(**checked_section(config, "track", source))


def load_settings(path: str | os.PathLike[str] | None) -> TrackSettings:
    """TrackSettings from the `track` section of a YAML configuration file (defaults without a file)."""
    return TrackSettings(**read_section(path, "track"))
