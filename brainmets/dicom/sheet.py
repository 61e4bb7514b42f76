"""A DICOM tree to a sample sheet: each study's post-contrast T1 series, picked from headers alone.

`dicom_sheet` reads every file's header under a root (pydicom, no pixel data), groups the files into
series and the series into studies by patient and study date (the timepoint), and picks in each study
the post-contrast T1-weighted series by the rules below (documented for users in config/README.md,
section "DICOM input"). It writes the sample sheet (one row per study: patient_id, timepoint, image =
the series' folder, series_uid) and a table of every series seen with the reason it was or was not
picked, so that a pick is corrected by copying another series' folder and UID into the sheet.

Rules, in order:
1. Not a candidate: other modalities than MR, objects without pixels (SR, SEG, presentation states),
   localisers (ImageType LOCALIZER or a scout-like description), derived images (ImageType DERIVED, or a
   subtraction, MPR, MIP or map in the description), series of fewer than MIN_SLICES slices, and series
   that are not T1-weighted (a T2, FLAIR, diffusion, perfusion or susceptibility description, or
   timings that are not T1: echo time over 30 ms, or a repetition time over 1,000 ms without an
   inversion-prepared 3-D gradient echo such as MPRAGE).
2. Contrast: ContrastBolusAgent (not empty, not 'none') or a post-contrast word in the description
   (post, +C, CE, Gd, gado, contrast, KM, enh) makes a T1 series post-contrast; a pre-contrast word
   (pre, native, without, w/o, non-contrast) makes it pre-contrast. When no T1 series of the study is
   marked post-contrast (the attribute is often empty), those not marked pre-contrast are taken as
   post-contrast if a marked pre-contrast T1 exists; otherwise, of T1 series sharing one description
   (scanners often give pre and post the same), all but the earliest; otherwise every T1 series. Each of
   these studies is listed as ambiguous.
3. Among the post-contrast T1 series: 3-D before 2-D (MRAcquisitionType, or when it is missing slices
   of at most THIN_3D_MM with at least MIN_3D_SLICES of them), then the thinnest slices, then the latest
   acquisition (acquisition time, then series number). A study whose pick is decided by the
   acquisition time alone, or which has no post-contrast T1 at all, is listed as ambiguous.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from brainmets.errors import BrainmetsError

HELP = "Write a sample sheet from a DICOM tree: each study's post-contrast T1 series (headers only)."

#: fewest slices (or frames) of a series that can be a 3-D scan
MIN_SLICES = 10
#: a series without MRAcquisitionType counts as 3-D with slices this thin (mm) and at least MIN_3D_SLICES of them
THIN_3D_MM = 1.5
MIN_3D_SLICES = 60
#: longest echo time (ms) of a T1-weighted series; longest repetition time (ms) of a non-prepared one
MAX_T1_ECHO_MS = 30.0
MAX_T1_REPETITION_MS = 1000.0
#: inversion times (ms) of T1 preparation (MPRAGE ~ 900-1100 ms; FLAIR nulls fluid at ~ 2,000-2,800 ms)
MAX_T1_INVERSION_MS = 1500.0

_WORD = r"(?<![a-z0-9]){}(?![a-z0-9])"
LOCALISER_WORDS = re.compile(r"locali[sz]er|scout|survey|3[- ]?plane|tri[- ]?pilot|aahead|\bloc\b|topogram")
DERIVED_WORDS = re.compile(r"sub(traction)?\b|\bmpr\b|\bmip\b|reformat|\bmap\b|\badc\b|\bfa\b|mean|\bmoco\b")
OTHER_WEIGHTING = re.compile(
    r"t2|flair|\bdwi\b|diff|\badc\b|\bdti\b|swi|\bswan\b|\bperf|\bdsc\b|\bdce\b|\basl\b|\bpd\b|\bmra\b|\btof\b|\bbold"
)
T1_WORDS = re.compile(r"t1|mprage|mp-rage|mp2rage|spgr|bravo|\btfe\b|\bvibe\b|flash|\bffe\b")
POST_WORDS = re.compile(
    r"post|\+ ?c\b|\+ ?gd|\bce\b|\bgd\b|gado|contrast|\bkm\b|\bc\+|\benh|\bw/(?!o)|mit km|\+km|dotarem|gadovist"
)
PRE_WORDS = re.compile(r"\bpre\b|prä|\bnative?\b|without|\bw/o\b|\bnon[- ]?contrast|\bohne\b|\bplain\b")
NO_AGENT = {"", "none", "no", "nil", "n/a", "na", "0"}

#: the tags read from each file (pydicom `specific_tags`: everything else is skipped)
TAGS = [
    "PatientID",
    "StudyDate",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SeriesNumber",
    "SeriesDescription",
    "ProtocolName",
    "Modality",
    "SOPClassUID",
    "ImageType",
    "Rows",
    "Columns",
    "NumberOfFrames",
    "ContrastBolusAgent",
    "ContrastBolusRoute",
    "ScanningSequence",
    "SequenceVariant",
    "MRAcquisitionType",
    "SliceThickness",
    "SpacingBetweenSlices",
    "RepetitionTime",
    "EchoTime",
    "InversionTime",
    "AcquisitionTime",
    "SeriesTime",
]


@dataclass
class SeriesRecord:
    """What the headers of one series say, and the picking's verdict on it."""

    patient_id: str
    timepoint: str
    study_uid: str
    series_uid: str
    series_number: int | None
    description: str
    folder: str
    modality: str
    image: bool
    slices: int
    image_type: str
    contrast_agent: str
    acquisition: str
    slice_thickness_mm: float | None
    repetition_ms: float | None
    echo_ms: float | None
    inversion_ms: float | None
    scanning_sequence: str
    time: str
    t1: bool = False
    contrast: str = "unknown"
    picked: bool = False
    reason: str = ""
    folders: set[str] = field(default_factory=set, repr=False)


