"""Scale of the workflow's DAG: time `snakemake -n -q` on a sample sheet the size of the published cohort.

Builds, in a temporary folder, a sheet of 2,431 scans (608 patients, 4 visits each less one; tiny NIfTI
files, since a dry run reads only the sheet) plus training cases, and prints the number of jobs, the
wall time and the peak memory of the dry run. Target: at most 10 s on a 2-core machine.

Snakemake's own cost per job is the floor: the same run also dry-runs a bare workflow with the same
number of jobs per rule (one output each, no inputs, logs, resources or environments; Python's cyclic
garbage collector off while planning, as in the Snakefile) and prints it. It also dry-runs a replica of the
workflow's DAG: the same rules, wildcards, dependencies and outputs per job, with one log each and
nothing else (no benchmark, environment, resources, parameters, report, sample sheet or configuration):
what the shape of the DAG costs, before anything a rule declares beyond its files.

    python benchmarks/dag.py [--scans 2431] [--training 40] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
VISITS = 4


def build_project(root: Path, scans: int, training: int) -> None:
    """Write config/config.yaml and config/samples.tsv for `scans` analysis scans and `training` cases."""
    data = root / "data"
    data.mkdir(parents=True)
    template = data / "template.nii.gz"
    nib.save(nib.Nifti1Image(np.arange(64, dtype=np.float32).reshape(4, 4, 4), np.eye(4)), str(template))
    payload = template.read_bytes()
    rows = ["patient_id\ttimepoint\timage\tmask\ttraining"]
    for i in range(scans + training):
        is_training = i >= scans
        patient = f"T{i - scans + 1:04d}" if is_training else f"P{i // VISITS + 1:04d}"
        timepoint = "2023-01-02" if is_training else f"2024-{(i % VISITS) * 3 + 1:02d}-15"
        image = data / f"{patient}_{timepoint}.nii.gz"
        image.write_bytes(payload)
        mask = ""
        if is_training or i % 10 == 0:
            mask = str(data / f"{patient}_{timepoint}_mask.nii.gz")
            Path(mask).write_bytes(payload)
        rows.append(f"{patient}\t{timepoint}\t{image}\t{mask}\t{str(is_training).lower()}")
    (root / "config").mkdir()
    (root / "config" / "samples.tsv").write_text("\n".join(rows) + "\n")
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["samples"] = "config/samples.tsv"
    config["demo"]["enabled"] = False
    (root / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def job_counts(listing: str) -> dict[str, int]:
    """Jobs per rule from the `Job stats` table of `snakemake -n -q rules reason host` (rule `all`, total left out)."""
    table = listing.split("Job stats:", 1)[-1].split("Reasons:", 1)[0]
    rows = re.findall(r"^(\w+)\s+(\d+)$", table, re.MULTILINE)
    return {rule: int(count) for rule, count in rows if rule not in ("all", "total")}


def write_bare_workflow(root: Path, counts: dict[str, int]) -> Path:
    """Write a Snakefile in `root` with `counts[rule]` bare jobs per rule; returns its path."""
    lines = ["import gc", "", "gc.disable()", f"COUNTS = {counts!r}", "", "", "rule all:", "    input:"]
    lines += [f"        expand('floor/{rule}/{{i}}.txt', i=range(COUNTS['{rule}']))," for rule in counts]
    for rule in counts:
        lines += [
            "",
            "",
            f"rule {rule}:",
            "    output:",
            f"        'floor/{rule}/{{i}}.txt',",
            "    shell:",
            "        'touch {output}'",
        ]
    snakefile = root / "Snakefile"
    snakefile.write_text("\n".join(lines) + "\n")
    return snakefile


# The DAG of the workflow on the sheet of build_project, rule by rule, reduced to files and one log per job.
SHAPE = """
import gc

gc.disable()
SCANS, TRAINING, FOLDS, VISITS = {scans}, {training}, {folds}, {visits}
SHEET = [(f"P{{i // VISITS + 1:04d}}", f"2024-{{(i % VISITS) * 3 + 1:02d}}-15") for i in range(SCANS)]
VISITS_OF = {{}}
for patient, timepoint in SHEET:
    VISITS_OF.setdefault(patient, []).append(timepoint)
