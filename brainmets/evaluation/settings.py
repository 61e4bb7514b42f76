"""Settings of the evaluation stage (config section `evaluation`), built from the checked configuration."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: the scoring definitions: the official scorer each one equals
DEFINITIONS = {
    "brats2023": "BraTS-2023 lesion-wise code (dilation matching, surface-distance HD95)",
    "brats2025": "BraTS-evaluation package (panoptica: one-to-one matching, DSC, NSD, HD95)",
}


@dataclass(frozen=True)
class EvaluationSettings:
    """How predicted masks are scored against the truth (config section `evaluation`)."""

    definition: str = "brats2023"

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> EvaluationSettings:
        """Settings from the `evaluation` section that `brainmets.config.check_config` checked and filled."""
        return cls(**section)
