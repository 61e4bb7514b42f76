"""Reviewing a patient: decisions read and applied to tracking, RANO-BM with them, flags, and the page's content."""

from __future__ import annotations

import base64
import gzip
import json
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from brainmets.cli import main
from brainmets.review.flags import flag_lesions
from brainmets.review.page import mean_entropy_by_lesion
from brainmets.review.settings import ReviewSettings

from review_patient import AFFINE, LESION_ENTROPY, VISITS, lesion_centroid_mm, track_and_assess, write_patient


@pytest.fixture
def patient(tmp_path: Path) -> Path:
    """The generated patient P1, tracked and assessed without a review."""
    folder = write_patient(tmp_path / "P1")
    track_and_assess(folder)
    return folder


def response(folder: Path) -> pd.DataFrame:
    """The patient's response table, categories as text."""
    return pd.read_csv(folder / "rano_response.tsv", sep="\t", keep_default_na=False)


def write_review(folder: Path, rows: list[str]) -> Path:
    """A review.tsv with the given data rows under the four columns."""
    path = folder / "review.tsv"
    path.write_text("lesion_id\ttimepoint\tdecision\tinto\n" + "".join(r + "\n" for r in rows))
    return path


def test_without_review_the_new_lesion_makes_the_second_visit_progression(patient: Path) -> None:
    """The generated patient as RANO-BM sees it: two targets, lesion 3 new at visit 2 (LD >= 5 mm) -> PD."""
    table = response(patient)
    assert table["target_ids"].tolist()[0] == "1;2"
    assert table["overall_response"].tolist()[:2] == ["BL", "PD"]
    assert table["review"].tolist() == ["", "", ""]


def test_rejecting_a_false_positive_changes_the_response_and_says_so(patient: Path) -> None:
    """Lesion 3 rejected at every visit: no new lesion, -15 % at visit 2 (SD), -17 % at visit 3 (SD)."""
    track_and_assess(patient, review=write_review(patient, ["3\t\treject\t"]))
    table = response(patient)
    assert table["overall_response"].tolist() == ["BL", "SD", "SD"]
    assert table["new_lesions"].tolist() == [0, 0, 0]
    assert table["review"].tolist() == ["", "lesion 3: rejected", "lesion 3: rejected"]
    lesions = pd.read_csv(patient / "lesions.tsv", sep="\t", keep_default_na=False)
    marked = lesions[lesions["review"] != ""]
    assert marked[["lesion_id", "review"]].drop_duplicates().values.tolist() == [[3, "rejected"]]
    # the rejected lesion keeps its voxels and id in the label maps: the page still shows it, in grey
    assert np.asarray(nib.load(patient / "tracked" / f"{VISITS[1]}.nii.gz").dataobj).max() == 3


def test_accepting_changes_nothing_but_the_mark(patient: Path) -> None:
    """Accepting lesion 3 at visit 2 keeps the PD and marks that row."""
    track_and_assess(patient, review=write_review(patient, [f"3\t{VISITS[1]}\taccept\t"]))
    table = response(patient)
    assert table["overall_response"].tolist()[:2] == ["BL", "PD"]
    assert table["review"].tolist() == ["", "lesion 3: accepted", ""]


