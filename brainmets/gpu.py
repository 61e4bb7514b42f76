"""One GPU per job: claim a free GPU index with a lock file before TensorFlow starts.

Snakemake's `resources: gpu=1` only counts GPUs; it does not say which one a job gets. On a workstation
each training job therefore claims the first GPU whose lock file (LOCK_DIR/gpu-<index>.lock) it can
lock exclusively, restricts itself to it through CUDA_VISIBLE_DEVICES and keeps the lock until it exits
(the operating system releases it even when the job is killed). The candidates are the entries of an
existing CUDA_VISIBLE_DEVICES (so a user's restriction is honoured), else the GPUs nvidia-smi lists.
Under SLURM the job's GPUs are already isolated by SLURM, which sets CUDA_VISIBLE_DEVICES; nothing is
locked then.
"""

from __future__ import annotations

import fcntl
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from brainmets.errors import BrainmetsError

ENV = "CUDA_VISIBLE_DEVICES"
#: environment variables through which SLURM names a job's GPUs, most specific first
SLURM_GPU_VARIABLES = ("SLURM_STEP_GPUS", "SLURM_JOB_GPUS")


@dataclass
class GpuClaim:
    """The GPU a job runs on (None: CPU only), how it was chosen, and the lock held while it runs."""

    device: str | None
    source: str
    lock_path: Path | None = None
    _handle: IO[str] | None = field(default=None, repr=False)

    def release(self) -> None:
        """Give the GPU back to other jobs (also happens when the process exits)."""
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


def default_lock_dir() -> Path:
    """$BRAINMETS_GPU_LOCK_DIR, else a per-user folder in the system's temporary directory."""
    configured = os.environ.get("BRAINMETS_GPU_LOCK_DIR")
    return Path(configured) if configured else Path(tempfile.gettempdir()) / f"brainmets-gpu-locks-{os.getuid()}"


def parse_visible_devices(value: str | None) -> list[str] | None:
    """The entries of a CUDA_VISIBLE_DEVICES value (None when unset; [] when it hides every GPU)."""
    if value is None:
        return None
    entries = [v.strip() for v in value.split(",") if v.strip()]
    return [] if not entries or entries[0] in ("-1", "NoDevFiles") else entries


def detect_gpus() -> list[str]:
    """Indices of the GPUs nvidia-smi reports ([] when there is none or no driver)."""
    try:
        result = subprocess.run(
            ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]


def visible_gpus(env: Mapping[str, str] | None = None) -> list[str]:
    """The GPUs a job started from `env` (os.environ by default) may use: CUDA_VISIBLE_DEVICES's, else nvidia-smi's."""
    visible = parse_visible_devices((os.environ if env is None else env).get(ENV))
    return visible if visible is not None else detect_gpus()


def uses_gpu(device: str, env: Mapping[str, str] | None = None) -> bool:
    """Whether a job whose device setting (auto | cpu | gpu) is `device` runs on a GPU: gpu, or auto with one seen."""
    return device == "gpu" or (device == "auto" and bool(visible_gpus(env)))


def _try_lock(path: Path) -> IO[str] | None:
    """An open, exclusively locked handle on `path`, or None when another process holds the lock."""
    handle = open(path, "a+")  # noqa: SIM115 - kept open for as long as the claim lives
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def claim_gpu(
    lock_dir: str | os.PathLike[str] | None = None,
    devices: Sequence[str] | None = None,
    env: MutableMapping[str, str] | None = None,
    timeout_s: float = 24 * 3600.0,
    poll_s: float = 2.0,
) -> GpuClaim:
    """Choose this job's GPU and set CUDA_VISIBLE_DEVICES in `env` (os.environ by default); waits while all are taken.

    `devices` replaces the nvidia-smi listing (for tests and unusual drivers); an existing
    CUDA_VISIBLE_DEVICES in `env` takes precedence over both.
    """
    env = os.environ if env is None else env
    if "SLURM_JOB_ID" in env:
        visible = parse_visible_devices(env.get(ENV))
        if visible is None:
            visible = next((parse_visible_devices(env[v]) or [] for v in SLURM_GPU_VARIABLES if env.get(v)), [])
            env[ENV] = ",".join(visible)
        return GpuClaim(visible[0] if visible else None, "slurm")
    visible = parse_visible_devices(env.get(ENV))
    candidates = visible if visible is not None else list(devices if devices is not None else detect_gpus())
    if not candidates:
        env[ENV] = ""
        return GpuClaim(None, "none")
    folder = Path(lock_dir) if lock_dir is not None else default_lock_dir()
    folder.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout_s
    while True:
        for device in candidates:
            path = folder / f"gpu-{re.sub(r'[^A-Za-z0-9_.-]', '_', device)}.lock"
            handle = _try_lock(path)
            if handle is not None:
                env[ENV] = device
                return GpuClaim(device, "lock", path, handle)
        if time.monotonic() >= deadline:
            raise BrainmetsError(
                f"{folder}: all {len(candidates)} GPU(s) ({', '.join(candidates)}) stayed taken by other jobs for "
                f"{timeout_s:.0f} s; run fewer jobs at once (snakemake --resources gpu=N) or free a GPU"
            )
        time.sleep(poll_s)


def claim_for_job(device: str, lock_dir: str | os.PathLike[str] | None = None) -> GpuClaim:
    """Hide every GPU when `device` is "cpu", else claim one GPU for this process; call before TensorFlow starts."""
    if device == "cpu":
        os.environ[ENV] = ""
        return GpuClaim(None, "none")
    return claim_gpu(lock_dir)
