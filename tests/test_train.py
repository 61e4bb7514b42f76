"""k-fold training: patient-wise split, checkpoints and log, resume after a kill, paper step, GPU code paths."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from brainmets.cli import main
from brainmets.errors import BrainmetsError
from brainmets.io import save_nifti
from brainmets.network.modeldir import finalise_model_dir, load_model_dir
from brainmets.train.cases import Case, list_cases
from brainmets.train.folds import fold_cases, patient_folds
from brainmets.train.settings import TrainSettings, load_preset, settings_from_config

from synthetic import write_synthetic_cases

TINY = {
    "network": {"filters": [4, 8, 16], "deep_supervision_heads": 1},
    "patch_size": [16, 16, 16],
    "batch_size": 2,
    "epochs": 2,
    "iterations_per_epoch": 3,
    "optimizer": load_preset("demo")["optimizer"],
    "loss": load_preset("demo")["loss"],
    "augmentation": load_preset("demo")["augmentation"],
}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """Eight synthetic 32^3 cases of four patients, and a tiny preset file."""
    root = tmp_path_factory.mktemp("train")
    write_synthetic_cases(root, patients=4, timepoints=2, shape=(32, 32, 32))
    (root / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    return root


def _settings(workspace, **train):
    return settings_from_config(
        {"model": {"preset": str(workspace / "tiny.yaml")}, "train": {"folds": 2, "device": "cpu", **train}}
    )


def _fake_cases(timepoints):
    return [
        Case(f"{p}_{t}", Path(f"/x/{p}_{t}"), p, (1.0, 1.0, 1.0), (8, 8, 8))
        for p, n in timepoints.items()
        for t in range(n)
    ]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fold_split_keeps_every_patient_in_one_fold(seed):
    cases = _fake_cases({"A": 3, "B": 1, "C": 4, "D": 2, "E": 1, "F": 2, "G": 3})
    folds = patient_folds(cases, 5, seed)
    assert sorted(c.name for fold in folds for c in fold) == sorted(c.name for c in cases)
    assert all(folds)
    for fold in range(5):
        train, val = fold_cases(cases, fold, 5, seed)
        assert not {c.patient for c in train} & {c.patient for c in val}
        assert len(train) + len(val) == len(cases)
    owner = {}
    for k, fold in enumerate(folds):
        for case in fold:
            assert owner.setdefault(case.patient, k) == k


def test_too_few_patients_or_a_missing_fold_is_refused():
    cases = _fake_cases({"A": 3, "B": 2})
    with pytest.raises(BrainmetsError, match="2 training patient.*5 cross-validation folds"):
        patient_folds(cases, 5, 0)
    with pytest.raises(BrainmetsError, match="fold 2 does not exist"):
        fold_cases(cases, 2, 2, 0)


def test_prepare_case_command_and_its_errors(workspace, tmp_path, capsys):
    image = workspace / "nifti" / "P00_T0_image.nii.gz"
    label = workspace / "nifti" / "P00_T0_label.nii.gz"
    assert (
        main(
            [
                "prepare-case",
                "--image",
                str(image),
                "--label",
                str(label),
                "--out-dir",
                str(tmp_path / "c"),
                "--patient",
                "P00",
            ]
        )
        == 0
    )
    data = np.load(tmp_path / "c" / "data.npy")
    assert data.shape == (32, 32, 32, 3) and set(np.unique(data[..., 1])) == {0.0, 1.0}
    assert data[..., 2].min() >= 1.0 and data[..., 2][data[..., 1] > 0].mean() > 1.5
    assert json.loads((tmp_path / "c" / "case.json").read_text())["patient"] == "P00"
    save_nifti(np.zeros((32, 32, 30), np.uint8), np.eye(4), tmp_path / "bad_label.nii.gz")
    assert (
        main(
            [
                "prepare-case",
                "--image",
                str(image),
                "--label",
                str(tmp_path / "bad_label.nii.gz"),
                "--out-dir",
                str(tmp_path / "d"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "bad_label.nii.gz: grid (32, 32, 30) does not match" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "d" / "data.npy").exists()


@pytest.mark.slow
def test_train_fold_writes_checkpoints_log_state_and_a_loadable_model(workspace):
    from brainmets.train.loop import train_fold

    model_dir = workspace / "model_a"
    state = train_fold(workspace / "cases", 0, model_dir, _settings(workspace), verbose=0)
    fold = model_dir / "fold_0"
    assert state["finished"] and state["epoch"] == 2 and state["step"] == 6
    assert {"best.weights.h5", "latest.weights.h5", "latest.optimizer.npz", "log.csv", "state.json"} <= {
        p.name for p in fold.iterdir()
    }
    log = pd.read_csv(fold / "log.csv")
    assert list(log["epoch"]) == [0, 1] and list(log["step"]) == [3, 6]
    assert log["val_dice"].between(0, 1).all() and state["best_dice"] == pytest.approx(log["val_dice"].max())
    # validation patients are never training patients
    patients = {c.name: c.patient for c in list_cases(workspace / "cases")}
    assert not {patients[c] for c in state["train_cases"]} & {patients[c] for c in state["validation_cases"]}

    with pytest.raises(BrainmetsError, match="fold_1"):
        finalise_model_dir(model_dir, [0, 1])
    finalise_model_dir(model_dir, [0])
    meta, models = load_model_dir(model_dir)
    assert meta["folds"] == [0] and meta["patch_size"] == [16, 16, 16] and meta["spacing_mm"] == [1.0, 1.0, 1.0]
    assert models[0](np.zeros((1, 16, 16, 16, 1), np.float32)).shape == (1, 16, 16, 16, 1)

    # rerunning a finished fold does nothing
    before = (fold / "log.csv").read_text()
    train_fold(workspace / "cases", 0, model_dir, _settings(workspace), verbose=0)
    assert (fold / "log.csv").read_text() == before


@pytest.mark.slow
def test_killed_training_resumes_from_the_latest_checkpoint(workspace, capsys):
    from brainmets.train.loop import train_fold

    model_dir = workspace / "model_b"
    config = workspace / "long.yaml"
    config.write_text(
        yaml.safe_dump(
            {"model": {"preset": str(workspace / "tiny.yaml")}, "train": {"folds": 2, "device": "cpu", "epochs": 200}}
        )
    )
    job = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "brainmets.cli",
            "train",
            "--cases",
            str(workspace / "cases"),
            "--fold",
            "1",
            "--model-dir",
            str(model_dir),
            "--config",
            str(config),
            "--threads",
            "1",
            "--quiet",
        ]
    )
    state_path = model_dir / "fold_1" / "state.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and job.poll() is None:
        if state_path.is_file() and json.loads(state_path.read_text())["epoch"] >= 2:
            break
        time.sleep(0.2)
    job.send_signal(signal.SIGKILL)
    job.wait()
    saved = json.loads(state_path.read_text())
    assert 2 <= saved["epoch"] < 200 and not saved["finished"]
    log_before = pd.read_csv(model_dir / "fold_1" / "log.csv")
    assert list(log_before["epoch"]) == list(range(saved["epoch"]))

    done = train_fold(workspace / "cases", 1, model_dir, _settings(workspace, epochs=saved["epoch"] + 1), verbose=1)
    assert f"resuming after epoch {saved['epoch']} (step {saved['step']})" in capsys.readouterr().out
    assert done["epoch"] == saved["epoch"] + 1 and done["step"] == saved["step"] + 3  # not restarted from 0
    log_after = pd.read_csv(model_dir / "fold_1" / "log.csv")
    assert list(log_after["epoch"]) == list(range(saved["epoch"] + 1))
    pd.testing.assert_frame_equal(log_after.iloc[: saved["epoch"]], log_before.iloc[: saved["epoch"]])


@pytest.mark.slow
def test_resume_with_another_network_is_refused(workspace):
    from brainmets.train.loop import train_fold

    other = dict(TINY, network={"filters": [4, 8, 32], "deep_supervision_heads": 1})
    (workspace / "other.yaml").write_text(yaml.safe_dump(other))
    settings = settings_from_config(
        {"model": {"preset": str(workspace / "other.yaml")}, "train": {"folds": 2, "device": "cpu"}}
    )
    with pytest.raises(BrainmetsError, match="network differs from the interrupted run"):
        train_fold(workspace / "cases", 0, workspace / "model_a", settings, verbose=0)


def _step_data(size):
    rng = np.random.default_rng(0)
    image = rng.normal(size=(2, size, size, size, 1)).astype(np.float32)
    label = np.zeros_like(image)
    label[:, 4:10, 4:10, 4:10] = 1
    return image + 2 * label, label, 1 + label


@pytest.mark.slow
def test_mixed_precision_and_xla_paths_run_on_cpu(workspace):
    import keras
    from brainmets.train.loop import build_training_model, make_optimizer, make_train_step

    settings = _settings(workspace, mixed_precision=True, xla=True)
    model = build_training_model(settings, mixed_precision=True)
    assert model.get_layer("enc0_a_conv").compute_dtype == "float16"
    assert model.outputs[0].dtype == "float32" and keras.config.dtype_policy().name == "float32"
    optimizer = make_optimizer(settings, mixed_precision=True)
    assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    step = make_train_step(model, optimizer, settings, jit_compile=True)
    loss, _ = step(*_step_data(16))
    assert np.isfinite(float(loss)) and int(optimizer.iterations.numpy()) == 1


def _whole_case_preset(root: Path, epochs: int, iterations: int) -> TrainSettings:
    """Tiny network whose 32^3 patch is the whole 32^3 case, no augmentation: every step sees the same case."""
    augmentation = {k: (0.0 if k.endswith("_p") else v) for k, v in load_preset("demo")["augmentation"].items()}
    augmentation["foreground_crop_p"] = 1.0
    preset = dict(
        TINY,
        patch_size=[32, 32, 32],
        batch_size=1,
        epochs=epochs,
        iterations_per_epoch=iterations,
        augmentation=augmentation,
        validate_every=1,
    )
    path = root / f"whole_case_{epochs}x{iterations}.yaml"
    path.write_text(yaml.safe_dump(preset))
    return settings_from_config({"model": {"preset": str(path)}, "train": {"folds": 2, "device": "cpu"}})


@pytest.fixture(scope="module")
def one_case(tmp_path_factory):
    """Two synthetic 32^3 cases of two patients: with 2 folds, fold 0 trains on exactly one case."""
    root = tmp_path_factory.mktemp("one_case")
    write_synthetic_cases(root, patients=2, timepoints=1, shape=(32, 32, 32))
    return root


@pytest.mark.slow
def test_training_overfits_one_case(one_case):
    """60 steps of the real loop on one case at least halve the loss and lift the training Dice above 0.5."""
    from brainmets.train.loop import train_fold

    settings = _whole_case_preset(one_case, epochs=12, iterations=5).replace(validate_every=100)
    state = train_fold(one_case / "cases", 0, one_case / "model_learn", settings, verbose=0, threads=1)
    assert len(state["train_cases"]) == 1 and state["step"] == 60
    log = pd.read_csv(one_case / "model_learn" / "fold_0" / "log.csv")
    first, last = log.iloc[0], log.iloc[-1]
    assert first["train_dice"] < 0.5  # it starts knowing nothing
    assert last["loss"] <= 0.5 * first["loss"], list(log["loss"])
    assert last["train_dice"] > 0.5, list(log["train_dice"])
    # validate_every 100 > 12 epochs: only the last epoch is validated, as it always is
    assert log["val_dice"].iloc[:-1].isna().all() and 0 <= last["val_dice"] <= 1


@pytest.mark.slow
def test_best_checkpoint_holds_the_best_validation_epoch(one_case, monkeypatch):
    """With validation Dice patched to 0.3, 0.7, 0.5, 0.6, best.weights.h5 is the network after epoch 2."""
    import keras
    from brainmets.network.model import build_unet
    from brainmets.train import loop

    scores = iter([0.3, 0.7, 0.5, 0.6])
    seen: dict[str, keras.Model] = {}
    validated: list[list[np.ndarray]] = []  # the network's weights at each validation, epoch by epoch
    real_predictor = loop.validation_predictor

    def remember_model(model, patch_size):
        seen["model"] = model
        return real_predictor(model, patch_size)

    def chosen_score(predictor, cases, patch_size, overlap, batch_size=2):
        validated.append([w.numpy().copy() for w in seen["model"].weights])
        return next(scores)

    monkeypatch.setattr(loop, "validation_predictor", remember_model)
    monkeypatch.setattr(loop, "validation_dice", chosen_score)
    settings = _whole_case_preset(one_case, epochs=4, iterations=2)
    state = loop.train_fold(one_case / "cases", 0, one_case / "model_best", settings, verbose=0, threads=1)
    assert len(validated) == 4 and state["best_epoch"] == 2 and state["best_dice"] == pytest.approx(0.7)

    def stored(name):
        model = build_unet(**settings.network)
        model.load_weights(str(one_case / "model_best" / "fold_0" / f"{name}.weights.h5"))
        return [w.numpy() for w in model.weights]

    best, latest = stored("best"), stored("latest")
    assert len(best) == len(validated[1])
    assert all(np.array_equal(b, e) for b, e in zip(best, validated[1], strict=True))
    assert all(np.array_equal(b, e) for b, e in zip(latest, validated[3], strict=True))
    assert not all(np.array_equal(b, e) for b, e in zip(best, latest, strict=True))  # training moved on


def test_training_device_follows_what_tensorflow_sees(monkeypatch):
    """train.device: auto takes a visible GPU (mixed precision and XLA on), gpu without one is a clear error."""
    import tensorflow as tf
    from brainmets.train import loop

    hidden: list[object] = []
    monkeypatch.setattr(tf.config, "set_visible_devices", lambda devices, kind=None: hidden.append((devices, kind)))
    gpu = tf.config.PhysicalDevice(name="/physical_device:GPU:0", device_type="GPU")
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [gpu] if kind == "GPU" else [])
    assert loop.resolve_device("auto") == "gpu" and loop.resolve_device("gpu") == "gpu"
    assert loop._switch("auto", "gpu") and not loop._switch("auto", "cpu") and not loop._switch(False, "gpu")
    assert loop.resolve_device("cpu") == "cpu" and hidden == [([], "GPU")]  # the GPU is hidden from TensorFlow
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])
    assert loop.resolve_device("auto") == "cpu"
    with pytest.raises(BrainmetsError, match="train.device is gpu but TensorFlow sees no GPU"):
        loop.resolve_device("gpu")


def test_optimiser_is_the_documented_sgd_with_poly_decay():
    """config/README: SGD, Nesterov momentum 0.99, lr 0.01 with poly(0.9) decay to 0, weight decay 3e-5, clip 12."""
    from brainmets.train.loop import make_optimizer

    settings = settings_from_config({"model": {"preset": "demo"}, "train": {"device": "cpu"}})
    optimizer = make_optimizer(settings, mixed_precision=False)
    assert optimizer.__class__.__name__ == "SGD"
    assert optimizer.momentum == pytest.approx(0.99) and optimizer.nesterov
    assert optimizer.weight_decay == pytest.approx(3e-5) and optimizer.global_clipnorm == pytest.approx(12.0)
    total = settings.epochs * settings.iterations_per_epoch
    optimizer.build([])
    for step in (0, total // 3, total - 1, total):
        optimizer.iterations.assign(step)
        assert float(optimizer.learning_rate) == pytest.approx(0.01 * (1 - step / total) ** 0.9, abs=1e-7), step
