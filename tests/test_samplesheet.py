"""The sample sheet: good sheets load, every bad sheet fails with one line naming row and column."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
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
        {
            "patient_id": "p01",
            "timepoint": "2024-01-10",
            "image": str(scans["a"]),
            "mask": str(scans["mask"]),
            "training": "false",
            "baseline": "true",
            "steroid_dose_mg": "4",
            "clinical_status": "stable",
        },
        {
            "patient_id": "p01",
            "timepoint": "2024-03-01",
            "image": str(scans["b"]),
            "mask": "",
            "training": "false",
            "baseline": "false",
            "steroid_dose_mg": "2.5",
            "clinical_status": "improved",
        },
        {
            "patient_id": "t-1",
            "timepoint": "2023-12-24",
            "image": str(scans["c"]),
            "mask": str(scans["mask"]),
            "training": "true",
            "baseline": "",
            "steroid_dose_mg": "",
            "clinical_status": "",
        },
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
    for row, value in zip(rows, ("true", "", "FALSE"), strict=True):
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
    pytest.param(
        1, "timepoint", "2024-01-10", ["row 2", "column timepoint", "row 1", "already has a scan"], id="duplicate-rows"
    ),
    pytest.param(2, "patient_id", "../x", ["row 3", "column patient_id", "'../x'"], id="path-like-id"),
    pytest.param(
        0, "patient_id", "model", ["row 1", "column patient_id", "result folders"], id="id-of-a-result-folder"
    ),
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
    pytest.param(
        0, "clinical_status", "better", ["row 1", "column clinical_status", "stable or worse"], id="bad-status"
    ),
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


def test_a_sheet_over_the_header_limit_only_checks_that_files_exist(tmp_path: Path, scans: dict[str, Path]) -> None:
    """Above `header_limit` files (3 images + 2 masks here) headers are not read; a missing file still fails."""
    rows = _rows(scans)
    rows[0]["mask"] = str(scans["text"])
    sheet = _write(tmp_path / "s.tsv", rows)
    assert "not a readable NIfTI" in _error(sheet, header_limit=5)
    assert len(load_samples(sheet, header_limit=4)) == 3
    rows[1]["image"] = str(tmp_path / "gone.nii.gz")
    assert "not found" in _error(_write(tmp_path / "s.tsv", rows), header_limit=4)


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


def test_cli_reports_valid_and_invalid_sheets(
    tmp_path: Path, scans: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
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


# --- check-samples reads every file completely; every message names its file ---------------------------


def _truncated(good: Path, out: Path) -> Path:
    """`good` cut to two thirds of its bytes (a copy interrupted half-way)."""
    data = good.read_bytes()
    out.write_bytes(data[: 2 * len(data) // 3])
    return out


def _corrupt(good: Path, out: Path) -> Path:
    """`good` (gzip) with bytes in the middle of its compressed stream overwritten."""
    data = bytearray(good.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(16)
    out.write_bytes(bytes(data))
    return out


@pytest.mark.parametrize("kind", ["truncated-gz", "truncated-nii", "corrupt-gz"])
@pytest.mark.parametrize("column", ["image", "mask"])
def test_check_samples_reads_every_file_completely(
    tmp_path: Path, scans: dict[str, Path], capsys: pytest.CaptureFixture[str], kind: str, column: str
) -> None:
    rows = _rows(scans)
    good = scans["a"] if column == "image" else scans["mask"]
    if kind == "truncated-nii":
        data = np.asarray(nib.load(str(good)).dataobj)
        good = save_nifti(data, np.eye(4), tmp_path / f"plain_{column}.nii")
    broken = tmp_path / f"broken_{column}{''.join(good.suffixes)}"
    (_corrupt if kind == "corrupt-gz" else _truncated)(good, broken)
    rows[2][column] = str(broken)
    sheet = _write(tmp_path / "s.tsv", rows)
    message = _error(sheet, read_data=True)
    assert f"row 3 (line 4), column {column}: {broken}: not a readable NIfTI image" in message
    assert main(["check-samples", str(sheet)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(broken) in err
    # the workflow's own check reads headers only, and stays as fast as that
    assert main(["check-samples", "--headers-only", str(sheet)]) == 0


def test_a_bad_header_is_refused_by_the_quick_check_too(
    tmp_path: Path, scans: dict[str, Path], write_bad_header
) -> None:
    rows = _rows(scans)
    rows[1]["image"] = str(write_bad_header(scans["b"], "zero-spacing-qform", tmp_path / "zero.nii.gz"))
    sheet = _write(tmp_path / "s.tsv", rows)
    for read_data in (False, True):
        message = _error(sheet, read_data=read_data)
        assert f"row 2 (line 3), column image: {tmp_path / 'zero.nii.gz'}: voxel spacing (0, 1, 1) mm" in message


@pytest.mark.parametrize("read_data", [False, True])
def test_a_mask_on_another_grid_is_named_with_its_image(
    tmp_path: Path, scans: dict[str, Path], read_data: bool
) -> None:
    rows = _rows(scans)
    rows[2]["mask"] = str(scans["small_mask"])
    message = _error(_write(tmp_path / "s.tsv", rows), read_data=read_data)
    assert f"row 3 (line 4), column mask: {scans['small_mask']}: grid (4, 4, 4) does not match" in message
    assert f"that of {scans['c']} (8, 9, 10)" in message
    shifted = np.eye(4)
    shifted[:3, 3] = 2.0
    moved = save_nifti(np.asarray(nib.load(str(scans["mask"])).dataobj), shifted, tmp_path / "moved.nii.gz")
    rows[2]["mask"] = str(moved)
    message = _error(_write(tmp_path / "s2.tsv", rows), read_data=read_data)
    assert (
        f"column mask: {moved}: grid (8, 9, 10) does not match: its affine differs from that of {scans['c']}" in message
    )


def test_check_samples_refuses_a_mask_that_is_not_a_label_map(tmp_path: Path, scans: dict[str, Path]) -> None:
    rows = _rows(scans)
    probabilities = save_nifti(np.full((8, 9, 10), 0.7, np.float32), np.eye(4), tmp_path / "probability.nii.gz")
    rows[0]["mask"] = str(probabilities)
    sheet = _write(tmp_path / "s.tsv", rows)
    message = _error(sheet, read_data=True)
    assert f"row 1 (line 2), column mask: {probabilities}: a mask must hold 0 (background)" in message
    assert len(load_samples(sheet)) == 3  # values are not read by the quick check


def test_real_scans_pass_the_complete_check_and_a_cut_copy_does_not(tmp_path: Path) -> None:
    # real headers (dcm2niix-style qform/sform, 5.5 mm slices, LAS) must not be refused by the header check
    real = REPO.parent / "shared" / "data" / "real"
    image, mask = real / "TCGA-FG-6692_raw_t1c.nii.gz", real / "TCGA-FG-6692_raw_t1c_brainmask.nii.gz"
    brats = real / "BraTS-MET-00110-000-t1c.nii.gz"
    rows = [
        {"patient_id": "tcga", "timepoint": "2024-01-01", "image": str(image), "mask": str(mask)},
        {"patient_id": "brats", "timepoint": "2024-01-01", "image": str(brats)},
    ]
    assert (
        len(
            load_samples(_write(tmp_path / "s.tsv", rows, ["patient_id", "timepoint", "image", "mask"]), read_data=True)
        )
        == 2
    )
    cut = tmp_path / "cut.nii.gz"
    cut.write_bytes(image.read_bytes()[:-1000])
    rows[0]["image"] = str(cut)
    message = _error(_write(tmp_path / "s2.tsv", rows, ["patient_id", "timepoint", "image", "mask"]), read_data=True)
    assert f"column image: {cut}: not a readable NIfTI image" in message
