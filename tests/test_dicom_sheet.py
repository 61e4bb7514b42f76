"""`brainmets dicom-sheet`: each study's post-contrast T1 picked from headers, every series with its verdict."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pydicom
import pytest
from brainmets.cli import main
from brainmets.dicom.series import read_series
from brainmets.dicom.series_writer import write_mr_series
from brainmets.samplesheet import load_samples

PATIENT = dict(patient_id="P 01", patient_name="P01", study_instance_uid="1.2.826.0.1.3680043.8.498.30")
MPRAGE = dict(scanning_sequence="GR\\IR", repetition_time_ms=2000.0, echo_time_ms=2.5, inversion_time_ms=900.0)
FLAIR = dict(scanning_sequence="SE\\IR", repetition_time_ms=9000.0, echo_time_ms=90.0, inversion_time_ms=2500.0)
SPIN_ECHO = dict(scanning_sequence="SE", repetition_time_ms=550.0, echo_time_ms=9.0, inversion_time_ms=None)


def write(
    root: Path,
    number: int,
    description: str,
    *,
    date: str = "20240115",
    slices: int = 12,
    thickness: float = 1.0,
    agent: str | None = None,
    time: str = "090000",
    sequence: dict[str, object] = MPRAGE,
    **more: object,
) -> str:
    """Write a small series into root/<date>/<number>/ ; returns its SeriesInstanceUID."""
    data = np.full((6, 6, slices), 100, np.int16)
    image = nib.Nifti1Image(data, np.diag([1.0, 1.0, thickness, 1.0]))
    header = {**PATIENT, "study_instance_uid": f"{PATIENT['study_instance_uid']}.{date}", "study_date": date}
    folder = root / date / str(number)
    write_mr_series(
        image,
        folder,
        series_number=number,
        series_description=description,
        contrast_agent=agent,
        frame_of_reference_uid="1.2.826.0.1.3680043.8.498.31",
        series_time=time,
        **sequence,  # type: ignore[arg-type]
        **header,  # type: ignore[arg-type]
        **more,  # type: ignore[arg-type]
    )
    return read_series(folder)[0].uid


def sheet_of(root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Run `dicom-sheet` on a root: the sheet, the series table and what it printed."""
    out = tmp_path / "samples.tsv"
    assert main(["dicom-sheet", str(root), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    table = pd.read_csv(tmp_path / "samples_series.tsv", sep="\t", dtype={"series_uid": str})
    return pd.read_csv(out, sep="\t", dtype=str), table, printed


def verdict(table: pd.DataFrame, uid: str) -> str:
    """The reason the series table gives for one series."""
    return str(table.loc[table["series_uid"] == uid, "reason"].iloc[0])


def test_the_agent_attribute_and_description_words_pick_the_post_contrast_t1(tmp_path: Path, capsys) -> None:
    """Agent named: its series; FLAIR, localiser, subtraction and pre-contrast series are not picked, each said why."""
    root = tmp_path / "dicom"
    localiser = write(root, 1, "localizer", slices=3, image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"))
    pre = write(root, 2, "T1 MPRAGE pre", time="090500")
    flair = write(root, 3, "FLAIR ax", sequence=FLAIR, slices=20, thickness=3.0, agent="Gadobutrol")
    post = write(root, 4, "T1 MPRAGE", agent="Gadobutrol", time="092000")
    subtraction = write(root, 5, "T1 SUB", agent="Gadobutrol", time="092100", image_type=("DERIVED", "SECONDARY"))
    sheet, table, printed = sheet_of(root, tmp_path, capsys)
    assert sheet.to_dict("records") == [
        {"patient_id": "P_01", "timepoint": "2024-01-15", "image": str(root / "20240115" / "4"), "series_uid": post}
    ]
    assert verdict(table, localiser) == "localiser"
    assert verdict(table, pre) == "pre-contrast T1"
    assert verdict(table, flair).startswith("not T1-weighted")
    assert verdict(table, subtraction).startswith("derived image")
    assert verdict(table, post).startswith("picked: post-contrast T1, 3-D")
    assert table["picked"].sum() == 1
    assert "ambiguous" not in printed


def test_pre_and_post_sharing_a_description_without_agent_take_the_later_and_say_so(tmp_path: Path, capsys) -> None:
    """No agent, one description for both: the later acquisition is picked and the study listed as ambiguous."""
    root = tmp_path / "dicom"
    early = write(root, 7, "t1_mprage_sag", time="100000")
    late = write(root, 9, "t1_mprage_sag", time="102500")
    sheet, table, printed = sheet_of(root, tmp_path, capsys)
    assert sheet["series_uid"].tolist() == [late]
    assert verdict(table, early) == "pre-contrast T1"
    assert "1 ambiguous studies" in printed and "P_01 2024-01-15: no contrast attribute" in printed


def test_3d_before_2d_then_thin_then_late_even_without_acquisition_type(tmp_path: Path, capsys) -> None:
    """Among post-contrast T1 series: 3-D (here told by thin, many slices) beats 2-D, thinner beats thicker."""
    root = tmp_path / "dicom"
    axial = write(root, 3, "T1 SE AX +C", slices=24, thickness=5.0, sequence=SPIN_ECHO, time="093000")
    thick = write(root, 4, "T1 3D +C", slices=64, thickness=1.2, time="092000", mr_acquisition_type="3D")
    thin = write(root, 5, "T1 3D +C", slices=64, thickness=0.9, time="091000", mr_acquisition_type="")
    for path in (root / "20240115" / "5").iterdir():  # the 3-D series without MRAcquisitionType (real quirk)
        ds = pydicom.dcmread(path)
        del ds.MRAcquisitionType
        ds.save_as(path)
    sheet, table, _ = sheet_of(root, tmp_path, capsys)
    assert sheet["series_uid"].tolist() == [thin]
    assert verdict(table, thick) == "post-contrast T1, thicker slices"
    assert verdict(table, axial) == "post-contrast T1, 2-D"


def test_studies_are_timepoints_and_a_study_without_a_t1_is_listed_not_guessed(tmp_path: Path, capsys) -> None:
    """Two dates give two rows; a third date with only FLAIR gives no row and a line on the terminal."""
    root = tmp_path / "dicom"
    first = write(root, 5, "T1 +C", date="20240115", agent="Dotarem")
    second = write(root, 5, "T1 +C", date="20240402", agent="Dotarem")
    write(root, 3, "FLAIR", date="20240610", sequence=FLAIR, slices=20)
    (root / "README.txt").write_text("not DICOM")
    sheet, _, printed = sheet_of(root, tmp_path, capsys)
    assert sheet[["timepoint", "series_uid"]].values.tolist() == [["2024-01-15", first], ["2024-04-02", second]]
    assert "P_01 2024-06-10: no post-contrast T1 series (nothing picked)" in printed
    assert "1 files under" in printed
    load_samples(tmp_path / "samples.tsv")  # the sheet is valid as it is, DICOM folders and all


def test_a_tree_without_any_post_contrast_t1_is_one_line(tmp_path: Path, capsys) -> None:
    """Nothing to pick anywhere: exit 2 with one line, no sheet written."""
    root = tmp_path / "dicom"
    write(root, 3, "FLAIR", sequence=FLAIR, slices=20)
    assert main(["dicom-sheet", str(root), "--out", str(tmp_path / "s.tsv")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no post-contrast T1 series found" in err
    assert not (tmp_path / "s.tsv").exists()


@pytest.mark.slow
def test_the_dicom_demo_sheet_picks_the_post_contrast_t1_of_every_study(tmp_path: Path, capsys) -> None:
    """demo-cohort --dicom, then dicom-sheet: each study's pick is its post-contrast series (the NIfTI scan)."""
    from brainmets.dicom.series import convert_series

    out = tmp_path / "demo"
    argv = ["demo-cohort", "--dicom", "--out", str(out), "--patients", "2", "--timepoints", "3", "--train", "0"]
    assert main([*argv, "--scale", "2"]) == 0
    nifti = pd.read_csv(out / "samples.tsv", sep="\t")
    sheet, table, printed = sheet_of(out / "dicom", tmp_path, capsys)
    assert len(sheet) == len(nifti) == 6
    assert set(table["description"]) >= {"localizer", "T1 MPRAGE"}  # the picking had something to refuse
    assert (table.groupby(["patient_id", "timepoint"]).size() == 3).all()
    for row in sheet.itertuples():
        post = pydicom.dcmread(
            next((out / "dicom" / row.patient_id / row.timepoint.replace("-", "")).glob("05_*/*.dcm"))
        )
        assert row.series_uid == post.SeriesInstanceUID, (row.patient_id, row.timepoint)
    for row in sheet.iloc[:2].itertuples():  # the picked series is the NIfTI demo's scan
        converted = nib.as_closest_canonical(nib.load(convert_series(row.image, tmp_path / f"{row.Index}.nii.gz")))
        scan = nifti[(nifti["patient_id"] == row.patient_id) & (nifti["timepoint"] == row.timepoint)]["image"].iloc[0]
        original = nib.as_closest_canonical(nib.load(scan))
        np.testing.assert_array_equal(np.asarray(converted.dataobj), np.asarray(original.dataobj))
        np.testing.assert_allclose(converted.affine, original.affine, atol=1e-4)


def test_add_from_brings_training_rows_and_the_studies_clinical_columns(tmp_path: Path, capsys) -> None:
    """--add-from: training rows appended; a study's steroid dose and status copied, its mask not."""
    root = tmp_path / "dicom"
    post = write(root, 5, "T1 +C", agent="Gadovist")
    train = tmp_path / "train.nii.gz"
    nib.save(nib.Nifti1Image(np.arange(64, dtype=np.int16).reshape(4, 4, 4), np.eye(4)), train)
    other = tmp_path / "nifti.tsv"
    other.write_text(
        "patient_id\ttimepoint\timage\tmask\ttraining\tsteroid_dose_mg\tclinical_status\n"
        f"P_01\t2024-01-15\tscan.nii.gz\tscan_mask.nii.gz\tfalse\t4\tstable\n"
        f"T01\t2023-05-01\t{train}\t{train}\ttrue\t\t\n"
    )
    out = tmp_path / "samples.tsv"
    assert main(["dicom-sheet", str(root), "--out", str(out), "--add-from", str(other)]) == 0
    sheet = pd.read_csv(out, sep="\t", dtype=str, keep_default_na=False)
    assert sheet[
        ["patient_id", "series_uid", "steroid_dose_mg", "clinical_status", "mask", "training"]
    ].values.tolist() == [
        ["P_01", post, "4", "stable", "", ""],
        ["T01", "", "", "", str(train), "true"],
    ]
    assert len(load_samples(out)) == 2
