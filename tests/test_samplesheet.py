"""The sample sheet: good sheets load, every bad sheet fails with one line naming row and column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from brainmets.cli import main
from brainmets.errors import BrainmetsError
from brainmets.io import save_nifti
from brainmets.samplesheet import SCHEMA_PATH, load_samples, read_sheet

REPO = Path(__file__).resolve().parents[1]
HEADER = ["patient_id", "timepoint", "image", "mask", "training", "baseline", "steroid_dose_mg", "clinical_status"]


@pytest.fixture
def scans(tmp_path: Path) -> dict[str, Path]:
    """Three small NIfTI images, a mask on the first image's grid and a text file named like NIfTI."""
    rng = np.random.default_rng(0)
    files = {}
    for name in ("a", "b", "c"):
        files[name] = save_nifti(rng.random((8, 9, 10)).astype(np.float32), np.eye(4), tmp_path / f"{name}.nii.gz")
    files["mask"] = save_nifti((rng.random((8, 9, 10)) > 0.9).astype(np.uint8), np.eye(4), tmp_path / "mask.nii.gz")
    files["small_mask"] = save_nifti(np.ones((4, 4, 4), np.uint8), np.eye(4), tmp_path / "small.nii.gz")
    files["text"] = tmp_path / "notes.nii.gz"
    files["text"].write_text("this is not an image\n")
    return files


def _rows(scans: dict[str, Path]) -> list[dict[str, str]]:
    """A valid sheet: one patient with two visits (clinical columns) and one training scan."""
    return [
        {"patient_id": "p01", "timepoint": "2024-01-10", "image": str(scans["a"]), "mask": str(scans["mask"]),
         "training": "false", "baseline": "true", "steroid_dose_mg": "4", "clinical_status": "stable"},
        {"patient_id": "p01", "timepoint": "2024-03-01", "image": str(scans["b"]), "mask": "",
         "training": "false", "baseline": "false", "steroid_dose_mg": "2.5", "clinical_status": "improved"},
        {"patient_id": "t-1", "timepoint": "2023-12-24", "image": str(scans["c"]), "mask": str(scans["mask"]),
         "training": "true", "baseline": "", "steroid_dose_mg": "", "clinical_status": ""},
    ]


