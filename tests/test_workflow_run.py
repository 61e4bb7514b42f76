"""Real local runs of the workflow: GPU jobs on fake GPUs never share one; a killed run resumes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from slurm.project import (
    SNAKEMAKE,
    env,
    fold_gpus,
    job_times,
    make_training_project,
    overlapping_pairs,
    snakemake,
)

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

MODEL = "results/model/model.json"


def fold_times(workdir: Path) -> dict[int, tuple[float, float]]:
    """Start and end of each finished training job, by fold."""
    times = {}
    for name, interval in job_times(workdir).items():
        match = re.fullmatch(r"results/model/fold_(\d+)/best\.weights\.h5", name)
        if match:
            times[int(match.group(1))] = interval
    return times


def test_two_local_gpu_jobs_never_share_a_gpu(tmp_path: Path) -> None:
    """`--resources gpu=2` on a machine with GPUs 0 and 1: the two folds run at once, on different GPUs."""
    project = make_training_project(tmp_path / "p", patients=2, folds=2, epochs=1, gpu_lock_dir=tmp_path / "locks")
    result = subprocess.run(
        [*SNAKEMAKE, MODEL, "-d", str(project), "--cores", "2", "--resources", "gpu=2", "--set-threads", "train=1"],
        cwd=project,
        env={**env(), "CUDA_VISIBLE_DEVICES": "0,1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    gpus = fold_gpus(project / "logs" / "train")
    assert set(gpus) == {0, 1}
    assert all("(lock)" in (project / "logs" / "train" / f"fold_{f}.log").read_text() for f in gpus)
    times = fold_times(project)
    pairs = overlapping_pairs({str(fold): interval for fold, interval in times.items()})
    assert pairs, f"no two folds ran at the same time, nothing was tested: {times}"
    for a, b in pairs:
        assert gpus[int(a)] != gpus[int(b)], f"folds {a} and {b} ran at the same time on GPU {gpus[int(a)]}"


def _state(project: Path, fold: int) -> dict:
    """A fold's training state, or {} before its first checkpoint."""
    import json

    path = project / "results" / "model" / f"fold_{fold}" / "state.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def test_killed_run_resumes_without_redoing_finished_jobs(tmp_path: Path) -> None:
    """Kill -9 the whole run while the second fold trains: the rerun keeps the first, resumes the second."""
    project = make_training_project(tmp_path / "p", patients=2, folds=2, epochs=3, gpu_lock_dir=tmp_path / "locks")
    # two threads per fold on two cores: one fold after the other (on the CPU a fold takes one thread by default)
    sequential = ("--cores", "2", "--set-threads", "train=2")
    command = [*SNAKEMAKE, MODEL, "-d", str(project), *sequential]
    run = subprocess.Popen(
        command, cwd=project, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    finished = running = None
    deadline = time.monotonic() + 400
    try:
        while time.monotonic() < deadline and run.poll() is None:
            done = fold_times(project)
            if len(done) == 1:
                finished = next(iter(done))
                running = 1 - finished
                state = _state(project, running)
                if state.get("epoch", 0) >= 1 and not state.get("finished"):
                    break
            time.sleep(0.2)
        else:
            raise AssertionError(f"the run ended or stalled before the second fold checkpointed (rc {run.poll()})")
    finally:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()
    kept = project / "results" / "model" / f"fold_{finished}" / "best.weights.h5"
    kept_mtime = kept.stat().st_mtime_ns
    interrupted_epoch = _state(project, running)["epoch"]
    assert not (project / MODEL).exists()

    assert snakemake(project, "--unlock").returncode == 0
    rerun = snakemake(project, MODEL, *sequential, timeout=400)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    stats = re.search(r"^train\s+(\d+)$", rerun.stdout + rerun.stderr, re.MULTILINE)
    assert stats and stats.group(1) == "1", "the rerun must train only the interrupted fold"
    assert kept.stat().st_mtime_ns == kept_mtime, "the finished fold was trained again"
    resumed = re.search(r"resuming after epoch (\d+)", (project / "logs" / "train" / f"fold_{running}.log").read_text())
    assert resumed and int(resumed.group(1)) >= interrupted_epoch >= 1
    assert _state(project, running)["finished"]
    assert (project / MODEL).is_file()

    # a change to another stage's configuration leaves the model alone; a change to `train` retrains it
    unrelated = snakemake(project, MODEL, "-n", "--config", "rano={'max_targets': 4}")
    assert unrelated.returncode == 0 and "Nothing to be done" in unrelated.stdout + unrelated.stderr
    retrain = snakemake(project, MODEL, "-n", "--config", "train={'epochs': 4}")
    assert re.search(r"^train\s+2$", retrain.stdout + retrain.stderr, re.MULTILINE), retrain.stdout[-2000:]


def test_the_scheduler_keeps_to_the_cores_it_was_given(tmp_path: Path) -> None:
    """Two 2-thread jobs whose input is made during the run never overlap under `--cores 2`.

    Snakemake 9.10-9.15 dropped the thread count of such jobs and ran them at once (snakemake issue
    3913); this pins the behaviour that `--cores` and the workflow's per-job threads rely on.
    """
    (tmp_path / "Snakefile").write_text(
        'rule all:\n    input: "a", "b"\n'
        'rule common:\n    output: "common"\n    threads: 2\n    shell: "touch {output}"\n'
        'rule job:\n    input: "common"\n    output: "{name}"\n    wildcard_constraints: name="a|b"\n'
        '    threads: 2\n    shell: "sleep 2 && touch {output}"\n'
    )
    done = subprocess.run([SNAKEMAKE[0], "--cores", "2", "-q"], cwd=tmp_path, env=env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    times = {name: interval for name, interval in job_times(tmp_path).items() if name in ("a", "b")}
    assert len(times) == 2 and not overlapping_pairs(times)
