"""Ensemble uncertainty maps, lesion labelling and the per-lesion table."""

import math

import numpy as np
import pytest
from brainmets.errors import BrainmetsError
from brainmets.inference.ensemble import mirror_combinations, predict_ensemble
from brainmets.inference.uncertainty import (
    EnsembleAccumulator,
    EnsembleMaps,
    binary_entropy_bits,
    lesion_table,
    min_lesion_voxels,
    threshold_lesions,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from measures import misclassification_auroc


def ensemble_maps(member_probabilities: list[np.ndarray]) -> EnsembleMaps:
    """Mean probability and uncertainty maps (bits) of a list of member probability maps."""
    accumulator = EnsembleAccumulator(member_probabilities[0].shape)
    for p in member_probabilities:
        accumulator.add(p)
    return accumulator.result()


def test_binary_entropy_in_bits():
    np.testing.assert_allclose(binary_entropy_bits(np.array([0.0, 0.5, 1.0])), [0.0, 1.0, 0.0])
    p = 0.2
    assert binary_entropy_bits(np.array(p)) == pytest.approx(-(p * math.log2(p) + (1 - p) * math.log2(1 - p)))


def entropy_bits(p: np.ndarray) -> np.ndarray:
    """-p log2 p - (1 - p) log2 (1 - p), written out here (0 log 0 = 0), independently of binary_entropy_bits."""
    p = np.asarray(p, dtype=np.float64)
    plogp = np.where(p > 0, p * np.log2(np.where(p > 0, p, 1.0)), 0.0)
    qlogq = np.where(p < 1, (1 - p) * np.log2(np.where(p < 1, 1 - p, 1.0)), 0.0)
    return -(plogp + qlogq)


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, (6, 4, 3, 2), elements=st.floats(0.0, 1.0)))
def test_maps_follow_the_entropy_formulas_of_the_members(members):
    """total = H(mean p), expected = mean of the members' H(p_m), mutual information = their difference."""
    maps = ensemble_maps(list(members))
    total = entropy_bits(members.mean(axis=0))
    expected = entropy_bits(members).mean(axis=0)
    np.testing.assert_allclose(maps.probability, members.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(maps.total_entropy, total, atol=1e-6)
    np.testing.assert_allclose(maps.expected_entropy, expected, atol=1e-6)
    np.testing.assert_allclose(maps.mutual_information, total - expected, atol=1e-6)


def test_maps_of_worked_members():
    """Two members at one voxel, p = 0.1 and 0.5: worked by hand with log2."""
    h01 = -(0.1 * math.log2(0.1) + 0.9 * math.log2(0.9))  # 0.4690
    h03 = -(0.3 * math.log2(0.3) + 0.7 * math.log2(0.7))  # 0.8813, the entropy of the mean 0.3
    maps = ensemble_maps([np.full((1, 1, 1), 0.1), np.full((1, 1, 1), 0.5)])
    assert maps.probability.item() == pytest.approx(0.3)
    assert maps.total_entropy.item() == pytest.approx(h03, abs=1e-6)
    assert maps.expected_entropy.item() == pytest.approx((h01 + 1.0) / 2, abs=1e-6)
    assert maps.mutual_information.item() == pytest.approx(h03 - (h01 + 1.0) / 2, abs=1e-6)


def test_ensemble_maps_from_fold_logits_follow_the_formulas():
    """predict_ensemble with two folds of constant logits a, b: members sigmoid(a), sigmoid(b) everywhere."""
    a, b = 2.0, -0.5
    pa, pb = 1 / (1 + math.exp(-a)), 1 / (1 + math.exp(-b))
    image = np.ones((8, 8, 8), np.float32)
    maps = predict_ensemble(image, [lambda x: x * 0 + a, lambda x: x * 0 + b], (8, 8, 8), overlap=0.5, mirror_axes=[])
    total = entropy_bits(np.array((pa + pb) / 2)).item()
    expected = (entropy_bits(np.array(pa)).item() + entropy_bits(np.array(pb)).item()) / 2
    np.testing.assert_allclose(maps.probability, (pa + pb) / 2, rtol=1e-6)
    np.testing.assert_allclose(maps.total_entropy, total, rtol=1e-5)
    np.testing.assert_allclose(maps.expected_entropy, expected, rtol=1e-5)
    np.testing.assert_allclose(maps.mutual_information, total - expected, rtol=1e-4)


def test_agreeing_members_have_no_mutual_information_and_disagreeing_ones_do():
    agree = ensemble_maps([np.full((2, 2, 2), 0.5)] * 4)
    np.testing.assert_allclose(agree.total_entropy, 1.0)
    np.testing.assert_allclose(agree.expected_entropy, 1.0)
    np.testing.assert_allclose(agree.mutual_information, 0.0, atol=1e-7)
    disagree = ensemble_maps([np.zeros((2, 2, 2)), np.ones((2, 2, 2))])
    np.testing.assert_allclose(disagree.total_entropy, 1.0)
    np.testing.assert_allclose(disagree.expected_entropy, 0.0)
    np.testing.assert_allclose(disagree.mutual_information, 1.0)


def test_min_lesion_size_in_millilitres():
    assert min_lesion_voxels(0.0, (1.0, 1.0, 1.0)) == 0
    assert min_lesion_voxels(0.01, (1.0, 1.0, 1.0)) == 10
    assert min_lesion_voxels(0.01, (0.5, 0.5, 2.0)) == 20
    with pytest.raises(BrainmetsError, match="min_lesion_ml"):
        min_lesion_voxels(-1.0, (1.0, 1.0, 1.0))


def test_label_threshold_and_small_lesion_removal():
    p = np.zeros((20, 20, 20))
    p[2:5, 2:5, 2:5] = 0.9  # 27 voxels
    p[10, 10, 10] = 0.6  # 1 voxel
    p[15, 15, 15] = 0.5  # exactly 0.5 is not a lesion
    assert threshold_lesions(p, (1.0, 1.0, 1.0)).sum() == 28
    kept = threshold_lesions(p, (1.0, 1.0, 1.0), min_volume_ml=0.002)
    assert kept.sum() == 27 and kept[10, 10, 10] == 0
    assert kept.dtype == np.uint8


def test_lesion_table_uses_26_connectivity_and_summarises_each_map():
    label = np.zeros((12, 12, 12), np.uint8)
    label[1:3, 1:3, 1:3] = 1  # lesion A, 8 voxels
    label[3, 3, 3] = 1  # touches A only by a corner: same lesion under 26-connectivity
    label[8:10, 8:10, 8:11] = 1  # lesion B, 12 voxels
    probability = np.where(label > 0, 0.8, 0.0)
    probability[8, 8, 8] = 0.6
    total = np.zeros(label.shape)
    total[9, 9, 10] = 0.7
    table = lesion_table(label, probability, {"total_entropy": total}, (1.0, 1.0, 2.0))
    assert list(table["voxels"]) == [9, 12]
    np.testing.assert_allclose(table["volume_ml"], [0.018, 0.024])
    np.testing.assert_allclose(table["mean_probability"], [0.8, (11 * 0.8 + 0.6) / 12])
    np.testing.assert_allclose(table["total_entropy_max"], [0.0, 0.7])
    np.testing.assert_allclose(table["total_entropy_mean"], [0.0, 0.7 / 12])
    np.testing.assert_allclose(table.loc[1, ["centroid_i", "centroid_j", "centroid_k"]].astype(float), [8.5, 8.5, 9.0])


def test_lesion_table_of_an_empty_label_has_the_columns_and_no_rows():
    empty = np.zeros((5, 5, 5), np.uint8)
    table = lesion_table(empty, empty.astype(float), {"total_entropy": empty.astype(float)}, (1.0, 1.0, 1.0))
    assert len(table) == 0
    assert {"volume_ml", "mean_probability", "total_entropy_mean", "total_entropy_max"} <= set(table.columns)


def test_eight_mirrorings_for_three_axes_and_an_off_switch():
    assert len(mirror_combinations([0, 1, 2])) == 8
    assert mirror_combinations([]) == [()]
    assert mirror_combinations([2]) == [(), (2,)]
    with pytest.raises(BrainmetsError, match="mirror_axes"):
        mirror_combinations([3])


def test_ensemble_mirrors_each_fold_and_averages_probabilities():
    """A network that sees its input's orientation: its output depends on position along axis 0."""
    image = np.zeros((16, 8, 8), np.float32)
    ramp = np.linspace(-4, 4, 16, dtype=np.float32)[:, None, None]

    def positional(batch):  # logit = +/-ramp depending on whether the window is mirrored along axis 0
        return np.broadcast_to(ramp[None, ..., None], batch.shape) + batch

    plain = predict_ensemble(image, [positional], (16, 8, 8), overlap=0.5, mirror_axes=[])
    mirrored = predict_ensemble(image, [positional], (16, 8, 8), overlap=0.5, mirror_axes=[0])
    np.testing.assert_allclose(plain.probability[:, 0, 0], 1 / (1 + np.exp(-ramp[:, 0, 0])), rtol=1e-6)
    # mirrored member sees the ramp reversed: mean of sigmoid(r) and sigmoid(-r) is 0.5 everywhere
    np.testing.assert_allclose(mirrored.probability, 0.5, rtol=1e-6)
    assert (mirrored.mutual_information[[0, -1]] > 0.5).all()
    assert (plain.mutual_information == 0).all()

    two_folds = predict_ensemble(image, [positional, lambda b: -positional(b)], (16, 8, 8), overlap=0.5, mirror_axes=[])
    np.testing.assert_allclose(two_folds.probability, 0.5, rtol=1e-6)


def test_ensemble_sets_everything_outside_the_brain_to_background():
    image = np.ones((16, 16, 16), np.float32)
    mask = np.zeros(image.shape, bool)
    mask[4:12, 4:12, 4:12] = True
    maps = predict_ensemble(
        image, [lambda b: b * 0 + 3.0], (8, 8, 8), brain_mask=mask, overlap=0.5, mirror_axes=[0, 1, 2]
    )
    assert (maps.probability[~mask] == 0).all() and (maps.total_entropy[~mask] == 0).all()
    np.testing.assert_allclose(maps.probability[mask], 1 / (1 + np.exp(-3.0)), rtol=1e-6)


def test_misclassification_auroc_ranks_wrong_voxels_by_uncertainty():
    truth = np.zeros((10, 10, 10), np.uint8)
    truth[2:6, 2:6, 2:6] = 1
    label = truth.copy()
    label[2, 2:6, 2:6] = 0  # 16 missed voxels
    label[8, 8, 8] = 1  # one false-positive voxel
    brain = np.ones(truth.shape, bool)
    brain[9] = False
    wrong = label != truth
    perfect = np.where(wrong, 0.9, 0.1)
    assert misclassification_auroc(perfect, label, truth, brain) == pytest.approx(1.0)
    assert misclassification_auroc(1 - perfect, label, truth, brain) == pytest.approx(0.0)
    assert misclassification_auroc(np.full(truth.shape, 0.3), label, truth, brain) == pytest.approx(0.5)
    # half of the wrong voxels above every correct one, half below: 0.5
    mixed = np.where(wrong, 0.0, 0.5)
    mixed[2, 2:4, 2:6] = 0.9
    mixed[8, 8, 8] = 0.9
    assert misclassification_auroc(mixed, label, truth, brain) == pytest.approx(9 / 17)
    assert np.isnan(misclassification_auroc(perfect, truth, truth, brain))
