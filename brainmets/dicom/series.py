"""A folder holding one DICOM series as a scan: found and checked from its headers, converted with dcm2niix.

`find_series` reads every file's header (pydicom, no pixel data), groups the files by
SeriesInstanceUID and refuses, in one line naming the folder, what is not one 3-D image volume: an
empty folder, unreadable files, several series (unless one is chosen by its UID), a non-image object
(SR, SEG, presentation state), a localiser, a 4-D series, missing or unevenly spaced slices.
`convert_series` then converts the series with dcm2niix in a temporary folder and moves the image and
dcm2niix's sidecar JSON into place (each atomically), so a refused or killed conversion leaves nothing
half-written beside the output.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from brainmets.errors import BrainmetsError

#: sidecar of a converted image: same name with .json instead of .nii.gz
SIDECAR_SUFFIX = ".json"
#: relative deviation of a slice gap from the median gap that counts as uneven (missing slice, mixed stacks)
GAP_TOLERANCE = 0.01
#: largest |difference| of orientation cosines between slices of one stack
ORIENTATION_TOLERANCE = 1e-3
#: files every DICOM export may hold beside the series: skipped, not refused
IGNORED_NAMES = {"DICOMDIR", "LOCKFILE", "VERSION"}
#: ImageType values that mark a localiser (scout) image
LOCALISER_TYPES = {"LOCALIZER", "SCOUT", "SURVEY"}
#: modalities of objects that are not images
NON_IMAGE_MODALITIES = {"SR", "SEG", "PR", "KO", "RTSTRUCT", "RTPLAN", "RTDOSE", "REG", "DOC", "PLAN", "OT"}


@dataclass(frozen=True)
class Slice:
    """One image plane of a series: its file, frame, position and orientation (LPS mm), size and ImageType."""

    path: Path
    frame: int
    position: tuple[float, ...] | None
    orientation: tuple[float, ...] | None
    size: tuple[int, int]
    image_type: tuple[str, ...]


@dataclass
class Series:
    """One DICOM series of a folder, from its files' headers."""

    uid: str
    number: str
    description: str
    modality: str
    sop_class: str
    files: list[Path] = field(default_factory=list)
    slices: list[Slice] = field(default_factory=list)
    temporal_positions: int = 1

    def label(self) -> str:
        """'#<number> "<description>" (<uid>)', how a user recognises the series."""
        return f'#{self.number or "?"} "{self.description}" ({self.uid})'


def is_dicom_folder(path: str | os.PathLike[str]) -> bool:
    """Whether a scan path names a folder (taken as a DICOM series) rather than a NIfTI file."""
    return os.path.isdir(path)


def dicom_files(folder: str | os.PathLike[str]) -> Iterator[Path]:
    """Every regular file under a folder (recursively, sorted), hidden files and DICOMDIR-like indexes left out."""
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if not name.startswith(".") and name.upper() not in IGNORED_NAMES:
                yield Path(root, name)


def _floats(value: object) -> tuple[float, ...] | None:
    """A multi-valued numeric DICOM attribute as floats, or None when absent or malformed."""
    if value is None:
        return None
    try:
        return tuple(float(v) for v in value)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        return None


def _frame_geometry(ds: object) -> list[tuple[tuple[float, ...] | None, tuple[float, ...] | None]]:
    """(position, orientation) of each frame of an enhanced multi-frame image, from its functional groups."""
    shared = getattr(ds, "SharedFunctionalGroupsSequence", [None])[0]
    frames = getattr(ds, "PerFrameFunctionalGroupsSequence", [])
    geometry = []
    for item in frames:
        position = orientation = None
        for group in (item, shared):
            if group is None:
                continue
            if position is None and "PlanePositionSequence" in group:
                position = _floats(group.PlanePositionSequence[0].get("ImagePositionPatient"))
            if orientation is None and "PlaneOrientationSequence" in group:
                orientation = _floats(group.PlaneOrientationSequence[0].get("ImageOrientationPatient"))
        geometry.append((position, orientation))
    return geometry


