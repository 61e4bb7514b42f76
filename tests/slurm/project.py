"""Small generated projects for the workflow tests (local and SLURM): tiny NIfTI scans, sample sheet, config."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SNAKEMAKE = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile")]


def env() -> dict[str, str]:
    """Environment for workflow runs: the test's Python environment first on PATH (for `brainmets`)."""
    return dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")


def write_scan(path: Path, seed: int, shape: tuple[int, int, int] = (32, 32, 32), lesion: bool = True) -> Path:
    """Write a small synthetic T1-CE-like volume (1 mm, RAS) and, beside it, its binary lesion mask."""
    rng = np.random.default_rng(seed)
    grid = np.indices(shape).astype(np.float32)
    centre = (np.asarray(shape, dtype=np.float32) - 1) / 2
    head = (((grid - centre[:, None, None, None]) / (np.asarray(shape)[:, None, None, None] * 0.4)) ** 2).sum(0) < 1
    image = np.where(head, 100.0, 0.0) + rng.normal(0, 5, shape)
    mask = np.zeros(shape, np.uint8)
    if lesion:
        spot = ((grid - (centre + 4)[:, None, None, None]) ** 2).sum(0) < 9
        image[spot] += 80
        mask[spot] = 1
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(image.astype(np.float32), np.eye(4)), str(path))
    mask_path = path.with_name(path.name.replace(".nii.gz", "_mask.nii.gz"))
    nib.save(nib.Nifti1Image(mask, np.eye(4)), str(mask_path))
    return mask_path


def make_project(
    root: Path,
    patients: int = 3,
    timepoints: int = 2,
    training: int = 4,
    folds: int = 2,
    config_overrides: dict | None = None,
) -> Path:
    """Create `root` with config/config.yaml and config/samples.tsv over generated scans; returns root."""
    rows = []
    seed = 0
    for p in range(patients):
        for t in range(timepoints):
            image = root / "data" / f"P{p + 1}" / f"2024-0{t + 1}-15.nii.gz"
            mask = write_scan(image, seed)
            rows.append([f"P{p + 1}", f"2024-0{t + 1}-15", str(image), str(mask), "false"])
            seed += 1
    for c in range(training):
        image = root / "data" / f"T{c + 1}" / "2023-01-01.nii.gz"
        mask = write_scan(image, seed)
        rows.append([f"T{c + 1}", "2023-01-01", str(image), str(mask), "true"])
        seed += 1
    (root / "config").mkdir(parents=True, exist_ok=True)
    sheet = "patient_id\ttimepoint\timage\tmask\ttraining\n" + "".join("\t".join(r) + "\n" for r in rows)
    (root / "config" / "samples.tsv").write_text(sheet)
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["samples"] = "config/samples.tsv"
    config["demo"]["enabled"] = False
    config["train"]["folds"] = folds
    for section, values in (config_overrides or {}).items():
        config.setdefault(section, {}).update(values)
    (root / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return root


def snakemake(workdir: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the repository's workflow in `workdir` with extra arguments; never raises on failure."""
    return subprocess.run(
        [*SNAKEMAKE, "-d", str(workdir), *args],
        cwd=workdir,
        env=env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


_JOB = re.compile(r"^(?:local)?(?:rule|checkpoint) (\w+):\n((?:    .*\n)*)", re.MULTILINE)


def dry_run_jobs(workdir: Path, *targets: str) -> list[tuple[str, dict[str, str]]]:
    """Jobs of a dry run as (rule, wildcards); raises AssertionError with the log if it fails."""
    result = snakemake(workdir, *targets, "-n")
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = []
    for match in _JOB.finditer(result.stdout + result.stderr):
        wildcards: dict[str, str] = {}
        for line in match.group(2).splitlines():
            if line.strip().startswith("wildcards:"):
                for item in line.split(":", 1)[1].split(","):
                    key, _, value = item.strip().partition("=")
                    wildcards[key] = value
        jobs.append((match.group(1), wildcards))
    return jobs


def job_times(workdir: Path) -> dict[str, tuple[float, float]]:
    """Start and end (epoch seconds) of the job that wrote each output, from Snakemake's metadata."""
    root = workdir / ".snakemake" / "metadata"
    times = {}
    for path in root.rglob("*"):
        if path.is_file():
            record = json.loads(path.read_text())
            encoded = "".join(path.relative_to(root).parts)
            name = base64.urlsafe_b64decode(encoded).decode()
            if record.get("starttime") and record.get("endtime"):
                times[name] = (record["starttime"], record["endtime"])
    return times


def overlapping_pairs(intervals: dict[str, tuple[float, float]]) -> list[tuple[str, str]]:
    """Pairs of keys whose [start, end) intervals overlap in time."""
    keys = sorted(intervals)
    return [
        (a, b)
        for i, a in enumerate(keys)
        for b in keys[i + 1 :]
        if intervals[a][0] < intervals[b][1] and intervals[b][0] < intervals[a][1]
    ]


_GPU_LINE = re.compile(r"fold (\d+): GPU (\S+) \((\w+)\)")


def fold_gpus(log_dir: Path) -> dict[int, str]:
    """The GPU each training fold ran on, from the `fold K: GPU D (source)` line of its job log."""
    gpus = {}
    for log in sorted(log_dir.glob("fold_*.log")):
        match = _GPU_LINE.search(log.read_text())
        if match:
            gpus[int(match.group(1))] = match.group(2)
    return gpus


def write_tiny_model(model_dir: Path, spacing_mm: float, folds: int = 1, patch: int = 16) -> Path:
    """Write an untrained, very small model directory (3 levels, 4-16 filters) that inference accepts."""
    from brainmets.network.model import build_unet
    from brainmets.network.modeldir import fold_dir, model_metadata, write_json

    network = {
        "filters": [4, 8, 16],
        "in_channels": 1,
        "out_channels": 1,
        "kernel_size": 3,
        "conv_bias": True,
        "norm_epsilon": 1e-5,
        "negative_slope": 0.01,
        "deep_supervision_heads": 1,
    }
    for fold in range(folds):
        folder = fold_dir(model_dir, fold)
        folder.mkdir(parents=True, exist_ok=True)
        build_unet(**network).save_weights(str(folder / "best.weights.h5"))
    meta = model_metadata("tiny", network, [patch] * 3, [spacing_mm] * 3, list(range(folds)))
    return write_json(meta, model_dir / "model.json")


def make_training_project(root: Path, patients: int, folds: int, epochs: int, gpu_lock_dir: Path | None = None) -> Path:
    """A project whose only work is training: prepared synthetic cases in results/training, one analysis scan."""
    from synthetic import write_synthetic_cases

    train = {
        "folds": folds,
        "epochs": epochs,
        "iterations_per_epoch": 2,
        "patch_size": [16, 16, 16],
        "validate_every": 1,
        "gpu_lock_dir": str(gpu_lock_dir) if gpu_lock_dir else None,
    }
    make_project(root, patients=1, timepoints=1, training=0, folds=folds, config_overrides={"train": train})
    write_synthetic_cases(root / "synthetic", patients=patients, shape=(32, 32, 32))
    (root / "results").mkdir(exist_ok=True)
    (root / "synthetic" / "cases").rename(root / "results" / "training")
    return root
