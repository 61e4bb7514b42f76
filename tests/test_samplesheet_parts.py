"""The parts of load_samples, each on its own: columns, rows against the schema, typed columns, scan rules, files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from brainmets.errors import BrainmetsError
from brainmets.io import save_nifti
from brainmets.samplesheet import check_columns, check_rows, check_scans, check_sheet_files, typed_sheet

SHEET = Path("sheet.tsv")


def _table(*rows: dict[str, str], columns: list[str] | None = None) -> pd.DataFrame:
    """A sheet as read_sheet returns it: text cells, empty cells missing (NaN)."""
    table = pd.DataFrame(list(rows), columns=columns or list(rows[0]), dtype=object)
    return table.mask(table == "")


def _message(check, *args: object) -> str:
    """The one-line message a check raises."""
    with pytest.raises(BrainmetsError) as caught:
        check(*args)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(str(SHEET)), message
    return message


def test_check_columns_names_what_is_missing_empty_or_misspelt() -> None:
    good = _table({"patient_id": "p", "timepoint": "2024-01-01", "image": "a.nii.gz"})
    check_columns(SHEET, good)
    assert "missing column(s) image" in _message(check_columns, SHEET, good.drop(columns="image"))
    assert "no rows under the header" in _message(check_columns, SHEET, good.iloc[:0])
    misspelt = good.rename(columns={"image": "Image"})
    assert "missing column(s) image" in _message(check_columns, SHEET, misspelt)
    spaced = good.assign(**{"Clinical Status": "stable"})
    assert "column 'Clinical Status' should be named 'clinical_status'" in _message(check_columns, SHEET, spaced)


def test_check_rows_refuses_the_first_bad_row_with_its_column() -> None:
    first = {"patient_id": "p01", "timepoint": "2024-01-10", "image": "a.nii.gz", "training": "true"}
    check_rows(SHEET, _table(first))
    bad_flag = {**first, "timepoint": "2024-02-10", "training": "maybe"}
    message = _message(check_rows, SHEET, _table(first, bad_flag))
    assert message.startswith(f"{SHEET}: row 2 (line 3), column training: 'maybe' is not valid")
    no_image = {**first, "image": ""}
    assert "row 1 (line 2), column image: empty" in _message(check_rows, SHEET, _table(no_image))
    not_a_date = {**first, "timepoint": "2024-02-30"}
    message = _message(check_rows, SHEET, _table(not_a_date))
    assert "column timepoint: '2024-02-30' is not a calendar date" in message and "YYYY-MM-DD" in message


def test_typed_sheet_types_every_column_and_fills_the_missing_ones() -> None:
    table = _table(
        {"patient_id": "p", "timepoint": "2024-01-01", "image": "a", "mask": "m", "training": " TRUE ",
         "skull_stripped": "false", "steroid_dose_mg": "4", "clinical_status": "stable"},
        {"patient_id": "p", "timepoint": "2024-02-01", "image": "b", "mask": "", "training": "no",
         "skull_stripped": "", "steroid_dose_mg": "", "clinical_status": ""},
    )  # fmt: skip
    frame = typed_sheet(table)
    assert frame["mask"].tolist() == ["m", None]
    assert frame["training"].tolist() == [True, False]
    assert frame["baseline"].tolist() == [False, False]  # column absent: no baseline marked
    assert frame["skull_stripped"].tolist() == [False, None]
    assert frame["steroid_dose_mg"].iloc[0] == 4.0 and math.isnan(frame["steroid_dose_mg"].iloc[1])
    assert frame["clinical_status"].tolist() == ["stable", None]
    assert frame["row"].tolist() == [1, 2]

    plain = typed_sheet(_table({"patient_id": "q", "timepoint": "2024-01-01", "image": "c"}))
    assert plain["mask"].tolist() == [None] and plain["skull_stripped"].tolist() == [None]
    assert plain["training"].tolist() == [False] and math.isnan(plain["steroid_dose_mg"].iloc[0])


def _frame(*rows: dict[str, object]) -> pd.DataFrame:
    """A typed sheet with the columns check_scans reads."""
    defaults = {"mask": None, "training": False, "baseline": False}
    return pd.DataFrame([{**defaults, **row} for row in rows])


def test_check_scans_refuses_repeated_visits_training_without_mask_and_two_baselines() -> None:
    check_scans(SHEET, _frame({"patient_id": "p", "timepoint": "2024-01-01", "image": "a", "baseline": True}))
    twice = _frame(
        {"patient_id": "p", "timepoint": "2024-01-01", "image": "a"},
        {"patient_id": "q", "timepoint": "2024-01-01", "image": "b"},
        {"patient_id": "p", "timepoint": "2024-01-01", "image": "c"},
    )
    message = _message(check_scans, SHEET, twice)
    assert "row 3 (line 4), column timepoint: patient p already has a scan on 2024-01-01 (row 1)" in message
    unlabelled = _frame({"patient_id": "p", "timepoint": "2024-01-01", "image": "a", "training": True})
    assert "row 1 (line 2), column mask: a training row needs a ground-truth mask" in _message(
        check_scans, SHEET, unlabelled
    )
    baselines = _frame(
        {"patient_id": "p", "timepoint": "2024-01-01", "image": "a", "baseline": True},
        {"patient_id": "p", "timepoint": "2024-02-01", "image": "b", "baseline": True},
    )
    assert "row 2 (line 3), column baseline: patient p already has a baseline scan" in _message(
        check_scans, SHEET, baselines
    )


def test_check_sheet_files_names_a_missing_file_and_a_mask_off_its_image_grid(tmp_path: Path) -> None:
    image = save_nifti(np.random.default_rng(0).random((8, 9, 10)).astype(np.float32), np.eye(4), tmp_path / "a.nii")
    mask = save_nifti(np.zeros((8, 9, 10), np.uint8), np.eye(4), tmp_path / "m.nii")
    other = save_nifti(np.zeros((4, 4, 4), np.uint8), np.eye(4), tmp_path / "small.nii")
    check_sheet_files(SHEET, _frame({"image": str(image), "mask": str(mask)}), read_data=True)

    missing = _frame({"image": str(image)}, {"image": str(tmp_path / "gone.nii.gz")})
    assert "row 2 (line 3), column image: file" in _message(check_sheet_files, SHEET, missing)
    check_sheet_files(SHEET, missing, [tmp_path])  # the workflow writes files under a produced folder itself

    off_grid = _frame({"image": str(image), "mask": str(other)})
    assert "row 1 (line 2), column mask:" in _message(check_sheet_files, SHEET, off_grid)
    check_sheet_files(SHEET, off_grid, (), False, 1)  # over the header limit: the files only need to exist
