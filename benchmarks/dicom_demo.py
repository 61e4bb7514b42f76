"""The DICOM demo's wall time: demo cohort as DICOM studies -> dicom-sheet -> the whole workflow.

    python benchmarks/dicom_demo.py --workdir /tmp/dicom-demo                  # the shipped demo settings
    python benchmarks/dicom_demo.py --workdir /tmp/d --patients 2 --train 2 --scale 2 \\
        --model MODEL_DIR --config extra.yaml --compare-nifti                   # a small run, checked

Runs, in a fresh working directory (config/ copied from the repository): `brainmets demo-cohort
--dicom`, `brainmets dicom-sheet --add-from` and `snakemake --configfile config/dicom-demo.yaml`, and
prints each step's time and the workflow's time per rule group. `--model` uses a trained model instead
of training one; `--config` adds a configuration file over both; `--compare-nifti` also runs the workflow
on the same cohort's NIfTI sheet in a second working directory (same model) and compares the RANO-BM
tables of the two runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO / "benchmarks"))

from demo import job_spans, minutes  # noqa: E402

#: rule groups of the DICOM workflow, in order
STAGES = {
    "DICOM conversion": ("dicom_to_nifti",),
    "preprocessing": ("preprocess", "preprocess_training", "weight_map", "prepare_case"),
    "training": ("train", "finalise_model"),
    "inference and analysis": ("predict", "evaluate", "track", "rano", "rano_cohort", "evaluate_cohort"),
}
#: RANO-BM tables compared between the DICOM and the NIfTI run
RANO_TABLES = ("results/cohort/rano_response.tsv", "results/cohort/best_response.tsv")


def timed(label: str, command: list[str], cwd: Path) -> float:
    """Run a command (the environment's bin first on PATH), print and return its wall time (s)."""
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True)
    elapsed = time.perf_counter() - started
    print(f"{label}: {minutes(elapsed)}", flush=True)
    return elapsed


def snakemake(workdir: Path, configs: list[Path], cores: int) -> list[str]:
    """The snakemake command running the repository's workflow in `workdir` with extra configuration files."""
    return [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--cores", str(cores),
            "--configfile", *map(str, configs)]  # fmt: skip


def write_overlay(path: Path, samples: str, model: Path | None) -> Path:
    """A configuration file over the others: the sheet, no generated demo, and the given model if any."""
    lines = [f"samples: {samples}", "demo:", "  enabled: false"]
    if model is not None:
        lines += ["model:", f"  dir: {model.resolve()}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> None:
    """Generate, pick, run (and compare); print the times."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True, help="a new folder to run in")
    parser.add_argument("--patients", type=int, default=4)
    parser.add_argument("--timepoints", type=int, default=3)
    parser.add_argument("--train", type=int, default=12)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--model", type=Path, default=None, help="a trained model directory to use as it is")
    parser.add_argument("--config", type=Path, default=None, help="a configuration file applied over the others")
    parser.add_argument("--compare-nifti", action="store_true", help="also run the NIfTI sheet and compare RANO")
    args = parser.parse_args()

    work = args.workdir.resolve()
    if work.exists():
        raise SystemExit(f"{work}: exists; give a new folder")
    dicom_run = work / "dicom"
    dicom_run.mkdir(parents=True)
    shutil.copytree(REPO / "config", dicom_run / "config")
    cohort = work / "cohort"
    sizes = ["--patients", str(args.patients), "--timepoints", str(args.timepoints), "--train", str(args.train)]
    total = timed(
        "demo-cohort --dicom",
        [
            "brainmets",
            "demo-cohort",
            "--dicom",
            "--out",
            str(cohort),
            *sizes,
            "--scale",
            str(args.scale),
            "--workers",
            str(args.cores),
        ],  # fmt: skip
        work,
    )
    sheet = dicom_run / "samples_dicom.tsv"
    total += timed(
        "dicom-sheet",
        [
            "brainmets",
            "dicom-sheet",
            str(cohort / "dicom"),
            "--add-from",
            str(cohort / "samples.tsv"),
            "--out",
            str(sheet),
        ],  # fmt: skip
        work,
    )
    extra = [args.config.resolve()] if args.config else []
    overlay = write_overlay(dicom_run / "run.yaml", str(sheet), args.model)
    configs = [REPO / "config" / "dicom-demo.yaml", overlay, *extra]
    total += timed("workflow from DICOM", snakemake(dicom_run, configs, args.cores), dicom_run)
    spans = job_spans(dicom_run)
    for stage, rules in STAGES.items():
        own = [spans[rule] for rule in rules if rule in spans]
        if own:
            print(f"  {stage}: {minutes(max(e for _, e in own) - min(s for s, _ in own))}")
    print(f"DICOM demo in all: {minutes(total)} (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    if not args.compare_nifti:
        return
    nifti_run = work / "nifti"
    nifti_run.mkdir()
    shutil.copytree(REPO / "config", nifti_run / "config")
    model = args.model or dicom_run / "results" / "model"  # the same model for both runs
    overlay = write_overlay(nifti_run / "run.yaml", str(cohort / "samples.tsv"), model)
    timed("workflow from NIfTI", snakemake(nifti_run, [overlay, *extra], args.cores), nifti_run)
    for table in RANO_TABLES:
        a, b = pd.read_csv(dicom_run / table, sep="\t"), pd.read_csv(nifti_run / table, sep="\t")
        if a.equals(b):
            print(f"{table}: equal in the DICOM and the NIfTI run ({len(a)} rows)")
            continue
        numeric = [c for c in a.columns if pd.api.types.is_float_dtype(a[c]) and c in b]
        other = [c for c in a.columns if c not in numeric and c in b]
        differ = [c for c in other if not a[c].equals(b[c])]
        largest = {c: float((a[c] - b[c]).abs().max()) for c in numeric}
        shown = ", ".join(f"{c} {v:.4g}" for c, v in largest.items() if v > 0)
        print(f"{table}: {len(a)} rows; columns that differ: {', '.join(differ) or 'none but numbers'}; "
              f"largest numeric differences: {shown}")  # fmt: skip


if __name__ == "__main__":
    main()
