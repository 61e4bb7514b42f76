"""A guard that keeps the test suite from changing the machine it runs on.

Unless BRAINMETS_SYSTEM_TESTS=1, a test may not install system packages, start daemons or write under
/etc. The guard sees this process through an audit hook (the call is refused with MachineChanged and
recorded) and child processes through stand-ins for the forbidden programs put first on PATH (they
refuse and record). conftest.py fails any test that leaves a record.
"""

from __future__ import annotations

import os
import re
import stat
import sys
from pathlib import Path
from typing import Any

#: set to 1 to run the tests that install packages, write /etc and start daemons (the SLURM cluster)
SYSTEM_TESTS_VARIABLE = "BRAINMETS_SYSTEM_TESTS"
#: programs that install system packages, start (or reach) system daemons or mount file systems
FORBIDDEN_PROGRAMS = (
    "apt-get",
    "apt",
    "aptitude",
    "dpkg",
    "snap",
    "systemctl",
    "service",
    "sudo",
    "runuser",
    "munged",
    "slurmctld",
    "slurmd",
    "slurmdbd",
    "mount",
    "umount",
)
#: folder no test may write to
PROTECTED = "/etc"
#: audit events that write to the file system, with the positions of their path arguments
WRITE_EVENTS = {
    "os.mkdir": (0,),
    "os.rename": (0, 1),
    "os.remove": (0,),
    "os.rmdir": (0,),
    "os.symlink": (1,),
    "os.link": (1,),
    "os.chmod": (0,),
    "os.chown": (0,),
    "os.truncate": (0,),
    "os.utime": (0,),
    "shutil.copyfile": (1,),
    "shutil.copytree": (1,),
    "shutil.rmtree": (0,),
    "shutil.move": (0, 1),
}
#: shells whose -c scripts are searched for the forbidden programs
SHELLS = ("sh", "bash", "dash", "zsh")
_PROGRAM = re.compile(r"(?<![\w.-])(?:/\S*/)?(" + "|".join(re.escape(p) for p in FORBIDDEN_PROGRAMS) + r")(?![\w.-])")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


class MachineChanged(RuntimeError):
    """A test tried to install packages, start a daemon or write under /etc."""


def system_tests_enabled() -> bool:
    """Whether the tests that change the machine were asked for (BRAINMETS_SYSTEM_TESTS=1)."""
    return os.environ.get(SYSTEM_TESTS_VARIABLE) == "1"


def _under_protected(path: Any) -> bool:
    """Whether a path argument of an audit event lies under /etc."""
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, (str, os.PathLike)):
        return False
    absolute = os.path.abspath(os.fspath(path))
    return absolute == PROTECTED or absolute.startswith(PROTECTED + os.sep)


def _argv(value: Any) -> list[str]:
    """The text arguments of an audit event's program and argument values, flattened (others left out)."""
    if isinstance(value, (str, bytes, os.PathLike)):
        return [os.fsdecode(value)]
    if isinstance(value, (list, tuple)):
        return [text for item in value for text in _argv(item)]
    return []


def forbidden_program(program: Any, args: Any) -> str | None:
    """The forbidden program a process start runs: itself, or named in a shell's -c script; None if none."""
    argv = _argv(args)
    names = {os.path.basename(name) for name in _argv(program)[:1] + argv[:1]}
    found = names & set(FORBIDDEN_PROGRAMS)
    if found:
        return found.pop()
    if names & set(SHELLS) and "-c" in argv:
        match = _PROGRAM.search(" ".join(argv[argv.index("-c") + 1 :]))
        return match.group(1) if match else None
    return None


class MachineGuard:
    """Records (and refuses) what would change the machine; active while `active` is true."""

    def __init__(self, log: Path) -> None:
        self.active = False
        self.log = log
        self.violations: list[str] = []

    def audit(self, event: str, args: tuple[Any, ...]) -> None:
        """sys.addaudithook callback: refuse forbidden process starts and writes under /etc."""
        if not self.active:
            return
        problem = None
        if event in ("subprocess.Popen", "os.exec", "os.posix_spawn", "os.spawn", "os.system"):
            if event == "os.system":
                program, argv = "sh", ["sh", "-c", *_argv(args[0])]
            else:
                program, argv = args[1:3] if event == "os.spawn" else args[:2]
            found = forbidden_program(program, argv)
            if found:
                problem = f"starts {found} ({' '.join(_argv(argv))[:200]})"
        elif event == "open" and _under_protected(args[0]):
            mode, flags = args[1], args[2]
            writes = any(c in mode for c in "wax+") if isinstance(mode, str) else bool((flags or 0) & _WRITE_FLAGS)
            if writes:
                problem = f"writes {args[0]}"
        elif event in WRITE_EVENTS and any(_under_protected(args[i]) for i in WRITE_EVENTS[event] if i < len(args)):
            problem = f"{event} on {', '.join(str(args[i]) for i in WRITE_EVENTS[event] if i < len(args))}"
        if problem:
            self.violations.append(problem)
            raise MachineChanged(
                f"a test {problem}; tests that change the machine run only with {SYSTEM_TESTS_VARIABLE}=1 "
                "and the marker `system`"
            )

    def child_violations(self) -> list[str]:
        """What child processes tried through the stand-in programs (read and cleared)."""
        if not self.log.exists():
            return []
        lines = self.log.read_text().splitlines()
        self.log.write_text("")
        return [f"a child process starts {line}" for line in lines]


def write_stand_ins(folder: Path, log: Path) -> None:
    """Put one refusing stand-in per forbidden program into `folder` (to go first on PATH)."""
    folder.mkdir(parents=True, exist_ok=True)
    for program in FORBIDDEN_PROGRAMS:
        script = folder / program
        script.write_text(
            "#!/bin/sh\n"
            f'echo "{program} $*" >> "{log}"\n'
            f'echo "{program}: refused by the test suite (set {SYSTEM_TESTS_VARIABLE}=1 for system tests)" >&2\n'
            "exit 97\n"
        )
        script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def install(folder: Path) -> MachineGuard:
    """Create the guard: audit hook on this process, stand-ins first on PATH for child processes."""
    log = folder / "refused.log"
    write_stand_ins(folder / "bin", log)
    os.environ["PATH"] = f"{folder / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    guard = MachineGuard(log)
    sys.addaudithook(guard.audit)
    return guard
