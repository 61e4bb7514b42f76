"""`brainmets import-model`: published Brain-Mets-Seg checkpoints -> model directory, same network numerically."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from brainmets.cli import main
from brainmets.network.model import build_unet
from brainmets.network.modeldir import load_model_dir
from brainmets.train.published_import import checkpoint_key, checkpoint_variable_map

from published_checkpoint import published_variable_shapes, random_published_weights, write_published_checkpoint

#: a small network in the published layout: 4 levels, 32^3 input -> 4^3 bottleneck
FILTERS = (4, 8, 8, 16)
LAYOUT_TSV = Path(__file__).parent / "data" / "brain-mets-seg-checkpoint.tsv"


def published_logits(weights: dict[str, np.ndarray], x: np.ndarray, n_levels: int, epsilon: float = 1e-3) -> np.ndarray:
    """The published UNet.call(training=False) in plain tf.nn ops, straight from the checkpoint arrays."""

    def conv_layer(path: str, h: tf.Tensor, stride: int) -> tf.Tensor:
        h = tf.nn.conv3d(h, weights[f"{path}/conv/kernel"], [1, stride, stride, stride, 1], "SAME")
        h = h + weights[f"{path}/conv/bias"]
        mean, variance = tf.nn.moments(h, axes=[1, 2, 3], keepdims=True)
        h = (h - mean) / tf.sqrt(variance + epsilon) * weights[f"{path}/norm/gamma"] + weights[f"{path}/norm/beta"]
        return tf.nn.leaky_relu(h, alpha=0.01)

    def conv_block(path: str, h: tf.Tensor, stride: int) -> tf.Tensor:
        return conv_layer(f"{path}/conv2", conv_layer(f"{path}/conv1", h, stride), 1)

    out = conv_block("input_block", tf.constant(x), 1)
    skips = [out]
    for i in range(n_levels - 2):
        out = conv_block(f"downsamples/{i}", out, 2)
        skips.append(out)
    out = conv_block("bottleneck", out, 2)
    for j in range(n_levels - 1):
        skip = skips.pop()
        kernel = weights[f"upsamples/{j}/transp_conv/kernel"]
        up = tf.nn.conv3d_transpose(out, kernel, [*skip.shape[:4], kernel.shape[3]], [1, 2, 2, 2, 1], "SAME")
        up = up + weights[f"upsamples/{j}/transp_conv/bias"]
        out = conv_block(f"upsamples/{j}/conv_block", tf.concat([up, skip], axis=-1), 1)
    out = tf.nn.conv3d(out, weights["output_block/conv/kernel"], [1, 1, 1, 1, 1], "SAME")
    return (out + weights["output_block/conv/bias"]).numpy()


def write_trained_models(root: Path, folds=(0, 1), filters=FILTERS, seed: int = 0) -> dict[int, dict[str, np.ndarray]]:
    """A published trained_models folder with one Model_<k> per fold (random weights); returns each fold's weights."""
    written = {}
    for fold in folds:
        weights = random_published_weights(published_variable_shapes(filters), seed=seed + fold)
        write_published_checkpoint(root / f"Model_{fold}", weights, epoch=100 + fold)
        written[fold] = weights
    return written


