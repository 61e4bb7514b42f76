"""The workflow's scripts (scripts/, run by rules through Snakemake's `script:`): their work, and one line on faults."""

from __future__ import annotations

import builtins
import errno
import runpy
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from slurm.project import REPO

STAGE_CONFIG = REPO / "scripts" / "stage_config.py"


def stage_config_job(tmp_path: Path) -> SimpleNamespace:
    """What Snakemake hands the stage_config script for the `rano` stage."""
    sections = {"rano": {"max_targets": 4}}
    return SimpleNamespace(
        params=SimpleNamespace(sections=sections),
        output=[str(tmp_path / "rano.yaml")],
        log=[str(tmp_path / "rano.log")],
    )


def test_stage_config_writes_the_sections_of_its_stage(tmp_path: Path) -> None:
    job = stage_config_job(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(STAGE_CONFIG), init_globals={"snakemake": job}, run_name="__main__")
    assert exit_info.value.code == 0
    assert yaml.safe_load(Path(job.output[0]).read_text()) == {"rano": {"max_targets": 4}}
    assert Path(job.log[0]).read_text() == ""


def test_stage_config_on_a_full_disk_ends_in_one_line_in_its_log(tmp_path: Path, monkeypatch) -> None:
    job = stage_config_job(tmp_path)
    Path(job.output[0]).write_text("earlier\n")
    main = runpy.run_path(str(STAGE_CONFIG))["main"]
    real_open = builtins.open

    def full_disk(file, mode="r", *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        if ".part" in str(file) and "w" in mode:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", full_disk)
    monkeypatch.setattr("io.open", full_disk)
    assert main(job) == 1
    monkeypatch.undo()
    assert Path(job.log[0]).read_text().splitlines() == [
        f"stage_config: error: {job.output[0]}: cannot write (no space left on the disk); "
        "free space there or choose a folder on another disk"
    ]
    assert Path(job.output[0]).read_text() == "earlier\n" and sorted(p.name for p in tmp_path.iterdir()) == [
        "rano.log",
        "rano.yaml",
    ]
