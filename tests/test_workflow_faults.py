"""The workflow on a disk that fills up: the failing job ends in one line, and after space is freed the same
command finishes with only the missing jobs redone and the result of an uninterrupted run.

`results/` is a small tmpfs (mounting needs root: a system test); the cohort is one patient with two
skull-stripped 2 mm scans and the model a tiny one written by the test, so no training runs (about a
minute per run on 2 cores).
"""

from __future__ import annotations

import gzip
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml
from brainmets.io import save_nifti

from conftest import TINY_SPACING_MM, write_tiny_model
from slurm.project import make_project, snakemake
from synthetic import synthetic_scan

pytestmark = [pytest.mark.system, pytest.mark.workflow, pytest.mark.slow]

TARGET = "results/P1/rano_response.tsv"
#: room for both scans' preprocessing (about 1.1 MB) but not for both predictions (about 2.6 MB more)
FULL_SIZE = "1500k"


def make_small_project(root: Path) -> Path:
    """One patient, two skull-stripped 2 mm visits, a tiny 2-fold model outside results/; returns root."""
    make_project(root, patients=1, timepoints=2, training=0, folds=2)
    rng = np.random.default_rng(3)
    rows = ["patient_id\ttimepoint\timage\tmask\ttraining\tskull_stripped"]
    affine = np.diag([*TINY_SPACING_MM, 1.0])
    for visit in ("2024-01-15", "2024-04-15"):
        image, label = synthetic_scan(rng, (48, 48, 48), lesions=2, radius_mm=(2.0, 4.0))
        brain = image != 0
        path = root / "scans" / f"{visit}.nii.gz"
        save_nifti(np.where(brain, image - image.min() + 1.0, 0.0).astype(np.float32), affine, path)
        save_nifti(label, affine, root / "scans" / f"{visit}_mask.nii.gz")
        rows.append(f"P1\t{visit}\t{path}\t{root / 'scans' / f'{visit}_mask.nii.gz'}\tfalse\ttrue")
    (root / "config" / "samples.tsv").write_text("\n".join(rows) + "\n")
    write_tiny_model(root / "model")
    config = yaml.safe_load((root / "config" / "config.yaml").read_text())
    config["model"]["dir"] = str(root / "model")
    config["preprocess"]["spacing_mm"] = TINY_SPACING_MM
    config["inference"].update({"mirror_axes": [], "overlap": 0.25})
    (root / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return root


def contents(project: Path) -> dict[str, bytes]:
    """Every file under results/ by relative path: gzip streams unpacked, preprocessing records without timings,
    the project's own folder (in recorded paths) as PROJECT."""
    results = project / "results"
    files = {}
    for path in sorted(p for p in results.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if path.name.endswith(".gz"):
            data = gzip.decompress(data)
        elif path.name == "preprocessing.json":
            data = json.dumps({k: v for k, v in json.loads(data).items() if k != "timings_s"}).encode()
        files[str(path.relative_to(results))] = data.replace(str(project).encode(), b"PROJECT")
    return files


@pytest.fixture
def full_results(tmp_path: Path) -> Iterator[Path]:
    """A project whose results/ is a tmpfs of FULL_SIZE, unmounted afterwards."""
    project = make_small_project(tmp_path / "full")
    results = project / "results"
    results.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={FULL_SIZE}", "tmpfs", str(results)], check=True)
    try:
        yield project
    finally:
        subprocess.run(["umount", "-l", str(results)], check=False)


def test_a_disk_that_fills_during_the_run_fails_one_job_in_one_line_and_the_rerun_redoes_only_the_rest(
    tmp_path: Path, full_results: Path
) -> None:
    reference = make_small_project(tmp_path / "reference")
    done = snakemake(reference, TARGET, "--cores", "2", timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    project = full_results
    failed = snakemake(project, TARGET, "--cores", "2", timeout=600)
    terminal = failed.stdout + failed.stderr
    assert failed.returncode != 0
    line = re.compile(
        r"^brainmets (\w[\w-]*): error: results/\S+: cannot write \(no space left on the disk\); .*$", re.M
    )
    shown = line.findall(terminal)
    assert shown, terminal[-4000:]
    assert "Traceback" not in terminal and "oneDNN" not in terminal
    logs = [p for p in (project / "logs").rglob("*.log") if line.search(p.read_text())]
    assert logs, "the failing job's log holds the line"
    for log in logs:  # the one line is the job's only complaint: no traceback, no TensorFlow chatter
        text = log.read_text()
        assert "Traceback" not in text and "oneDNN" not in text and "absl" not in text
    assert not [p for p in (project / "results").rglob("*") if ".part" in p.name], "temporary files left"
    kept = {
        p: p.stat().st_mtime_ns
        for p in (project / "results").rglob("*")
        if p.is_file() and p.name in ("preprocessing.json", "t1ce_zscore.nii.gz")
    }
    assert len(kept) == 4, "both scans' preprocessing finished before the disk was full"

    subprocess.run(["mount", "-o", "remount,size=64m", str(project / "results")], check=True)  # space freed
    rerun = snakemake(project, TARGET, "--cores", "2", timeout=600)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", rerun.stdout + rerun.stderr, re.M))
    assert "preprocess" not in counts and counts.get("predict") in ("1", "2"), counts
    assert all(path.stat().st_mtime_ns == mtime for path, mtime in kept.items()), "a finished job was redone"
    assert contents(project) == contents(reference)
