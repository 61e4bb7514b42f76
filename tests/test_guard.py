"""The test suite's guard: without BRAINMETS_SYSTEM_TESTS=1 no test installs packages, starts daemons or writes /etc."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from guard import MachineChanged, MachineGuard, system_tests_enabled

pytestmark = pytest.mark.skipif(system_tests_enabled(), reason="the guard is off when the system tests are asked for")


@pytest.fixture
def guarded(leave_the_machine_alone: MachineGuard) -> Iterator[MachineGuard]:
    """The session's guard; what this test provokes on purpose is cleared afterwards (and checked first)."""
    yield leave_the_machine_alone
    leave_the_machine_alone.violations.clear()
    leave_the_machine_alone.child_violations()


def test_installing_a_package_is_refused(guarded: MachineGuard) -> None:
    with pytest.raises(MachineChanged, match="starts apt-get"):
        subprocess.run(["apt-get", "install", "-y", "slurm-wlm"], check=False)
    assert guarded.violations == ["starts apt-get (apt-get install -y slurm-wlm)"]


def test_mounting_a_file_system_is_refused(guarded: MachineGuard, tmp_path) -> None:
    with pytest.raises(MachineChanged, match="starts mount"):
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(tmp_path)], check=False)
    assert not os.path.ismount(tmp_path)


def test_a_daemon_started_through_a_shell_is_refused(guarded: MachineGuard) -> None:
    with pytest.raises(MachineChanged, match="starts slurmctld"):
        subprocess.run("slurmctld -D &", shell=True, check=False)
    with pytest.raises(MachineChanged, match="starts munged"):
        os.system("/usr/sbin/munged")


@pytest.mark.parametrize(
    "write",
    [
        lambda: open("/etc/slurm/slurm.conf", "w"),
        lambda: os.open("/etc/brainmets.conf", os.O_WRONLY | os.O_CREAT),
        lambda: os.makedirs("/etc/slurm-test", exist_ok=True),
        lambda: os.replace("/tmp/x", "/etc/x"),
    ],
    ids=["open", "os.open", "makedirs", "replace"],
)
def test_writing_under_etc_is_refused(guarded: MachineGuard, write) -> None:
    with pytest.raises(MachineChanged, match="/etc"):
        write()
    assert not os.path.exists("/etc/slurm-test") and not os.path.exists("/etc/brainmets.conf")


def test_reading_etc_is_allowed(guarded: MachineGuard) -> None:
    with open("/etc/hostname" if os.path.exists("/etc/hostname") else "/etc/passwd") as handle:
        handle.read()
    assert guarded.violations == []


def test_a_child_process_that_installs_a_package_is_caught(guarded: MachineGuard) -> None:
    """A Python child (not seen by the audit hook) finds the refusing stand-in first on PATH."""
    code = "import subprocess, sys; sys.exit(subprocess.run(['apt' + '-get', 'install', 'x']).returncode)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 97 and "refused by the test suite" in result.stderr
    assert guarded.child_violations() == ["a child process starts apt-get install x"]
