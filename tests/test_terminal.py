"""What a person at a terminal sees during long work, and what a log file gets instead."""

from __future__ import annotations

import fcntl
import logging
import os
import pty
import struct
import subprocess
import sys
import termios

import numpy as np
import pytest
from brainmets.inference.ensemble import predict_ensemble

#: ensemble members of a scan, run under a terminal: each takes 0.2 s
MEMBERS = """
import time
from brainmets.terminal import progress
for member in progress(list(range(4)), "ensemble members"):
    time.sleep(0.2)
print("done")
"""


def run_on_a_terminal(code: str) -> str:
    """Run Python `code` with a 110-column pseudo-terminal as standard output and error; returns what it showed."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 110, 0, 0))
    child = subprocess.Popen([sys.executable, "-c", code], stdout=slave, stderr=slave, env=dict(os.environ))
    os.close(slave)
    shown = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    child.wait()
    os.close(master)
    return shown.decode(errors="replace")


def test_a_terminal_shows_a_progress_bar_with_the_time_left() -> None:
    shown = run_on_a_terminal(MEMBERS)
    assert "ensemble members:  50%" in shown and "2/4 [" in shown
    assert "<00:00" in shown  # elapsed<left, as tqdm writes the time left
    assert shown.rstrip().endswith("done")


def test_a_log_file_gets_one_plain_line_per_member(caplog: pytest.LogCaptureFixture) -> None:
    image = np.zeros((8, 8, 8), np.float32)

    def predictor(batch: np.ndarray) -> np.ndarray:
        return np.zeros_like(batch)

    with caplog.at_level(logging.INFO, logger="brainmets.inference.ensemble"):
        predict_ensemble(image, [predictor, predictor], (8, 8, 8), overlap=0.0, mirror_axes=[0])
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4 and lines[0].startswith("member fold 0, mirror axes none: ")
    assert lines[3].startswith("member fold 1, mirror axes (0,): ")


def test_a_terminal_shows_the_stage_of_a_scan_on_one_line_that_goes_away() -> None:
    code = (
        "from brainmets.terminal import show_stage, clear_stage\n"
        "show_stage('preprocessing: brain extraction ...'); clear_stage(); print('written')"
    )
    shown = run_on_a_terminal(code)
    assert "\r\x1b[Kpreprocessing: brain extraction ...\r\x1b[K" in shown and shown.rstrip().endswith("written")
    piped = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert piped.stderr == "" and piped.stdout == "written\n"  # nothing of it in a log file