CASES = [f"T{{i + 1:04d}}_2023-01-02" for i in range(TRAINING)]
EVALUATED = SHEET[::10]
FIRST = {{patient: visits[0] for patient, visits in VISITS_OF.items()}}


def baseline_record(w):
    return [] if w.timepoint == FIRST[w.patient] else f"r/{{w.patient}}/{{FIRST[w.patient]}}/preprocessing.json"


wildcard_constraints:
    patient="[A-Za-z0-9][A-Za-z0-9_-]*",
    timepoint=r"\\d{{4}}-\\d{{2}}-\\d{{2}}",
    case="[A-Za-z0-9][A-Za-z0-9_-]*",
    fold=r"\\d+",
    stage="preprocess|train|inference|track|rano",


rule all:
    input:
        [f"r/{{p}}/rano_response.tsv" for p in VISITS_OF],
        [f"r/{{p}}/{{t}}/overlay.png" for p, t in SHEET],
        "r/cohort/rano_response.tsv",
        "r/cohort/evaluation_summary.tsv",


rule stage_config:
    output:
        "r/config/{{stage}}.yaml",
    log:
        "logs/stage_config/{{stage}}.log",
    shell:
        "touch {{output}}"


rule preprocess:
    input:
        config="r/config/preprocess.yaml",
        baseline=baseline_record,
    output:
        "r/{{patient}}/{{timepoint}}/preprocessing.json",
        "r/{{patient}}/{{timepoint}}/preprocessing_qc.png",
    log:
        "logs/preprocess/{{patient}}/{{timepoint}}.log",
    shell:
        "touch {{output}}"


rule preprocess_training:
    input:
        "r/config/preprocess.yaml",
    output:
        "r/training/{{case}}/t1ce_zscore.nii.gz",
        "r/training/{{case}}/lesions.nii.gz",
        "r/training/{{case}}/preprocessing.json",
    log:
        "logs/preprocess_training/{{case}}.log",
    shell:
        "touch {{output}}"


rule weight_map:
    input:
        "r/training/{{case}}/lesions.nii.gz",
        "r/config/train.yaml",
    output:
        "r/training/{{case}}/weights.nii.gz",
    log:
        "logs/weight_map/{{case}}.log",
    shell:
        "touch {{output}}"


rule prepare_case:
    input:
        "r/training/{{case}}/t1ce_zscore.nii.gz",
        "r/training/{{case}}/lesions.nii.gz",
        "r/training/{{case}}/weights.nii.gz",
    output:
        "r/training/{{case}}/data.npy",
        "r/training/{{case}}/case.json",
    log:
        "logs/prepare_case/{{case}}.log",
    shell:
        "touch {{output}}"


rule train:
    input:
        [f"r/training/{{c}}/{{name}}" for c in CASES for name in ("data.npy", "case.json")],
        "r/config/train.yaml",
    output:
        "r/model/fold{{fold}}/best.weights.h5",
    log:
        "logs/train/{{fold}}.log",
    shell:
        "touch {{output}}"


rule finalise_model:
    input:
        [f"r/model/fold{{f}}/best.weights.h5" for f in range(FOLDS)],
    output:
        "r/model/model.json",
    log:
        "logs/finalise_model.log",
    shell:
        "touch {{output}}"


rule predict:
    input:
        "r/{{patient}}/{{timepoint}}/preprocessing.json",
        "r/model/model.json",
        "r/config/inference.yaml",
    output:
        "r/{{patient}}/{{timepoint}}/segmentation.nii.gz",
        "r/{{patient}}/{{timepoint}}/native/segmentation.nii.gz",
        "r/{{patient}}/{{timepoint}}/overlay.png",
    log:
        "logs/predict/{{patient}}/{{timepoint}}.log",
    shell:
        "touch {{output}}"


rule evaluate:
    input:
        "r/{{patient}}/{{timepoint}}/native/segmentation.nii.gz",
    output:
        "r/{{patient}}/{{timepoint}}/evaluation.tsv",
        "r/{{patient}}/{{timepoint}}/evaluation_lesions.tsv",
    log:
        "logs/evaluate/{{patient}}/{{timepoint}}.log",
    shell:
        "touch {{output}}"


