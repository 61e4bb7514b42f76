"""The exception types that reach users as a single actionable line, and the words for the machine's faults.

`BrainmetsError` is bad input or configuration. `StorageError` is a fault of the machine while a file
was read or written (a full disk, a quota, a read-only mount, a permission, failing storage, too many
open files, a folder where a file belongs): the operating system's error, which libraries often wrap
in their own message or raise without the file's name, turned into one line that names the path, says
what happened and what to do. `brainmets.cli` prints both as one line.
"""

from __future__ import annotations

import errno
import os
import re

#: the environment variable that makes every error show its traceback (as `brainmets --debug` does)
DEBUG_VARIABLE = "BRAINMETS_DEBUG"


class BrainmetsError(Exception):
    """A problem with the user's input or configuration; its message names the file and the fix."""


#: errno -> (what happened, what to do), in a user's words
FAULTS: dict[int, tuple[str, str]] = {
    errno.ENOSPC: ("no space left on the disk", "free space there or choose a folder on another disk"),
    errno.EDQUOT: ("disk quota exceeded", "free space within your quota or choose a folder outside it"),
    errno.EFBIG: ("file too large for this file system or its limits", "choose a folder on another disk"),
    errno.EROFS: ("read-only file system", "choose a folder on a writable disk"),
    errno.EACCES: ("permission denied", "check the permissions of the file and its folder or choose another folder"),
    errno.EPERM: ("operation not permitted", "check the permissions of the file and its folder or choose another"),
    errno.EIO: ("input/output error (the disk or network storage is failing)", "check the storage, then run again"),
    errno.ESTALE: ("stale network file handle (the network storage changed)", "check the mount, then run again"),
    errno.EMFILE: ("too many open files", "raise the limit (ulimit -n) or run fewer jobs at once"),
    errno.ENFILE: ("too many open files on this machine", "run fewer jobs at once, then run again"),
    errno.EISDIR: ("is a folder where a file was expected", "give a file's path"),
    errno.ENOTDIR: ("a part of the path is a file where a folder was expected", "give a path through folders"),
    errno.ENOENT: ("no such file or folder", "check the path"),
    errno.EEXIST: ("already exists", "remove it or choose another name"),
    errno.ENOTEMPTY: ("folder not empty", "remove its contents or choose another folder"),
    errno.ENAMETOOLONG: ("file name too long", "choose a shorter path"),
    errno.ELOOP: ("too many symbolic links in the path", "check the path's links"),
    errno.EXDEV: ("cannot move a file across file systems", "keep the output and its folder on one disk"),
    errno.EBUSY: ("device or resource busy", "wait for the other program to finish, then run again"),
    errno.ETXTBSY: ("file busy", "wait for the other program to finish, then run again"),
    errno.ENOMEM: ("out of memory while accessing the file", "free memory or run fewer jobs at once"),
}

#: how libraries that wrap the operating system's error quote it (h5py/HDF5: `errno = 28`, `name = '...'`)
_ERRNO_IN_TEXT = re.compile(r"errno\s*=\s*(\d+)")
_NAME_IN_TEXT = re.compile(r"(?:file)?name\s*=\s*'([^']+)'")
_STRERRORS = {os.strerror(code).lower(): code for code in FAULTS}


class StorageError(BrainmetsError):
    """A fault of the machine while reading or writing `path`: its message says what happened and what to do."""

    def __init__(self, path: str | os.PathLike[str] | None, code: int | None, action: str = "") -> None:
        self.path = None if path is None else os.fspath(path)
        self.errno = code
        self.action = action
        what, fix = FAULTS.get(code or -1, ("", "check the disk and the folder, then run again"))
        what = what or (os.strerror(code).lower() if code else "input/output failed")
        where = f"{self.path}: " if self.path else ""
        super().__init__(f"{where}{action} ({what}); {fix}" if action else f"{where}{what}; {fix}")

    def __reduce__(self) -> tuple[type[StorageError], tuple[str | None, int | None, str]]:
        """Rebuilt from path, errno and action (when it crosses from a worker process)."""
        return StorageError, (self.path, self.errno, self.action)


def _chain(error: BaseException) -> list[BaseException]:
    """The error and those it was raised from (`raise ... from`), outermost first.

    Errors raised while another was handled are left out: a bug in an `except OSError` block is a bug.
    """
    found: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in found:
        found.append(current)
        current = current.__cause__
    return found


def _wraps_os_errors(error: BaseException) -> bool:
    """Whether an exception type may carry an operating-system fault in its text (OSError, C++ libraries' errors)."""
    return isinstance(error, OSError | RuntimeError) or type(error).__module__.startswith("tensorflow")


def os_error_code(error: BaseException) -> int | None:
    """The operating system's error number behind an exception (or its cause), read from the text where wrapped."""
    for link in _chain(error):
        if isinstance(link, OSError) and link.errno:
            return link.errno
        if not _wraps_os_errors(link):
            continue
        text = str(link)
        match = _ERRNO_IN_TEXT.search(text)
        if match:
            return int(match.group(1))
        lowered = text.lower()
        for words, code in _STRERRORS.items():
            if words in lowered:
                return code
    return None


def _named_path(error: BaseException) -> str | None:
    """The file name an exception (or its cause) carries, as an attribute or quoted in its text."""
    for link in _chain(error):
        name = getattr(link, "filename", None)
        if name is not None:
            return os.fsdecode(name) if isinstance(name, bytes | str) else str(name)
        match = _NAME_IN_TEXT.search(str(link))
        if match:
            return match.group(1)
    return None


def storage_error(
    error: BaseException,
    path: str | os.PathLike[str] | None = None,
    *,
    temporary: str | os.PathLike[str] | None = None,
    action: str = "",
) -> StorageError | None:
    """The StorageError for an operating-system fault behind `error`, or None when it is not one.

    `path` names the file when the error does not (libraries writing through an open file lose the
    name); a `temporary` file or folder (or a file in it) named by the error is replaced by `path`, the
    name the user gave; `action`
    (e.g. "cannot write") goes before the words of the fault.
    """
    if isinstance(error, StorageError):
        if not _within(error.path, temporary):
            return error
        return StorageError(path, error.errno, action or error.action)
    code = os_error_code(error)
    if code is None or not any(_wraps_os_errors(link) for link in _chain(error)):
        return None
    named = _named_path(error)
    if named is None or _within(named, temporary):
        named = None if path is None else os.fspath(path)
    return StorageError(named, code, action)


def _within(named: str | None, temporary: str | os.PathLike[str] | None) -> bool:
    """Whether a path is the temporary file or folder, or lies in it."""
    if named is None or temporary is None:
        return False
    staged = os.fspath(temporary)
    return named == staged or named.startswith(staged.rstrip(os.sep) + os.sep)


def raise_if_fault(error: BaseException, path: str | os.PathLike[str], action: str = "") -> None:
    """Raise the StorageError for an operating-system fault behind `error` (naming `path`); return if it is none.

    For `except` blocks that turn a library's errors into "not a readable ..." for bad input: a full
    disk or failing storage is not bad input.
    """
    fault = storage_error(error, path, action=action)
    if fault is not None:
        raise fault from error


def debug_requested() -> bool:
    """Whether the user asked for tracebacks of every error (BRAINMETS_DEBUG set to anything but empty or 0)."""
    return os.environ.get(DEBUG_VARIABLE, "") not in ("", "0")
