"""Per-scan evaluation (brats2023): HD95 against the surface-distance package, lesion-wise cases worked out by hand
from the official BraTS-2023 code, the command.

The official code is rachitsaluja/BraTS-2023-Metrics, `eval.py`: `get_LesionWiseScores` and
`get_LesionWiseResults` with challenge_name 'BraTS-MET' (dilation_factor 1 with
scipy.ndimage.generate_binary_structure(3, 2), i.e. an 18-connected one-voxel dilation; cc3d components
with connectivity 26; a predicted component is a hit when it overlaps the dilated lesion and the lesion is
scored against every hit component together; lesion_volume_thresh 2: lesions of at most 2 mm^3 are left
out of the scores and counts, their hits are no false positives; an infinite HD95 becomes 374; no lesion
and no false positive: lesion-wise Dice 1, HD95 0). It is not packaged, so the suite does not run it: the
cases below follow it step by step.
"""

from __future__ import annotations

import math

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import surface_distance
from brainmets.cli import main
from brainmets.evaluation.metrics import (
    HD95_MISSING_MM,
    dice_coefficient,
    evaluate_segmentation,
    hausdorff95_mm,
    match_lesions,
    size_bin,
)
from brainmets.evaluation.surface import surfel_area_table
from medpy.metric import binary as medpy_binary
from scipy import ndimage

SHAPE = (40, 32, 32)
ISO = (1.0, 1.0, 1.0)


def box(lo: tuple[int, int, int], hi: tuple[int, int, int], mask: np.ndarray | None = None) -> np.ndarray:
    """Mark the voxels lo..hi (inclusive) in a new or given boolean mask."""
    mask = np.zeros(SHAPE, bool) if mask is None else mask
    mask[tuple(slice(a, b + 1) for a, b in zip(lo, hi, strict=True))] = True
    return mask


def blobs(seed: int, shape: tuple[int, int, int] = SHAPE) -> np.ndarray:
    """Irregular random blobs, several of them touching the array border."""
    rng = np.random.default_rng(seed)
    return ndimage.gaussian_filter(rng.random(shape), 2.0) > 0.52


# --- HD95 against the surface-distance package (what the BraTS-2023 code calls) ------------------


def official_hd95(truth: np.ndarray, pred: np.ndarray, spacing: tuple[float, float, float]) -> float:
    """HD95 (mm) of two non-empty masks by DeepMind's surface-distance package, as the BraTS-2023 code calls it."""
    distances = surface_distance.compute_surface_distances(truth, pred, spacing)
    return float(surface_distance.compute_robust_hausdorff(distances, 95))


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.8, 1.2, 2.5), (3.0, 0.5, 0.5), (0.9375, 0.9375, 1.0)])
def test_surfel_areas_equal_the_surface_distance_table(spacing: tuple[float, float, float]) -> None:
    from surface_distance import lookup_tables

    reference = lookup_tables.create_table_neighbour_code_to_surface_area(spacing)
    assert np.abs(surfel_area_table(spacing) - reference).max() < 1e-12


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.8, 1.2, 2.5), (3.0, 0.5, 0.5)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_voxel_dice_and_hd95_agree_with_the_official_libraries(spacing: tuple[float, float, float], seed: int) -> None:
    truth, pred = blobs(seed), blobs(seed + 100)
    assert truth.any() and pred.any() and truth[0].any()  # non-trivial, reaching the border
    assert abs(dice_coefficient(truth, pred) - medpy_binary.dc(pred, truth)) < 1e-6
    assert abs(hausdorff95_mm(truth, pred, spacing) - official_hd95(truth, pred, spacing)) < 1e-9


