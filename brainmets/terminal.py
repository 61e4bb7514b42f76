"""What a command shows on the terminal: TensorFlow's start-up chatter kept out, progress bars on terminals only.

TensorFlow's C++ libraries log to the process's standard error (file descriptor 2) while they load,
before any setting of theirs can silence them: "All log messages before absl::InitializeLog() ...",
oneDNN's notice and the CPU-feature guard. `quiet_tensorflow_startup` holds file descriptor 2 while
`tensorflow` is imported (by us or by Keras) and passes on only the lines that are not such chatter,
and sets TF_CPP_MIN_LOG_LEVEL=2 so that TensorFlow's later informational lines and warnings stay out
too (its errors still show). A level the user sets is kept; `--verbose` or TF_CPP_MIN_LOG_LEVEL=0 shows all.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Sequence
from types import ModuleType
from typing import Any, TypeVar

#: TensorFlow's own switch for its C++ log (0 all, 1 no INFO, 2 no WARNING, 3 no ERROR)
TF_LOG_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"
#: set beside TF_CPP_MIN_LOG_LEVEL when brainmets set it, so that processes started from this one (a test
#: suite, a workflow) do not take it for the user's choice
QUIET_MARK = "BRAINMETS_QUIET_TENSORFLOW"
#: lines of TensorFlow's start-up log that are chatter: absl's notice and INFO/WARNING records (I0000/W0000 ...)
CHATTER = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\)|[IW]\d{4} [\d:.]+\s+\d+ \S+:\d+\]|"
    r"To enable the following instructions:)"
)

T = TypeVar("T")


def is_chatter(line: str) -> bool:
    """Whether a line of standard error is TensorFlow's start-up chatter (not an error)."""
    return bool(CHATTER.match(line))


@contextlib.contextmanager
def filtered_stderr() -> Iterator[None]:
    """Collect what is written to file descriptor 2 in the block, then pass on what is not chatter."""
    sys.stderr.flush()
    with tempfile.TemporaryFile(mode="w+b") as held:
        saved = os.dup(2)
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            kept = [line for line in held.read().decode(errors="replace").splitlines() if not is_chatter(line)]
            if kept:
                print("\n".join(kept), file=sys.stderr, flush=True)


class _QuietLoader(importlib.abc.Loader):
    """Runs a module's own loader with standard error filtered (see `filtered_stderr`)."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        """The module object of the wrapped loader."""
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        """Execute the module with standard error filtered."""
        with filtered_stderr():
            self.loader.exec_module(module)


class _QuietTensorFlowFinder(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` as the other finders do and hands out a loader that filters its start-up log."""

    def find_spec(self, name: str, path: Sequence[str] | None, target: ModuleType | None = None) -> Any:
        """The spec of `tensorflow` with a quiet loader; None for every other module."""
        if name != "tensorflow":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _QuietLoader(spec.loader)
        return spec


def quiet_tensorflow_startup(verbose: bool = False) -> None:
    """Keep TensorFlow's C++ start-up log off the terminal and logs, unless `verbose` or TF_CPP_MIN_LOG_LEVEL=0."""
    ours = os.environ.get(QUIET_MARK) == os.environ.get(TF_LOG_VARIABLE) == "2"  # set here, or inherited from us
    users = None if ours else os.environ.get(TF_LOG_VARIABLE)
    if verbose or users == "0" or "tensorflow" in sys.modules:
        return
    if users is None:  # a level the user chose stays; the start-up chatter goes, as TensorFlow ignores it there
        os.environ[TF_LOG_VARIABLE] = os.environ[QUIET_MARK] = "2"
    if not any(isinstance(finder, _QuietTensorFlowFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowFinder())


def interactive() -> bool:
    """Whether standard error is a terminal a person watches (not a log file or a pipe)."""
    return sys.stderr.isatty()


def progress(items: Sequence[T], what: str) -> Iterator[T]:
    """Yield `items`; on a terminal with a progress bar (done, total, elapsed and time left) on standard error.

    Elsewhere (Snakemake logs, pipes) the items come as they are: callers log a line per item when
    `interactive()` is false.
    """
    if not interactive():
        yield from items
        return
    from tqdm import tqdm

    yield from tqdm(items, desc=what, unit="member", leave=False, file=sys.stderr, dynamic_ncols=True)


#: whether a stage line is on the terminal (no newline yet)
_stage_shown = False


def show_stage(text: str) -> None:
    """On a terminal, show what a long step is doing now on one line that the next stage overwrites."""
    global _stage_shown
    if interactive():
        sys.stderr.write(f"\r\033[K{text}")
        sys.stderr.flush()
        _stage_shown = True


def clear_stage() -> None:
    """Remove the stage line from the terminal (before a log line, an error or a progress bar)."""
    global _stage_shown
    if _stage_shown:
        sys.stderr.write("\r\033[K")
        sys.stderr.flush()
        _stage_shown = False
