"""brats2025 against the official BraTS-evaluation package, run from its own environment on the same files.

The package (panoptica) pins numpy < 2.3, so it lives in `.venv-scorers` (`make scorers`, from
`requirements-scorers.lock`); these tests run its two console scripts as the challenge does and compare
every number with `brainmets evaluate --definition brats2025`.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from brainmets.evaluation.brats2025 import COLUMNS, evaluate_brats2025
from brainmets.evaluation.scan import evaluate_files
from brainmets.evaluation.settings import EvaluationSettings
from scipy import ndimage

SCORERS = Path(__file__).resolve().parents[1] / ".venv-scorers" / "bin"
SHAPE = (48, 40, 36)
ENHANCING = 3  # the label of the enhancing-tumour group the package scores


def box(lo: tuple[int, int, int], hi: tuple[int, int, int], mask: np.ndarray | None = None) -> np.ndarray:
    """Mark the voxels lo..hi (inclusive) in a new or given boolean mask."""
    mask = np.zeros(SHAPE, bool) if mask is None else mask
    mask[tuple(slice(a, b + 1) for a, b in zip(lo, hi, strict=True))] = True
    return mask


def blobs(seed: int, level: float) -> np.ndarray:
    """Irregular random blobs of many sizes (a lower level gives larger, fewer blobs)."""
    rng = np.random.default_rng(seed)
    return ndimage.gaussian_filter(rng.random(SHAPE), 1.6) > level


def shifted(mask: np.ndarray, seed: int) -> np.ndarray:
    """A prediction-like copy: shifted by a voxel, some blobs grown, some dropped, some noise added."""
    rng = np.random.default_rng(seed)
    pred = np.roll(mask, int(rng.integers(-1, 2)), axis=int(rng.integers(0, 3)))
    labels, n = ndimage.label(pred, np.ones((3, 3, 3)))
    keep = np.isin(labels, np.flatnonzero(rng.random(n) < 0.8) + 1)
    grown = ndimage.binary_dilation(keep & np.isin(labels, np.flatnonzero(rng.random(n) < 0.3) + 1))
    return keep | grown | blobs(seed + 1000, 0.62)


EMPTY = np.zeros(SHAPE, bool)
CUBE = box((10, 10, 10), (15, 15, 15))  # 216 voxels: large
CASES: dict[str, tuple[np.ndarray, np.ndarray]] = {
    "both_empty": (EMPTY, EMPTY),
    "empty_prediction": (CUBE, EMPTY),
    "empty_truth": (EMPTY, CUBE),
    "no_overlap": (CUBE, box((30, 25, 25), (33, 28, 28))),
    # one lesion split into two predicted components: one is matched, the other is a false positive
    "split_lesion": (CUBE, box((10, 10, 10), (15, 15, 11), box((10, 10, 13), (15, 15, 15)))),
    # one component over two lesions: matched to the one it overlaps most, the other lesion is missed
    "merged_lesions": (
        box((10, 10, 10), (13, 13, 13), box((16, 10, 10), (17, 13, 13))),
        box((10, 10, 10), (17, 13, 13)),
    ),
    # a small lesion (8 voxels < 20 mm^3) matched with Dice 0.06 < 0.1: small false negative, plus a large hit
    "small_lesion_barely_hit": (
        box((30, 30, 30), (31, 31, 31), CUBE.copy()),
        box((31, 31, 31), (36, 36, 36), CUBE.copy()),
    ),
}
for _seed in range(8):
    _truth = blobs(_seed, 0.55 if _seed % 2 else 0.56)
    CASES[f"random_{_seed}"] = (_truth, shifted(_truth, _seed))


def write_label_map(path: Path, mask: np.ndarray, zooms: tuple[float, float, float]) -> None:
    """Save a mask as the enhancing-tumour label of a uint8 NIfTI with the given voxel size (mm)."""
    nib.save(nib.Nifti1Image(mask.astype(np.uint8) * ENHANCING, np.diag([*zooms, 1.0])), str(path))


def official_scores(
    cases: dict[str, tuple[np.ndarray, np.ndarray]], folder: Path, zooms: tuple[float, float, float] = (1.0, 1.0, 1.0)
) -> dict[str, pd.Series]:
    """Run `brats-evaluate --config mets` and `brats-parse-metrics mets` on the cases; one row per case."""
    if not (SCORERS / "brats-evaluate").is_file():
        pytest.fail(f"the official BraTS-2025 scorer is missing from {SCORERS.parent}: build it with `make scorers`")
    ref, pred = folder / "ref", folder / "pred"
    ref.mkdir(), pred.mkdir()
    names = {}
    for number, (name, (truth, prediction)) in enumerate(cases.items(), start=1):
        write_label_map(ref / f"BraTS-MET-{number:05d}-000-seg.nii.gz", truth, zooms)
        write_label_map(pred / f"BraTS-MET-{number:05d}-000.nii.gz", prediction, zooms)
        names[f"BraTS-MET-{number:05d}-000-seg.nii.gz"] = name
    summary, table = folder / "summary.json", folder / "metrics.csv"
    run = {"check": True, "capture_output": True, "cwd": folder}
    subprocess.run(
        [
            SCORERS / "brats-evaluate",
            "--ref_path",
            ref,
            "--pred_path",
            pred,
            "--config",
            "mets",
            "--summary_json",
            summary,
        ],
        **run,
    )
    subprocess.run([SCORERS / "brats-parse-metrics", "mets", "--json_path", summary, "--output_csv_path", table], **run)
    rows = pd.read_csv(table).set_index("subject_id")
    return {
        name: rows.loc[subject, [f"{c}_et" for c in COLUMNS]].set_axis(COLUMNS).astype(float)
        for subject, name in names.items()
    }


@pytest.fixture(scope="module")
def official(tmp_path_factory) -> dict[str, pd.Series]:
    """The official package's scores of every case on a 1 mm grid."""
    return official_scores(CASES, tmp_path_factory.mktemp("official"))