def read_series(folder: str | os.PathLike[str]) -> list[Series]:
    """The DICOM series of a folder (recursively), ordered by series number, from headers only.

    Refused: a missing or empty folder, and files that are not readable DICOM.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    root = Path(folder)
    if not root.is_dir():
        raise BrainmetsError(f"{root}: DICOM folder not found; give the folder that holds the series' files")
    series: dict[str, Series] = {}
    unreadable: list[tuple[Path, str]] = []
    for path in dicom_files(root):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            uid = str(ds.SeriesInstanceUID)
        except (InvalidDicomError, AttributeError, OSError, ValueError, EOFError, KeyError) as error:
            unreadable.append((path, str(error).splitlines()[0] if str(error) else type(error).__name__))
            continue
        sop_class = str(ds.get("SOPClassUID", ""))
        entry = series.setdefault(
            uid,
            Series(
                uid=uid,
                number=str(ds.get("SeriesNumber", "") or ""),
                description=str(ds.get("SeriesDescription", "") or ""),
                modality=str(ds.get("Modality", "") or ""),
                sop_class=sop_class,
            ),
        )
        entry.files.append(path)
        entry.temporal_positions = max(entry.temporal_positions, int(ds.get("NumberOfTemporalPositions", 1) or 1))
        if "Rows" not in ds or "Columns" not in ds:
            continue  # not an image: no slices
        size = (int(ds.Rows), int(ds.Columns))
        image_type = tuple(str(v).upper() for v in (ds.get("ImageType") or []))
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        if frames > 1 and "PerFrameFunctionalGroupsSequence" in ds:
            for frame, (position, orientation) in enumerate(_frame_geometry(ds)):
                entry.slices.append(Slice(path, frame, position, orientation, size, image_type))
        else:
            position = _floats(ds.get("ImagePositionPatient"))
            orientation = _floats(ds.get("ImageOrientationPatient"))
            for frame in range(frames):
                entry.slices.append(Slice(path, frame, position, orientation, size, image_type))
    if unreadable:
        path, problem = unreadable[0]
        more = f" and {len(unreadable) - 1} more" if len(unreadable) > 1 else ""
        raise BrainmetsError(
            f"{root}: {path.relative_to(root)}{more} not readable as DICOM ({problem}); "
            "remove files that are not part of the series or export the series again"
        )
    if not series:
        raise BrainmetsError(f"{root}: empty: no DICOM files in the folder; give the folder that holds the series")

    def number(s: Series) -> tuple[float, str]:
        """Sort key: series number (numeric), then UID."""
        try:
            return float(s.number), s.uid
        except ValueError:
            return float("inf"), s.uid

    return sorted(series.values(), key=number)


def _sop_class_name(uid: str) -> str:
    """The SOP class's name (e.g. 'Comprehensive SR Storage'), or its UID when unknown."""
    from pydicom.uid import UID

    name = UID(uid).name if uid else ""
    return name or uid or "unknown SOP class"


def check_volume(folder: Path, series: Series) -> None:
    """Refuse a series that is not one 3-D image volume: non-image, localiser, 4-D, missing or uneven slices."""
    where = f"{folder}: series {series.label()}"
    if not series.slices or series.modality.upper() in NON_IMAGE_MODALITIES:
        raise BrainmetsError(
            f"{where} is not an image ({series.modality or '?'}: {_sop_class_name(series.sop_class)}); "
            "give the folder of the T1-CE image series"
        )
    if any(LOCALISER_TYPES & set(s.image_type) for s in series.slices):
        raise BrainmetsError(f"{where} is a localiser (ImageType LOCALIZER); give the T1-CE image series instead")
    if any(s.position is None or s.orientation is None or len(s.orientation) != 6 for s in series.slices):
        raise BrainmetsError(
            f"{where}: slices without ImagePositionPatient/ImageOrientationPatient; "
            "the series has no 3-D geometry (export it again from the scanner or PACS)"
        )
    orientations = np.array([s.orientation for s in series.slices], dtype=float)
    if np.abs(orientations - orientations[0]).max() > ORIENTATION_TOLERANCE:
        raise BrainmetsError(
            f"{where}: slices in different orientations (a localiser or several stacks); "
            "give a series of parallel slices"
        )
    if len({s.size for s in series.slices}) > 1:
        raise BrainmetsError(f"{where}: slices of different sizes; give a series of equal slices")
    normal = np.cross(orientations[0][:3], orientations[0][3:])
    positions_mm = np.array([s.position for s in series.slices], dtype=float)
    along = positions_mm @ normal
    counts: Counter[float] = Counter(float(v) for v in np.round(along, 3))
    repeats = set(counts.values())
    if series.temporal_positions > 1 or repeats - {1}:
        volumes = max(series.temporal_positions, max(repeats))
        raise BrainmetsError(
            f"{where} is 4-D ({volumes} volumes: several slices at each position, e.g. dynamic, multi-echo "
            "or diffusion); give a 3-D T1-CE series"
        )
    if len(along) < 3:
        raise BrainmetsError(f"{where}: only {len(along)} slice(s); a 3-D scan needs a stack of slices")
    positions = np.sort(along)
    gaps = np.diff(positions)
    usual = float(np.median(gaps))
    uneven = np.abs(gaps - usual) > GAP_TOLERANCE * usual
    if uneven.any():
        first = int(np.argmax(uneven))
        missing = int(round(float(gaps.sum()) / usual)) + 1 - len(positions)
        hint = f", {missing} slice(s) missing?" if missing > 0 else ""
        raise BrainmetsError(
            f"{where}: uneven slice spacing: {gaps[first]:.3g} mm between slices {first + 1} and {first + 2} "
            f"where the others are {usual:.3g} mm apart{hint}; export the complete series again"
        )


