"""End to end on the demo cohort's truth: measure + track + rano reproduce the expected response.

The demo's truth table (truth/lesions.tsv) is brainmets' own measurement of the truth masks, so the tests
that compare with it check that tracking and measuring agree with each other; the measurements themselves
are checked against the generator's designed lesion shapes in `test_diameters_match_the_generators_lesion_shapes`.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from brainmets.cli import main
from brainmets.io import save_nifti

from conftest import TINY_COHORT

#: columns compared exactly (strings) and approximately (numbers); target_ids are compared through the id map
EXACT = [
    "patient_id",
    "timepoint",
    "days_from_baseline",
    "n_lesions",
    "target_response",
    "nontarget_response",
    "new_lesions",
    "overall_response",
    "confirmed",
    "progression_date",
    "assessment",
]
NUMBERS = ["total_volume_ml", "sum_ld_mm", "nadir_mm", "change_from_baseline_pct", "change_from_nadir_pct"]


def read(path: Path) -> pd.DataFrame:
    """A TSV with "NA" kept as the response category it is, empty cells as missing."""
    return pd.read_csv(path, sep="\t", keep_default_na=False, na_values=[""])


@pytest.fixture(scope="module")
def tracked_truth(tiny_cohort: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Binarised truth label maps of every patient run through `brainmets track` and `brainmets rano`."""
    out = tmp_path_factory.mktemp("longitudinal")
    expected = read(tiny_cohort / "truth" / "expected_response.tsv")
    samples = pd.read_csv(tiny_cohort / "samples.tsv", sep="\t", dtype=str)
    patients = sorted(expected["patient_id"].unique())
    for patient in patients:
        dates = sorted(samples.loc[samples["patient_id"] == patient, "timepoint"])
        for date in dates:
            truth = nib.load(tiny_cohort / "truth" / patient / f"{date}_lesions.nii.gz")
            save_nifti(np.asarray(truth.dataobj) > 0, truth.affine, out / "masks" / patient / f"{date}.nii.gz")
        manifest = pd.DataFrame({"timepoint": dates, "mask": [f"masks/{patient}/{d}.nii.gz" for d in dates]})
        manifest.to_csv(out / f"{patient}.tsv", sep="\t", index=False)
        assert main(["track", str(out / f"{patient}.tsv"), "--out", str(out / patient), "--patient", patient]) == 0
    lesion_tables = [str(out / p / "lesions.tsv") for p in patients]
    code = main(
        [
            "rano",
            *lesion_tables,
            "--clinical",
            str(tiny_cohort / "samples.tsv"),
            "--out",
            str(out / "response.tsv"),
            "--best-out",
            str(out / "best.tsv"),
        ]
    )
    assert code == 0
    return {"out": out, "patients": patients, "expected": expected, "cohort": tiny_cohort}


def id_map(cohort: Path, out: Path, patient: str) -> dict[int, int]:
    """Tracked lesion id -> truth lesion id, by the majority of voxels where the tracked lesion first appears."""
    mapping: dict[int, int] = {}
    for tracked_path in sorted((out / patient / "tracked").iterdir()):
        date = tracked_path.name.removesuffix(".nii.gz")
        tracked = np.asarray(nib.load(tracked_path).dataobj)
        truth = np.asarray(nib.load(cohort / "truth" / patient / f"{date}_lesions.nii.gz").dataobj).astype(int)
        for lesion_id in np.unique(tracked[tracked > 0]):
            if int(lesion_id) not in mapping:
                mapping[int(lesion_id)] = int(np.bincount(truth[tracked == lesion_id]).argmax())
    return mapping