def assert_equal_scores(ours: dict[str, float], theirs: pd.Series, columns: list[str] = COLUMNS) -> None:
    """Every number equal to 1e-4, NaN where the official one is NaN."""
    for column in columns:
        expected, got = float(theirs[column]), float(ours[column])
        if math.isnan(expected):
            assert math.isnan(got), f"{column}: {got}, official NaN"
        else:
            assert got == pytest.approx(expected, abs=1e-4), f"{column}: {got}, official {expected}"


@pytest.mark.parametrize("case", list(CASES))
def test_brats2025_equals_the_official_package(case: str, official: dict[str, pd.Series], tmp_path) -> None:
    truth, pred = CASES[case]
    write_label_map(tmp_path / "truth.nii.gz", truth, (1.0, 1.0, 1.0))
    write_label_map(tmp_path / "pred.nii.gz", pred, (1.0, 1.0, 1.0))
    ours, lesions = evaluate_files(tmp_path / "truth.nii.gz", tmp_path / "pred.nii.gz", EvaluationSettings("brats2025"))
    assert_equal_scores(ours, official[case])
    assert len(lesions) == ndimage.label(truth, np.ones((3, 3, 3)))[1]


def test_the_cases_cover_the_rules(official: dict[str, pd.Series]) -> None:
    # the hand-built cases reach what they were built for, by the official package's own numbers
    assert official["both_empty"][["all_instance_tp", "all_instance_fp", "all_instance_fn"]].tolist() == [0, 0, 0]
    assert official["both_empty"].drop(["all_instance_tp", "all_instance_fp", "all_instance_fn"]).isna().all()
    assert official["no_overlap"]["global_hd95"] == 373
    assert official["split_lesion"][["all_instance_tp", "all_instance_fp"]].tolist() == [1, 1]
    assert official["merged_lesions"][["all_instance_tp", "all_instance_fn"]].tolist() == [1, 1]
    assert official["small_lesion_barely_hit"][["small_instance_tp", "small_instance_fn"]].tolist() == [0, 1]
    random = pd.DataFrame([official[f"random_{seed}"] for seed in range(8)])
    assert (random["all_instance_tp"] >= 3).all() and (random["small_instance_fn"] >= 1).all()
    assert (random["large_instance_tp"] >= 2).all() and random["lesionwise_hd95_mean"].between(1, 372).all()


@pytest.mark.slow
def test_the_official_command_line_reverses_anisotropic_spacing(tmp_path) -> None:
    # on a 1 x 1 x 2.5 mm grid the package measures lesion distances as if the spacing were 2.5 x 1 x 1 mm and
    # global ones in voxels; brainmets keeps mm on the right axes, so only the reversed call reproduces it
    cases = {name: CASES[name] for name in ("random_0", "random_1")}
    official = official_scores(cases, tmp_path, zooms=(1.0, 1.0, 2.5))
    lesionwise = [c for c in COLUMNS if not c.startswith("global_")]
    for name, (truth, pred) in cases.items():
        reversed_axes, _ = evaluate_brats2025(truth, pred, (2.5, 1.0, 1.0))
        in_voxels, _ = evaluate_brats2025(truth, pred, (1.0, 1.0, 1.0))
        assert_equal_scores(reversed_axes, official[name], lesionwise)
        assert_equal_scores(in_voxels, official[name], ["global_dsc", "global_nsd", "global_hd95"])
        right, _ = evaluate_brats2025(truth, pred, (1.0, 1.0, 2.5))
        assert abs(right["lesionwise_hd95_mean"] - reversed_axes["lesionwise_hd95_mean"]) > 0.01


def test_a_missing_scorer_environment_fails_and_says_how_to_build_it(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "SCORERS", tmp_path / "nowhere" / "bin")
    with pytest.raises(pytest.fail.Exception, match="make scorers"):
        official_scores({"both_empty": CASES["both_empty"]}, tmp_path)
