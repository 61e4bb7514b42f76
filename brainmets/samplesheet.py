"""The sample sheet: one row per scan, validated before the workflow builds its jobs.

Columns: `patient_id`, `timepoint` (ISO date), `image` (a NIfTI file, or a folder holding a DICOM
series) or `study_uid` (a study in the DICOMweb archive of the configuration, fetched by the workflow),
and optionally `series_uid` (which series of a DICOM folder or study), `mask` (ground truth on the
image's grid), `training` (true/false), `baseline` (true/false), `skull_stripped` (true/false, empty:
the configuration decides), `steroid_dose_mg`, `clinical_status` (improved/stable/worse). Paths are
relative to the working directory or absolute. Every problem is reported as one line naming the
sheet, the row (1 = first row under the header), the column and the fix.

The JSON schema `workflow/schemas/samples.schema.yaml` describes one row as `read_sheet` returns it
(the workflow validates with `snakemake.utils.validate`); `load_samples` applies the same schema with
`jsonschema` and then the checks a schema cannot express.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import functools
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from brainmets.errors import BrainmetsError, StorageError, raise_if_fault

HELP = "Check a sample sheet (ids, dates, duplicates, every image and mask) and report the first problem as one line."

#: columns every sheet needs
REQUIRED_COLUMNS: list[str] = ["patient_id", "timepoint", "image"]
#: optional columns the pipeline reads
OPTIONAL_COLUMNS: list[str] = [
    "study_uid",
    "series_uid",
    "mask",
    "training",
    "baseline",
    "skull_stripped",
    "steroid_dose_mg",
    "clinical_status",
]
#: with a header limit (the workflow's quick check), DICOM folders are read only when there are at most this
#: many: each is a few hundred files; beyond it they are only checked to exist (their conversion job checks them)
DICOM_FOLDER_LIMIT = 50
#: the schema shipped with the workflow, relative to the repository root
SCHEMA_PATH = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "samples.schema.yaml"

#: what to do about a bad value, per column
_FIX = {
    "patient_id": (
        "use letters, digits, '_' and '-' only, starting with a letter or digit, "
        "and not model, training, cohort or truth (result folders)"
    ),
    "timepoint": "write the scan date as YYYY-MM-DD",
    "image": "give the path of the T1-CE NIfTI image or of the folder holding its DICOM series",
    "study_uid": "give the StudyInstanceUID (digits and dots) of the study in the archive, or leave the cell empty",
    "series_uid": "give the SeriesInstanceUID (digits and dots) of the series to use, or leave the cell empty",
    "mask": "give the path of the ground-truth mask or leave the cell empty",
    "training": "write true or false",
    "baseline": "write true or false",
    "skull_stripped": "write true (already skull-stripped) or false (a head), or leave the cell empty to detect it",
    "steroid_dose_mg": "write the dose in mg as a non-negative number or leave the cell empty",
    "clinical_status": "write improved, stable or worse, or leave the cell empty",
}
_TRUE = {"true", "1", "yes"}


def read_sheet(path: str | os.PathLike[str]) -> pd.DataFrame:
    """The sheet as text: every cell a string, empty cells missing (NaN); the form the schema describes."""
    p = Path(path)
    if not p.is_file():
        raise BrainmetsError(f"{p}: sample sheet not found; give the path of a tab-separated sheet")
    try:
        table = pd.read_csv(p, sep="\t", dtype=str, keep_default_na=False, na_values=[""])
    except Exception as error:  # pandas raises several types for malformed text
        raise_if_fault(error, p, "cannot read")
        raise BrainmetsError(f"{p}: not a readable tab-separated sheet ({error})".splitlines()[0]) from None
    table.columns = [str(c).strip() for c in table.columns]
    return table


@functools.lru_cache(maxsize=4)
def _validator(schema_path: str) -> Any:
    """A JSON-schema validator for one sheet row, from the YAML schema file."""
    import jsonschema
    import yaml

    p = Path(schema_path)
    if not p.is_file():
        raise BrainmetsError(f"{p}: sample-sheet schema not found; run from the repository or pass schema=")
    with p.open() as handle:
        schema = yaml.safe_load(handle)
    return jsonschema.Draft202012Validator(schema)


def _where(sheet: Path, row: int, column: str) -> str:
    """'sheet: row R (line L), column C' for a 0-based data row."""
    return f"{sheet}: row {row + 1} (line {row + 2}), column {column}"


def _schema_problem(sheet: Path, row: int, error: Any, record: dict[str, Any]) -> BrainmetsError:
    """One-line error for the first schema violation of a row."""
    if error.validator == "required":
        column = str(error.message).split("'")[1]
        return BrainmetsError(f"{_where(sheet, row, column)}: empty, but every row needs a value; {_FIX[column]}")
    if error.validator == "oneOf":  # image and study_uid: exactly one of them
        if "image" in record and "study_uid" in record:
            return BrainmetsError(
                f"{_where(sheet, row, 'image')}: both image and study_uid given; name the scan by one of them "
                "(a NIfTI file or DICOM folder, or a study in the DICOMweb archive)"
            )
        return BrainmetsError(
            f"{_where(sheet, row, 'image')}: empty, but every row needs an image or a study_uid; {_FIX['image']}"
        )
    column = str(error.absolute_path[0]) if error.absolute_path else "?"
    value = record.get(column)
    return BrainmetsError(f"{_where(sheet, row, column)}: {value!r} is not valid; {_FIX.get(column, error.message)}")


def _is_produced(path: str, produced_dirs: list[str]) -> bool:
    """Whether a path lies under one of the directories the workflow itself writes."""
    absolute = os.path.abspath(path)
    return any(absolute == d or absolute.startswith(d + os.sep) for d in produced_dirs)


@dataclasses.dataclass(frozen=True)
class _FileGrid:
    """The voxel grid of a sheet's file: 3-D shape and voxel-to-world affine (mm)."""

    shape: tuple[int, ...]
    affine: np.ndarray


