"""Wall time of the workflow's predict jobs on a CPU: one job at a time on two threads, or two jobs at a time on one.

Each job is the `predict` rule's command (brainmets predict with the native maps and the picture) on a
copy of one preprocessed scan folder. The two schedules run the same scans, alternately (A B A B ...),
so that other load on the machine hits both alike; printed per round and as a ratio, with the CPU
seconds per wall second, the processor and the load average:

    python benchmarks/predict_jobs.py --results results --model results/model --scans 4 --rounds 2

`--results` is a finished workflow's results folder (preprocessed scans and results/config/inference.yaml).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: the files of a preprocessed scan folder that the predict job reads
SCAN_FILES = (
    "preprocessing.json",
    "t1ce.nii.gz",
    "t1ce_zscore.nii.gz",
    "brain_mask.nii.gz",
    "to_patient_space.mat",
    "from_patient_space.mat",
)


def job_command(scan: Path, model: Path, config: Path, threads: int) -> list[str]:
    """The predict rule's command for one scan folder, as in rules/inference.smk."""
    return [
        str(Path(sys.executable).parent / "brainmets"), "predict", "--image", f"{scan}/t1ce_zscore.nii.gz",
        "--brain-mask", f"{scan}/brain_mask.nii.gz", "--model", str(model), "--config", str(config),
        "--threads", str(threads), "--out-dir", str(scan), "--native-dir", f"{scan}/native",
        "--overlay", f"{scan}/overlay.png", "--title", scan.name,
    ]  # fmt: skip


def run_job(scan: Path, model: Path, config: Path, threads: int) -> None:
    """Run one predict job; raises with its output when it fails."""
    command = job_command(scan, model, config, threads)
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    if done.returncode:
        raise SystemExit(f"brainmets predict failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")


def run_schedule(scans: list[Path], model: Path, config: Path, parallel: int, threads: int) -> tuple[float, float]:
    """Run every scan's job, `parallel` at a time with `threads` TensorFlow threads each; (wall s, CPU s)."""
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(lambda scan: run_job(scan, model, config, threads), scans))
    wall = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    return wall, cpu


def copy_scans(results: Path, count: int, work: Path) -> list[Path]:
    """Copies of the first `count` preprocessed analysis scans (results/<patient>/<timepoint>) under `work`."""
    found = sorted(p.parent for p in results.glob("*/*/preprocessing.json") if p.parent.parent.name != "training")
    if len(found) < count:
        raise SystemExit(f"{results}: {len(found)} preprocessed scans, {count} asked for; run the workflow first")
    copies = []
    for scan in found[:count]:
        copy = work / f"{scan.parent.name}_{scan.name}"
        copy.mkdir(parents=True)
        for name in SCAN_FILES:
            shutil.copy2(scan / name, copy / name)
        copies.append(copy)
    return copies


def cpu_model() -> str:
    """The processor's model name from lscpu."""
    lines = subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("Model name")), "unknown")


def main() -> None:
    """Time both schedules alternately and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("results"), help="a finished workflow's results folder")
    parser.add_argument("--model", type=Path, default=Path("results/model"), help="trained model directory")
    parser.add_argument("--config", type=Path, help="inference configuration (default RESULTS/config/inference.yaml)")
    parser.add_argument("--scans", type=int, default=4, help="scans per schedule (default 4)")
    parser.add_argument("--rounds", type=int, default=2, help="alternations of the two schedules (default 2)")
    args = parser.parse_args()
    config = args.config or args.results / "config" / "inference.yaml"
    schedules = {"one job at a time, 2 threads": (1, 2), "two jobs at a time, 1 thread each": (2, 1)}
    print(f"{cpu_model()}, {os.cpu_count()} cores; {args.scans} scans per schedule")
    totals = dict.fromkeys(schedules, 0.0)
    for round_ in range(args.rounds):
        for name, (parallel, threads) in schedules.items():
            with tempfile.TemporaryDirectory() as work:
                scans = copy_scans(args.results, args.scans, Path(work))
                load = os.getloadavg()[0]
                wall, cpu = run_schedule(scans, args.model, config, parallel, threads)
            totals[name] += wall
            print(
                f"round {round_ + 1}, {name}: {wall:.1f} s wall, {wall / args.scans:.1f} s per scan, "
                f"{cpu / wall:.2f} CPU s per wall s (load average {load:.1f} before)",
                flush=True,
            )
    first, second = totals.values()
    print(f"ratio two at a time / one at a time, wall: {second / first:.2f}")


if __name__ == "__main__":
    main()
