"""The demo cohort: realistic scans whose truth (label maps, poses, lesion table, responses) is self-consistent."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import yaml
from brainmets.cli import main
from brainmets.demo import cohort
from brainmets.demo.settings import DemoSettings
from brainmets.samplesheet import load_samples
from scipy import ndimage

from conftest import TINY_COHORT

#: the overall response each scenario is designed to produce at visits 0, 1, 2, 3 (rano-bm.md)
INTENDED = {
    "partial-response": ["BL", "PR", "PR", "PR"],
    "progression-new-lesion": ["BL", "PD", "", ""],  # not assessed after progression (rano.after_progression: stop)
    "split": ["BL", "PR", "PR", "PR"],
    "vanish-and-return": ["BL", "PR", "PD", ""],
    "merge": ["BL", "PD", "", ""],
    "complete-response": ["BL", "CR", "CR", "CR"],
    "stable": ["BL", "SD", "SD", "SD"],
    "progression-growth": ["BL", "PD", "", ""],
}
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def every_scenario(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One patient per scenario, four visits each, at double voxel size (the harsher rasterisation)."""
    out = tmp_path_factory.mktemp("every_scenario")
    cohort.generate_cohort(out, DemoSettings(patients=8, timepoints=4, train=0, seed=3, scale=2.0))
    return out