def test_truth_masks_reproduce_the_expected_response(tracked_truth):
    out, expected = tracked_truth["out"], tracked_truth["expected"]
    response = read(out / "response.tsv")
    assert len(response) == len(expected)
    pd.testing.assert_frame_equal(response[EXACT], expected[EXACT], check_dtype=False)
    for column in NUMBERS:
        assert response[column].to_numpy(dtype=float) == pytest.approx(
            expected[column].to_numpy(dtype=float), abs=1e-6, nan_ok=True
        ), column
    for patient in tracked_truth["patients"]:
        mapping = id_map(tracked_truth["cohort"], out, patient)
        ours = response.loc[response["patient_id"] == patient, "target_ids"].astype(str)
        theirs = expected.loc[expected["patient_id"] == patient, "target_ids"].astype(str)
        translated = [sorted(mapping[int(i)] for i in ids.split(";") if i) for ids in ours]
        assert translated == [sorted(int(i) for i in ids.split(";") if i) for ids in theirs]


def test_tracked_events_match_the_truth_lesion_table(tracked_truth):
    out, cohort = tracked_truth["out"], tracked_truth["cohort"]
    truth = pd.read_csv(cohort / "truth" / "lesions.tsv", sep="\t")
    for patient in tracked_truth["patients"]:
        mapping = id_map(cohort, out, patient)
        ours = pd.read_csv(out / patient / "lesions.tsv", sep="\t")
        ours["lesion_id"] = ours["lesion_id"].map(mapping)
        keys = ["timepoint", "lesion_id", "event"]
        mine = ours.groupby(keys)["longest_diameter_mm"].sum()
        theirs = truth[truth["patient_id"] == patient].groupby(keys)["longest_diameter_mm"].sum()
        assert mine.index.tolist() == theirs.index.tolist()
        assert mine.to_numpy() == pytest.approx(theirs.to_numpy())


def designed_lesions(patient: str) -> tuple[list, np.ndarray, list[str]]:
    """The lesions the generator designed for a tiny-cohort patient (its own random stream), common affine, dates."""
    from brainmets.demo import cohort, head, scenarios
    from brainmets.demo.settings import DemoSettings

    settings = DemoSettings(**TINY_COHORT)
    subject = next(s for s in cohort.subjects(settings.patients, settings.timepoints, 0) if s.subject_id == patient)
    rng = np.random.default_rng([settings.seed, 0, subject.number])  # as cohort.generate_subject draws it
    anatomy = head.warp_head(head.template_head(settings.scale), rng)
    designed = scenarios.design_lesions(
        subject.scenario, subject.n_timepoints, anatomy, rng, min_diameter_mm=3.0 * settings.scale
    )
    return designed, anatomy.affine, cohort.subject_dates(subject, settings.seed)


def continuous_longest_axial_diameter(lesion, timepoint: int, slice_z_mm: np.ndarray, step_mm: float = 0.2) -> float:
    """Largest in-plane Feret diameter (mm) of the generator's analytic lesion shape on the given axial planes.

    The shape (`Lesion.rho` <= 1) is sampled every `step_mm` in each plane, not on the scan's voxels, and
    measured with a convex hull written here, independently of brainmets.rano.measure.
    """
    from scipy.spatial import ConvexHull
    from scipy.spatial.distance import pdist

    if not lesion.present(timepoint):
        return 0.0
    reach, centre = lesion.extent_mm(timepoint), lesion.centre_mm
    x, y = np.meshgrid(*(np.arange(c - reach, c + reach + step_mm, step_mm) for c in centre[:2]), indexing="ij")
    longest = 0.0
    for z in slice_z_mm[np.abs(slice_z_mm - centre[2]) <= reach]:
        points = np.stack([x.ravel(), y.ravel(), np.full(x.size, z)], axis=1)
        inside = points[lesion.rho(points, timepoint) <= 1.0][:, :2]
        if len(inside) >= 3:
            longest = max(longest, float(pdist(inside[ConvexHull(inside).vertices]).max()))
    return longest