def run_import(src: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run the command line; returns its exit status and stderr."""
    status = main(["import-model", str(src), "--format", "brain-mets-seg", "--out", str(out)])
    return status, capsys.readouterr().err


def test_published_layout_matches_a_real_checkpoint() -> None:
    """The synthetic layout (used below) is the key/shape table of a real published checkpoint."""
    with LAYOUT_TSV.open() as handle:
        real = {row["key"]: tuple(json.loads(row["shape"])) for row in csv.DictReader(handle, delimiter="\t")}
    synthetic = {checkpoint_key(path): shape for path, shape in published_variable_shapes().items()}
    assert synthetic == real


def test_full_size_checkpoint_maps_onto_the_paper_network() -> None:
    """Every variable of a full-size checkpoint has exactly one paper-network weight of its shape, and all are used."""
    with LAYOUT_TSV.open() as handle:
        real = {row["key"]: tuple(json.loads(row["shape"])) for row in csv.DictReader(handle, delimiter="\t")}
    network = build_unet(filters=(32, 64, 128, 256, 320, 320), norm_epsilon=1e-3)
    mapping = checkpoint_variable_map(6, 2)
    assert set(mapping) == set(real)
    targets = [getattr(network.get_layer(layer), attribute) for layer, attribute in mapping.values()]
    assert len({id(w) for w in targets}) == len(network.weights) == len(real)
    for key, weight in zip(mapping, targets, strict=True):
        assert tuple(weight.shape) == real[key], key


def test_imported_model_computes_the_published_network(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    written = write_trained_models(tmp_path / "trained_models")
    status, err = run_import(tmp_path / "trained_models", tmp_path / "model", capsys)
    assert status == 0, err
    meta, models = load_model_dir(tmp_path / "model")
    assert meta["folds"] == [0, 1] and meta["patch_size"] == [128, 128, 128] and meta["spacing_mm"] == [1.0, 1.0, 1.0]
    assert meta["network"]["norm_epsilon"] == 1e-3 and meta["network"]["filters"] == list(FILTERS)
    assert meta["source"]["format"] == "brain-mets-seg"
    for fold in (0, 1):
        source = meta["source"]["folds"][str(fold)]
        assert source["checkpoint"].endswith(f"Model_{fold}/ckpt-best-{100 + fold}")
        data = Path(source["checkpoint"] + ".data-00000-of-00001")
        assert source["data_files"] == [{"file": data.name, "sha256": hashlib.sha256(data.read_bytes()).hexdigest()}]

    x = np.random.default_rng(1).normal(size=(1, 32, 32, 32, 1)).astype(np.float32)
    for fold, model in zip((0, 1), models, strict=True):
        expected = published_logits(written[fold], x, len(FILTERS))
        got = model(x, training=False).numpy()
        assert np.abs(expected).max() > 0.5  # a meaningful output, not a collapsed one
        assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max()
    # the epsilon matters: the paper preset's 1e-5 gives a measurably different network on the same weights
    assert (
        np.abs(published_logits(written[0], x, len(FILTERS), epsilon=1e-5) - published_logits(written[0], x, 4)).max()
        > 1e-4
    )


def test_one_model_folder_imports_as_its_fold(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_trained_models(tmp_path / "trained_models", folds=(3,))
    status, err = run_import(tmp_path / "trained_models" / "Model_3", tmp_path / "model", capsys)
    assert status == 0, err
    assert json.loads((tmp_path / "model" / "model.json").read_text())["folds"] == [3]
    assert (tmp_path / "model" / "fold_3" / "best.weights.h5").is_file()


def _rewrite(root: Path, change) -> None:
    """Rewrite Model_1 of a trained_models folder with its weights changed by `change(weights)`."""
    weights = random_published_weights(published_variable_shapes(FILTERS), seed=1)
    change(weights)
    for path in (root / "Model_1").iterdir():
        path.unlink()
    write_published_checkpoint(root / "Model_1", weights, epoch=101)


MISSING = "upsamples/1/conv_block/conv2/norm/gamma"
EXTRA = "upsamples/1/conv_block/conv3/norm/gamma"
RESHAPED = "downsamples/1/conv2/conv/kernel"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda w: w.pop(MISSING), f"network variable {checkpoint_key(MISSING)} is missing"),
        (
            lambda w: w.__setitem__(EXTRA, np.ones(8, np.float32)),
            f"network variable {checkpoint_key(EXTRA)} has no place",
        ),
        (
            lambda w: w.__setitem__(RESHAPED, np.ones((3, 3, 3, 8, 4), np.float32)),
            f"variable {checkpoint_key(RESHAPED)} has shape [3, 3, 3, 8, 4], the network needs [3, 3, 3, 8, 8]",
        ),
    ],
    ids=["missing", "left-over", "wrong-shape"],
)
def test_bad_checkpoint_is_one_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change, message: str
) -> None:
    src = tmp_path / "trained_models"
    write_trained_models(src)
    _rewrite(src, change)
    out = tmp_path / "model"
    out.mkdir()
    status, err = run_import(src, out, capsys)
    assert status == 2
    assert err.count("\n") == 1 and message in err and "Model_1/ckpt-best-101.index" in err
    assert list(out.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["model", "trained_models"]


def test_truncated_or_unreadable_checkpoint_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "trained_models"
    write_trained_models(src)
    data = src / "Model_1" / "ckpt-best-101.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    status, err = run_import(src, tmp_path / "model", capsys)
    assert status == 2 and err.count("\n") == 1
    assert "Model_1/ckpt-best-101.data: variable model/model/" in err and "damaged" in err
    assert not (tmp_path / "model").exists()

    index = src / "Model_1" / "ckpt-best-101.index"
    index.write_bytes(b"not a checkpoint index")
    status, err = run_import(src, tmp_path / "model", capsys)
    assert status == 2 and err.count("\n") == 1 and f"{index}: unreadable checkpoint" in err

    (src / "Model_1" / "checkpoint").unlink()
    status, err = run_import(src / "Model_1", tmp_path / "model", capsys)
    assert status == 2 and err.count("\n") == 1 and "Model_1: holds neither a checkpoint state file" in err
    assert not (tmp_path / "model").exists()


def test_existing_model_directory_is_left_as_it_was(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_trained_models(tmp_path / "trained_models", folds=(0,))
    out = tmp_path / "model"
    out.mkdir()
    (out / "model.json").write_text("{}\n")
    status, err = run_import(tmp_path / "trained_models", out, capsys)
    assert status == 2 and "already exists and is not an empty folder" in err
    assert [p.name for p in out.iterdir()] == ["model.json"] and (out / "model.json").read_text() == "{}\n"