def test_merging_two_ids_makes_one_lesion(patient: Path) -> None:
    """Lesion 3 merged into lesion 1: one id at every visit, no new lesion, lesion 1's LD the sum of both parts."""
    before = response(patient)
    track_and_assess(patient, review=write_review(patient, ["3\t\tmerge\t1"]))
    lesions = pd.read_csv(patient / "lesions.tsv", sep="\t", keep_default_na=False)
    assert sorted(lesions["lesion_id"].unique()) == [1, 2]
    assert set(lesions.loc[lesions["review"] != "", "review"]) == {"merged 3 into 1"}
    label_map = np.asarray(nib.load(patient / "tracked" / f"{VISITS[1]}.nii.gz").dataobj)
    assert sorted(np.unique(label_map)) == [0, 1, 2]
    after = response(patient)
    assert after["new_lesions"].tolist() == [0, 0, 0]
    ld3 = lesions[(lesions["timepoint"] == VISITS[1]) & (lesions["review"] != "")]["longest_diameter_mm"].sum()
    assert after["sum_ld_mm"][1] == pytest.approx(before["sum_ld_mm"][1] + ld3)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (["9\t\treject\t"], r"review.tsv: row 2, column lesion_id: lesion 9 is not in this patient's lesion table"),
        (["3\t2024-02-30\treject\t"], r"review.tsv: row 2: timepoint '2024-02-30' is not a visit of this patient"),
        ([f"3\t{VISITS[0]}\treject\t"], r"review.tsv: row 2: lesion 3 is not present at 2024-01-10"),
        (["1\t\tdelete\t"], r"review.tsv: row 2: decision 'delete' is not one of reject, accept, merge"),
        (["1\t\tmerge\t7"], r"review.tsv: row 2, column into: lesion 7 is not in this patient's lesion table"),
        (["x\t\treject\t"], r"review.tsv: row 2, column lesion_id: 'x' is not a lesion id"),
        (["3\t\treject\t", "3\t\taccept\t"], r"review.tsv: lesion 3 is both rejected and accepted at 2024-03-12"),
    ],
)
def test_a_bad_review_ends_in_one_line_naming_the_file(
    patient: Path, capsys: pytest.CaptureFixture[str], rows: list[str], message: str
) -> None:
    """Unknown lesions or visits, bad decisions: exit 2, one line, and the earlier tables stay as they were."""
    earlier = (patient / "lesions.tsv").read_bytes()
    review = write_review(patient, rows)
    command = ["track", str(patient / "segmentations.tsv"), "--out", str(patient), "--review", str(review)]
    assert main(command) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert re.search(message, error), error
    assert (patient / "lesions.tsv").read_bytes() == earlier


def test_flags_name_the_uncertain_new_and_deciding_lesions(patient: Path) -> None:
    """Lesion 3 at visit 2: uncertain, new and deciding the response; the targets at baseline: none of these."""
    from brainmets.review.page import load_visits

    visits, _ = load_visits(patient, VISITS)
    entropy = mean_entropy_by_lesion(visits)
    assert entropy[(VISITS[1], 3)] == pytest.approx(LESION_ENTROPY[3], abs=1e-6)
    lesions = pd.read_csv(patient / "lesions.tsv", sep="\t")
    flags = flag_lesions(lesions, entropy, settings=ReviewSettings(uncertainty_flag_bits=0.5))
    row = flags[(flags["timepoint"] == VISITS[1]) & (flags["lesion_id"] == 3)].iloc[0]
    assert row["flags"].split(";") == ["uncertain", "new", "decides response"]
    assert row["role"] == "new"
    assert "2024-03-12 PD -> SD" in row["reasons"]
    baseline = flags[flags["timepoint"] == VISITS[0]]
    assert baseline["role"].tolist() == ["target", "target"]
    assert not any("uncertain" in f or "new" in f for f in baseline["flags"])
    assert np.allclose(row[["centroid_x_mm", "centroid_y_mm", "centroid_z_mm"]].to_numpy(float), lesion_centroid_mm(3))


def test_a_lesion_near_the_measurability_threshold_is_flagged() -> None:
    """LD 10.4 mm with a 1 mm margin: near the 10 mm threshold; 12 mm: not."""
    rows = []
    for lesion, ld in ((1, 10.4), (2, 12.0)):
        rows.append({"timepoint": "2024-01-01", "lesion_id": lesion, "component": lesion, "event": "baseline",
                     "merged_into": None, "volume_ml": 0.5, "longest_diameter_mm": ld, "perpendicular_diameter_mm": 8.0,
                     "n_axial_slices": 4, "centroid_x_mm": 0.0, "centroid_y_mm": 0.0, "centroid_z_mm": float(lesion),
                     "review": ""})  # fmt: skip
    flags = flag_lesions(pd.DataFrame(rows), {}, settings=ReviewSettings(measurability_margin_mm=1.0))
    assert flags["flags"].tolist() == ["near threshold", ""]
    assert "LD 10.4 mm within 1 mm of the 10 mm measurability threshold" in flags["reasons"][0]


