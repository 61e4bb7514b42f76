"""Training cases on disk: one directory per scan holding the arrays the DALI reader reads.

CASE_DIR/data.npy   float32 (axis0, axis1, axis2, 3): z-scored image, lesion label (0/1), CE weight
CASE_DIR/case.json  patient id, spacing (mm), shape, lesion count and volume, source files
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from brainmets.components import label_lesions
from brainmets.errors import BrainmetsError
from brainmets.io import (
    atomic_path,
    check_same_grid,
    float_triple,
    int_triple,
    load_nifti,
    read_json,
    reading,
    voxel_spacing_mm,
    write_json,
)
from brainmets.train.settings import WeightMapSettings
from brainmets.train.weightmap import boundary_weight_map

DATA_FILE = "data.npy"
META_FILE = "case.json"
#: what to do about a label or weight map that is not on the preprocessed image's grid
RESAMPLE_FIX = "resample it onto the preprocessed image first"
#: channels of data.npy
IMAGE, LABEL, WEIGHT = 0, 1, 2


@dataclass(frozen=True)
class Case:
    """One prepared training case: its directory, patient and grid."""

    name: str
    path: Path
    patient: str
    spacing_mm: tuple[float, float, float]
    shape: tuple[int, int, int]

    @property
    def data_path(self) -> Path:
        """The (axis0, axis1, axis2, 3) float32 array of image, label and weights."""
        return self.path / DATA_FILE


def prepare_case(
    image_path: str | os.PathLike[str],
    label_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    patient: str | None = None,
    weights_path: str | os.PathLike[str] | None = None,
    params: WeightMapSettings | None = None,
) -> Case:
    """Stack a preprocessed image, its lesion label and boundary weights into CASE_DIR/data.npy + case.json."""
    out = Path(out_dir)
    image_img = load_nifti(image_path)
    label_img = load_nifti(label_path, allow_constant=True)
    check_same_grid(image_img, label_img, image_path, label_path, RESAMPLE_FIX)
    image = np.asarray(image_img.dataobj, dtype=np.float32)
    label = (np.asarray(label_img.dataobj) > 0).astype(np.float32)
    spacing = voxel_spacing_mm(image_img.affine)
    if weights_path is not None:
        weights_img = load_nifti(weights_path, allow_constant=True)
        check_same_grid(image_img, weights_img, image_path, weights_path, RESAMPLE_FIX)
        weights = np.asarray(weights_img.dataobj, dtype=np.float32)
        if weights.min() < 1.0:
            raise BrainmetsError(
                f"{weights_path}: weights below 1 (min {weights.min():.3g}); recompute with `brainmets weight-map`"
            )
    else:
        weights = boundary_weight_map(label, spacing, params)
    _, n_lesions = label_lesions(label)
    with atomic_path(out / DATA_FILE) as tmp:
        np.save(tmp, np.stack([image, label, weights], axis=-1))
    meta = {
        "patient": patient or out.name,
        "spacing_mm": [float(s) for s in spacing],
        "shape": [int(s) for s in image.shape],
        "lesions": int(n_lesions),
        "lesion_volume_mm3": float(label.sum() * np.prod(spacing)),
        "image": str(image_path),
        "label": str(label_path),
    }
    write_json(meta, out / META_FILE)
    return load_case(out)


def load_case(case_dir: str | os.PathLike[str]) -> Case:
    """Read a prepared case's description, checking that its data file exists."""
    path = Path(case_dir)
    meta = read_json(path / META_FILE)
    if not (path / DATA_FILE).is_file():
        raise BrainmetsError(f"{path / DATA_FILE}: file not found; rerun `brainmets prepare-case` for this case")
    try:
        return Case(
            path.name,
            path,
            str(meta["patient"]),
            float_triple(meta["spacing_mm"]),
            int_triple(meta["shape"]),
        )
    except (KeyError, TypeError, ValueError):
        raise BrainmetsError(
            f"{path / META_FILE}: missing patient, spacing_mm or shape; rerun `brainmets prepare-case`"
        ) from None


def list_cases(cases_dir: str | os.PathLike[str]) -> list[Case]:
    """Every prepared case (a sub-directory with case.json) under `cases_dir`, sorted by name."""
    root = Path(cases_dir)
    if not root.is_dir():
        raise BrainmetsError(f"{root}: directory of training cases not found; run `brainmets prepare-case` first")
    cases = [load_case(p.parent) for p in sorted(root.glob(f"*/{META_FILE}"))]
    if not cases:
        raise BrainmetsError(f"{root}: no prepared training cases (*/{META_FILE}); run `brainmets prepare-case` first")
    return cases


def read_image_and_label(case: Case) -> tuple[np.ndarray, np.ndarray]:
    """The case's z-scored image (float32) and binary label (uint8), both (axis0, axis1, axis2)."""
    with reading(case.data_path):
        data = np.load(case.data_path, mmap_mode="r")
    return np.asarray(data[..., IMAGE], dtype=np.float32), np.asarray(data[..., LABEL] > 0.5, dtype=np.uint8)