def _number(value: Any) -> float | None:
    """A numeric header value as float (first of several), None when missing or malformed."""
    if value is None or value == "":
        return None
    try:
        if isinstance(value, str | bytes) or not hasattr(value, "__iter__"):
            return float(value)
        return float(next(iter(value)))
    except (TypeError, ValueError, StopIteration):
        return None


def _iso_date(value: str) -> str | None:
    """A DICOM date (YYYYMMDD) as ISO YYYY-MM-DD, None when it is not a calendar date."""
    try:
        return dt.datetime.strptime(value.strip()[:8], "%Y%m%d").date().isoformat()
    except ValueError:
        return None


def _patient_id(value: str) -> str:
    """A PatientID as a sample-sheet id: characters other than letters, digits, '_' and '-' become '_'."""
    cleaned = re.sub(r"[^A-Za-z0-9_-]", "_", value.strip())
    if not cleaned or not cleaned[0].isalnum():
        cleaned = "p" + cleaned
    return cleaned


def read_tree(root: str | os.PathLike[str]) -> tuple[list[SeriesRecord], int]:
    """Every series under a DICOM root from its files' headers; also the number of files that were not DICOM."""
    import pydicom

    from brainmets.dicom.series import dicom_files

    top = Path(root)
    if not top.is_dir():
        raise BrainmetsError(f"{top}: DICOM folder not found; give the root folder of the DICOM studies")
    records: dict[str, SeriesRecord] = {}
    skipped = 0
    for path in dicom_files(top):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=TAGS)
            uid = str(ds.SeriesInstanceUID)
        except Exception:  # pydicom raises many types for files that are not DICOM
            skipped += 1
            continue
        frames = int(_number(ds.get("NumberOfFrames")) or 1)
        record = records.get(uid)
        if record is None:
            date = _iso_date(str(ds.get("StudyDate", "") or ""))
            number = _number(ds.get("SeriesNumber"))
            record = records[uid] = SeriesRecord(
                patient_id=_patient_id(str(ds.get("PatientID", "") or "unknown")),
                timepoint=date or "",
                study_uid=str(ds.get("StudyInstanceUID", "")),
                series_uid=uid,
                series_number=int(number) if number is not None else None,
                description=str(ds.get("SeriesDescription", "") or ds.get("ProtocolName", "") or ""),
                folder="",
                modality=str(ds.get("Modality", "") or ""),
                image="Rows" in ds and "Columns" in ds,
                slices=0,
                image_type="\\".join(str(v) for v in (ds.get("ImageType") or [])),
                contrast_agent=str(ds.get("ContrastBolusAgent", "") or "").strip(),
                acquisition=str(ds.get("MRAcquisitionType", "") or "").strip().upper(),
                slice_thickness_mm=_number(ds.get("SliceThickness")),
                repetition_ms=_number(ds.get("RepetitionTime")),
                echo_ms=_number(ds.get("EchoTime")),
                inversion_ms=_number(ds.get("InversionTime")),
                scanning_sequence="\\".join(str(v) for v in (ds.get("ScanningSequence") or [])),
                time=str(ds.get("AcquisitionTime", "") or ds.get("SeriesTime", "") or ""),
            )
            if not date:
                record.reason = "no StudyDate"
        record.slices += frames
        record.folders.add(str(path.parent))
        time = str(ds.get("AcquisitionTime", "") or "")
        if time and (not record.time or time < record.time):  # the series' start
            record.time = time
    for record in records.values():
        record.folder = os.path.commonpath(sorted(record.folders))
    return list(records.values()), skipped


