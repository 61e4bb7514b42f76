"""A reviewer's review.tsv in the workflow: only that patient's tracking, RANO-BM tables and page are redone."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from slurm.project import dry_run_jobs, make_project, snakemake

pytestmark = pytest.mark.workflow


def finished_project(root: Path) -> Path:
    """A generated project (3 patients x 2 visits) whose every planned output exists with one common time stamp."""
    make_project(root)
    plan = snakemake(root, "-n")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    outputs = [
        name.strip()
        for line in re.findall(r"^    output: (.*)$", plan.stdout, re.MULTILINE)
        for name in line.split(",")
    ]
    assert "results/P2/review.html" in outputs
    for name in outputs:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("done\n")
    stamp = (root / "config" / "config.yaml").stat().st_mtime + 10
    for path in (root / "results").rglob("*"):
        os.utime(path, (stamp, stamp))
    return root


def test_a_review_reruns_only_that_patients_jobs(tmp_path: Path) -> None:
    """Nothing to do, then a review.tsv for P2: track, rano and review_page of P2 and the cohort table only."""
    project = finished_project(tmp_path / "project")
    assert dry_run_jobs(project) == []
    review = project / "results" / "P2" / "review.tsv"
    review.write_text("lesion_id\ttimepoint\tdecision\tinto\n1\t\treject\t\n")
    later = review.stat().st_mtime + 10
    os.utime(review, (later, later))
    jobs = dry_run_jobs(project)
    assert sorted((rule, w.get("patient", "")) for rule, w in jobs) == [
        ("all", ""),
        ("rano", "P2"),
        ("rano_cohort", ""),
        ("review_page", "P2"),
        ("track", "P2"),
    ]
    commands = snakemake(project, "-n", "-p", "results/P2/lesions.tsv").stdout
    assert "--patient P2 --review results/P2/review.tsv" in commands
