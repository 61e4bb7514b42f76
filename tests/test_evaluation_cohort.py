"""Cohort evaluation: summary statistics, pooled sensitivity by size, the command, and score ordering on
perturbed ground truth."""

from __future__ import annotations

import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from brainmets.cli import main
from brainmets.evaluation.cohort import SUMMARY_COLUMNS, summarise_cohort
from brainmets.evaluation.metrics import SIZE_BIN_LABELS, evaluate_segmentation
from brainmets.io import load_mask, read_tsv, voxel_spacing_mm, write_tsv
from scipy import ndimage


def scan_row(**values: float) -> dict[str, float]:
    """A per-scan metrics row: zeros/NaN everywhere except the given values."""
    row: dict[str, float] = {
        "patient_id": "P",
        "timepoint": "2024-01-01",
        "truth": "t.nii.gz",
        "pred": "p.nii.gz",
        "dice": 1.0,
        "hd95_mm": 0.0,
        "truth_volume_ml": 1.0,
        "pred_volume_ml": 1.0,
        "abs_volume_error_ml": 0.0,
        "rel_volume_error": 0.0,
        "tp_lesions": 0,
        "fp_lesions": 0,
        "fn_lesions": 0,
        "lesion_sensitivity": math.nan,
        "lesion_dice": 1.0,
        "lesion_hd95_mm": 0.0,
    }
    for label in SIZE_BIN_LABELS:
        row.update({f"lesions_{label}": 0, f"detected_{label}": 0, f"sensitivity_{label}": math.nan})
    row.update(values)
    return row


def wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval of k successes in n trials, from its textbook formula."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


@pytest.fixture()
def four_scans() -> pd.DataFrame:
    """Four scans whose pooled and averaged sensitivities differ."""
    small, medium = "lesions_lt0.05ml", "lesions_0.05to0.5ml"
    return pd.DataFrame(
        [
            scan_row(dice=0.2, fp_lesions=2, tp_lesions=0, fn_lesions=1, **{small: 1, "sensitivity_lt0.05ml": 0.0}),
            scan_row(dice=0.4, tp_lesions=3, **{small: 3, "detected_lt0.05ml": 3, "sensitivity_lt0.05ml": 1.0}),
            scan_row(
                dice=0.9,
                fp_lesions=1,
                tp_lesions=1,
                **{medium: 1, "detected_0.05to0.5ml": 1, "sensitivity_0.05to0.5ml": 1.0},
            ),
            scan_row(dice=1.0, fp_lesions=1),
        ]
    )


def test_summary_statistics_over_scans(four_scans: pd.DataFrame) -> None:
    summary = summarise_cohort(four_scans, "brats2023").set_index("metric")
    dice = summary.loc["dice"]
    # dice 0.2, 0.4, 0.9, 1.0: quartiles by linear interpolation at positions 0.75, 1.5, 2.25
    assert dice["n_scans"] == 4
    assert dice["mean"] == pytest.approx(0.625)
    assert dice["median"] == pytest.approx(0.65)
    assert (dice["q1"], dice["q3"]) == (pytest.approx(0.35), pytest.approx(0.925))
    assert dice["iqr"] == pytest.approx(0.575)
    fps = summary.loc["false_positives_per_scan"]
    assert (fps["mean"], fps["median"], fps["pooled"]) == (1.0, 1.0, 1.0)


def test_sensitivity_per_bin_is_pooled_over_lesions(four_scans: pd.DataFrame) -> None:
    summary = summarise_cohort(four_scans, "brats2023").set_index("metric")
    small = summary.loc["sensitivity_lt0.05ml"]
    # 3 of 4 small lesions found: pooled 0.75, while the mean of the per-scan values (0 and 1) is 0.5
    assert small["pooled"] == pytest.approx(0.75) and small["mean"] == pytest.approx(0.5)
    assert small["n_lesions"] == 4 and small["n_scans"] == 2
    assert (small["ci95_low"], small["ci95_high"]) == pytest.approx(wilson(3, 4), abs=1e-9)
    assert summary.loc["sensitivity_0.05to0.5ml", "pooled"] == 1.0
    large = summary.loc["sensitivity_ge4ml"]
    assert large["n_lesions"] == 0 and pd.isna(large["pooled"])
    overall = summary.loc["lesion_sensitivity"]
    assert overall["pooled"] == pytest.approx(4 / 5) and overall["n_lesions"] == 5
    assert list(summarise_cohort(four_scans, "brats2023").columns) == SUMMARY_COLUMNS