def test_diameters_match_the_generators_lesion_shapes(tracked_truth):
    """Measured LDs (brainmets on the truth masks, and the demo's truth table) against the designed lesions.

    The generator draws each lesion from a nominal diameter d (2 x blob radius x the visit's size factor)
    with axis ratios up to 1.15 and a border irregularity of 18 %, so d alone fixes the LD only to
    [0.71 d, 1.36 d]; the exact LD of the designed shape is computed here from its analytic form. On the
    2 mm common grid the measured outline runs through the pixel-edge midpoints between lesion and
    background voxel centres, each within half a voxel of the true border along a grid axis, so a
    diameter may differ by at most the in-plane voxel diagonal (2.83 mm).
    """
    from brainmets.demo.lesions import IRREGULARITY, MAX_AXIS_RATIO, rasterise

    out, cohort = tracked_truth["out"], tracked_truth["cohort"]
    truth = pd.read_csv(cohort / "truth" / "lesions.tsv", sep="\t")
    compared = 0
    for patient in tracked_truth["patients"]:
        designed, affine, dates = designed_lesions(patient)
        assert np.allclose(affine[:3, :3], np.diag(np.diag(affine[:3, :3])))  # axial planes are world z planes
        spacing = np.abs(np.diag(affine)[:3])
        tolerance = float(np.hypot(spacing[0], spacing[1]))
        mapping = id_map(cohort, out, patient)
        ours = pd.read_csv(out / patient / "lesions.tsv", sep="\t")
        ours["lesion_id"] = ours["lesion_id"].map(mapping)
        ours = ours.groupby(["timepoint", "lesion_id"])["longest_diameter_mm"].max()
        theirs = truth[truth["patient_id"] == patient].groupby(["timepoint", "lesion_id"])["longest_diameter_mm"].max()
        first = nib.load(cohort / "truth" / patient / f"{dates[0]}_lesions.nii.gz")
        assert np.allclose(first.affine, affine)
        slice_z = affine[2, 2] * np.arange(first.shape[2]) + affine[2, 3]
        for t, date in enumerate(dates):
            # the reconstructed design is this patient's: rasterised, it gives the truth map of the visit
            truth_map = np.asarray(nib.load(cohort / "truth" / patient / f"{date}_lesions.nii.gz").dataobj)
            assert np.array_equal(rasterise(designed, t, affine, first.shape) > 0, truth_map > 0), (patient, date)
            for lesion in designed:
                nominal = 2 * lesion.blobs[0].radius_mm * lesion.factors[0, t]
                exact = continuous_longest_axial_diameter(lesion, t, slice_z)
                measured = float(ours.get((date, lesion.lesion_id), 0.0))
                assert abs(measured - exact) <= tolerance, (patient, date, lesion.lesion_id, measured, exact)
                assert abs(float(theirs.get((date, lesion.lesion_id), 0.0)) - exact) <= tolerance
                assert exact <= nominal * MAX_AXIS_RATIO * (1 + IRREGULARITY) + 1e-6
                if nominal >= 10:
                    assert measured >= nominal / MAX_AXIS_RATIO * (1 - IRREGULARITY) - tolerance
                compared += exact > 0
    assert compared >= 20


def test_measure_command_matches_the_truth_measurements(tracked_truth, tmp_path):
    truth = pd.read_csv(tracked_truth["cohort"] / "truth" / "lesions.tsv", sep="\t")
    for patient in tracked_truth["patients"]:
        mask = sorted((tracked_truth["out"] / "masks" / patient).iterdir())[0]
        assert main(["measure", str(mask), "--out", str(tmp_path / f"{patient}.tsv")]) == 0
        order = ["longest_diameter_mm", "volume_ml", "perpendicular_diameter_mm"]
        ours = pd.read_csv(tmp_path / f"{patient}.tsv", sep="\t").round(9).sort_values(order)
        date = mask.name.removesuffix(".nii.gz")
        theirs = truth[(truth["patient_id"] == patient) & (truth["timepoint"] == date)]
        theirs = theirs.round(9).sort_values(order)
        for column in ("longest_diameter_mm", "perpendicular_diameter_mm", "volume_ml", "n_axial_slices"):
            assert ours[column].to_numpy(dtype=float) == pytest.approx(theirs[column].to_numpy(dtype=float)), column
        assert ours["measurable"].tolist() == theirs["measurable"].tolist()


