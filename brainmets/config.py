"""The configuration schema (config.schema.yaml, shipped with the package): checks and defaults in one place.

The workflow checks config/config.yaml with it when it starts and each command checks its --config file
with it, so a misspelt key anywhere stops the run at once with one line naming the key, its section and
the closest known key, instead of being ignored or noticed hours later.
"""

from __future__ import annotations

import copy
import difflib
import functools
import os
from collections.abc import Iterator, Mapping, MutableMapping
from importlib import resources
from typing import Any

import jsonschema
import yaml

from brainmets.errors import BrainmetsError

SCHEMA_FILE = "config.schema.yaml"


@functools.cache
def config_schema() -> dict[str, Any]:
    """The configuration schema as a mapping (read once from the package)."""
    return yaml.safe_load(resources.files("brainmets").joinpath(SCHEMA_FILE).read_text())


#: schema types whose values may arrive as text (Snakemake's `--config section={'key': 4}` gives '4')
_PARSED_TYPES = {"number", "integer", "boolean", "null"}


def _parsed_text(value: str, subschema: dict[str, Any]) -> Any:
    """A text value read as YAML where the schema wants a number, boolean or null there; else the text."""
    wanted = subschema.get("type", [])
    wanted = {wanted} if isinstance(wanted, str) else set(wanted)
    if "string" in wanted or (
        not wanted & _PARSED_TYPES and all(isinstance(v, str) for v in subschema.get("enum", []))
    ):
        return value
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        return value
    return parsed if isinstance(parsed, (int, float, bool)) or parsed is None else value


def _fill_defaults(validator: Any, properties: dict[str, Any], instance: Any, schema: dict[str, Any]) -> Iterator[Any]:
    """JSON-schema `properties` check that first sets every missing key that has a default and reads text numbers."""
    if isinstance(instance, MutableMapping):
        for key, subschema in properties.items():
            if "default" in subschema and key not in instance:
                instance[key] = copy.deepcopy(subschema["default"])
            elif isinstance(instance.get(key), str):
                instance[key] = _parsed_text(instance[key], subschema)
    yield from jsonschema.Draft202012Validator.VALIDATORS["properties"](validator, properties, instance, schema)


_Validator = jsonschema.validators.extend(jsonschema.Draft202012Validator, {"properties": _fill_defaults})


def _where(path: Any) -> str:
    """A key path as dotted text (`train.weight_map`), or `top level` for the root."""
    return ".".join(str(part) for part in path) or "top level"


def _describe(error: jsonschema.ValidationError) -> str:
    """One line for one schema violation: unknown keys with the closest known one, else key and problem."""
    if error.validator == "additionalProperties":
        known = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(known))[0]
        section = _where(error.absolute_path)
        what = f"unknown key {unknown!r} in section {section!r}"
        if section == "top level":
            what = f"unknown section {unknown!r}"
        close = difflib.get_close_matches(str(unknown), known, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(known) or 'none'}"
        return f"{what}; {hint}"
    if error.validator in ("anyOf", "oneOf") and "description" in error.schema:
        return f"{_where(error.absolute_path)}: {error.instance!r} is not allowed; use {error.schema['description']}"
    return f"{_where(error.absolute_path)}: {error.message}"


def check_config(config: MutableMapping[str, Any], source: str = "config") -> MutableMapping[str, Any]:
    """Check a loaded configuration against the schema and fill in the defaults of missing keys, in place.

    Raises BrainmetsError with one line naming `source`, the key and the problem; unknown keys are reported
    first (with the closest known key), the shallowest problem before deeper ones.
    """
    if not isinstance(config, MutableMapping):
        raise BrainmetsError(f"{source}: a configuration must be a mapping of sections, found {type(config).__name__}")
    errors = list(_Validator(config_schema()).iter_errors(config))
    if errors:
        first = min(errors, key=lambda e: (e.validator != "additionalProperties", len(e.absolute_path), e.message))
        raise BrainmetsError(f"{source}: {_describe(first)}")
    return config


def check_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check a YAML configuration file (empty: no settings); returns it with the defaults filled in."""
    from brainmets.io import read_yaml

    return dict(check_config(read_yaml(path, allow_empty=True), str(path)))


def checked_section(config: Mapping[str, Any] | None, section: str, source: str = "config") -> dict[str, Any]:
    """One section of a configuration mapping, checked against the schema, with the schema's defaults filled in."""
    return check_config({section: copy.deepcopy((config or {}).get(section) or {})}, source)[section]


def read_section(path: str | os.PathLike[str] | None, section: str) -> dict[str, Any]:
    """One checked section of a YAML configuration file, defaults filled in (only defaults when `path` is None)."""
    from brainmets.io import read_yaml

    config = read_yaml(path, allow_empty=True) if path is not None else {}
    return checked_section(config, section, str(path))


def write_stage_config(sections: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Write the configuration sections one workflow stage reads (section -> settings) as YAML, atomically."""
    from brainmets.io import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(dict(sections), sort_keys=False))
