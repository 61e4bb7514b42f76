"""Reading the numeric settings of the longitudinal stage from a YAML configuration."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from brainmets.errors import BrainmetsError
from brainmets.io import read_yaml


def read_config_section(path: str | os.PathLike[str] | None, section: str) -> dict[str, Any]:
    """One section of a YAML configuration file as a dict (empty when no file is given)."""
    if path is None:
        return {}
    config = read_yaml(path, allow_empty=True)
    value = config.get(section, {})
    if not isinstance(value, Mapping):
        raise BrainmetsError(f"{Path(path)}: section `{section}` must be a mapping of settings")
    return dict(value)


def numeric_settings(cls: type, mapping: Mapping[str, Any] | None, section: str) -> dict[str, float | int]:
    """Checked keyword arguments for the settings dataclass `cls` from a config section (or a whole config).

    Every key must be a field of `cls`; values must be non-negative numbers (whole numbers for int fields).
    """
    values = dict(mapping or {})
    if isinstance(values.get(section), Mapping):
        values = dict(values[section])
    fields = {f.name: f.type for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise BrainmetsError(f"{section}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(fields)}")
    checked: dict[str, float | int] = {}
    for name, value in values.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise BrainmetsError(f"{section}.{name}: expected a number, found {value!r}") from None
        if number < 0 or (fields[name] == "int" and not number.is_integer()):
            kind = "a whole number >= 0" if fields[name] == "int" else "a number >= 0"
            raise BrainmetsError(f"{section}.{name}: expected {kind}, found {value!r}")
        checked[name] = int(number) if fields[name] == "int" else number
    return checked