def _truth(root: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(root / "truth" / f"{name}.tsv", sep="\t")


def _patient_of(root: Path, scenario: str) -> str:
    table = _truth(root, "scenarios")
    return str(table.loc[table["scenario"] == scenario, "patient_id"].iloc[0])


def _voxel_ml(img: nib.Nifti1Image) -> float:
    return abs(float(np.linalg.det(img.affine[:3, :3]))) / 1000.0


def _pose(row: pd.Series) -> np.ndarray:
    return np.array([float(v) for v in row["common_to_scanner"].split()]).reshape(4, 4)


def _centroid_mm(mask: np.ndarray, affine: np.ndarray) -> np.ndarray:
    return affine[:3, :3] @ np.argwhere(mask).mean(axis=0) + affine[:3, 3]


@pytest.mark.slow
def test_every_scenario_gives_its_intended_overall_response(every_scenario: Path) -> None:
    response = _truth(every_scenario, "expected_response")
    scenarios = _truth(every_scenario, "scenarios")
    assert sorted(scenarios["scenario"]) == sorted(INTENDED)
    for patient, scenario in zip(scenarios["patient_id"], scenarios["scenario"], strict=True):
        rows = response[response["patient_id"] == patient].sort_values("timepoint")
        got = rows["overall_response"].fillna("").tolist()
        assert got == INTENDED[scenario], (patient, scenario)


@pytest.mark.slow
def test_new_lesion_is_progression_at_the_visit_it_appears(every_scenario: Path) -> None:
    patient = _patient_of(every_scenario, "progression-new-lesion")
    lesions = _truth(every_scenario, "lesions")
    response = _truth(every_scenario, "expected_response").set_index(["patient_id", "timepoint"])
    new = lesions[(lesions["patient_id"] == patient) & (lesions["event"] == "new")]
    assert len(new) == 1
    assert new["longest_diameter_mm"].iloc[0] >= 5.0
    assert response.loc[(patient, new["timepoint"].iloc[0]), "overall_response"] == "PD"


@pytest.mark.slow
def test_events_follow_the_scenarios(every_scenario: Path) -> None:
    lesions = _truth(every_scenario, "lesions")

    def rows(scenario: str) -> pd.DataFrame:
        table = lesions[lesions["patient_id"] == _patient_of(every_scenario, scenario)]
        table = table.assign(visit=table["timepoint"].rank(method="dense").astype(int) - 1)
        return table[table["lesion_id"] == 1] if scenario != "merge" else table

    split = rows("split")
    assert (split[split["visit"] == 0]["component"] > 0).sum() == 1
    for visit in (1, 2, 3):
        assert set(split[split["visit"] == visit]["event"]) == {"split"}
        assert (split["visit"] == visit).sum() == 2
    merge = rows("merge")
    merged = merge[(merge["lesion_id"] == 2) & (merge["visit"] > 0)]
    assert set(merged["event"]) == {"merged"} and set(merged["merged_into"]) == {1}
    assert (merged["component"] == 0).all() and (merged["volume_ml"] == 0).all()
    vanish = rows("vanish-and-return").sort_values("visit")
    assert vanish["event"].tolist() == ["baseline", "resolved", "reappeared", "present"]
    complete = lesions[lesions["patient_id"] == _patient_of(every_scenario, "complete-response")]
    followups = complete[complete["timepoint"] != complete["timepoint"].min()]
    assert set(followups["event"]) == {"resolved"} and (followups["longest_diameter_mm"] == 0).all()


@pytest.mark.slow
def test_sum_of_diameters_keeps_wide_margins_from_the_thresholds(every_scenario: Path) -> None:
    # independent of the RANO implementation: sum of the baseline's 5 largest measurable LDs per visit
    lesions = _truth(every_scenario, "lesions")
    expected_ratio = {"partial-response": (0.35, 0.62), "stable": (0.9, 1.1), "progression-growth": (1.35, 2.0)}
    for scenario, (low, high) in expected_ratio.items():
        table = lesions[lesions["patient_id"] == _patient_of(every_scenario, scenario)]
        per_lesion = table.groupby(["timepoint", "lesion_id"])["longest_diameter_mm"].sum().unstack(fill_value=0.0)
        baseline = table[table["timepoint"] == table["timepoint"].min()]
        measurable = baseline[(baseline["longest_diameter_mm"] >= 10) & (baseline["perpendicular_diameter_mm"] >= 5)]
        targets = measurable.nlargest(5, "longest_diameter_mm")["lesion_id"]
        assert len(targets) >= 1, scenario
        sld = per_lesion[targets.tolist()].sum(axis=1)
        ratios = (sld.iloc[1:] / sld.iloc[0]).to_numpy()
        assert ((ratios >= low) & (ratios <= high)).all(), (scenario, ratios)


@pytest.mark.slow
def test_merged_lesion_carries_the_lower_id_in_every_label_map(every_scenario: Path) -> None:
    patient = _patient_of(every_scenario, "merge")
    for scan in sorted((every_scenario / patient).iterdir())[1:]:
        native = np.asarray(nib.load(scan / "lesions.nii.gz").dataobj)
        common = np.asarray(nib.load(every_scenario / "truth" / patient / f"{scan.name}_lesions.nii.gz").dataobj)
        for labels in (native, common):
            assert (labels == 1).any() and not (labels == 2).any()


def test_written_sheet_lists_exactly_the_scans_written(tiny_cohort: Path) -> None:
    """Each row names a scan the generator wrote (folder = patient/date, mask beside it), each scan is listed once."""
    sheet = pd.read_csv(tiny_cohort / "samples.tsv", sep="\t", dtype=str, keep_default_na=False)
    written = sorted(p.parent.relative_to(tiny_cohort).as_posix() for p in tiny_cohort.glob("*/*/t1ce.nii.gz"))
    assert sorted(f"{row.patient_id}/{row.timepoint}" for row in sheet.itertuples()) == written
    for row in sheet.itertuples():
        folder = tiny_cohort / row.patient_id / row.timepoint
        assert Path(row.image) == folder / "t1ce.nii.gz" and Path(row.mask) == folder / "lesions.nii.gz"
        assert nib.load(row.image).shape == nib.load(row.mask).shape
        assert row.training == ("true" if row.patient_id.startswith("train") else "false")
    poses = _truth(tiny_cohort, "poses")
    assert sorted(f"{p}/{t}" for p, t in zip(poses["patient_id"], poses["timepoint"], strict=True)) == written


def test_committed_sheet_is_the_default_demo_cohorts() -> None:
    demo = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["demo"]
    fresh = cohort.sample_sheet(demo["out"], demo["patients"], demo["timepoints"], demo["train"], demo["seed"])
    assert (REPO / "config" / "samples.tsv").read_text() == fresh.to_csv(sep="\t", index=False)
    assert all(path.startswith(f"{demo['out']}/") for path in fresh["image"])


def test_sheet_is_valid_and_lists_every_scan(tiny_cohort: Path) -> None:
    samples = load_samples(tiny_cohort / "samples.tsv")
    assert len(samples) == TINY_COHORT["patients"] * TINY_COHORT["timepoints"] + TINY_COHORT["train"]
    assert samples["training"].sum() == TINY_COHORT["train"]
    assert samples.loc["patient01", "baseline"].tolist() == [True, False, False]
    assert samples["mask"].notna().all()
    assert samples["clinical_status"].notna().sum() == TINY_COHORT["timepoints"]  # patient02 only


def test_common_grid_volumes_equal_the_truth_table(tiny_cohort: Path) -> None:
    lesions = _truth(tiny_cohort, "lesions")
    volumes = lesions.groupby(["patient_id", "timepoint", "lesion_id"])["volume_ml"].sum()
    checked = 0
    for (patient, timepoint), group in volumes.groupby(level=[0, 1]):
        img = nib.load(tiny_cohort / "truth" / patient / f"{timepoint}_lesions.nii.gz")
        labels = np.asarray(img.dataobj)
        for (_, _, lesion_id), volume in group.items():
            assert (labels == lesion_id).sum() * _voxel_ml(img) == pytest.approx(volume, rel=0.05, abs=1e-9)
            checked += 1
    assert checked > 10


def test_scan_label_map_volumes_match_the_truth_table(tiny_cohort: Path) -> None:
    lesions = _truth(tiny_cohort, "lesions")
    volumes = lesions.groupby(["patient_id", "timepoint", "lesion_id"])["volume_ml"].sum()
    errors = []
    for (patient, timepoint, lesion_id), volume in volumes.items():
        img = nib.load(tiny_cohort / patient / timepoint / "lesions.nii.gz")
        native = (np.asarray(img.dataobj) == lesion_id).sum() * _voxel_ml(img)
        if volume >= 2.0:  # large enough for scans with up to 6 mm slices to sample it finely
            errors.append(abs(native - volume) / volume)
        elif volume == 0:
            assert native == 0
    assert len(errors) >= 4
    assert max(errors) <= 0.05, errors


def test_scan_affine_places_brain_and_lesions_where_the_pose_says(tiny_cohort: Path) -> None:
    poses = _truth(tiny_cohort, "poses")
    lesions = _truth(tiny_cohort, "lesions")
    for _, row in poses.iterrows():
        pose = _pose(row)
        common = nib.load(tiny_cohort / "truth" / row["patient_id"] / "brain_mask.nii.gz")
        scan = nib.load(tiny_cohort / row["patient_id"] / row["timepoint"] / "brain_mask.nii.gz")
        expected = pose[:3, :3] @ _centroid_mm(np.asarray(common.dataobj) > 0, common.affine) + pose[:3, 3]
        assert np.linalg.norm(_centroid_mm(np.asarray(scan.dataobj) > 0, scan.affine) - expected) < 1.0
        labels_img = nib.load(tiny_cohort / row["patient_id"] / row["timepoint"] / "lesions.nii.gz")
        labels = np.asarray(labels_img.dataobj)
        visit = lesions[(lesions["patient_id"] == row["patient_id"]) & (lesions["timepoint"] == row["timepoint"])]
        for _, lesion in visit[visit["volume_ml"] >= 1.0].iterrows():
            truth_mm = lesion[["centroid_x_mm", "centroid_y_mm", "centroid_z_mm"]].to_numpy(float)
            found = _centroid_mm(labels == lesion["lesion_id"], labels_img.affine)
            assert np.linalg.norm(found - (pose[:3, :3] @ truth_mm + pose[:3, 3])) < 1.5


def test_scans_look_like_oblique_t1ce_heads(tiny_cohort: Path) -> None:
    protocols = {(1.0, 1.0, 1.0), (0.9, 0.9, 1.5), (0.5, 0.5, 3.0)}
    scale = TINY_COHORT["scale"]
    for image_path in sorted(tiny_cohort.glob("*/*/t1ce.nii.gz")):
        img = nib.load(image_path)
        data = np.asarray(img.dataobj).astype(float)
        spacing = tuple(np.round(np.sqrt((img.affine[:3, :3] ** 2).sum(axis=0)) / scale, 3))
        assert spacing in protocols
        directions = img.affine[:3, :3] / np.sqrt((img.affine[:3, :3] ** 2).sum(axis=0))
        assert np.sort(np.abs(directions), axis=0)[:2].max() > 0.01  # oblique, not axis-aligned
        brain = np.asarray(nib.load(image_path.parent / "brain_mask.nii.gz").dataobj) > 0
        lesion = np.asarray(nib.load(image_path.parent / "lesions.nii.gz").dataobj) > 0
        brain_level = np.median(data[brain & ~lesion])
        head = ndimage.binary_closing(data > 0.3 * brain_level, iterations=2)
        assert (head & ~brain).sum() > 0.3 * brain.sum()  # skull and scalp for skull stripping to remove
        if lesion.sum() > 20:
            assert np.percentile(data[lesion], 90) > 1.15 * brain_level  # contrast enhancement
        air = data[~ndimage.binary_dilation(head, iterations=3)]
        assert air.mean() > 0 and air.std() > 0  # Rician noise floor


@pytest.mark.slow
def test_lesions_are_inside_the_brain_and_apart_at_baseline(tiny_cohort: Path, every_scenario: Path) -> None:
    for root in (tiny_cohort, every_scenario):
        for brain_path in sorted((root / "truth").glob("*/brain_mask.nii.gz")):
            brain = np.asarray(nib.load(brain_path).dataobj) > 0
            maps = sorted(brain_path.parent.glob("*_lesions.nii.gz"))
            baseline = np.asarray(nib.load(maps[0]).dataobj)
            ids = np.unique(baseline[baseline > 0])
            assert 1 <= len(ids) <= 8
            _, n_components = ndimage.label(baseline > 0, structure=np.ones((3, 3, 3)))
            assert n_components == len(ids)  # no two lesions touch
            for path in maps:
                assert brain[np.asarray(nib.load(path).dataobj) > 0].all()
    lesions = _truth(every_scenario, "lesions")
    baseline = lesions[lesions["event"] == "baseline"]
    assert baseline["longest_diameter_mm"].max() <= 34.0  # 30 mm nominal plus one 2 mm voxel


def test_a_subject_is_the_same_for_the_same_seed(tmp_path: Path) -> None:
    subject = cohort.subjects(0, 1, 1)[0]
    outputs = []
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        result = cohort.generate_subject(subject, tmp_path / name, tmp_path / name, seed, 3.0)
        image = np.asarray(nib.load(next((tmp_path / name).glob("train01/*/t1ce.nii.gz"))).dataobj)
        outputs.append((image, result["lesions"]))
    assert np.array_equal(outputs[0][0], outputs[1][0])
    pd.testing.assert_frame_equal(outputs[0][1], outputs[1][1])
    assert outputs[0][0].shape != outputs[2][0].shape or not np.array_equal(outputs[0][0], outputs[2][0])


def test_cli_rejects_bad_settings_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo-cohort", "--out", str(tmp_path / "x"), "--timepoints", "1"]) == 2
    message = capsys.readouterr().err.strip()
    assert message == "brainmets demo-cohort: error: demo-cohort: demo.timepoints: 1 is less than the minimum of 2"
    assert not (tmp_path / "x").exists()
