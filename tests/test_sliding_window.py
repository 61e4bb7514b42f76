"""Sliding-window prediction: exact reconstruction, window placement, Gaussian weights, skipping."""

import numpy as np
import pytest

from brainmets.errors import BrainmetsError
from brainmets.inference.sliding import (
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
        assert all(s.stop <= n for s, n in zip(w, covered.shape))
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
        sliding_window_predict(np.ones((16, 16, 16), np.float32), lambda b: b[:, :8], PATCH)