def _check_dicom_folder(sheet: Path, row: int, path: str, series_uid: str | None, read_header: bool) -> None:
    """Check that an `image` folder holds one 3-D DICOM series (or the one `series_uid` names), from its headers."""
    from brainmets.dicom.series import find_series

    if not read_header:
        return
    try:
        find_series(path, series_uid)
    except BrainmetsError as error:
        raise BrainmetsError(f"{_where(sheet, row, 'image')}: {error}") from None


def _check_file(
    sheet: Path, row: int, column: str, path: str, read_data: bool, read_header: bool = True
) -> _FileGrid | None:
    """Check that a sheet's file exists and is a 3-D NIfTI with usable header (`read_header`) and data (`read_data`)."""
    from brainmets.io import check_gzip_stream, load_mask, load_nifti, read_nifti_header

    if not os.path.isfile(path):
        raise BrainmetsError(
            f"{_where(sheet, row, column)}: file {path} not found (relative paths start at {os.getcwd()}); "
            "fix the path or remove the row"
        )
    if not read_header:
        return None
    try:
        if read_data:  # every voxel decompressed and checked: truncated or corrupt files fail here
            img = load_mask(path, labels=True)[1] if column == "mask" else load_nifti(path)
            check_gzip_stream(path)
            return _FileGrid(tuple(img.shape[:3]), img.affine)
        header = read_nifti_header(path)
    except StorageError:
        raise  # a fault of the machine, not of the sheet: the file's own line
    except BrainmetsError as error:
        raise BrainmetsError(f"{_where(sheet, row, column)}: {error}") from None
    shape = tuple(int(n) for n in header.get_data_shape())
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        raise BrainmetsError(
            f"{_where(sheet, row, column)}: {path}: expected a 3-D volume, the header says shape {shape}"
        )
    return _FileGrid(shape, header.get_best_affine())


def check_columns(sheet: Path, table: pd.DataFrame) -> None:
    """Refuse a sheet without the required columns, without rows, or with a known column misspelt."""
    # a sheet naming archive studies (study_uid) needs no image column
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns and not (c == "image" and "study_uid" in table)]
    if missing:
        raise BrainmetsError(
            f"{sheet}: missing column(s) {', '.join(missing)}; the header needs {', '.join(REQUIRED_COLUMNS)} "
            f"(optional: {', '.join(OPTIONAL_COLUMNS)}), separated by tabs"
        )
    if table.empty:
        raise BrainmetsError(f"{sheet}: no rows under the header; add one row per scan")
    known = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
    for column in table.columns:
        near = [k for k in known if k.lower() == column.lower().replace(" ", "_") and k != column]
        if near:
            raise BrainmetsError(f"{sheet}: column {column!r} should be named {near[0]!r}; rename it in the header")