rule evaluate_cohort:
    input:
        [f"r/{{p}}/{{t}}/evaluation.tsv" for p, t in EVALUATED],
    output:
        "r/cohort/evaluation.tsv",
        "r/cohort/evaluation_summary.tsv",
        "r/cohort/sensitivity_by_size.png",
    log:
        "logs/evaluate_cohort.log",
    shell:
        "touch {{output}}"


rule track:
    input:
        masks=lambda w: [f"r/{{w.patient}}/{{t}}/segmentation.nii.gz" for t in VISITS_OF[w.patient]],
        config="r/config/track.yaml",
    output:
        "r/{{patient}}/segmentations.tsv",
        "r/{{patient}}/lesions.tsv",
    log:
        "logs/track/{{patient}}.log",
    shell:
        "touch {{output}}"


rule rano:
    input:
        "r/{{patient}}/lesions.tsv",
        "r/config/rano.yaml",
    output:
        "r/{{patient}}/rano_response.tsv",
        "r/{{patient}}/trajectory.png",
        "r/{{patient}}/lesion_timeline.png",
    log:
        "logs/rano/{{patient}}.log",
    shell:
        "touch {{output}}"


rule rano_cohort:
    input:
        [f"r/{{p}}/lesions.tsv" for p in VISITS_OF],
        "r/config/rano.yaml",
    output:
        "r/cohort/rano_response.tsv",
        "r/cohort/best_response.tsv",
    log:
        "logs/rano_cohort.log",
    shell:
        "touch {{output}}"
"""


def write_shape_workflow(root: Path, scans: int, training: int, folds: int) -> Path:
    """Write in `root` the replica of the workflow's DAG (SHAPE) for build_project's sheet; returns its path."""
    snakefile = root / "Snakefile"
    snakefile.write_text(SHAPE.format(scans=scans, training=training, folds=folds, visits=VISITS))
    return snakefile


def dry_run(root: Path, *quiet: str, snakefile: Path = REPO / "Snakefile") -> tuple[float, float, int, str]:
    """Run `snakemake -n -q [quiet...]` of `snakefile` in `root`; returns (wall s, CPU s, peak RSS MB, output)."""
    command = [
        str(Path(sys.executable).parent / "snakemake"),
        "-s",
        str(snakefile),
        "-d",
        str(root),
        "-n",
        "-q",
        *quiet,
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        sys.exit(f"dry run failed:\n{result.stdout}\n{result.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, cpu, after.ru_maxrss // 1024, result.stdout + result.stderr


def main() -> None:
    """Build the project, time the dry run and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=2431, help="analysis scans in the sheet")
    parser.add_argument("--training", type=int, default=40, help="training cases in the sheet")
    parser.add_argument("--keep", type=Path, help="build the project here and keep it (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp) / "project"
        build_project(root, args.scans, args.training)
        seconds, cpu, peak_mb, _ = dry_run(root)
        *_, listing = dry_run(root, "rules", "reason", "host")
        counts = job_counts(listing)
        bare = Path(tmp) / "bare"
        bare.mkdir()
        bare_seconds, bare_cpu, _, _ = dry_run(bare, snakefile=write_bare_workflow(bare, counts))
        shape = Path(tmp) / "shape"
        shape.mkdir()
        shape_snakefile = write_shape_workflow(shape, args.scans, args.training, counts["train"])
        shape_seconds, shape_cpu, _, _ = dry_run(shape, snakefile=shape_snakefile)
        *_, shape_listing = dry_run(shape, "rules", "reason", "host", snakefile=shape_snakefile)
        if job_counts(shape_listing) != counts:
            sys.exit(f"the replica of the DAG plans {job_counts(shape_listing)} jobs, the workflow {counts}")
    print(f"scans: {args.scans} (+{args.training} training cases), jobs: {sum(counts.values()) + 1}")
    print(f"snakemake -n -q: {seconds:.1f} s wall, {cpu:.1f} s CPU, peak RSS {peak_mb} MB (target <= 10 s)")
    print(f"bare workflow, same jobs per rule: {bare_seconds:.1f} s wall, {bare_cpu:.1f} s CPU (Snakemake's own floor)")
    print(f"replica of the DAG, files and a log per job only: {shape_seconds:.1f} s wall, {shape_cpu:.1f} s CPU")
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