def find_series(folder: str | os.PathLike[str], series_uid: str | None = None) -> Series:
    """The one 3-D image series of a folder (or the one with `series_uid`), checked from headers only."""
    root = Path(folder)
    found = read_series(root)
    if series_uid:
        chosen = [s for s in found if s.uid == series_uid]
        if not chosen:
            listed = "; ".join(s.label() for s in found)
            raise BrainmetsError(f"{root}: no series with UID {series_uid}; the folder holds: {listed}")
        series = chosen[0]
    elif len(found) > 1:
        listed = "; ".join(s.label() for s in found)
        raise BrainmetsError(
            f"{root}: {len(found)} series in one folder: {listed}; choose one by its UID "
            "(sample sheet column series_uid, or `brainmets segment --series-uid UID`)"
        )
    else:
        series = found[0]
    check_volume(root, series)
    return series


def dcm2niix_command() -> str:
    """Path of the dcm2niix program: the Python environment's (PyPI wheel) first, else the one on PATH."""
    beside = Path(sys.executable).parent / "dcm2niix"
    found = str(beside) if beside.is_file() else shutil.which("dcm2niix")
    if not found:
        raise BrainmetsError("dcm2niix not found; install the Python package dcm2niix (pip install dcm2niix)")
    return found


def sidecar_path(image: str | os.PathLike[str]) -> Path:
    """dcm2niix's JSON sidecar beside a converted image: t1ce.nii.gz -> t1ce.json."""
    p = Path(image)
    name = p.name
    for suffix in (".nii.gz", ".nii"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return p.with_name(name + SIDECAR_SUFFIX)


def convert_series(
    folder: str | os.PathLike[str], out_image: str | os.PathLike[str], series_uid: str | None = None
) -> Path:
    """Convert a folder's DICOM series to a NIfTI image at `out_image` (.nii.gz) with dcm2niix, its sidecar beside it.

    The series is found and checked first (`find_series`); dcm2niix runs in a temporary folder on
    links to the series' files alone, and the image and sidecar are moved into place only when it made
    exactly one 3-D image. The sidecar keeps the UIDs and dates, not the patient name or id (dcm2niix -ba o).
    Returns the image's path.
    """
    from brainmets.io import atomic_path, load_nifti

    root = Path(folder)
    out = Path(out_image)
    if not out.name.endswith(".nii.gz"):
        raise BrainmetsError(f"{out}: the converted image's name must end in .nii.gz")
    series = find_series(root, series_uid)
    with tempfile.TemporaryDirectory(prefix="brainmets-dicom-") as tmp:
        source, made = Path(tmp, "series"), Path(tmp, "nifti")
        source.mkdir()
        made.mkdir()
        for index, path in enumerate(series.files):
            os.symlink(path.resolve(), source / f"{index:06d}.dcm")
        command = [dcm2niix_command(), "-g", "i", "-z", "y", "-b", "y", "-ba", "o", "-x", "n", "-f", "image"]
        result = subprocess.run([*command, "-o", str(made), str(source)], capture_output=True, text=True)
        images = sorted(made.glob("*.nii.gz"))
        if result.returncode != 0 or not images:
            lines = [ln for ln in (result.stderr + result.stdout).splitlines() if "rror" in ln or "arning" in ln]
            said = lines[-1].strip() if lines else f"exit status {result.returncode}"
            raise BrainmetsError(f"{root}: dcm2niix could not convert series {series.label()} ({said})")
        if len(images) > 1:
            raise BrainmetsError(
                f"{root}: dcm2niix made {len(images)} images of series {series.label()} "
                f"({', '.join(p.name for p in images)}: several echoes or volumes); give a 3-D T1-CE series"
            )
        try:
            load_nifti(images[0])
        except BrainmetsError as error:
            problem = str(error).split(": ", 1)[-1]
            raise BrainmetsError(f"{root}: series {series.label()} converted to {problem}") from None
        sidecar = sidecar_path(images[0])
        # sidecar first, image last: an image in place means a complete conversion
        if sidecar.is_file():
            with atomic_path(sidecar_path(out)) as part:
                shutil.copyfile(sidecar, part)
        with atomic_path(out) as part:
            shutil.copyfile(images[0], part)
    return out