def _words(record: SeriesRecord) -> str:
    """The series description in lower case, for the word rules."""
    return record.description.lower()


def exclusion(record: SeriesRecord) -> str | None:
    """Why a series cannot be a T1 scan (rule 1), or None when it is a T1-weighted candidate."""
    words = _words(record)
    image_type = record.image_type.upper().split("\\")
    if record.reason:
        return record.reason
    if record.modality.upper() != "MR":
        return f"modality {record.modality or 'missing'}, not MR"
    if not record.image:
        return "not an image (no pixel rows and columns)"
    if {"LOCALIZER", "SCOUT", "SURVEY"} & set(image_type) or LOCALISER_WORDS.search(words):
        return "localiser"
    if "DERIVED" in image_type or DERIVED_WORDS.search(words):
        return "derived image (subtraction, reformat, projection or map)"
    if record.slices < MIN_SLICES:
        return f"{record.slices} slices, fewer than {MIN_SLICES}"
    if OTHER_WEIGHTING.search(words) and not T1_WORDS.search(words):
        return "not T1-weighted (description)"
    echo, repetition, inversion = record.echo_ms, record.repetition_ms, record.inversion_ms
    if echo is not None and echo > MAX_T1_ECHO_MS:
        return f"not T1-weighted (echo time {echo:g} ms)"
    if inversion is not None and inversion > MAX_T1_INVERSION_MS:
        return f"not T1-weighted (inversion time {inversion:g} ms: fluid-suppressed)"
    prepared = inversion is not None or "IR" in record.scanning_sequence.upper().split("\\")
    if repetition is not None and repetition > MAX_T1_REPETITION_MS and not (prepared and is_3d(record)):
        return f"not T1-weighted (repetition time {repetition:g} ms)"
    return None


def is_3d(record: SeriesRecord) -> bool:
    """Whether a series is a 3-D acquisition: MRAcquisitionType, or thin slices and many when it is missing."""
    if record.acquisition in ("3D", "2D"):
        return record.acquisition == "3D"
    thickness = record.slice_thickness_mm
    return thickness is not None and thickness <= THIN_3D_MM and record.slices >= MIN_3D_SLICES


def contrast_evidence(record: SeriesRecord) -> str:
    """'post' (contrast agent attribute or description), 'pre' (description) or 'unknown' (rule 2)."""
    if record.contrast_agent.lower() not in NO_AGENT:
        return "post"
    words = _words(record)
    if PRE_WORDS.search(words):
        return "pre"
    if POST_WORDS.search(words):
        return "post"
    return "unknown"


def _order(record: SeriesRecord) -> tuple[bool, float, str, int]:
    """Rank of a post-contrast candidate (rule 3): 3-D, thin, late; the largest wins."""
    thickness = record.slice_thickness_mm if record.slice_thickness_mm is not None else float("inf")
    return is_3d(record), -thickness, record.time, record.series_number or 0


def _when(record: SeriesRecord) -> tuple[str, int]:
    """Acquisition order of a series: acquisition time, then series number."""
    return record.time, record.series_number or 0