def check_rows(sheet: Path, table: pd.DataFrame, schema: str | os.PathLike[str] = SCHEMA_PATH) -> None:
    """Refuse the first row (of the text sheet) that breaks the schema or whose timepoint is not a calendar date."""
    validator = _validator(os.fspath(schema))
    columns = list(table.columns)

    def column_order(error: Any) -> int:
        """Position of the column an error is about (-1 for row-level errors such as a missing value)."""
        path = list(error.absolute_path)
        return columns.index(path[0]) if path and path[0] in columns else -1

    for row, cells in enumerate(table.to_dict("records")):
        record = {str(k): v for k, v in cells.items() if pd.notna(v)}
        errors = sorted(validator.iter_errors(record), key=column_order)
        if errors:
            raise _schema_problem(sheet, row, errors[0], record)
        try:
            dt.date.fromisoformat(record["timepoint"])
        except ValueError as error:
            raise BrainmetsError(
                f"{_where(sheet, row, 'timepoint')}: {record['timepoint']!r} is not a calendar date ({error}); "
                "write YYYY-MM-DD"
            ) from None


def typed_sheet(table: pd.DataFrame) -> pd.DataFrame:
    """The text sheet with typed columns: flags as bool, skull_stripped as bool or None, the dose as float (mg).

    Missing optional columns are filled (no mask, not training, no baseline, no dose); `row` is the
    1-based row in the sheet. The index is the text sheet's.
    """
    frame = pd.DataFrame({"patient_id": table["patient_id"], "timepoint": table["timepoint"]})
    frame["image"] = table["image"].where(table["image"].notna(), None) if "image" in table else None
    frame["study_uid"] = table["study_uid"].where(table["study_uid"].notna(), None) if "study_uid" in table else None
    frame["series_uid"] = (
        table["series_uid"].where(table["series_uid"].notna(), None) if "series_uid" in table else None
    )
    frame["mask"] = table["mask"].where(table["mask"].notna(), None) if "mask" in table else None
    for flag in ("training", "baseline"):
        values = table[flag] if flag in table else pd.Series("", index=table.index)
        frame[flag] = values.fillna("").astype(str).str.strip().str.lower().isin(_TRUE)
    stripped = (
        table["skull_stripped"] if "skull_stripped" in table else pd.Series(None, index=table.index, dtype=object)
    )
    frame["skull_stripped"] = [None if pd.isna(v) else str(v).strip().lower() in _TRUE for v in stripped]
    frame["steroid_dose_mg"] = pd.to_numeric(table["steroid_dose_mg"]) if "steroid_dose_mg" in table else float("nan")
    frame["clinical_status"] = (
        table["clinical_status"].where(table["clinical_status"].notna(), None) if "clinical_status" in table else None
    )
    frame["row"] = range(1, len(frame) + 1)
    return frame


def check_scans(sheet: Path, frame: pd.DataFrame) -> None:
    """Refuse a typed sheet with a repeated (patient, timepoint), a training row without mask or two baselines."""
    repeated = frame[frame.duplicated(["patient_id", "timepoint"], keep="first")]
    if len(repeated):
        row, patient, timepoint = int(repeated.index[0]), repeated["patient_id"].iloc[0], repeated["timepoint"].iloc[0]
        first = int(frame.index[(frame["patient_id"] == patient) & (frame["timepoint"] == timepoint)][0])
        raise BrainmetsError(
            f"{_where(sheet, row, 'timepoint')}: patient {patient} already has a scan on {timepoint} "
            f"(row {first + 1}); give each scan its own (patient_id, timepoint) or remove the duplicate"
        )
    for row in frame.index[frame["training"] & frame["mask"].isna()]:
        raise BrainmetsError(
            f"{_where(sheet, int(row), 'mask')}: a training row needs a ground-truth mask; "
            "add the mask or set training to false"
        )
    baselines = frame[frame["baseline"]]
    extra = baselines.duplicated("patient_id", keep="first")
    if extra.any():
        row = int(baselines.index[extra][0])
        raise BrainmetsError(
            f"{_where(sheet, row, 'baseline')}: patient {str(frame.loc[row, 'patient_id'])} already has a baseline "
            "scan; mark at most one scan per patient as baseline"
        )


