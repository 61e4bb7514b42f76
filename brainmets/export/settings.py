"""Settings of the export stage (config section `export`), built from the checked configuration."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from brainmets.config import checked_section, read_section


@dataclass(frozen=True)
class ExportSettings:
    """What the workflow writes back for the scans that came from a DICOM series (config section `export`)."""

    dicom: bool = True


def settings_from_config(config: Mapping[str, Any] | None, source: str = "config") -> ExportSettings:
    """ExportSettings from a configuration mapping's `export` section, checked against the schema."""
    return ExportSettings(**checked_section(config, "export", source))


def load_settings(path: str | os.PathLike[str] | None) -> ExportSettings:
    """ExportSettings from the `export` section of a YAML configuration file (defaults without a file)."""
    return ExportSettings(**read_section(path, "export"))
