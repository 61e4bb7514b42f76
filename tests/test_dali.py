"""The DALI training pipeline on the CPU: crops, augmentations, image/label/weights kept together."""

from __future__ import annotations

import numpy as np
import pytest
from brainmets.train.cases import Case
from brainmets.train.dali import build_pipeline, numpy_batches
from brainmets.train.settings import load_preset

PATCH = (24, 24, 24)
NO_AUG = {key: 0.0 for key in load_preset("paper")["augmentation"] if key.endswith("_p")}


def _aug(**changes):
    aug = dict(load_preset("paper")["augmentation"], **NO_AUG)
    aug.update(changes)
    return aug


def _write_case(root, name, image, label, weights):
    path = root / name
    path.mkdir()
    np.save(path / "data.npy", np.stack([image, label, weights], axis=-1).astype(np.float32))
    return Case(name, path, name, (1.0, 1.0, 1.0), image.shape)


@pytest.fixture(scope="module")
def position_case(tmp_path_factory):
    """A volume of exactly the patch size (so every crop is the whole volume) with a smooth ramp and one lesion."""
    i, j, k = np.indices(PATCH)
    image = ((i * 576 + j * 24 + k) / 1000.0).astype(np.float32)
    label = np.zeros(PATCH, np.float32)
    label[10:16, 12:18, 8:12] = 1
    return _write_case(tmp_path_factory.mktemp("pos"), "pos", image, label, 1 + 2 * label)


def _first_batch(cases, aug, batch=2, seed=3):
    return next(numpy_batches(build_pipeline(cases, PATCH, batch, aug, seed=seed)))


def _plain_crop_error(case, image_patch):
    """Largest difference between a patch and the (patch-sized) case volume."""
    return float(np.abs(image_patch[..., 0] - np.load(case.data_path)[..., 0]).max())


def test_shapes_and_types(position_case):
    image, label, weights = _first_batch([position_case], _aug())
    assert image.shape == label.shape == weights.shape == (2, *PATCH, 1)
    assert set(np.unique(label)) <= {0.0, 1.0}
    assert weights.min() >= 1.0


def test_without_augmentation_a_patch_is_a_plain_crop(position_case):
    image, _, _ = _first_batch([position_case], _aug())
    for sample in image:
        assert _plain_crop_error(position_case, sample) < 1e-5


@pytest.mark.parametrize(
    "changes",
    [
        {"noise_p": 1.0},
        {"blur_p": 1.0},
        {"brightness_p": 1.0, "brightness_range": [0.8, 0.8]},
        {"contrast_p": 1.0, "contrast_range": [0.8, 0.8]},
        {"low_resolution_p": 1.0, "low_resolution_zoom_range": [0.5, 0.5]},
        {"gamma_p": 1.0, "gamma_range": [1.5, 1.5]},
        {"inverted_gamma_p": 1.0, "gamma_range": [1.5, 1.5]},
    ],
)
def test_each_intensity_augmentation_changes_the_image_when_drawn(position_case, changes):
    image, _, _ = _first_batch([position_case], _aug(**changes))
    # values change by far more than rounding (the ramp spans 0-13.8)
    assert all(_plain_crop_error(position_case, s) > 1e-2 for s in image)


def test_spatial_augmentation_moves_image_label_and_weights_together(tmp_path):
    shape = (48, 48, 48)
    grid = np.indices(shape)
    label = (sum((g - 24.0) ** 2 for g in grid) <= 8.0**2).astype(np.float32)
    label[24:34, 20:28, 20:26] = 1  # an asymmetric lump so flips and rotations matter
    case = _write_case(tmp_path, "ball", 10.0 * label, label, 1.0 + 2.0 * label)
    aug = _aug(foreground_crop_p=1.0, scale_p=1.0, rotation_p=1.0, flip_p=0.5, scale_range=[0.8, 1.2])
    pipe = build_pipeline([case], PATCH, 2, aug, seed=5)
    batches = numpy_batches(pipe)
    changed = 0
    for _ in range(3):
        image, lab, weights = next(batches)
        # nearest-neighbour label and weights stay identical to each other
        assert np.array_equal(lab > 0.5, weights > 2.0)
        # the linearly interpolated image agrees with the label up to the interpolated rim
        inter = np.logical_and(image > 5.0, lab > 0.5).sum()
        assert 2 * inter / ((image > 5.0).sum() + (lab > 0.5).sum()) > 0.9
        changed += sum(not np.array_equal(lab[s, ..., 0], label[12:36, 12:36, 12:36]) for s in range(2))
    assert changed > 0


def test_foreground_crops_choose_among_all_lesions_not_only_the_largest(tmp_path):
    shape = (96, 96, 96)
    grid = np.indices(shape)
    label = np.zeros(shape, np.float32)
    weights = np.ones(shape, np.float32)
    # one large and three small lesions far apart; the weight channel tags each lesion with its number
    lesions = [((20, 20, 20), 8), ((75, 20, 75), 1.5), ((20, 75, 75), 1.5), ((75, 75, 20), 2)]
    for tag, (centre, radius) in enumerate(lesions, 1):
        ball = sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True)) <= radius**2
        label[ball] = 1
        weights[ball] = 1 + tag
    case = _write_case(tmp_path, "four", np.zeros(shape, np.float32) + label, label, weights)
    batches = numpy_batches(build_pipeline([case], PATCH, 4, _aug(foreground_crop_p=1.0), seed=11))
    seen = []
    for _ in range(10):
        _, lab, w = next(batches)
        for s in range(4):
            tags = set(np.unique(w[s])) - {1.0}
            assert lab[s].any() and len(tags) == 1  # every patch holds exactly one lesion
            seen.append(int(tags.pop()) - 1)
    counts = np.bincount(seen, minlength=5)[1:]
    assert (counts > 0).all(), counts  # the three small lesions are sampled, not only the large one
