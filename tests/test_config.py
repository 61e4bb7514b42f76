"""The configuration schema: one file for the workflow and the commands, unknown keys refused at once."""

from __future__ import annotations

import copy
import dataclasses
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml
from brainmets.cli import main
from brainmets.config import check_config, check_config_file, config_schema
from brainmets.errors import BrainmetsError

from slurm.project import REPO, snakemake

SHIPPED = yaml.safe_load((REPO / "config" / "config.yaml").read_text())

#: (section, misspelt key, the known key it should be matched to); `samples` stands for the top level
MISSPELT = [
    ("samples", "sample", "samples"),
    ("demo", "patient", "patients"),
    ("preprocess", "spacing", "spacing_mm"),
    ("preprocess.skullstrip", "metod", "method"),
    ("model", "presets", "preset"),
    ("train", "fold", "folds"),
    ("train.weight_map", "border_wieght", "border_weight"),
    ("inference", "overlp", "overlap"),
    ("track", "dilation", "dilation_mm"),
    ("rano", "max_target", "max_targets"),
    ("evaluation", "definitions", "definition"),
    ("report", "title", None),
]

#: a command that reads each section from --config (sections no command reads: any command)
IMAGE = ["--image", "x.nii.gz"]
COMMANDS = {
    "preprocess": ["preprocess", "x.nii.gz", "--out-dir", "{out}"],
    "model": ["train", "--cases", "x", "--fold", "0", "--model-dir", "{out}"],
    "train": ["train", "--cases", "x", "--fold", "0", "--model-dir", "{out}"],
    "inference": ["predict", *IMAGE, "--brain-mask", "m.nii.gz", "--model", "m", "--out-dir", "{out}"],
    "track": ["track", "manifest.tsv", "--out", "{out}"],
    "rano": ["rano", "lesions.tsv", "--out", "{out}/rano.tsv"],
}
OTHER = ["measure", "mask.nii.gz", "--out", "{out}/lesions.tsv"]


def misspelt_config(section: str, key: str) -> dict:
    """A configuration holding only the misspelt key, where it belongs."""
    if section == "samples":
        return {key: "config/samples.tsv"}
    config: dict = {}
    node = config
    for part in section.split("."):
        node = node.setdefault(part, {})
    node[key] = 1
    return config


def expected_message(section: str, key: str, close: str | None) -> str:
    """The line that names the key, its section and the closest known key."""
    if section == "samples":
        return f"unknown section {key!r}; did you mean {close!r}?"
    hint = f"did you mean {close!r}?" if close else "known keys: none"
    return f"unknown key {key!r} in section {section!r}; {hint}"


def test_the_workflow_and_the_commands_read_one_schema_file() -> None:
    """workflow/schemas/config.schema.yaml is the package's schema file itself, not a copy."""
    packaged = Path(str(resources.files("brainmets").joinpath("config.schema.yaml")))
    assert (REPO / "workflow" / "schemas" / "config.schema.yaml").resolve() == packaged.resolve()


def test_the_shipped_config_is_complete() -> None:
    """config/config.yaml passes and names every key of the stages' sections (only demo.scale is left out)."""
    filled = check_config(copy.deepcopy(SHIPPED))
    missing = [
        f"{section}.{key}"
        for section, values in filled.items()
        if isinstance(values, dict)
        for key in values
        if key not in (SHIPPED.get(section) or {})
    ]
    assert missing == ["demo.scale"]


def test_an_empty_config_takes_the_defaults_of_every_section() -> None:
    """Missing sections and keys are filled in, nested ones included."""
    filled = check_config({})
    assert filled["preprocess"]["skullstrip"]["method"] == "hdbet"
    assert filled["train"]["weight_map"]["border_weight"] == 2.0
    assert filled["inference"]["overlap"] == 0.5
    assert filled["demo"]["enabled"] is False


def stage_settings() -> dict[str, tuple[type, Any]]:
    """Config section -> (settings dataclass, its builder from a configuration mapping), for every stage."""
    from brainmets.demo import settings as demo
    from brainmets.evaluation import settings as evaluation
    from brainmets.export import settings as export
    from brainmets.inference import settings as inference
    from brainmets.preprocess import settings as preprocess
    from brainmets.rano import settings as rano
    from brainmets.review import settings as review
    from brainmets.track import settings as track
    from brainmets.train import settings as train

    return {
        "demo": (demo.DemoSettings, demo.settings_from_config),
        "preprocess": (preprocess.PreprocessSettings, preprocess.settings_from_config),
        "train": (train.TrainSettings, train.settings_from_config),
        "inference": (inference.InferenceSettings, inference.settings_from_config),
        "track": (track.TrackSettings, track.settings_from_config),
        "rano": (rano.RanoSettings, rano.settings_from_config),
        "review": (review.ReviewSettings, review.settings_from_config),
        "export": (export.ExportSettings, export.settings_from_config),
        "evaluation": (evaluation.EvaluationSettings, evaluation.settings_from_config),
    }