def pick_study(series: list[SeriesRecord]) -> tuple[SeriesRecord | None, str | None]:
    """Mark every series of one study with its verdict; returns the pick (or None) and why the study is ambiguous."""
    candidates = []
    for record in series:
        why = exclusion(record)
        if why:
            record.reason = why
            continue
        record.t1 = True
        record.contrast = contrast_evidence(record)
        candidates.append(record)
    ambiguous = None
    post = [r for r in candidates if r.contrast == "post"]
    unknown = [r for r in candidates if r.contrast == "unknown"]
    if not post and unknown:
        if any(r.contrast == "pre" for r in candidates):
            post = unknown
            ambiguous = "no contrast attribute on the T1 series not marked pre-contrast: taken as post-contrast"
        else:
            same: dict[str, list[SeriesRecord]] = {}
            for record in unknown:
                same.setdefault(record.description, []).append(record)
            post = [r for group in same.values() if len(group) > 1 for r in sorted(group, key=_when)[1:]]
            if post:
                ambiguous = (
                    "no contrast attribute: of T1 series sharing a description, the later taken as post-contrast"
                )
            else:
                post = unknown
                ambiguous = "no sign of contrast on any T1 series: a T1 series taken; check that it is post-contrast"
        for record in post:
            record.contrast = "post (assumed)"
    for record in candidates:
        if record not in post:
            record.reason = "pre-contrast T1" if record.contrast in ("pre", "unknown") else "T1 not post-contrast"
    if not post:
        return None, "no post-contrast T1 series"
    ranked = sorted(post, key=_order, reverse=True)
    best = ranked[0]
    best.picked = True
    best.reason = "picked: post-contrast T1, " + ("3-D" if is_3d(best) else "2-D")
    if best.slice_thickness_mm is not None:
        best.reason += f", {best.slice_thickness_mm:g} mm slices"
    for record in ranked[1:]:
        if _order(record)[:2] == _order(best)[:2]:
            record.reason = "post-contrast T1 acquired before the pick"
            ambiguous = ambiguous or f"{len(ranked)} equal post-contrast T1 series: the latest taken"
        else:
            record.reason = "post-contrast T1, " + ("2-D" if is_3d(best) and not is_3d(record) else "thicker slices")
    return best, ambiguous


@dataclass(frozen=True)
class SheetResult:
    """What `dicom_sheet` wrote: the sheet, the series table, and the ambiguous or unpicked studies."""

    sheet: pd.DataFrame
    series: pd.DataFrame
    ambiguous: list[str]
    skipped_files: int


SERIES_COLUMNS = [
    "patient_id",
    "timepoint",
    "picked",
    "reason",
    "series_number",
    "description",
    "series_uid",
    "folder",
    "modality",
    "slices",
    "acquisition",
    "slice_thickness_mm",
    "contrast_agent",
    "contrast",
    "t1",
    "repetition_ms",
    "echo_ms",
    "inversion_ms",
    "image_type",
    "time",
    "study_uid",
]


def dicom_sheet(root: str | os.PathLike[str]) -> SheetResult:
    """Pick each study's post-contrast T1 series under a DICOM root (headers only); the sheet and series tables."""
    records, skipped = read_tree(root)
    if not records:
        raise BrainmetsError(f"{root}: no DICOM files found under the folder")
    studies: dict[tuple[str, str], list[SeriesRecord]] = {}
    for record in records:
        studies.setdefault((record.patient_id, record.timepoint), []).append(record)
    rows, ambiguous = [], []
    for (patient, timepoint), series in sorted(studies.items()):
        if not timepoint:
            for record in series:
                record.reason = record.reason or "no StudyDate"
            ambiguous.append(f"{patient}: {len(series)} series without a StudyDate, left out")
            continue
        best, doubt = pick_study(series)
        if len({r.study_uid for r in series}) > 1:
            doubt = (doubt + "; " if doubt else "") + "several studies on one date: one pick for the date"
        if doubt:
            pick = f"picked #{best.series_number} {best.description!r}" if best else "nothing picked"
            ambiguous.append(f"{patient} {timepoint}: {doubt} ({pick})")
        if best is not None:
            rows.append(
                {"patient_id": patient, "timepoint": timepoint, "image": best.folder, "series_uid": best.series_uid}
            )
    table = pd.DataFrame([asdict(r) for r in records])[SERIES_COLUMNS]
    table = table.sort_values(["patient_id", "timepoint", "series_number"], na_position="last", kind="stable")
    sheet = pd.DataFrame(rows, columns=["patient_id", "timepoint", "image", "series_uid"])
    return SheetResult(sheet, table.reset_index(drop=True), ambiguous, skipped)