@pytest.mark.parametrize("seed", range(6))
def test_every_lesion_hd95_agrees_with_the_surface_distance_package(seed: int) -> None:
    # each detected lesion is scored against the union of the components that hit it, in a crop
    truth, pred = blobs(seed), blobs(seed + 50)
    spacing = (1.0, 1.0, 1.0) if seed % 2 == 0 else (0.7, 1.1, 1.9)
    match = match_lesions(truth, pred, spacing)
    dilated, _ = ndimage.label(
        ndimage.binary_dilation(truth, ndimage.generate_binary_structure(3, 2)), ndimage.generate_binary_structure(3, 3)
    )
    components, _ = ndimage.label(pred, ndimage.generate_binary_structure(3, 3))
    checked = 0
    for row in match.lesions[match.lesions["detected"]].itertuples():
        lesion = truth & (dilated == row.lesion)
        hits = np.isin(components, np.unique(components[(dilated == row.lesion) & pred]))
        assert abs(row.hd95_mm - official_hd95(lesion, hits, spacing)) < 1e-9
        checked += 1
    assert checked >= 3


def test_hd95_of_a_small_lesion_far_from_the_border_agrees_with_the_package() -> None:
    # the distances are computed inside a crop around both masks; a crop must not change them
    truth = box((20, 10, 10), (23, 14, 12))
    pred = box((21, 11, 9), (25, 13, 12))
    spacing = (0.9, 1.1, 3.0)
    assert abs(hausdorff95_mm(truth, pred, spacing) - official_hd95(truth, pred, spacing)) < 1e-9


def test_surface_elements_are_not_medpy_surface_voxels() -> None:
    # the area-weighted surface-element percentile is not MedPy's voxel percentile (5.10 against 5.66 mm here)
    truth, pred = blobs(0), blobs(100)
    ours = hausdorff95_mm(truth, pred, ISO)
    assert ours == pytest.approx(official_hd95(truth, pred, ISO), abs=1e-12)
    assert medpy_binary.hd95(pred, truth, voxelspacing=ISO) - ours > 0.5


# --- BraTS conventions for empty masks ------------------------------------------------------------


def test_both_empty_is_perfect() -> None:
    empty = np.zeros(SHAPE, bool)
    row, _ = evaluate_segmentation(empty, empty, ISO)
    assert (row["dice"], row["hd95_mm"], row["lesion_dice"], row["lesion_hd95_mm"]) == (1.0, 0.0, 1.0, 0.0)
    assert (row["tp_lesions"], row["fp_lesions"], row["fn_lesions"]) == (0, 0, 0)
    assert row["abs_volume_error_ml"] == 0.0 and row["rel_volume_error"] == 0.0
    assert math.isnan(row["lesion_sensitivity"])


def test_prediction_on_empty_truth_scores_zero() -> None:
    pred = box((5, 5, 5), (7, 7, 7))
    row, _ = evaluate_segmentation(np.zeros(SHAPE, bool), pred, ISO)
    assert (row["dice"], row["hd95_mm"]) == (0.0, HD95_MISSING_MM)
    assert (row["lesion_dice"], row["lesion_hd95_mm"]) == (0.0, 374.0)
    assert (row["tp_lesions"], row["fp_lesions"], row["fn_lesions"]) == (0, 1, 0)
    assert math.isnan(row["rel_volume_error"])


def test_empty_prediction_misses_every_lesion() -> None:
    truth = box((5, 5, 5), (7, 7, 7), box((20, 20, 20), (23, 23, 23)))
    row, _ = evaluate_segmentation(truth, np.zeros(SHAPE, bool), ISO)
    assert (row["dice"], row["hd95_mm"]) == (0.0, 374.0)
    assert (row["lesion_dice"], row["lesion_hd95_mm"]) == (0.0, 374.0)
    assert (row["tp_lesions"], row["fp_lesions"], row["fn_lesions"]) == (0, 0, 2)
    assert row["rel_volume_error"] == -1.0 and row["lesion_sensitivity"] == 0.0


# --- lesion-wise cases worked out by hand -----------------------------------------------------------


@pytest.mark.parametrize(("gap", "lesions"), [(1, 1), (2, 1), (3, 2)])
def test_truth_lesions_merge_when_their_dilations_touch(gap: int, lesions: int) -> None:
    # two 4^3 cubes along axis 0; each grows by one voxel, so gaps of 1 and 2 voxels close, 3 does not
    truth = box((10, 10, 10), (13, 13, 13), box((14 + gap, 10, 10), (17 + gap, 13, 13)))
    match = match_lesions(truth, truth, ISO)
    assert len(match.lesions) == lesions
    assert match.lesions["voxels"].sum() == 128


