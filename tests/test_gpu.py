"""One GPU per job: lock-file assignment with fake device lists, concurrent processes, SLURM."""

from __future__ import annotations

import multiprocessing
import time

import pytest
from brainmets.errors import BrainmetsError
from brainmets.gpu import claim_gpu, parse_visible_devices, uses_gpu


def test_two_jobs_on_a_two_gpu_workstation_get_different_gpus(tmp_path):
    env1, env2 = {}, {}
    first = claim_gpu(tmp_path, devices=["0", "1"], env=env1)
    second = claim_gpu(tmp_path, devices=["0", "1"], env=env2)
    assert {first.device, second.device} == {"0", "1"}
    assert env1["CUDA_VISIBLE_DEVICES"] == first.device and env2["CUDA_VISIBLE_DEVICES"] == second.device
    first.release()
    third = claim_gpu(tmp_path, devices=["0", "1"], env={})
    assert third.device == first.device  # a released GPU is free again
    second.release()
    third.release()


def test_existing_cuda_visible_devices_is_honoured(tmp_path):
    env = {"CUDA_VISIBLE_DEVICES": "2,3"}
    claims = [claim_gpu(tmp_path, devices=["0", "1", "2", "3"], env=dict(env)) for _ in range(2)]
    assert sorted(c.device for c in claims) == ["2", "3"]
    with pytest.raises(BrainmetsError, match="all 2 GPU"):
        claim_gpu(tmp_path, devices=["0", "1"], env=dict(env), timeout_s=0.2, poll_s=0.05)
    for c in claims:
        c.release()


def test_no_gpu_means_cpu_and_hidden_devices(tmp_path):
    env = {}
    assert claim_gpu(tmp_path, devices=[], env=env).device is None
    assert env["CUDA_VISIBLE_DEVICES"] == ""
    assert claim_gpu(tmp_path, devices=["0"], env={"CUDA_VISIBLE_DEVICES": "-1"}).device is None
    assert parse_visible_devices(None) is None and parse_visible_devices("1, 0") == ["1", "0"]


def test_a_job_uses_a_gpu_when_asked_or_when_auto_finds_one(monkeypatch):
    monkeypatch.setattr("brainmets.gpu.detect_gpus", lambda: [])  # a CPU-only machine
    assert not uses_gpu("auto", env={}) and not uses_gpu("cpu", env={}) and uses_gpu("gpu", env={})
    assert uses_gpu("auto", env={"CUDA_VISIBLE_DEVICES": "0"})
    monkeypatch.setattr("brainmets.gpu.detect_gpus", lambda: ["0", "1"])
    assert uses_gpu("auto", env={}) and not uses_gpu("cpu", env={})
    assert not uses_gpu("auto", env={"CUDA_VISIBLE_DEVICES": ""})  # every GPU hidden


def test_slurm_assignment_is_used_without_locks(tmp_path):
    # SLURM isolates each job's GPU and renumbers it 0: two jobs may both see "0"
    envs = [{"SLURM_JOB_ID": str(j), "CUDA_VISIBLE_DEVICES": "0"} for j in (1, 2)]
    claims = [claim_gpu(tmp_path, devices=["0"], env=env) for env in envs]
    assert [c.device for c in claims] == ["0", "0"] and all(c.source == "slurm" for c in claims)
    env = {"SLURM_JOB_ID": "3", "SLURM_JOB_GPUS": "1"}
    assert claim_gpu(tmp_path, env=env).device == "1" and env["CUDA_VISIBLE_DEVICES"] == "1"
    assert claim_gpu(tmp_path, devices=["0"], env={"SLURM_JOB_ID": "4"}).device is None
    assert not list(tmp_path.iterdir())


def _job(lock_dir, devices, hold_s, queue):
    env = {}
    claim = claim_gpu(lock_dir, devices=devices, env=env, poll_s=0.05)
    start = time.monotonic()
    time.sleep(hold_s)
    queue.put((claim.device, env["CUDA_VISIBLE_DEVICES"], start, time.monotonic()))


def test_concurrent_processes_never_share_a_gpu(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    jobs = [ctx.Process(target=_job, args=(str(tmp_path), ["0", "1"], 0.6, queue)) for _ in range(4)]
    for job in jobs:
        job.start()
    results = [queue.get(timeout=60) for _ in jobs]
    for job in jobs:
        job.join(timeout=60)
        assert job.exitcode == 0
    assert all(device == visible for device, visible, _, _ in results)
    assert {device for device, *_ in results} == {"0", "1"}
    for i, (dev_a, _, start_a, end_a) in enumerate(results):
        for dev_b, _, start_b, end_b in results[i + 1 :]:
            if dev_a == dev_b:
                assert end_a <= start_b or end_b <= start_a  # the same GPU is never held by two jobs at once
