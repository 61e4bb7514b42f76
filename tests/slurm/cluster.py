"""A real single-node SLURM cluster on this machine, for the workflow's SLURM tests.

`slurm_cluster()` installs the Debian packages if missing, writes `/etc/slurm/slurm.conf` (the only
place the executor plugin's job steps look) and `gres.conf` with fake GPUs, starts munged,
slurmctld and slurmd listening on loopback only, waits until the node is idle, and on exit stops
exactly the daemons it started and restores any configuration it replaced.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

PACKAGES = ["slurmctld", "slurmd", "slurm-client", "munge"]
CONF_DIR = Path("/etc/slurm")

SLURM_CONF = """\
ClusterName=brainmets-test
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation={state}/ctld
SlurmdSpoolDir={state}/d
SlurmctldPidFile={state}/slurmctld.pid
SlurmdPidFile={state}/slurmd.pid
SlurmctldLogFile={state}/slurmctld.log
SlurmdLogFile={state}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=600
KillWait=5
InactiveLimit=0
DefMemPerCPU=500
MpiDefault=none
GresTypes=gpu
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem_mb} Gres=gpu:{gpus} State=UNKNOWN
PartitionName=test Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""

#: fake GPU devices: SLURM only needs files to hand out; jobs see CUDA_VISIBLE_DEVICES
FAKE_GPU_FILES = ["/dev/null", "/dev/zero", "/dev/full", "/dev/random"]


def ensure_installed() -> None:
    """Install the Debian SLURM and munge packages if `sbatch` is missing (about 20 s)."""
    if shutil.which("sbatch") and shutil.which("slurmctld") and shutil.which("munged"):
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "install", "-y", "-q", *PACKAGES], check=True, env=env, capture_output=True)


def _read_pid(path: Path) -> int | None:
    """Process id from a pid file, or None."""
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _stop(pid: int | None, timeout_s: float = 10.0) -> None:
    """Terminate one process by id and wait until it is gone."""
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _wait_for_pid(path: Path, timeout_s: float = 10.0) -> int | None:
    """The pid a daemon writes into `path` once it has forked, or None if it never does."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pid = _read_pid(path)
        if pid is not None:
            return pid
        time.sleep(0.1)
    return None


def _munge_running() -> bool:
    """Whether a munge daemon answers on this machine."""
    if not shutil.which("munge"):
        return False
    cred = subprocess.run(["munge", "-n"], capture_output=True)
    return cred.returncode == 0 and subprocess.run(["unmunge"], input=cred.stdout, capture_output=True).returncode == 0


def wait_for_node(state: str = "idle", timeout_s: float = 30.0) -> None:
    """Wait until the single node reports `state` in sinfo."""
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        out = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True)
        last = (out.stdout + out.stderr).strip()
        if out.returncode == 0 and last.startswith(state):
            return
        time.sleep(0.5)
    raise RuntimeError(f"SLURM node did not become {state} within {timeout_s} s (sinfo: {last})")


@contextlib.contextmanager
def slurm_cluster(state_dir: Path, gpus: int = 2, cpus: int = 4, mem_mb: int = 8000) -> Iterator[Path]:
    """Run a one-node SLURM cluster with `gpus` fake GPUs; yields the state folder (daemon logs)."""
    ensure_installed()
    if subprocess.run(["pgrep", "-x", "slurmctld"], capture_output=True).returncode == 0:
        raise RuntimeError("a slurmctld is already running on this machine; stop it before the SLURM tests")
    state_dir = Path(state_dir).resolve()
    for sub in ("ctld", "d"):
        (state_dir / sub).mkdir(parents=True, exist_ok=True)
    CONF_DIR.mkdir(parents=True, exist_ok=True)
    saved: dict[Path, bytes | None] = {}
    started: list[int | None] = []
    munge_pid = None
    try:
        files = {
            CONF_DIR / "slurm.conf": SLURM_CONF.format(state=state_dir, cpus=cpus, mem_mb=mem_mb, gpus=gpus),
            CONF_DIR / "gres.conf": "AutoDetect=off\n"
            f"NodeName=localhost Name=gpu File={','.join(FAKE_GPU_FILES[:gpus])}\n",
        }
        for path, text in files.items():
            saved[path] = path.read_bytes() if path.exists() else None
            path.write_text(text)
        if not _munge_running():
            run_dir = Path("/run/munge")
            run_dir.mkdir(parents=True, exist_ok=True)
            shutil.chown(run_dir, "munge", "munge")
            subprocess.run(["runuser", "-u", "munge", "--", "munged"], check=True)
            munge_pid = _wait_for_pid(run_dir / "munged.pid")
        subprocess.run(["slurmctld"], check=True)
        started.append(_wait_for_pid(state_dir / "slurmctld.pid"))
        subprocess.run(["slurmd", "-N", "localhost"], check=True)
        started.append(_wait_for_pid(state_dir / "slurmd.pid"))
        wait_for_node("idle")
        yield state_dir
    finally:
        subprocess.run(["scancel", "--full", "--user", "root"], capture_output=True)
        for pid in reversed(started):
            _stop(pid)
        _stop(munge_pid)
        for path, content in saved.items():
            if content is None:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(content)