@pytest.mark.parametrize(("gap", "lesions"), [(1, 1), (2, 2)])
def test_dilation_is_18_connected_as_in_brats_mets(gap: int, lesions: int) -> None:
    # cubes offset along the diagonal: 18-connected growth leaves the corners out, so a diagonal gap of 2
    # stays open (a 26-connected dilation would close it)
    far = 14 + gap
    truth = box((10, 10, 10), (13, 13, 13), box((far, far, far), (far + 3, far + 3, far + 3)))
    assert len(match_lesions(truth, truth, ISO).lesions) == lesions


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.0, 1.0, 1.0)])
def test_merged_lesion_half_found(spacing: tuple[float, float, float]) -> None:
    # truth: cubes A = [10..13]^3 and B = A shifted by 6 on axis 0 (gap 2 -> one merged lesion of 128 voxels);
    # prediction: A only. Dice = 2*64/(64+128) = 2/3; HD95 is the package's for the merged lesion against A.
    truth = box((10, 10, 10), (13, 13, 13), box((16, 10, 10), (19, 13, 13)))
    pred = box((10, 10, 10), (13, 13, 13))
    row, match = evaluate_segmentation(truth, pred, spacing)
    assert len(match.lesions) == 1 and match.lesions["hits"].iloc[0] == 1
    assert row["lesion_dice"] == pytest.approx(2 / 3, abs=1e-12)
    assert row["lesion_hd95_mm"] == pytest.approx(official_hd95(truth, pred, spacing), abs=1e-12)
    assert row["lesion_hd95_mm"] > 4 * spacing[0]  # B's far faces are 3-6 voxels from A
    assert (row["tp_lesions"], row["fp_lesions"], row["fn_lesions"]) == (1, 0, 0)


def test_one_prediction_hitting_two_lesions() -> None:
    # truth: A = [10..13]^3, B = [20..23]x[10..13]^2 (gap 6 -> two lesions); prediction: one bar [10..23]x[10..13]^2
    # of 224 voxels covering both. Each lesion is scored against the whole bar: Dice = 2*64/(64+224) = 4/9, and
    # HD95 the package's for the lesion against the bar (the same for A and B by symmetry).
    truth = box((10, 10, 10), (13, 13, 13), box((20, 10, 10), (23, 13, 13)))
    pred = box((10, 10, 10), (23, 13, 13))
    row, match = evaluate_segmentation(truth, pred, ISO)
    assert list(match.lesions["hits"]) == [1, 1]
    assert match.lesions["dice"].to_numpy() == pytest.approx([4 / 9, 4 / 9], abs=1e-12)
    hd95 = official_hd95(box((10, 10, 10), (13, 13, 13)), pred, ISO)
    assert 8.0 < hd95 <= 10.0  # the bar's far end is 10 voxels from A
    assert match.lesions["hd95_mm"].to_numpy() == pytest.approx([hd95, hd95], abs=1e-12)
    assert (row["tp_lesions"], row["fp_lesions"], row["fn_lesions"]) == (2, 0, 0)
    assert row["lesion_dice"] == pytest.approx(4 / 9, abs=1e-12)
    assert row["lesion_hd95_mm"] == pytest.approx(hd95, abs=1e-12)


