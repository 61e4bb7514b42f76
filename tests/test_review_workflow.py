"""A reviewer's review.tsv in the workflow: only that patient's tracking, RANO-BM tables and page are redone."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pandas as pd
import pytest

from review_patient import write_patient
from slurm.project import dry_run_jobs, make_project, snakemake

pytestmark = pytest.mark.workflow


def finished_project(root: Path) -> Path:
    """A generated project (3 patients x 2 visits) whose every planned output exists with one common time stamp.

    The stage configurations are real, and so are patient P2's scan maps (brain, segmentation, entropy: two
    visits of tests/review_patient.py, lesion 3 new at the second); every other output is a placeholder.
    """
    make_project(root)
    configs = [f"results/config/{stage}.yaml" for stage in ("track", "rano", "review")]
    made = snakemake(root, "--cores", "1", *configs)
    assert made.returncode == 0, made.stdout + made.stderr
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
        if name not in configs:
            path.write_text("done\n")
    write_patient(root / "results" / "P2", ["2024-01-15", "2024-02-15"])
    stamp = time.time() - 100  # in the past: Snakemake refuses outputs older than inputs from the future
    for path in [*(root / "data").rglob("*"), *(root / "config").rglob("*")]:  # the inputs: older still
        os.utime(path, (stamp - 10, stamp - 10))
    for path in (root / "results").rglob("*"):
        os.utime(path, (stamp, stamp))
    return root


def test_a_review_reruns_only_that_patients_jobs(tmp_path: Path) -> None:
    """Nothing to do; a review.tsv for P2 plans track, rano and review_page of P2 and the cohort table only.

    Run for real, the jobs take the review in: the new lesion rejected, P2's second visit is SD, not PD.
    """
    project = finished_project(tmp_path / "project")
    assert dry_run_jobs(project) == []
    review = project / "results" / "P2" / "review.tsv"
    review.write_text("lesion_id\ttimepoint\tdecision\tinto\n3\t2024-02-15\treject\t\n")
    later = time.time() - 50
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
    run = snakemake(project, "--cores", "1", "results/P2/review.html")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    response = pd.read_csv(project / "results/P2/rano_response.tsv", sep="\t", keep_default_na=False)
    assert response["overall_response"].tolist() == ["BL", "SD"]
    assert response["review"].tolist() == ["", "lesion 3: rejected"]
    assert "lesion 3" in (project / "results/P2/review.html").read_text()