def dataclass_defaults(cls: type) -> dict[str, Any]:
    """The default of every field of a dataclass that has one."""
    return {
        f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
        for f in dataclasses.fields(cls)
        if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
    }


@pytest.mark.parametrize("section", ["demo", "preprocess", "train", "inference", "track", "rano", "evaluation"])
def test_schema_defaults_are_the_defaults_of_the_settings(section: str) -> None:
    """Settings built from the schema's defaults alone equal the dataclass defaults, key by key."""
    cls, from_config = stage_settings()[section]
    built = from_config({})
    defaults = dataclass_defaults(cls)
    assert {name: getattr(built, name) for name in defaults} == defaults
    keys = set(config_schema()["properties"][section]["properties"])
    if section == "train":  # the other train keys override the model preset's values (null: keep them)
        from brainmets.train.settings import PRESET_OVERRIDES

        keys -= set(PRESET_OVERRIDES)
    assert set(defaults) == keys


def test_a_changed_schema_default_reaches_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The settings take the schema's defaults, not their own: a different schema default shows in the settings."""
    from brainmets.inference.settings import settings_from_config

    schema = copy.deepcopy(config_schema())
    schema["properties"]["inference"]["properties"]["overlap"]["default"] = 0.25
    monkeypatch.setattr("brainmets.config.config_schema", lambda: schema)
    assert settings_from_config({}).overlap == 0.25


@pytest.mark.parametrize(
    ("section", "value", "problem"),
    [
        ("train", {"folds": "one"}, "train.folds: 'one' is not of type 'integer'"),
        ("inference", {"overlap": 1.0}, "inference.overlap: 1.0 is greater than or equal to the maximum of 1"),
        ("inference", {"batch_size": 0}, "inference.batch_size: 0 is not allowed; use auto or"),
        ("preprocess", {"spacing_mm": [1, 1]}, "preprocess.spacing_mm: [1, 1] is too short"),
        ("rano", {"max_targets": -1}, "rano.max_targets: -1 is less than the minimum of 0"),
    ],
)
def test_a_value_out_of_range_names_the_key(section: str, value: dict, problem: str) -> None:
    """Types, ranges and choices are checked, and the line names the key."""
    with pytest.raises(BrainmetsError, match="^my.yaml: ") as error:
        check_config({section: value}, "my.yaml")
    assert problem in str(error.value)


def test_numbers_and_booleans_given_as_text_are_read_as_yaml() -> None:
    """Snakemake's `--config rano={'max_targets': 4}` hands over '4': it is the number 4, and 'x' stays an error."""
    config = check_config(
        {
            "rano": {"max_targets": "4", "pr_relative": "0.5"},
            "inference": {"jit_compile": "false"},
            "preprocess": {"skull_stripped": "true"},
            "model": {"dir": "123"},
        }
    )
    assert config["rano"]["max_targets"] == 4 and config["rano"]["pr_relative"] == 0.5
    assert config["inference"]["jit_compile"] is False and config["preprocess"]["skull_stripped"] is True
    assert config["model"]["dir"] == "123"  # a text setting stays text
    with pytest.raises(BrainmetsError, match=r"rano.max_targets: 'four' is not of type 'integer'"):
        check_config({"rano": {"max_targets": "four"}})


def test_a_config_file_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    """A list at the top of the file is one clear line."""
    path = tmp_path / "c.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(BrainmetsError, match=str(path)):
        check_config_file(path)


@pytest.mark.parametrize(("section", "key", "close"), MISSPELT, ids=[m[0] for m in MISSPELT])
def test_a_misspelt_key_stops_a_command_before_it_reads_anything(
    section: str, key: str, close: str | None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command that reads the section exits 2 with one line naming the key, its section and the closest key."""
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(misspelt_config(section, key)))
    out = tmp_path / "out"
    command = COMMANDS.get(section.split(".")[0], OTHER)
    assert main([part.format(out=out) for part in command] + ["--config", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"brainmets {command[0]}: error: {config}: {expected_message(section, key, close)}"
    assert not out.exists()


@pytest.mark.workflow
@pytest.mark.parametrize(("section", "key", "close"), MISSPELT, ids=[m[0] for m in MISSPELT])
def test_a_misspelt_key_stops_the_workflow_before_any_job(
    section: str, key: str, close: str | None, tmp_path: Path
) -> None:
    """`snakemake -n` with the misspelt key fails at once with the same line, before the DAG is built."""
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(SHIPPED))
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(misspelt_config(section, key)))
    result = snakemake(tmp_path, "-n", "--configfile", str(bad), timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"config: {expected_message(section, key, close)}" in output.splitlines()
    assert "Building DAG" not in output


def test_the_scoring_definitions_are_the_schema_choices() -> None:
    """`brainmets evaluate --definition` offers exactly the definitions the `evaluation` section accepts."""
    from brainmets.evaluation.settings import DEFINITIONS

    assert list(DEFINITIONS) == config_schema()["properties"]["evaluation"]["properties"]["definition"]["enum"]