def check_sheet_files(
    sheet: Path,
    frame: pd.DataFrame,
    produced_dirs: Iterable[str | os.PathLike[str]] = (),
    read_data: bool = False,
    header_limit: int | None = None,
) -> None:
    """Refuse the first image or mask of a typed sheet that is missing, unreadable or off its image's grid.

    Options as for `load_samples`; files under `produced_dirs` are not checked.
    """
    from brainmets.io import check_same_grid

    produced = [os.path.abspath(d) for d in produced_dirs]
    headers = header_limit is None or len(frame) + int(frame["mask"].notna().sum()) <= header_limit
    # a DICOM folder's check reads every slice's header: with a limit, only a few folders are read
    folders = sum(image is not None and os.path.isdir(image) for image in frame["image"])  # None: an archive study
    dicom_headers = header_limit is None or (headers and folders <= DICOM_FOLDER_LIMIT)
    series_uids = frame["series_uid"] if "series_uid" in frame else pd.Series(None, index=frame.index, dtype=object)
    for row, image, mask, series_uid in zip(frame.index, frame["image"], frame["mask"], series_uids, strict=True):
        grids = {}
        if image is None:  # a study in the archive (study_uid), fetched by the workflow: its mask is checked later
            continue
        dicom = os.path.isdir(image)
        series_uid = series_uid if isinstance(series_uid, str) else None
        if series_uid is not None and not dicom and not _is_produced(image, produced):
            raise BrainmetsError(
                f"{_where(sheet, int(row), 'series_uid')}: given, but image {image} is not a DICOM folder; "
                "leave series_uid empty for a NIfTI image"
            )
        if dicom and not _is_produced(image, produced):
            _check_dicom_folder(sheet, int(row), image, series_uid, read_header=dicom_headers)
        for column, file in (("image", image), ("mask", mask)):
            if file is not None and not _is_produced(file, produced) and not (column == "image" and dicom):
                grids[column] = _check_file(sheet, int(row), column, file, read_data, read_header=headers)
        if len(grids) == 2 and grids["image"] is not None and grids["mask"] is not None:
            try:
                check_same_grid(grids["image"], grids["mask"], image, mask, "give the mask on the image's grid")
            except BrainmetsError as error:
                raise BrainmetsError(f"{_where(sheet, int(row), 'mask')}: {error}") from None


def load_samples(
    path: str | os.PathLike[str],
    *,
    produced_dirs: Iterable[str | os.PathLike[str]] = (),
    check_files: bool = True,
    read_data: bool = False,
    header_limit: int | None = None,
    schema: str | os.PathLike[str] = SCHEMA_PATH,
) -> pd.DataFrame:
    """The validated sheet indexed by (patient_id, timepoint), sorted; paths kept as written.

    Columns: image (a NIfTI file or a DICOM series folder), series_uid (str or None), mask (str or
    None), training, baseline (bool), skull_stripped (bool, or None when not given), steroid_dose_mg
    (float, NaN when not given), clinical_status (str or None), row (1-based row in the sheet). Files under
    `produced_dirs` (e.g. the demo cohort the workflow generates) need not exist yet;
    `check_files=False` skips every file check. Only file headers are read (shape, spacing, affine; a
    mask must share its image's grid), unless `read_data`: then every image and mask is read completely,
    so that truncated or corrupt data and masks that are not label maps are found too; a DICOM folder is
    checked from its files' headers (one 3-D image series, or the one `series_uid` names). With
    `header_limit`, file headers are read only when the sheet lists at most that many files; a larger
    sheet's files are only checked to exist (the headers are `brainmets check-samples`' job).
    """
    sheet = Path(path)
    table = read_sheet(sheet)
    check_columns(sheet, table)
    check_rows(sheet, table, schema)
    frame = typed_sheet(table)
    check_scans(sheet, frame)
    if check_files:
        check_sheet_files(sheet, frame, produced_dirs, read_data, header_limit)
    return frame.set_index(["patient_id", "timepoint"]).sort_index()


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of `brainmets check-samples`."""
    parser.add_argument("sheet", help="the sample sheet (tab-separated)")
    parser.add_argument(
        "--produced-dir",
        action="append",
        default=[],
        metavar="DIR",
        help="a directory whose files the workflow writes itself (not required to exist); repeatable",
    )
    parser.add_argument("--no-files", action="store_true", help="skip the checks of image and mask files")
    parser.add_argument(
        "--headers-only",
        action="store_true",
        help="read only the files' headers (the workflow's quick check) instead of every image and mask completely",
    )


def run(args: argparse.Namespace) -> None:
    """Validate the sheet and print a one-line summary."""
    samples = load_samples(
        args.sheet, produced_dirs=args.produced_dir, check_files=not args.no_files, read_data=not args.headers_only
    )
    patients = samples.index.get_level_values("patient_id").nunique()
    print(
        f"{args.sheet}: valid: {len(samples)} scans of {patients} patients, "
        f"{int(samples['training'].sum())} for training, {int(samples['mask'].notna().sum())} with a mask"
    )
