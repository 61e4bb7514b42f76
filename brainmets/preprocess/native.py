"""The way between patient space and a scan's native grid (the grid of the file the user gave).

Label maps move through their signed distance (see `space.resample_labels`; nearest neighbour on
request), probability and uncertainty maps linearly; results on the native grid carry the input's
exact affine and shape, so they overlay the original image in any viewer.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import nibabel as nib
import numpy as np

from brainmets.errors import BrainmetsError
from brainmets.io import load_nifti, save_nifti
from brainmets.preprocess.pipeline import PATIENT_TO_SCAN, SCAN_TO_PATIENT, read_record
from brainmets.preprocess.registration import read_transform
from brainmets.preprocess.space import from_ants, from_ras, grid_image, resample_labels, to_ants

if TYPE_CHECKING:
    import ants

KINDS = ("label", "map")


def _check_kind(kind: str) -> None:
    """Refuse a kind of map other than label (integer labels) or map (continuous values)."""
    if kind not in KINDS:
        raise BrainmetsError(f"kind {kind!r} is unknown; use label (integer labels) or map (continuous values)")


def _move(
    data: np.ndarray,
    affine: np.ndarray,
    transform: ants.ANTsTransform,
    reference: ants.ANTsImage,
    kind: str,
    labels: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Resample RAS voxels with `transform` onto `reference`: labels by `labels` interpolation, maps linearly."""
    if kind == "label":
        return resample_labels(data, affine, transform, reference, interpolation=labels)
    return from_ants(transform.apply_to_image(to_ants(data, affine), reference, "linear"))


def _as_kind(data: np.ndarray, kind: str) -> np.ndarray:
    """Labels as the smallest fitting integer type, maps as float32."""
    if kind == "map":
        return data.astype(np.float32)
    labels = np.rint(data)
    return labels.astype(np.uint8 if labels.min() >= 0 and labels.max() < 256 else np.int32)


def check_patient_grid(affine: np.ndarray, shape: tuple[int, ...], scan_dir: str | os.PathLike[str], what: str) -> None:
    """Refuse a map that is neither on the scan's patient-space grid nor a crop of it."""
    patient = read_record(scan_dir)["patient_space"]
    full_affine = np.asarray(patient["affine"], float)
    offset = np.linalg.solve(full_affine, np.asarray(affine, float))
    start = offset[:3, 3]
    on_grid = np.allclose(offset[:3, :3], np.eye(3), atol=1e-4) and np.allclose(start, np.rint(start), atol=1e-3)
    inside = on_grid and np.all(np.rint(start) >= 0) and np.all(np.rint(start) + np.asarray(shape) <= patient["shape"])
    if not inside:
        raise BrainmetsError(
            f"{what}: not on the patient-space grid of {scan_dir} (nor a crop of it); "
            "pass a map produced in this patient's space"
        )


def to_native(
    data: np.ndarray,
    affine: np.ndarray,
    scan_dir: str | os.PathLike[str],
    *,
    kind: str = "label",
    labels: str = "distance",
) -> tuple[np.ndarray, np.ndarray]:
    """Map a patient-space array (full grid or a crop, RAS affine in mm) onto the scan's native grid.

    Returns the array in the native file's axis order and its exact native affine.
    """
    _check_kind(kind)
    record = read_record(scan_dir)
    native_affine = np.asarray(record["native"]["affine"], float)
    native_shape = tuple(record["native"]["shape"])
    transform = read_transform(Path(scan_dir) / PATIENT_TO_SCAN)
    moved, _ = _move(data, affine, transform, grid_image(native_affine, native_shape), kind, labels)
    native = from_ras(moved, native_affine)
    if native.shape != native_shape:  # cannot happen unless the record was edited by hand
        raise BrainmetsError(f"{scan_dir}: native grid in the record does not match; preprocess the scan again")
    return _as_kind(native, kind), native_affine


def to_patient(
    data: np.ndarray, scan_dir: str | os.PathLike[str], *, kind: str = "label", labels: str = "distance"
) -> tuple[np.ndarray, np.ndarray]:
    """Map an array on the scan's native grid into the patient's space; returns (array, RAS affine in mm)."""
    _check_kind(kind)
    record = read_record(scan_dir)
    native_affine = np.asarray(record["native"]["affine"], float)
    if tuple(data.shape) != tuple(record["native"]["shape"]):
        raise BrainmetsError(
            f"array of shape {data.shape} is not on the native grid {tuple(record['native']['shape'])} of {scan_dir}"
        )
    ras = nib.as_closest_canonical(nib.Nifti1Image(np.asarray(data, np.float32), native_affine))
    patient = record["patient_space"]
    transform = read_transform(Path(scan_dir) / SCAN_TO_PATIENT)
    reference = grid_image(np.asarray(patient["affine"], float), tuple(patient["shape"]))
    result, affine = _move(np.asarray(ras.dataobj), ras.affine, transform, reference, kind, labels)
    return _as_kind(result, kind), affine


def file_to_native(
    map_path: str | os.PathLike[str], scan_dir: str | os.PathLike[str], *, kind: str = "label", labels: str = "distance"
) -> tuple[np.ndarray, np.ndarray]:
    """Load a patient-space NIfTI map (refusing one off the patient grid) and return it on the native grid."""
    _check_kind(kind)
    img = load_nifti(map_path, allow_constant=True)
    check_patient_grid(img.affine, img.shape, scan_dir, str(map_path))
    return to_native(np.asarray(img.get_fdata(dtype=np.float32)), img.affine, scan_dir, kind=kind, labels=labels)


def maps_to_native(
    jobs: Sequence[tuple[str | os.PathLike[str], str, str | os.PathLike[str]]],
    scan_dir: str | os.PathLike[str],
    *,
    labels: str = "distance",
) -> list[Path]:
    """Move each (map, kind, out) onto the native grid; every map is checked before any file is written."""
    results = [(file_to_native(source, scan_dir, kind=kind, labels=labels), out) for source, kind, out in jobs]
    return [save_nifti(data, affine, out) for (data, affine), out in results]


def map_file_to_native(
    map_path: str | os.PathLike[str],
    scan_dir: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    kind: str = "label",
) -> Path:
    """Write a patient-space NIfTI map resampled onto the scan's native grid (atomic); returns `out`."""
    data, affine = file_to_native(map_path, scan_dir, kind=kind)
    return save_nifti(data, affine, out)
