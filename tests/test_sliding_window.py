"""Sliding-window prediction: exact reconstruction, window placement, Gaussian weights, skipping."""

import numpy as np
import pytest
from brainmets.errors import BrainmetsError
from brainmets.network.sliding import (
    brain_region,
    brain_windows,
    gaussian_importance_map,
    sliding_window_predict,
    window_slices,
    window_starts,
)

PATCH = (16, 16, 16)


def identity(batch: np.ndarray) -> np.ndarray:
    return batch


@pytest.mark.parametrize(
    "shape",
    [
        (9, 11, 13),  # smaller than the patch on every axis, odd
        (16, 16, 16),  # equal to the patch
        (16, 7, 30),  # mixed: equal, smaller, larger
        (37, 41, 23),  # larger than the patch, odd
    ],
)
@pytest.mark.parametrize("overlap", [0.0, 0.5, 0.75])
def test_identity_model_reproduces_the_input_exactly(shape, overlap):
    image = np.random.default_rng(1).normal(size=shape).astype(np.float32)
    out = sliding_window_predict(image, identity, PATCH, overlap=overlap, batch_size=3)
    assert out.shape == image.shape
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, image)


def test_windows_cover_the_volume_and_stay_inside_it():
    assert window_starts(37, 16, 0.5) == [0, 7, 14, 21]
    assert window_starts(16, 16, 0.5) == [0]
    assert window_starts(10, 16, 0.5) == [0]
    starts = window_starts(200, 128, 0.5)
    assert starts[0] == 0 and starts[-1] == 200 - 128
    assert max(np.diff(starts)) <= 64
    covered = np.zeros((37, 41, 23), bool)
    for w in window_slices(covered.shape, PATCH, 0.5):
        assert all(s.stop <= n for s, n in zip(w, covered.shape, strict=True))
        covered[w] = True
    assert covered.all()


def test_overlap_outside_range_is_refused():
    with pytest.raises(BrainmetsError, match="overlap"):
        window_starts(40, 16, 1.0)


def test_gaussian_map_peaks_at_centre_with_sigma_an_eighth_of_the_patch():
    weights = gaussian_importance_map((32, 32, 16))
    assert weights.shape == (32, 32, 16)
    assert (weights > 0).all()
    centre_line = weights[:, 15, 7] / weights[15, 15, 7]
    # one sigma (32 / 8 = 4 voxels) away from the centre (15.5): exp(-1/2) relative weight
    expected = np.exp(-0.5 * ((np.arange(32) - 15.5) / 4.0) ** 2) / np.exp(-0.5 * (0.5 / 4.0) ** 2)
    np.testing.assert_allclose(centre_line, expected, rtol=1e-9)
    assert weights[0, 0, 0] < 1e-3 * weights.max()


def test_overlapping_windows_blend_towards_the_window_centre():
    """Each window outputs its own index; where two overlap, the one whose centre is nearer wins."""
    calls = []

    def window_id(batch):
        out = np.empty_like(batch)
        for b in range(len(batch)):
            calls.append(len(calls))
            out[b] = len(calls) - 1
        return out

    out = sliding_window_predict(np.zeros((16, 16, 24), np.float32), window_id, PATCH, overlap=0.5)
    # windows start at k = 0 and k = 8: ids 0 and 1; k 8..15 is shared
    assert len(calls) == 2
    assert out[8, 8, 2] == pytest.approx(0.0, abs=1e-6)
    assert out[8, 8, 21] == pytest.approx(1.0, abs=1e-6)
    assert 0.0 < out[8, 8, 10] < 0.5 < out[8, 8, 13] < 1.0


def test_windows_without_brain_are_skipped_and_filled():
    seen = []

    def counting(batch):
        seen.append(len(batch))
        return batch

    image = np.random.default_rng(0).normal(size=(48, 16, 16)).astype(np.float32)
    mask = np.zeros(image.shape, bool)
    mask[2:6, 4:8, 4:8] = True  # only the first windows along axis 0 hold brain
    out = sliding_window_predict(image, counting, PATCH, overlap=0.5, brain_mask=mask, fill_value=-7.0, batch_size=8)
    assert sum(seen) == 1  # of the 5 windows along axis 0 only the first holds brain
    np.testing.assert_array_equal(out[:16], image[:16])
    assert (out[16:] == -7.0).all()