def test_false_positive_and_missed_lesion() -> None:
    # truth: A = 4^3 cube (found exactly), C = 3^3 cube (missed); prediction: A plus a 2^3 cube far from both.
    # Lesion-wise Dice = (1 + 0) / (2 lesions + 1 FP) = 1/3; HD95 = (0 + 374 + 374) / 3.
    truth = box((5, 5, 5), (8, 8, 8), box((25, 20, 20), (27, 22, 22)))
    pred = box((5, 5, 5), (8, 8, 8), box((30, 5, 25), (31, 6, 26)))
    row, match = evaluate_segmentation(truth, pred, ISO)
    assert (row["tp_lesions"], row["fp_lesions"], row["fn_lesions"]) == (1, 1, 1)
    assert row["lesion_dice"] == pytest.approx(1 / 3, abs=1e-12)
    assert row["lesion_hd95_mm"] == pytest.approx(748 / 3, abs=1e-9)
    assert row["lesion_sensitivity"] == 0.5
    # A = 64 voxels = 0.064 mL (0.05-0.5 bin, found), C = 27 voxels = 0.027 mL (< 0.05 bin, missed)
    assert (row["lesions_lt0.05ml"], row["detected_lt0.05ml"], row["sensitivity_lt0.05ml"]) == (1, 0, 0.0)
    assert (row["lesions_0.05to0.5ml"], row["detected_0.05to0.5ml"], row["sensitivity_0.05to0.5ml"]) == (1, 1, 1.0)
    assert row["lesions_0.5to4ml"] == 0 and math.isnan(row["sensitivity_0.5to4ml"])
    assert match.lesions["size_bin"].tolist() == ["0.05to0.5ml", "lt0.05ml"]


def test_size_bins_follow_the_voxel_spacing() -> None:
    # with 2 mm voxels (8 uL each) the same cubes are 0.512 mL (0.5-4 bin) and 0.216 mL (0.05-0.5 bin)
    truth = box((5, 5, 5), (8, 8, 8), box((25, 20, 20), (27, 22, 22)))
    row, _ = evaluate_segmentation(truth, truth, (2.0, 2.0, 2.0))
    assert (row["lesions_lt0.05ml"], row["lesions_0.05to0.5ml"], row["lesions_0.5to4ml"]) == (0, 1, 1)
    assert row["truth_volume_ml"] == pytest.approx((64 + 27) * 0.008)


def test_size_bin_edges() -> None:
    volumes = np.array([0.0, 0.049, 0.05, 0.499, 0.5, 3.99, 4.0, 40.0])
    assert size_bin(volumes).tolist() == [0, 0, 1, 1, 2, 2, 3, 3]


@pytest.mark.parametrize(
    ("voxels", "spacing", "scored"),
    [
        (1, ISO, False),
        (2, ISO, False),
        (3, ISO, True),
        (2, (1.0, 1.0, 1.01), True),
        (3, (0.8, 0.8, 1.0), False),
    ],
)
def test_lesions_of_at_most_2_mm3_are_not_scored(
    voxels: int, spacing: tuple[float, float, float], scored: bool
) -> None:
    # BraTS-MET threshold: a lesion is left out when voxels * voxel volume <= 2 mm^3; a missed one then is no FN
    truth = box((5, 5, 5), (5, 5, 4 + voxels), box((20, 20, 20), (23, 23, 23)))
    row, match = evaluate_segmentation(truth, box((20, 20, 20), (23, 23, 23)), spacing)
    assert match.lesions["scored"].tolist() == [scored, True]
    assert row["fn_lesions"] == int(scored)
    assert row["lesion_dice"] == pytest.approx(1 / 2 if scored else 1.0)


def test_an_unscored_lesion_and_its_hit_are_no_false_positive() -> None:
    truth = box((5, 5, 5), (5, 5, 5), box((20, 20, 20), (23, 23, 23)))  # 1 voxel + a 4^3 cube
    pred = box((4, 5, 5), (6, 5, 5), box((20, 20, 20), (23, 23, 23)))  # a 3-voxel hit on the single voxel
    row, match = evaluate_segmentation(truth, pred, ISO)
    assert match.lesions["scored"].tolist() == [False, True]
    assert (row["tp_lesions"], row["fp_lesions"], row["fn_lesions"]) == (1, 0, 0)
    assert (row["lesion_dice"], row["lesion_hd95_mm"]) == (1.0, 0.0)
    assert row["lesions_lt0.05ml"] == 0  # the dropped lesion is not counted in any bin


def test_components_are_26_connected() -> None:
    pred = box((5, 5, 5), (6, 6, 6), box((7, 7, 7), (8, 8, 8)))  # two cubes touching at one corner
    row, _ = evaluate_segmentation(np.zeros(SHAPE, bool), pred, ISO)
    assert row["fp_lesions"] == 1


