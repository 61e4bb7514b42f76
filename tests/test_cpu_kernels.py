"""TensorFlow's oneDNN CPU kernels are on wherever brainmets runs, unless the user turns them off."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = (
    "import brainmets, tensorflow; from tensorflow.python.util import _pywrap_util_port as p; print(p.IsMklEnabled())"
)


@pytest.mark.slow  # three fresh interpreters import TensorFlow
@pytest.mark.parametrize(("exported", "enabled"), [(None, True), ("1", True), ("0", False)])
def test_importing_brainmets_first_turns_onednn_on_unless_the_user_exported_a_value(
    exported: str | None, enabled: bool
) -> None:
    """TensorFlow enables oneDNN by itself only on AVX-512 VNNI/BF16 or AMX CPUs; brainmets asks for it everywhere."""
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if exported is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = exported
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    assert done.stdout.split()[-1] == str(enabled)


def test_the_console_command_imports_brainmets_before_tensorflow() -> None:
    """The `brainmets` entry point is brainmets.cli: the package's __init__ runs before any command module."""
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    code = "import brainmets.cli, os; print(os.environ['TF_ENABLE_ONEDNN_OPTS'])"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "1"
