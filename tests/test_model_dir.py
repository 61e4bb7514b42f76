"""The model directory contract: model.json + fold weights, validated on load."""

from __future__ import annotations

import json

import numpy as np
import pytest
from brainmets.errors import BrainmetsError
from brainmets.network.model import build_unet
from brainmets.network.modeldir import fold_dir, load_model_dir, model_metadata, write_json

NETWORK = {"filters": [4, 8, 16], "deep_supervision_heads": 1}


def _write_model(root, folds=(0, 1)):
    nets = []
    for fold in folds:
        net = build_unet(**NETWORK)
        fold_dir(root, fold).mkdir(parents=True)
        net.save_weights(str(fold_dir(root, fold) / "best.weights.h5"))
        nets.append(net)
    write_json(model_metadata("custom", NETWORK, [16, 16, 16], [1.0, 1.0, 1.0], list(folds)), root / "model.json")
    return nets


@pytest.mark.slow
def test_load_model_dir_returns_full_resolution_logits_of_each_fold(tmp_path):
    nets = _write_model(tmp_path)
    meta, models = load_model_dir(tmp_path)
    assert meta["folds"] == [0, 1] and meta["normalisation"] == "zscore-brain"
    x = np.random.default_rng(0).normal(size=(1, 16, 16, 16, 1)).astype("float32")
    for net, model in zip(nets, models, strict=True):
        out = model.predict(x, verbose=0)
        assert out.shape == (1, 16, 16, 16, 1)
        np.testing.assert_allclose(out, net.predict(x, verbose=0)[0], rtol=1e-5, atol=1e-6)
    # two folds initialised differently give different models
    assert not np.allclose(models[0].predict(x, verbose=0), models[1].predict(x, verbose=0))


def test_missing_directory_and_json_are_clear_errors(tmp_path):
    with pytest.raises(BrainmetsError, match="model directory not found"):
        load_model_dir(tmp_path / "nothing")
    with pytest.raises(BrainmetsError, match="model.json: file not found"):
        load_model_dir(tmp_path)


def test_wrong_format_version_is_refused(tmp_path):
    _write_model(tmp_path, folds=(0,))
    meta = json.loads((tmp_path / "model.json").read_text())
    meta["format_version"] = 2
    (tmp_path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(BrainmetsError, match="format_version"):
        load_model_dir(tmp_path)


def test_missing_fold_weights_are_named(tmp_path):
    _write_model(tmp_path, folds=(0,))
    meta = json.loads((tmp_path / "model.json").read_text())
    meta["folds"] = [0, 3]
    (tmp_path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(BrainmetsError, match="fold_3.*missing weights of fold 3"):
        load_model_dir(tmp_path)


def test_weights_of_another_network_are_refused(tmp_path):
    _write_model(tmp_path, folds=(0,))
    meta = json.loads((tmp_path / "model.json").read_text())
    meta["network"]["filters"] = [4, 8, 32]
    (tmp_path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(BrainmetsError, match="do not fit the network"):
        load_model_dir(tmp_path)