def test_evaluate_cohort_command_writes_table_summary_and_figure(tmp_path, four_scans: pd.DataFrame) -> None:
    inputs = []
    for i in range(len(four_scans)):
        inputs.append(str(write_tsv(four_scans.iloc[[i]], tmp_path / f"scan{i}.tsv")))
    out, summary, figure = (tmp_path / "cohort" / name for name in ("metrics.tsv", "summary.tsv", "sensitivity.png"))
    argv = ["evaluate-cohort", *inputs, "--out", str(out), "--summary", str(summary), "--figure", str(figure)]
    assert main(argv) == 0
    assert pd.read_csv(out, sep="\t")["dice"].tolist() == [0.2, 0.4, 0.9, 1.0]
    written = pd.read_csv(summary, sep="\t").set_index("metric")
    assert written.loc["sensitivity_lt0.05ml", "pooled"] == pytest.approx(0.75)
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_cohort_names_the_bad_cell(tmp_path, capsys) -> None:
    table = pd.DataFrame([scan_row(), scan_row(dice="high")])
    bad = write_tsv(table, tmp_path / "bad.tsv")
    incomplete = write_tsv(table.drop(columns=["hd95_mm"]), tmp_path / "incomplete.tsv")
    summary = tmp_path / "summary.tsv"
    for path, problem in ((bad, "row 3, column dice"), (incomplete, "hd95_mm")):
        argv = ["evaluate-cohort", str(path), "--out", str(tmp_path / "m.tsv"), "--summary", str(summary)]
        assert main(argv) == 2
        message = capsys.readouterr().err.strip()
        assert len(message.splitlines()) == 1 and str(path) in message and problem in message
    assert not summary.exists()


# --- ordering of scores on perturbed ground truth ------------------------------------------------


@pytest.fixture(scope="module")
def metastases() -> tuple[np.ndarray, tuple[float, float, float]]:
    """A 64^3 truth mask with four spherical metastases of radius 1.5-8 voxels and its spacing (mm)."""
    grid = np.indices((64, 64, 64))
    truth = np.zeros((64, 64, 64), bool)
    for centre, radius in (((16, 16, 16), 1.5), ((16, 44, 40), 3.0), ((44, 18, 42), 5.0), ((42, 44, 20), 8.0)):
        truth |= sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True)) <= radius**2
    return truth, (1.0, 1.0, 1.2)


def perturb(truth: np.ndarray, kind: str, amount: int) -> np.ndarray:
    """The truth eroded, dilated or shifted along axis 0 by `amount` voxels."""
    if kind == "erode":
        return ndimage.binary_erosion(truth, iterations=amount)
    if kind == "dilate":
        return ndimage.binary_dilation(truth, iterations=amount)
    return np.roll(truth, amount, axis=0)


def test_truth_against_itself_is_perfect(metastases) -> None:
    truth, spacing = metastases
    row, _ = evaluate_segmentation(truth, truth, spacing)
    assert (row["dice"], row["hd95_mm"], row["lesion_dice"], row["lesion_hd95_mm"]) == (1.0, 0.0, 1.0, 0.0)
    assert (row["tp_lesions"], row["fp_lesions"], row["fn_lesions"]) == (4, 0, 0)
    assert row["abs_volume_error_ml"] == 0.0 and row["lesion_sensitivity"] == 1.0


@pytest.mark.parametrize("kind", ["erode", "dilate", "shift"])
def test_stronger_perturbation_scores_worse(metastases, kind: str) -> None:
    truth, spacing = metastases
    mild, strong = (evaluate_segmentation(truth, perturb(truth, kind, k), spacing)[0] for k in (1, 2))
    assert 1.0 > mild["dice"] > strong["dice"]
    assert 0.0 < mild["hd95_mm"] < strong["hd95_mm"]
    assert 1.0 > mild["lesion_dice"] > strong["lesion_dice"]
    assert 0.0 < mild["lesion_hd95_mm"] <= strong["lesion_hd95_mm"]
    if kind == "erode":
        assert strong["rel_volume_error"] < mild["rel_volume_error"] < 0
        # the 19-voxel metastasis keeps its centre voxel after one erosion and vanishes after two
        assert (mild["fn_lesions"], strong["fn_lesions"]) == (0, 1)
        assert strong["sensitivity_lt0.05ml"] == 0.0
    elif kind == "dilate":
        assert strong["rel_volume_error"] > mild["rel_volume_error"] > 0
        assert strong["fn_lesions"] == 0 and strong["fp_lesions"] == 0


# --- the demo cohort --------------------------------------------------------------------------------


def demo_masks(cohort: Path) -> pd.DataFrame:
    """The demo sample sheet's rows that name a ground-truth mask."""
    sheet = read_tsv(cohort / "samples.tsv", required=["patient_id", "timepoint", "mask"])
    return sheet[sheet["mask"].notna()].reset_index(drop=True)