def test_volume_errors_in_ml() -> None:
    truth = box((5, 5, 5), (9, 9, 9))  # 125 voxels
    pred = box((5, 5, 5), (9, 9, 8))  # 100 voxels
    row, _ = evaluate_segmentation(truth, pred, (1.0, 1.0, 2.0))  # 2 uL voxels
    assert row["truth_volume_ml"] == pytest.approx(0.25)
    assert row["pred_volume_ml"] == pytest.approx(0.2)
    assert row["abs_volume_error_ml"] == pytest.approx(0.05)
    assert row["rel_volume_error"] == pytest.approx(-0.2)


# --- the command ----------------------------------------------------------------------------------


def write_mask(path, mask: np.ndarray, affine: np.ndarray) -> str:
    """Save a mask as uint8 NIfTI and return its path as text."""
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), affine), str(path))
    return str(path)


AFFINE = np.array([[0.0, 0.0, 2.0, -30.0], [-1.5, 0.0, 0.0, 20.0], [0.0, 1.0, 0.0, -10.0], [0, 0, 0, 1]])


def test_evaluate_command_writes_one_row_with_spacing_from_the_affine(tmp_path) -> None:
    truth = box((5, 5, 5), (8, 8, 8), box((25, 20, 20), (27, 22, 22)))
    pred = box((5, 5, 5), (8, 8, 8), box((30, 5, 25), (31, 6, 26)))
    t = write_mask(tmp_path / "truth.nii.gz", truth, AFFINE)
    p = write_mask(tmp_path / "pred.nii.gz", pred, AFFINE)
    out, lesions = tmp_path / "out" / "metrics.tsv", tmp_path / "out" / "lesions.tsv"
    argv = ["evaluate", "--truth", t, "--pred", p, "--out", str(out), "--lesions", str(lesions)]
    assert main([*argv, "--patient", "P01", "--timepoint", "2024-03-01"]) == 0
    table = pd.read_csv(out, sep="\t")
    assert len(table) == 1
    row = table.iloc[0]
    assert (row["patient_id"], row["timepoint"]) == ("P01", "2024-03-01")
    # spacing (1.5, 1.0, 2.0) mm from the affine's columns: voxel = 3 uL
    assert row["truth_volume_ml"] == pytest.approx(91 * 0.003)
    assert (row["tp_lesions"], row["fp_lesions"], row["fn_lesions"]) == (1, 1, 1)
    assert row["lesion_dice"] == pytest.approx(1 / 3)
    assert len(pd.read_csv(lesions, sep="\t")) == 2


def test_evaluate_reads_label_maps_as_lesion_masks(tmp_path) -> None:
    # ground truth stored as lesion ids (1, 2, 7) scores exactly like its binary version
    truth = box((5, 5, 5), (8, 8, 8), box((25, 20, 20), (27, 22, 22)))
    ids = np.zeros(SHAPE, np.uint8)
    ids[5:9, 5:9, 5:9] = 7
    ids[25:28, 20:23, 20:23] = 2
    ids[5, 5, 5] = 1
    pred = write_mask(tmp_path / "pred.nii.gz", box((5, 5, 5), (8, 8, 8)), AFFINE)
    rows = []
    for name, mask in (("binary.nii.gz", truth), ("ids.nii.gz", ids)):
        out = tmp_path / f"{name}.tsv"
        truth_path = write_mask(tmp_path / name, mask, AFFINE)
        assert main(["evaluate", "--truth", truth_path, "--pred", pred, "--out", str(out)]) == 0
        rows.append(pd.read_csv(out, sep="\t").drop(columns=["truth"]).iloc[0])
    pd.testing.assert_series_equal(rows[0], rows[1], check_names=False)
    assert (rows[1]["tp_lesions"], rows[1]["fn_lesions"]) == (1, 1)