def _write(path: Path, rows: list[dict[str, str]], columns: list[str] = HEADER) -> Path:
    lines = ["\t".join(columns)] + ["\t".join(row.get(c, "") for c in columns) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def _error(sheet: Path, **kwargs: object) -> str:
    with pytest.raises(BrainmetsError) as caught:
        load_samples(sheet, **kwargs)  # type: ignore[arg-type]
    message = str(caught.value)
    assert "\n" not in message and message.startswith(str(sheet))
    return message


def test_a_good_sheet_loads_indexed_and_typed(tmp_path: Path, scans: dict[str, Path]) -> None:
    samples = load_samples(_write(tmp_path / "s.tsv", _rows(scans)))
    assert samples.index.names == ["patient_id", "timepoint"]
    assert list(samples.index) == [("p01", "2024-01-10"), ("p01", "2024-03-01"), ("t-1", "2023-12-24")]
    assert samples["training"].tolist() == [False, False, True]
    assert samples["baseline"].tolist() == [True, False, False]
    assert samples.loc[("p01", "2024-03-01"), "mask"] is None
    assert samples["steroid_dose_mg"].iloc[:2].tolist() == [4.0, 2.5] and np.isnan(samples["steroid_dose_mg"].iloc[2])
    assert samples.loc[("p01", "2024-01-10"), "row"] == 1


def test_skull_stripped_column_declares_per_scan_and_empty_leaves_it_to_the_configuration(
    tmp_path: Path, scans: dict[str, Path]
) -> None:
    rows = _rows(scans)
    for row, value in zip(rows, ("true", "", "FALSE")):
        row["skull_stripped"] = value
    samples = load_samples(_write(tmp_path / "s.tsv", rows, [*HEADER, "skull_stripped"]))
    assert samples["skull_stripped"].tolist() == [True, None, False]
    assert load_samples(_write(tmp_path / "plain.tsv", rows))["skull_stripped"].tolist() == [None, None, None]
    rows[0]["skull_stripped"] = "maybe"
    message = _error(_write(tmp_path / "bad.tsv", rows, [*HEADER, "skull_stripped"]))
    assert "row 1" in message and "column skull_stripped" in message and "write true" in message


def test_only_required_columns_are_enough(tmp_path: Path, scans: dict[str, Path]) -> None:
    sheet = _write(tmp_path / "s.tsv", _rows(scans)[:1], ["patient_id", "timepoint", "image"])
    samples = load_samples(sheet)
    assert not samples["training"].any() and samples["mask"].isna().all()


#: (row index, column, new value, fragments the one-line error must contain); {tmp}/{text}/{small} are files
BAD_CELLS = [
    pytest.param(1, "timepoint", "2024-01-10", ["row 2", "column timepoint", "row 1", "already has a scan"], id="duplicate-rows"),
    pytest.param(2, "patient_id", "../x", ["row 3", "column patient_id", "'../x'"], id="path-like-id"),
    pytest.param(0, "patient_id", "model", ["row 1", "column patient_id", "result folders"], id="id-of-a-result-folder"),
    pytest.param(0, "patient_id", "-p", ["row 1", "column patient_id"], id="id-starting-with-dash"),
    pytest.param(0, "patient_id", "p 1", ["row 1", "column patient_id"], id="id-with-space"),
    pytest.param(1, "image", "{tmp}/gone.nii.gz", ["row 2", "column image", "not found"], id="missing-file"),
    pytest.param(1, "timepoint", "2024/03/01", ["row 2", "column timepoint", "YYYY-MM-DD"], id="bad-date-format"),
    pytest.param(1, "timepoint", "2024-02-30", ["row 2", "column timepoint", "YYYY-MM-DD"], id="bad-calendar-date"),
    pytest.param(1, "timepoint", "01-03-2024", ["row 2", "column timepoint", "YYYY-MM-DD"], id="bad-date-order"),
    pytest.param(0, "mask", "{text}", ["row 1", "column mask", "not a readable NIfTI"], id="text-file-named-nii-gz"),
    pytest.param(2, "image", "", ["row 3", "column image", "empty"], id="empty-required-cell"),
    pytest.param(2, "mask", "", ["row 3", "column mask", "training row needs"], id="training-row-without-mask"),
    pytest.param(1, "baseline", "true", ["row 2", "column baseline", "already has a baseline"], id="two-baselines"),
    pytest.param(2, "mask", "{small}", ["row 3", "column mask", "grid"], id="mask-on-another-grid"),
    pytest.param(0, "clinical_status", "better", ["row 1", "column clinical_status", "stable or worse"], id="bad-status"),
    pytest.param(0, "training", "maybe", ["row 1", "column training", "true or false"], id="bad-boolean"),
    pytest.param(0, "steroid_dose_mg", "-1", ["row 1", "column steroid_dose_mg", "non-negative"], id="negative-dose"),
]


@pytest.mark.parametrize(("row", "column", "value", "fragments"), BAD_CELLS)
def test_a_bad_cell_gives_one_line_naming_row_and_column(
    tmp_path: Path, scans: dict[str, Path], row: int, column: str, value: str, fragments: list[str]
) -> None:
    rows = _rows(scans)
    rows[row][column] = value.format(tmp=tmp_path, text=scans["text"], small=scans["small_mask"])
    message = _error(_write(tmp_path / "s.tsv", rows))
    for fragment in fragments:
        assert fragment in message


def test_missing_column(tmp_path: Path, scans: dict[str, Path]) -> None:
    sheet = _write(tmp_path / "s.tsv", _rows(scans), [c for c in HEADER if c != "image"])
    assert "missing column(s) image" in _error(sheet)


def test_misspelt_column_name(tmp_path: Path, scans: dict[str, Path]) -> None:
    sheet = _write(tmp_path / "s.tsv", _rows(scans), [c if c != "mask" else "Mask" for c in HEADER])
    assert "'Mask' should be named 'mask'" in _error(sheet)


def test_files_the_workflow_produces_need_not_exist(tmp_path: Path, scans: dict[str, Path]) -> None:
    rows = _rows(scans)
    rows[1]["image"] = str(tmp_path / "demo" / "p01" / "t1ce.nii.gz")
    sheet = _write(tmp_path / "s.tsv", rows)
    assert len(load_samples(sheet, produced_dirs=[tmp_path / "demo"])) == 3
    assert len(load_samples(sheet, check_files=False)) == 3
    assert "not found" in _error(sheet, produced_dirs=[tmp_path / "elsewhere"])


def test_snakemake_validation_gives_the_same_verdicts(tmp_path: Path, scans: dict[str, Path]) -> None:
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    good = _write(tmp_path / "good.tsv", _rows(scans))
    validate(read_sheet(good), str(SCHEMA_PATH))
    load_samples(good)
    cases = [
        ("patient_id", "../x"),
        ("patient_id", "model"),
        ("timepoint", "2024/01/01"),
        ("clinical_status", "better"),
        ("image", ""),
    ]
    for column, value in cases:
        rows = _rows(scans)
        rows[0][column] = value
        bad = _write(tmp_path / f"bad_{column}_{len(value)}.tsv", rows)
        with pytest.raises(WorkflowError):
            validate(read_sheet(bad), str(SCHEMA_PATH))
        _error(bad)


def test_committed_sheet_is_valid() -> None:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    samples = load_samples(REPO / config["samples"], produced_dirs=[REPO / config["demo"]["out"]])
    assert samples["training"].sum() == config["demo"]["train"]
    patients = samples[~samples["training"]].index.get_level_values("patient_id").unique()
    assert len(patients) == config["demo"]["patients"]


def test_cli_reports_valid_and_invalid_sheets(tmp_path: Path, scans: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    good = _write(tmp_path / "good.tsv", _rows(scans))
    assert main(["check-samples", str(good)]) == 0
    assert "valid: 3 scans of 2 patients" in capsys.readouterr().out
    rows = _rows(scans)
    rows[0]["patient_id"] = "../x"
    assert main(["check-samples", str(_write(tmp_path / "bad.tsv", rows))]) == 2
    err = capsys.readouterr().err.strip()
    assert "column patient_id" in err and "\n" not in err


def test_header_only_and_unreadable_sheets(tmp_path: Path) -> None:
    empty = tmp_path / "empty.tsv"
    empty.write_text("\t".join(HEADER) + "\n")
    assert "no rows" in _error(empty)
    assert "not found" in _error(tmp_path / "absent.tsv")
    frame = pd.DataFrame({"patient_id": ["p"], "timepoint": ["2024-01-01"], "image": ["x"]})
    assert read_sheet(_write(tmp_path / "x.tsv", frame.to_dict("records"), list(frame.columns))).shape == (1, 3)
