"""The workflow through its SLURM profile on a real single-node SLURM cluster with two fake GPUs."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from slurm.cluster import slurm_cluster
from slurm.project import REPO, fold_gpus, make_training_project, overlapping_pairs, snakemake

#: installs Debian packages, writes /etc/slurm and starts munged, slurmctld and slurmd: BRAINMETS_SYSTEM_TESTS=1 only
pytestmark = [pytest.mark.system, pytest.mark.slow, pytest.mark.workflow]

#: settings for a cluster without accounting database; everything else comes from the shipped profile
SITE = ["--slurm-no-account", "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A running one-node cluster (munge, slurmctld, slurmd) with gpu:2, stopped afterwards."""
    with slurm_cluster(tmp_path_factory.mktemp("slurm"), gpus=2, cpus=4, mem_mb=64000) as state:
        yield state


def slurm_jobs() -> dict[str, tuple[float, float]]:
    """Start and end (epoch s) of every finished job SLURM still lists, keyed by Snakemake's job comment."""
    out = subprocess.run(
        ["squeue", "-h", "--states=all", "-o", "%k|%S|%e|%T"], capture_output=True, text=True, check=True
    )
    jobs = {}
    for line in out.stdout.splitlines():
        comment, start, end, state = line.split("|")
        if state == "COMPLETED":
            jobs[comment] = (datetime.fromisoformat(start).timestamp(), datetime.fromisoformat(end).timestamp())
    return jobs


def test_training_through_slurm_gives_each_gpu_job_its_own_gpu(cluster: Path, tmp_path: Path) -> None:
    """Three folds (gpu=1 each) on two GPUs: SLURM runs two at a time on different GPUs, the third waits."""
    project = make_training_project(tmp_path / "p", patients=3, folds=3, epochs=1)
    result = snakemake(
        project,
        "results/model/model.json",
        "--workflow-profile",
        str(REPO / "workflow/profiles/slurm"),
        *SITE,
        timeout=600,
    )
    assert result.returncode == 0, (
        result.stdout[-3000:] + result.stderr[-3000:] + (cluster / "slurmctld.log").read_text()[-2000:]
    )
    assert (project / "results/model/model.json").is_file()
    submitted = re.findall(r"Job \d+ has been submitted with SLURM jobid (\d+)", result.stdout + result.stderr)
    assert len(submitted) >= 3, "the training jobs were not submitted to SLURM"
    gpus = fold_gpus(project / "logs" / "train")
    assert set(gpus) == {0, 1, 2}
    log = (project / "logs" / "train" / "fold_0.log").read_text()
    assert "(slurm)" in log, "the job did not take its GPU from SLURM"
    assert set(gpus.values()) <= {"0", "1"}
    times = {int(c.rsplit("_", 1)[1]): t for c, t in slurm_jobs().items() if c.startswith("rule_train_wildcards_")}
    assert set(times) == {0, 1, 2}
    pairs = overlapping_pairs({str(fold): interval for fold, interval in times.items()})
    assert pairs, f"no two folds ran at the same time, nothing was tested: {times}"
    for a, b in pairs:
        assert gpus[int(a)] != gpus[int(b)], f"folds {a} and {b} ran at the same time on GPU {gpus[int(a)]}"
    assert len(pairs) < 3, "three GPU jobs ran at once on two GPUs"