@pytest.fixture
def stub_niivue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in NiiVue package (a marker instead of the bundle), named by BRAINMETS_NIIVUE."""
    package = tmp_path / "niivue"
    (package / "dist").mkdir(parents=True)
    (package / "dist" / "niivue.umd.js").write_text("/* NIIVUE-STUB */")
    (package / "package.json").write_text(json.dumps({"version": "0.69.0"}))
    monkeypatch.setenv("BRAINMETS_NIIVUE", str(package))
    return package


def embedded_volumes(page: str) -> list[dict]:
    """The visits embedded in a review page."""
    data = re.search(r'<script type="application/json" id="review-data">(.*?)</script>', page, re.S)
    assert data
    return json.loads(data.group(1))["visits"]


def decode(text: str) -> nib.Nifti1Image:
    """An embedded base64 gzipped NIfTI as an image."""
    return nib.Nifti1Image.from_bytes(gzip.decompress(base64.b64decode(text)))


def test_the_page_embeds_everything_and_fetches_nothing(patient: Path, stub_niivue: Path) -> None:
    """The viewer inline, each visit's volumes embedded on one cropped grid at the same world positions, no URL."""
    assert main(["review-page", str(patient), "--out", str(patient / "review.html")]) == 0
    page = (patient / "review.html").read_text()
    assert "/* NIIVUE-STUB */" in page and "BSD 2-Clause License" in page
    assert re.findall(r"(?:src|href)=\"(?!#)", page) == []
    assert set(re.findall(r"https?://[^\s\"'<>]+", page)) == {"http://www.w3.org/2000/svg"}
    visits = embedded_volumes(page)
    assert [v["timepoint"] for v in visits] == VISITS
    for visit in visits:
        labels, t1, entropy = decode(visit["labels"]), decode(visit["t1"]), decode(visit["entropy"])
        assert labels.shape == t1.shape == entropy.shape and labels.shape < (48, 56, 44)
        assert t1.get_data_dtype() == np.uint8 and entropy.get_data_dtype() == np.uint8
        ids = np.asarray(labels.dataobj)
        for lesion in np.unique(ids[ids > 0]):
            centre = nib.affines.apply_affine(labels.affine, np.argwhere(ids == lesion).mean(axis=0))
            assert np.allclose(centre, lesion_centroid_mm(int(lesion)), atol=0.01)
        if (ids == 3).any():  # entropy in bits, in steps of 1/255
            assert np.asarray(entropy.dataobj)[ids == 3].mean() == pytest.approx(LESION_ENTROPY[3], abs=1 / 255)
    assert np.allclose(decode(visits[0]["t1"]).affine[:3, :3], AFFINE[:3, :3])


def test_a_missing_viewer_ends_in_one_line_naming_make_env(
    patient: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without the installed NiiVue bundle: exit 2, one line that says to run `make env`, no page."""
    monkeypatch.setenv("BRAINMETS_NIIVUE", str(tmp_path / "nowhere"))
    assert main(["review-page", str(patient), "--out", str(patient / "review.html")]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "run `make env`" in error and "niivue.umd.js" in error
    assert not (patient / "review.html").exists()


def test_merges_follow_chains_to_their_end_and_join_a_cycle_at_its_lowest_id() -> None:
    """5 -> 3 -> 1 makes 5 and 3 into 1; 2 <-> 4 both become 2."""
    from brainmets.track.corrections import merge_map

    decisions = pd.DataFrame(
        {"lesion_id": [5, 3, 2, 4], "timepoint": [""] * 4, "decision": ["merge"] * 4, "into": [3, 1, 4, 2]}
    )
    assert merge_map(decisions) == {5: 1, 3: 1, 4: 2}