def test_evaluate_refuses_masks_on_different_grids(tmp_path, capsys) -> None:
    mask = box((5, 5, 5), (8, 8, 8))
    t = write_mask(tmp_path / "truth.nii.gz", mask, AFFINE)
    moved = AFFINE.copy()
    moved[0, 3] += 2.0
    p = write_mask(tmp_path / "pred.nii.gz", mask, moved)
    small = write_mask(tmp_path / "small.nii.gz", mask[:30], AFFINE)
    out = tmp_path / "metrics.tsv"
    for pred in (p, small):
        assert main(["evaluate", "--truth", t, "--pred", pred, "--out", str(out)]) == 2
        message = capsys.readouterr().err.strip()
        assert len(message.splitlines()) == 1 and pred in message and "same grid" in message
    assert not out.exists()


def test_evaluate_refuses_unreadable_and_non_binary_masks(tmp_path, capsys) -> None:
    mask = box((5, 5, 5), (8, 8, 8))
    t = write_mask(tmp_path / "truth.nii.gz", mask, AFFINE)
    probabilities = tmp_path / "prob.nii.gz"
    nib.save(nib.Nifti1Image(mask * np.float32(0.7), AFFINE), str(probabilities))
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"not an image")
    out = tmp_path / "metrics.tsv"
    cases = ((probabilities, "found 0.7"), (broken, "not a readable NIfTI"), (tmp_path / "no.nii.gz", "not found"))
    for pred, problem in cases:
        assert main(["evaluate", "--truth", t, "--pred", str(pred), "--out", str(out)]) == 2
        message = capsys.readouterr().err.strip()
        assert len(message.splitlines()) == 1 and str(pred) in message and problem in message
    assert not out.exists()


def test_definition_option(tmp_path, capsys) -> None:
    # a 4^3 lesion found exactly plus a far 2^3 false positive: brats2023 penalises the FP in the lesion-wise
    # Dice (1/2), brats2025 only in its detection counts (its large-lesion Dice list holds 1 and the FP's 0)
    truth = box((5, 5, 5), (8, 8, 8))
    pred = box((5, 5, 5), (8, 8, 8), box((30, 20, 20), (31, 21, 21)))
    t = write_mask(tmp_path / "truth.nii.gz", truth, np.eye(4))
    p = write_mask(tmp_path / "pred.nii.gz", pred, np.eye(4))
    rows = {}
    for definition in ("brats2023", "brats2025"):
        out, lesions = tmp_path / f"{definition}.tsv", tmp_path / f"{definition}_lesions.tsv"
        argv = ["evaluate", "--truth", t, "--pred", p, "--out", str(out), "--lesions", str(lesions)]
        assert main([*argv, "--definition", definition]) == 0
        rows[definition] = pd.read_csv(out, sep="\t").iloc[0]
        assert len(pd.read_csv(lesions, sep="\t")) == 1
    assert rows["brats2023"]["lesion_dice"] == pytest.approx(0.5)
    assert rows["brats2025"]["lesionwise_dsc_mean"] == pytest.approx(0.5)
    assert (rows["brats2025"]["all_instance_tp"], rows["brats2025"]["all_instance_fp"]) == (1, 1)
    assert "lesion_dice" not in rows["brats2025"] and "global_dsc" not in rows["brats2023"]
    out = tmp_path / "x.tsv"
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--truth", t, "--pred", p, "--out", str(out), "--definition", "brats2024"])
    assert exit_info.value.code == 2
    assert "--definition" in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize("fill", [0.0, 0.001, 0.02, 0.3])
def test_lesion_dilation_on_the_bounding_box_equals_the_whole_grid(fill):
    """The lesion-merging dilation, computed on the lesions' box, is scipy's dilation of the whole grid."""
    from brainmets.evaluation.metrics import _DILATION, _dilate_once
    from scipy import ndimage

    rng = np.random.default_rng(7)
    for shape in ((30, 31, 32), (4, 5, 6), (1, 6, 6)):
        mask = rng.random(shape) < fill
        if fill == 0.001:  # lesions on the grid's corners, where the box meets the border
            mask[0, 0, 0] = mask[-1, -1, -1] = True
        np.testing.assert_array_equal(_dilate_once(mask), ndimage.binary_dilation(mask, structure=_DILATION))
