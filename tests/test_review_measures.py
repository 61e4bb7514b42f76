"""The figures of benchmarks/review_flags.py on small tables and volumes worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from review_measures import flag_figures, lesion_uncertainty, threshold_for_sensitivity


def table(fp_scores: list[float], true_scores: list[float]) -> pd.DataFrame:
    """A lesion table with the given mean entropies for false-positive and true lesions."""
    return pd.DataFrame(
        {
            "mean_entropy_bits": fp_scores + true_scores,
            "false_positive": [True] * len(fp_scores) + [False] * len(true_scores),
        }
    )


def test_perfect_separation_and_the_threshold_figures() -> None:
    """FPs 0.8, 0.9 above true lesions 0.1, 0.2, 0.6: AUROC 1; at 0.5, both FPs and 1 of 3 true lesions flagged."""
    figures = flag_figures(table([0.8, 0.9], [0.1, 0.2, 0.6]), 0.5)
    assert figures["auroc"] == 1.0
    assert figures["sensitivity"] == 1.0
    assert figures["flagged_true"] == pytest.approx(1 / 3)
    assert figures["false_positives"] == 2 and figures["lesions"] == 5


def test_auroc_counts_ties_as_half_and_inverted_scores_as_zero() -> None:
    """One FP tied with one true lesion: AUROC 0.5; FPs all below the true lesions: 0."""
    assert flag_figures(table([0.4], [0.4]), 0.5)["auroc"] == 0.5
    assert flag_figures(table([0.1, 0.2], [0.7, 0.8]), 0.5)["auroc"] == 0.0
    assert math.isnan(flag_figures(table([], [0.3]), 0.5)["auroc"])


def test_threshold_for_sensitivity_keeps_the_highest_that_flags_enough() -> None:
    """FPs 0.9, 0.7, 0.5, 0.3: 50 % -> 0.7, 75 % -> 0.5, 100 % -> 0.3."""
    lesions = table([0.3, 0.9, 0.5, 0.7], [0.1])
    assert [threshold_for_sensitivity(lesions, s) for s in (0.5, 0.75, 1.0)] == [0.7, 0.5, 0.3]


def test_lesion_uncertainty_marks_lesions_without_truth_as_false_positives() -> None:
    """Two predicted blobs, one on a truth lesion: its mean entropy and FP flag per blob."""
    prediction = np.zeros((12, 12, 12), np.uint8)
    prediction[1:4, 1:4, 1:4] = 1  # true lesion
    prediction[8:10, 8:10, 8:10] = 1  # false positive
    truth = np.zeros_like(prediction)
    truth[2, 2, 2] = 1
    entropy = np.where(prediction > 0, 0.2, 0.0)
    entropy[8:10, 8:10, 8:10] = 0.9
    lesions = lesion_uncertainty(prediction, entropy, truth)
    assert lesions["voxels"].tolist() == [27, 8]
    assert lesions["false_positive"].tolist() == [False, True]
    assert lesions["mean_entropy_bits"].tolist() == pytest.approx([0.2, 0.9])
