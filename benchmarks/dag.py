"""Scale of the workflow's DAG: time `snakemake -n -q` on a sample sheet the size of the published cohort.

Builds, in a temporary folder, a sheet of 2,431 scans (608 patients, 4 visits each less one; tiny NIfTI
files, since a dry run reads only the sheet) plus training cases, and prints the number of jobs, the
wall time and the peak memory of the dry run. Target: at most 10 s on a 2-core machine.

Snakemake's own cost per job is the floor: the same run also dry-runs a bare workflow with the same
number of jobs per rule (one output each, no inputs, logs, resources or environments; Python's cyclic
garbage collector off while planning, as in the Snakefile) and prints it.

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
    """Jobs per rule from the `Job stats` table of `snakemake -n -q rules` (rule `all` and the total left out)."""
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
        *_, listing = dry_run(root, "rules")
        counts = job_counts(listing)
        bare = Path(tmp) / "bare"
        bare.mkdir()
        bare_seconds, bare_cpu, _, _ = dry_run(bare, snakefile=write_bare_workflow(bare, counts))
    print(f"scans: {args.scans} (+{args.training} training cases), jobs: {sum(counts.values()) + 1}")
    print(f"snakemake -n -q: {seconds:.1f} s wall, {cpu:.1f} s CPU, peak RSS {peak_mb} MB (target <= 10 s)")
    print(f"bare workflow, same jobs per rule: {bare_seconds:.1f} s wall, {bare_cpu:.1f} s CPU (Snakemake's own floor)")
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