def series_table_path(sheet: str | os.PathLike[str]) -> Path:
    """The series table written beside a sheet: samples.tsv -> samples_series.tsv."""
    p = Path(sheet)
    return p.with_name(p.name.removesuffix(".tsv") + "_series.tsv")


#: columns of another sheet that `--add-from` never copies onto a DICOM study's row (they describe its own image)
OWN_COLUMNS = ("image", "series_uid", "mask")


def add_from(sheet: pd.DataFrame, other_path: str | os.PathLike[str]) -> pd.DataFrame:
    """The DICOM sheet plus another sheet's training rows and, for the same studies, its other columns.

    A study in both sheets (same patient_id and timepoint) keeps its DICOM image and series_uid and
    takes the other sheet's remaining columns (baseline, steroid_dose_mg, clinical_status, ...) except
    `mask`, which lies on the other image's grid.
    """
    from brainmets.samplesheet import _TRUE, read_sheet

    other = read_sheet(other_path)
    missing = {"patient_id", "timepoint", "image"} - set(other.columns)
    if missing:
        raise BrainmetsError(f"{other_path}: not a sample sheet (missing column(s) {', '.join(sorted(missing))})")
    flags = other["training"] if "training" in other else pd.Series("", index=other.index)
    training = other[flags.fillna("").astype(str).str.strip().str.lower().isin(_TRUE)]
    extra = [c for c in other.columns if c not in (*OWN_COLUMNS, "patient_id", "timepoint", "training")]
    merged = sheet.merge(other[["patient_id", "timepoint", *extra]], on=["patient_id", "timepoint"], how="left")
    return pd.concat([merged, training], ignore_index=True)


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of `brainmets dicom-sheet`."""
    parser.add_argument(
        "root", type=Path, nargs="?", help="root folder of the DICOM studies (searched recursively); or --dicomweb"
    )
    parser.add_argument("--out", type=Path, required=True, help="the sample sheet to write (tab-separated)")
    parser.add_argument(
        "--series-table",
        type=Path,
        default=None,
        help="table of every series and why it was or was not picked (default: beside the sheet, *_series.tsv)",
    )
    parser.add_argument(
        "--dicomweb", default=None, help="a DICOMweb archive URL to search (QIDO-RS) instead of a folder"
    )
    parser.add_argument(
        "--patient-id", action="append", default=[], help="PatientID to search the archive for (repeat)"
    )
    parser.add_argument("--since", default=None, help="with --dicomweb: first StudyDate, YYYY-MM-DD")
    parser.add_argument("--until", default=None, help="with --dicomweb: last StudyDate, YYYY-MM-DD")
    parser.add_argument("--config", type=Path, default=None, help="configuration whose dicomweb section applies")
    parser.add_argument(
        "--add-from",
        type=Path,
        default=None,
        metavar="SHEET",
        help="another sample sheet: its training rows are added, and its columns other than image and mask "
        "(baseline, steroid_dose_mg, clinical_status, ...) are copied onto the same studies",
    )


def run(args: argparse.Namespace) -> None:
    """Pick, write both tables and print a summary with the ambiguous studies."""
    from brainmets.io import write_tsv

    root, out = args.root, args.out
    if args.dicomweb:
        from brainmets.dicom.pacs_source import archive_sheet_command

        result = archive_sheet_command(args)
        root = args.dicomweb
    elif root is None:
        raise BrainmetsError("give the root folder of the DICOM studies, or --dicomweb URL with --patient-id")
    else:
        result = dicom_sheet(root)
    if result.sheet.empty:
        raise BrainmetsError(
            f"{root}: no post-contrast T1 series found in any study; see the rules in config/README.md"
        )
    table_path = args.series_table or series_table_path(out)
    sheet = add_from(result.sheet, args.add_from) if args.add_from else result.sheet
    write_tsv(result.series, table_path)
    write_tsv(sheet, out)
    studies = result.sheet["patient_id"].nunique()
    print(
        f"{out}: {len(result.sheet)} studies of {studies} patients, each with its post-contrast T1 series; "
        f"every series with the reason of its verdict in {table_path}"
    )
    if result.skipped_files:
        print(f"{result.skipped_files} files under {root} are not DICOM and were skipped")
    if result.ambiguous:
        print(f"{len(result.ambiguous)} ambiguous studies (check them; correct a pick by editing its sheet row):")
        for line in result.ambiguous:
            print(f"  {line}")
