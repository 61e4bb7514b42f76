"""The U-Net presets: exact paper architecture, output shapes, the demo preset's size."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from brainmets.errors import BrainmetsError
from brainmets.network.model import build_unet, full_resolution_model
from brainmets.train.settings import load_preset, settings_from_config


@pytest.fixture(scope="module")
def paper():
    return build_unet(**load_preset("paper")["network"])


def test_paper_preset_has_the_published_parameter_count(paper):
    assert paper.count_params() == 31_194_211
    assert full_resolution_model(paper).count_params() == 31_194_017
    assert sum(int(np.prod(v.shape)) for v in paper.trainable_variables) == 31_194_211


def test_paper_preset_layers(paper):
    convs = [layer for layer in paper.layers if layer.__class__.__name__ == "Conv3D" and layer.kernel_size == (3, 3, 3)]
    # 6 encoder levels x 2 + 5 decoder levels x 2 convolutions, stride 2 on the first conv of levels 1-5
    assert len(convs) == 22
    assert sorted({c.filters for c in convs}) == [32, 64, 128, 256, 320]
    assert sum(c.strides == (2, 2, 2) for c in convs) == 5
    ups = [layer for layer in paper.layers if layer.__class__.__name__ == "Conv3DTranspose"]
    assert [u.filters for u in ups] == [320, 256, 128, 64, 32]
    assert all(u.kernel_size == (2, 2, 2) and u.strides == (2, 2, 2) for u in ups)


def test_paper_forward_gives_three_supervised_outputs(paper):
    x = np.random.default_rng(0).normal(size=(1, 32, 32, 32, 1)).astype("float32")
    outputs = paper(x, training=False)
    assert [tuple(o.shape) for o in outputs] == [(1, 32, 32, 32, 1), (1, 16, 16, 16, 1), (1, 8, 8, 8, 1)]
    assert all(np.isfinite(np.asarray(o)).all() for o in outputs)


@pytest.mark.slow
def test_paper_preset_trains_one_step_on_a_small_patch(paper):
    from brainmets.train.loop import make_optimizer, make_train_step

    settings = settings_from_config({"model": {"preset": "paper"}, "train": {"device": "cpu"}})
    optimizer = make_optimizer(settings, mixed_precision=False)
    step = make_train_step(paper, optimizer, settings)
    rng = np.random.default_rng(0)
    label = np.zeros((2, 32, 32, 32, 1), np.float32)
    label[:, 10:18, 12:20, 8:14] = 1
    image = rng.normal(size=label.shape).astype(np.float32) + 2 * label
    before = paper.get_layer("enc0_a_conv").kernel.numpy().copy()
    loss, dice = step(image, label, 1 + label)
    assert np.isfinite(float(loss)) and 0.0 <= float(dice) <= 1.0
    assert int(optimizer.iterations.numpy()) == 1
    assert not np.allclose(paper.get_layer("enc0_a_conv").kernel.numpy(), before)


def test_demo_preset_is_small_and_selected_by_config():
    settings = settings_from_config({"model": {"preset": "demo"}})
    demo = build_unet(**settings.network)
    assert demo.count_params() < 500_000
    assert settings_from_config({"model": {"preset": "paper"}}).patch_size == (128, 128, 128)


def test_output_prior_sets_the_initial_probability_without_changing_the_network():
    plain = build_unet(filters=[4, 8, 16], deep_supervision_heads=1)
    prior = build_unet(filters=[4, 8, 16], deep_supervision_heads=1, output_prior=0.01)
    assert prior.count_params() == plain.count_params()
    for level in (0, 1):
        np.testing.assert_allclose(prior.get_layer(f"logits_{level}").bias.numpy(), [np.log(0.01 / 0.99)], rtol=1e-6)
        assert not plain.get_layer(f"logits_{level}").bias.numpy().any()
    x = np.random.default_rng(0).normal(size=(1, 16, 16, 16, 1)).astype(np.float32)
    # an untrained network's mean foreground probability sits near the prior, not near 0.5
    mean_p = float(keras.ops.mean(keras.ops.sigmoid(prior(x)[0])))
    assert 0.002 < mean_p < 0.05
    with pytest.raises(ValueError, match="output_prior"):
        build_unet(filters=[4, 8], deep_supervision_heads=0, output_prior=1.0)


def test_unknown_preset_and_bad_patch_are_refused():
    with pytest.raises(BrainmetsError, match="unknown preset 'huge'"):
        settings_from_config({"model": {"preset": "huge"}})
    with pytest.raises(BrainmetsError, match="multiples of 8"):
        settings_from_config({"model": {"preset": "demo"}, "train": {"patch_size": [50, 48, 48]}})