def test_windows_are_batched():
    sizes = []

    def recording(batch):
        sizes.append(batch.shape[0])
        return batch

    sliding_window_predict(np.ones((40, 16, 16), np.float32), recording, PATCH, overlap=0.5, batch_size=3)
    assert sizes == [3, 1]  # 4 windows along axis 0, starting at 0, 8, 16, 24


def test_a_network_that_changes_the_shape_is_refused():
    with pytest.raises(BrainmetsError, match="patch shape"):
        sliding_window_predict(np.ones((16, 16, 16), np.float32), lambda b: b[:, :8], PATCH, overlap=0.5)


def window_dependent(batch: np.ndarray) -> np.ndarray:
    """A network whose output depends on where the window lies: each voxel plus its window's mean."""
    return batch + batch.mean(axis=(1, 2, 3, 4), keepdims=True)


def test_windows_tile_the_brain_box_so_the_whole_grid_gives_the_brain_crop_result():
    """Windows are placed on the brain's bounding box: a whole grid predicts the brain exactly as its crop does."""
    rng = np.random.default_rng(3)
    image = rng.normal(size=(60, 50, 40)).astype(np.float32)
    mask = np.zeros(image.shape, bool)
    box = (slice(7, 44), slice(5, 46), slice(9, 32))  # 37 x 41 x 23 voxels
    mask[box] = rng.random((37, 41, 23)) > 0.3
    mask[7, 5, 9] = mask[43, 45, 31] = True  # the box's corners hold brain
    calls = []

    def recording(batch):
        calls.append(len(batch))
        return window_dependent(batch)

    whole = sliding_window_predict(image, recording, PATCH, overlap=0.5, brain_mask=mask, fill_value=-9.0, batch_size=4)
    on_whole = sum(calls)
    cropped = sliding_window_predict(image[box], window_dependent, PATCH, overlap=0.5, brain_mask=mask[box])
    np.testing.assert_array_equal(whole[box], cropped)
    outside = np.ones(image.shape, bool)
    outside[box] = False
    assert (whole[outside] == -9.0).all()
    # nnU-Net's placement on the box: 4 x 5 x 2 windows; on the whole grid it would take 7 x 6 x 4
    assert on_whole == len(window_slices((37, 41, 23), PATCH, 0.5)) == 40
    assert len(brain_windows(mask, PATCH, 0.5)) == 40


def test_windows_without_a_brain_voxel_are_never_computed():
    """Two brain blobs in opposite corners: the windows between them are never handed to the network."""
    image = np.zeros((64, 64, 16), np.float32)
    image[2:10, 2:10, 4:12] = 1.0
    image[54:62, 54:62, 4:12] = 1.0
    mask = image > 0

    def brain_only(batch):
        assert all(window.any() for window in batch), "a window without brain reached the network"
        return batch * 3.0

    out = sliding_window_predict(image, brain_only, PATCH, overlap=0.5, brain_mask=mask, fill_value=-1.0)
    np.testing.assert_array_equal(out[mask], 3.0)
    computed = brain_windows(mask, PATCH, 0.5)
    assert len(computed) == 8  # of the 7 x 7 windows on the box (starts 2, 9, ..., 46), 2 x 2 touch each blob
    assert len(window_slices(image.shape, PATCH, 0.5)) == 49


def test_brain_region_widens_a_small_brain_to_one_patch_inside_the_volume():
    mask = np.zeros((40, 30, 20), bool)
    mask[1:5, 12:16, 18:20] = True
    assert brain_region(mask, PATCH) == (slice(0, 16), slice(6, 22), slice(4, 20))
    assert brain_region(np.zeros((20, 20, 20), bool), PATCH) is None
    assert brain_windows(np.zeros((20, 20, 20), bool), PATCH, 0.5) == []


def test_a_mask_covering_everything_keeps_the_plain_placement():
    image = np.random.default_rng(4).normal(size=(37, 41, 23)).astype(np.float32)
    with_mask = sliding_window_predict(
        image, window_dependent, PATCH, overlap=0.75, brain_mask=np.ones(image.shape, bool)
    )
    without = sliding_window_predict(image, window_dependent, PATCH, overlap=0.75)
    np.testing.assert_array_equal(with_mask, without)