def test_responses_are_the_scenarios_intended_ones_and_best_response_follows(tracked_truth):
    response = read(tracked_truth["out"] / "response.tsv")
    scenarios = pd.read_csv(tracked_truth["cohort"] / "truth" / "scenarios.tsv", sep="\t")
    for scenario in scenarios.itertuples():
        seen = response.loc[response["patient_id"] == scenario.patient_id, "overall_response"].fillna("").tolist()
        assert seen == scenario.intended_response.split(","), scenario.scenario
    best = read(tracked_truth["out"] / "best.tsv").set_index("patient_id")
    # partial response (PR at both follow-ups, 76 days apart: confirmed); progression at the first follow-up
    expected = {"partial-response": "PR", "progression-new-lesion": "PD"}
    for scenario in scenarios.itertuples():
        assert best.loc[scenario.patient_id, "best_overall_response"] == expected[scenario.scenario]


def test_rano_command_draws_the_pictures(tracked_truth, tmp_path):
    out = tracked_truth["out"]
    lesions = [str(out / p / "lesions.tsv") for p in tracked_truth["patients"]]
    code = main(
        [
            "rano",
            *lesions,
            "--out",
            str(tmp_path / "r.tsv"),
            "--trajectory",
            str(tmp_path / "{patient}_trajectory.png"),
            "--timeline",
            str(tmp_path / "{patient}_timeline.png"),
        ]
    )
    assert code == 0
    import matplotlib.image

    scenarios = pd.read_csv(tracked_truth["cohort"] / "truth" / "scenarios.tsv", sep="\t")
    scenario = dict(zip(scenarios["patient_id"], scenarios["scenario"], strict=True))
    for patient in tracked_truth["patients"]:
        for kind in ("trajectory", "timeline"):
            picture = tmp_path / f"{patient}_{kind}.png"
            assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            pixels = matplotlib.image.imread(picture)[..., :3] * 255
            assert pixels.shape[0] > 200 and pixels.shape[1] > 400
            assert pixels.std() > 10  # something is drawn
            # the new-lesion colour (#d62728: the timeline's "new" event, the trajectory's new-lesion marker and
            # progression line) is drawn for the patient with a new lesion only
            red = (np.abs(pixels - [214, 39, 40]) < 15).all(axis=-1).sum()
            if scenario[patient] == "progression-new-lesion":
                assert red > 30, (patient, kind, red)
            else:
                assert red == 0, (patient, kind, red)


def test_pictures_for_several_patients_need_a_patient_placeholder(tracked_truth, tmp_path, capsys):
    lesions = [str(tracked_truth["out"] / p / "lesions.tsv") for p in tracked_truth["patients"]]
    code = main(["rano", *lesions, "--out", str(tmp_path / "r.tsv"), "--trajectory", str(tmp_path / "t.png")])
    assert code == 2
    assert "{patient}" in capsys.readouterr().err
    assert not (tmp_path / "r.tsv").exists()


def test_trajectory_of_a_patient_without_targets_shows_the_lesion_volume(tmp_path):
    from brainmets.rano.pictures import plot_trajectory
    from brainmets.rano.rano import assess

    lesions = pd.DataFrame(
        {
            "patient_id": "P9",
            "timepoint": ["2024-01-01", "2024-02-01"],
            "lesion_id": 1,
            "component": 1,
            "event": ["baseline", "present"],
            "merged_into": None,
            "volume_ml": [0.2, 0.3],
            "longest_diameter_mm": [6.0, 7.0],
            "perpendicular_diameter_mm": [5.0, 6.0],
            "n_axial_slices": 3,
        }
    )
    response = assess(lesions)
    assert response["target_response"].tolist() == ["NA", "NA"]
    plot_trajectory(lesions, response, tmp_path / "trajectory.png")
    assert (tmp_path / "trajectory.png").read_bytes()[:4] == b"\x89PNG"
