"""Settings of the evaluation stage (config section `evaluation`), built from the checked configuration."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from brainmets.config import checked_section

#: the scoring definitions: the official scorer each one equals
DEFINITIONS = {
    "brats2023": "BraTS-2023 lesion-wise code (dilation matching, surface-distance HD95)",
    "brats2025": "BraTS-evaluation package (panoptica: one-to-one matching, DSC, NSD, HD95)",
}


@dataclass(frozen=True)
class EvaluationSettings:
    """How predicted masks are scored against the truth (config section `evaluation`)."""

    definition: str = "brats2023"


def settings_from_config(config: Mapping[str, Any] | None, source: str = "config") -> EvaluationSettings:
    """EvaluationSettings from a configuration mapping's `evaluation` section, checked against the schema."""
    return EvaluationSettings(**checked_section(config, "evaluation", source))