def test_demo_truth_against_itself_is_perfect(tiny_cohort: Path, tmp_path: Path) -> None:
    tables = []
    for scan in demo_masks(tiny_cohort).itertuples():
        out = tmp_path / f"{scan.patient_id}_{scan.timepoint}.tsv"
        argv = ["evaluate", "--truth", scan.mask, "--pred", scan.mask, "--out", str(out)]
        assert main([*argv, "--patient", scan.patient_id, "--timepoint", scan.timepoint]) == 0
        tables.append(str(out))
    assert len(tables) >= 6
    summary_path = tmp_path / "summary.tsv"
    argv = ["evaluate-cohort", *tables, "--out", str(tmp_path / "scans.tsv"), "--summary", str(summary_path)]
    assert main(argv) == 0
    summary = pd.read_csv(summary_path, sep="\t").set_index("metric")
    for metric, perfect in (("dice", 1.0), ("hd95_mm", 0.0), ("lesion_dice", 1.0), ("lesion_hd95_mm", 0.0)):
        assert (summary.loc[metric, "n_scans"], summary.loc[metric, "mean"]) == (len(tables), perfect)
    assert summary.loc["false_positives_per_scan", "pooled"] == 0.0
    assert summary.loc["abs_volume_error_ml", "mean"] == 0.0
    assert summary.loc["lesion_sensitivity", "pooled"] == 1.0 and summary.loc["lesion_sensitivity", "n_lesions"] > 5
    bins = summary.loc[[f"sensitivity_{label}" for label in SIZE_BIN_LABELS]]
    assert (bins.loc[bins["n_lesions"] > 0, "pooled"] == 1.0).all()


@pytest.mark.parametrize("kind", ["erode", "dilate", "shift"])
def test_demo_scores_order_with_perturbation_strength(tiny_cohort: Path, kind: str) -> None:
    for scan in demo_masks(tiny_cohort).itertuples():
        if not scan.patient_id.startswith("patient"):
            continue
        truth, img = load_mask(scan.mask, labels=True)
        spacing = tuple(float(s) for s in voxel_spacing_mm(img.affine))
        mild, strong = (evaluate_segmentation(truth, perturb(truth, kind, k), spacing)[0] for k in (1, 2))
        where = f"{scan.patient_id} {scan.timepoint}"
        assert 1.0 > mild["dice"] > strong["dice"], where
        assert 1.0 > mild["lesion_dice"] > strong["lesion_dice"], where
        assert 0.0 < mild["hd95_mm"] < strong["hd95_mm"], where
        assert 0.0 < mild["lesion_hd95_mm"] < strong["lesion_hd95_mm"], where
        assert mild["fp_lesions"] == strong["fp_lesions"] == 0, where


def test_cohort_table_keeps_patient_ids_as_written(tmp_path) -> None:
    """Ids such as 007 stay text in the cohort table instead of becoming the number 7."""
    scan = write_tsv(pd.DataFrame([scan_row(patient_id="007")]), tmp_path / "scan.tsv")
    out = tmp_path / "cohort.tsv"
    assert main(["evaluate-cohort", str(scan), "--out", str(out), "--summary", str(tmp_path / "summary.tsv")]) == 0
    assert pd.read_csv(out, sep="\t", dtype=str)["patient_id"].tolist() == ["007"]


def test_brats2025_cohort_pools_large_and_small_lesion_recall(tiny_cohort: Path, tmp_path: Path, capsys) -> None:
    tables = []
    for scan in demo_masks(tiny_cohort).itertuples():
        truth, img = load_mask(scan.mask, labels=True)
        eroded = tmp_path / f"{scan.patient_id}_{scan.timepoint}_pred.nii.gz"
        nib.save(nib.Nifti1Image(perturb(truth, "erode", 1).astype(np.uint8), img.affine), str(eroded))
        out = tmp_path / f"{scan.patient_id}_{scan.timepoint}.tsv"
        argv = ["evaluate", "--truth", scan.mask, "--pred", str(eroded), "--out", str(out), "--definition", "brats2025"]
        assert main(argv) == 0
        tables.append(str(out))
    scans = pd.concat([pd.read_csv(t, sep="\t") for t in tables])
    summary_path, figure = tmp_path / "summary.tsv", tmp_path / "recall.png"
    argv = [
        "evaluate-cohort",
        *tables,
        "--out",
        str(tmp_path / "scans.tsv"),
        "--summary",
        str(summary_path),
        "--figure",
        str(figure),
        "--definition",
        "brats2025",
    ]
    assert main(argv) == 0
    summary = pd.read_csv(summary_path, sep="\t").set_index("metric")
    assert "lesionwise_nsd_mean" in summary.index and "lesion_dice" not in summary.index
    for prefix in ("large_instance", "small_instance"):
        tp, fn = int(scans[f"{prefix}_tp"].sum()), int(scans[f"{prefix}_fn"].sum())
        assert summary.loc[f"{prefix}_rec", "n_lesions"] == tp + fn
        assert summary.loc[f"{prefix}_rec", "pooled"] == pytest.approx(tp / (tp + fn))
    assert summary.loc["lesionwise_dsc_mean", "mean"] == pytest.approx(scans["lesionwise_dsc_mean"].mean())
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # tables of the other definition are refused with the missing column named
    assert main([*argv[:-1], "brats2023"]) == 2
    assert "lesion_dice" in capsys.readouterr().err
