"""`--threads` of train and predict: TensorFlow's thread pools follow the job's share of the cores."""

from __future__ import annotations

import subprocess
import sys

import pytest
from brainmets.cli import main
from brainmets.errors import BrainmetsError
from brainmets.network.threads import set_tensorflow_threads


@pytest.mark.parametrize("threads", [1, 3])
def test_tensorflow_runs_on_the_given_threads_one_op_at_a_time(threads):
    """In a fresh interpreter: after set_tensorflow_threads(N) and a first op, intra-op is N and inter-op 1."""
    code = (
        "from brainmets.network.threads import set_tensorflow_threads\n"
        f"set_tensorflow_threads({threads})\n"
        "import tensorflow as tf\n"
        "tf.constant(1.0) + 1.0\n"
        "print(tf.config.threading.get_intra_op_parallelism_threads(),"
        " tf.config.threading.get_inter_op_parallelism_threads())\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(threads), "1"]


def test_no_threads_keeps_tensorflow_defaults_and_zero_is_refused(monkeypatch):
    """None leaves TensorFlow's pools alone, N sets intra-op N and inter-op 1, 0 is refused before TensorFlow."""
    import tensorflow as tf

    calls: list[tuple[str, int]] = []
    monkeypatch.setattr(tf.config.threading, "set_intra_op_parallelism_threads", lambda n: calls.append(("intra", n)))
    monkeypatch.setattr(tf.config.threading, "set_inter_op_parallelism_threads", lambda n: calls.append(("inter", n)))
    set_tensorflow_threads(None)
    assert calls == []
    set_tensorflow_threads(2)
    assert calls == [("intra", 2), ("inter", 1)]
    calls.clear()
    with pytest.raises(BrainmetsError, match="--threads is 0; use 1 or more"):
        set_tensorflow_threads(0)
    assert calls == []


def test_train_refuses_zero_threads_in_one_line(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text("train:\n  device: cpu\n")
    args = ["train", "--cases", str(tmp_path), "--fold", "0", "--model-dir", str(tmp_path / "m")]
    assert main([*args, "--config", str(config), "--threads", "0"]) == 2
    err = capsys.readouterr().err
    assert "--threads is 0; use 1 or more" in err and "Traceback" not in err
    assert not (tmp_path / "m").exists()
