"""One scan's preprocessing, end to end: the files a scan directory holds and how they are made.

Steps: load + validate, reorient to RAS, resample to `spacing_mm`, brain extraction (or, for input
that is already skull-stripped, its brain as given), N4 inside the
brain, registration to the baseline (follow-ups only), everything resampled once into patient space,
z-score over the brain, crop to the brain with remembered offsets, QC picture, JSON record.
Nothing is written until every step succeeded; each file is written atomically and the JSON
record, written last, marks a complete scan directory.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from brainmets import __version__
from brainmets.errors import BrainmetsError, raise_if_fault
from brainmets.io import load_nifti, same_grid, save_nifti, voxel_spacing_mm, voxel_volume_ml, write_json
from brainmets.preprocess.intensity import n4_correct, zscore_over_brain
from brainmets.preprocess.registration import identity_transform, register_to_baseline, write_transform
from brainmets.preprocess.settings import PreprocessSettings
from brainmets.preprocess.skullstrip import brain_mask, stripped_input_brain
from brainmets.preprocess.space import (
    Scan,
    bounding_box,
    crop,
    from_ants,
    load_scan,
    resample_labels,
    resample_to_spacing,
    to_ants,
)
from brainmets.terminal import clear_stage, show_stage

if TYPE_CHECKING:
    import ants

#: files of a preprocessed scan directory (all in patient space unless stated)
IMAGE = "t1ce.nii.gz"  # N4-corrected T1-CE, whole head
BRAIN = "brain.nii.gz"  # the same, skull-stripped (background 0)
BRAIN_MASK = "brain_mask.nii.gz"  # brain mask, 0/1
ZSCORE = "t1ce_zscore.nii.gz"  # network input: z-scored over the brain, cropped to the brain box
TRUTH = "lesions.nii.gz"  # only with --mask: ground-truth labels on the grid of ZSCORE (training pairs)
SCAN_TO_PATIENT = "to_patient_space.mat"  # ANTs affine: pulls native-space images into patient space
PATIENT_TO_SCAN = "from_patient_space.mat"  # its inverse: pulls patient-space maps onto the native grid
QC_PICTURE = "preprocessing_qc.png"  # three planes, brain-mask outline over the image
RECORD = "preprocessing.json"  # what was done: grids, crop offsets, transforms, settings, timings

#: a voxel of the resampled grid belongs to a given (already skull-stripped) brain when the brain's
#: linear interpolation there reaches this: below 0.5 so that the mask keeps >= 99 % of the given brain
#: on a coarser grid (BraTS-METS case at 1.5 mm: 99.8 % of it, with 0.5: 98.8 %)
GIVEN_BRAIN_MIN_FRACTION = 0.25

RECORD_FORMAT = "brainmets-preprocess"
RECORD_VERSION = 1


#: the steps of preprocessing in a user's words
STAGES = {
    "load": "reading the scan",
    "resample": "reorienting to RAS and resampling",
    "skullstrip": "brain extraction",
    "n4": "bias-field correction (N4)",
    "register": "registration to the baseline",
    "to_patient": "resampling into patient space",
    "normalise": "intensity normalisation (z-score)",
    "write": "writing the files",
}


@contextmanager
def _timed(timings: dict[str, float], step: str) -> Iterator[None]:
    """Add the wall-clock seconds of the enclosed block to timings[step]; a terminal shows the stage meanwhile."""
    show_stage(f"preprocessing: {STAGES.get(step, step)} ...")
    start = time.perf_counter()
    try:
        yield
    finally:
        clear_stage()
    timings[step] = round(timings.get(step, 0.0) + time.perf_counter() - start, 3)


def read_record(scan_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The preprocessing record of a scan directory, refusing a missing or foreign one."""
    path = Path(scan_dir) / RECORD
    if not path.is_file():
        raise BrainmetsError(f"{path}: not found; run `brainmets preprocess IMAGE --out-dir {scan_dir}` first")
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise_if_fault(error, path, "cannot read")
        raise BrainmetsError(f"{path}: not readable JSON ({error}); preprocess the scan again") from None
    if (
        not isinstance(record, dict)
        or record.get("format") != RECORD_FORMAT
        or record.get("format_version") != RECORD_VERSION
    ):
        raise BrainmetsError(f"{path}: not a {RECORD_FORMAT} v{RECORD_VERSION} record; preprocess the scan again")
    return record


def load_truth(mask_path: str | os.PathLike[str], scan: Scan) -> Scan:
    """Load a ground-truth label map that must lie on the scan's native grid and hold integer labels >= 0."""
    truth = load_scan(mask_path, allow_constant=True)
    if not same_grid(truth.native_affine, truth.native_shape, scan.native_affine, scan.native_shape):
        raise BrainmetsError(
            f"{mask_path}: grid (shape {truth.native_shape}) differs from the image {scan.path} "
            f"(shape {scan.native_shape}) or its affine does; the mask must be drawn on the image's own grid"
        )
    if truth.data.min() < 0 or not np.array_equal(truth.data, np.round(truth.data)):
        raise BrainmetsError(f"{mask_path}: labels must be integers >= 0 (0 background); found other values")
    return truth


def _load_baseline(baseline_dir: str | os.PathLike[str]) -> tuple[dict[str, Any], ants.ANTsImage]:
    """The baseline's record and its skull-stripped image in patient space (the registration target)."""
    record = read_record(baseline_dir)
    if record.get("baseline") is not None:
        raise BrainmetsError(
            f"{baseline_dir}: this scan was itself registered to {record['baseline']}; "
            "pass the patient's baseline folder"
        )
    brain = load_nifti(Path(baseline_dir) / BRAIN)
    return record, to_ants(np.asarray(brain.get_fdata(dtype=np.float32)), brain.affine)


@dataclass
class PatientSpace:
    """One scan moved into patient space: image, brain mask and ground truth on one grid, and the move."""

    image: np.ndarray  # float32, bias-corrected, whole head
    brain: np.ndarray  # bool
    truth: np.ndarray | None  # integer labels, when a ground-truth mask was given
    affine: np.ndarray  # 4x4 voxel-to-world (mm) of the patient space
    transform: ants.ANTsTransform  # pulls native-space images into patient space


@dataclass
class NetworkInput:
    """The network's input: the z-scored brain crop, where it lies in patient space and the brain's statistics."""

    zscore: np.ndarray  # float32
    affine: np.ndarray  # 4x4 voxel-to-world (mm) of the crop
    start: list[int]  # first voxel of the crop in patient space
    stop: list[int]  # one past its last voxel
    mean: float  # brain mean of the image before the z-score
    std: float  # brain standard deviation of the image before the z-score


def extract_brain(
    scan: Scan, grid_data: np.ndarray, grid_affine: np.ndarray, settings: PreprocessSettings
) -> tuple[np.ndarray, str]:
    """Brain mask (bool) of a scan on its resampled grid (affine in mm), and how it was found.

    An input that is skull-stripped already (declared or detected) keeps its own brain, carried onto the
    grid like the image; any other input goes through the configured stripper. Under 100 mL of brain is
    refused.
    """
    given = stripped_input_brain(scan.data, scan.affine, settings.skull_stripped, str(scan.path))
    if given is None:
        inside = brain_mask(grid_data, grid_affine, settings.skullstrip)
        extraction = settings.skullstrip.method
    else:
        carried = from_ants(resample_to_spacing(to_ants(given.astype(np.float32), scan.affine), settings.spacing_mm))[0]
        inside = carried >= GIVEN_BRAIN_MIN_FRACTION
        extraction = "given: skull-stripped input, " + ("declared" if settings.skull_stripped else "detected")
    if inside.sum() * np.prod(voxel_spacing_mm(grid_affine)) < 100_000:  # < 100 mL: no plausible brain
        raise BrainmetsError(
            f"{scan.path}: brain extraction ({extraction}) found under 100 mL of brain; "
            "check that the image is a T1-weighted head MRI"
        )
    return inside, extraction


def to_patient_space(
    corrected: ants.ANTsImage,
    brain: ants.ANTsImage,
    truth: Scan | None,
    baseline: ants.ANTsImage | None,
    settings: PreprocessSettings,
    timings: dict[str, float],
) -> PatientSpace:
    """Register a scan to its baseline's brain and resample image, brain mask and truth labels into patient space.

    Without a baseline the scan is one and its own grid is patient space. `corrected` and `brain` lie on
    the scan's resampled grid; `truth` on its native grid. Adds the seconds of the `register` and
    `to_patient` steps to `timings`.
    """
    with _timed(timings, "register"):
        if baseline is None:
            transform, patient_grid = identity_transform(), corrected
        else:
            transform = register_to_baseline(
                corrected * brain, baseline, settings.registration, settings.registration_grid_mm
            )
            patient_grid = baseline
    with _timed(timings, "to_patient"):
        image, affine = from_ants(transform.apply_to_image(corrected, patient_grid, "linear"))
        inside = from_ants(transform.apply_to_image(brain, patient_grid, "linear"))[0] > 0.5
        labels = None
        if truth is not None:
            # training labels as published: nearest neighbour, so each patient-space voxel keeps a label it had
            labels = resample_labels(truth.data, truth.affine, transform, patient_grid, interpolation="nearest")[0]
    return PatientSpace(image, inside, labels, affine, transform)


def network_input(space: PatientSpace, margin_vox: int) -> NetworkInput:
    """The image z-scored over the brain and cropped to the brain, widened by `margin_vox` voxels.

    The crop keeps every labelled voxel too, so that image and truth share one grid.
    """
    zscored, mean, std = zscore_over_brain(space.image, space.brain)
    keep = space.brain if space.truth is None else space.brain | (space.truth > 0)
    start, stop = bounding_box(keep, margin_vox)
    data, affine = crop(zscored, space.affine, start, stop)
    return NetworkInput(data, affine, start, stop, mean, std)


def write_scan_files(out: Path, space: PatientSpace, net: NetworkInput, title: str) -> None:
    """Write a scan directory's images, network input, truth crop, both transforms and QC picture (named above)."""
    from brainmets.figures import three_plane_figure

    save_nifti(space.image.astype(np.float32), space.affine, out / IMAGE)
    save_nifti(np.where(space.brain, space.image, 0).astype(np.float32), space.affine, out / BRAIN)
    save_nifti(space.brain.astype(np.uint8), space.affine, out / BRAIN_MASK)
    save_nifti(net.zscore, net.affine, out / ZSCORE)
    if space.truth is not None:
        truth_crop = crop(space.truth, space.affine, net.start, net.stop)[0]
        save_nifti(truth_crop.astype(np.uint8 if space.truth.max() < 256 else np.int32), net.affine, out / TRUTH)
    write_transform(space.transform, out / SCAN_TO_PATIENT)
    write_transform(space.transform.invert(), out / PATIENT_TO_SCAN)
    three_plane_figure(
        space.image,
        out / QC_PICTURE,
        spacing_mm=tuple(voxel_spacing_mm(space.affine)),
        outline=space.brain,
        title=title,
    )


def scan_record(
    scan: Scan,
    space: PatientSpace,
    net: NetworkInput,
    *,
    mask: str | os.PathLike[str] | None,
    baseline_dir: str | os.PathLike[str] | None,
    extraction: str,
    settings: PreprocessSettings,
    timings: dict[str, float],
) -> dict[str, Any]:
    """The JSON record of a scan directory: inputs, grids (mm), crop, files, brain, z-score, settings, timings (s)."""
    return {
        "format": RECORD_FORMAT,
        "format_version": RECORD_VERSION,
        "brainmets_version": __version__,
        "image": str(scan.path),
        "mask": None if mask is None else str(mask),
        "baseline": None if baseline_dir is None else str(baseline_dir),
        "native": {
            "shape": list(scan.native_shape),
            "affine": np.asarray(scan.native_affine).tolist(),
            "spacing_mm": voxel_spacing_mm(scan.native_affine).round(6).tolist(),
        },
        "patient_space": {
            "shape": list(space.image.shape),
            "affine": space.affine.tolist(),
            "spacing_mm": voxel_spacing_mm(space.affine).round(6).tolist(),
        },
        "crop": {"start": net.start, "stop": net.stop},
        "files": {
            "image": IMAGE,
            "brain": BRAIN,
            "brain_mask": BRAIN_MASK,
            "zscore": ZSCORE,
            "truth": TRUTH if space.truth is not None else None,
            "scan_to_patient": SCAN_TO_PATIENT,
            "patient_to_scan": PATIENT_TO_SCAN,
            "qc_picture": QC_PICTURE,
        },
        "brain_extraction": extraction,
        "brain_volume_ml": round(float(space.brain.sum()) * voxel_volume_ml(voxel_spacing_mm(space.affine)), 3),
        "zscore": {"brain_mean": net.mean, "brain_std": net.std},
        "settings": asdict(settings),
        "timings_s": timings,
    }


def preprocess_scan(
    image: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    settings: PreprocessSettings | None = None,
    mask: str | os.PathLike[str] | None = None,
    baseline_dir: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Preprocess one T1-CE scan into `out_dir` (files named above); returns the JSON record written.

    Without `baseline_dir` the scan is a baseline and its resampled grid becomes patient space;
    with it, the scan is registered to that baseline and resampled onto its grid.
    """
    settings = settings or PreprocessSettings()
    out = Path(out_dir)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    if baseline_dir is not None and Path(baseline_dir).resolve() == out.resolve():
        raise BrainmetsError(f"{out}: a scan cannot be its own baseline; leave out --baseline for the baseline scan")
    with _timed(timings, "load"):
        scan = load_scan(image)
        truth = load_truth(mask, scan) if mask is not None else None
        baseline = _load_baseline(baseline_dir)[1] if baseline_dir is not None else None
    with _timed(timings, "resample"):
        resampled = resample_to_spacing(to_ants(scan.data, scan.affine), settings.spacing_mm)
        grid_data, grid_affine = from_ants(resampled)
    with _timed(timings, "skullstrip"):
        inside, extraction = extract_brain(scan, grid_data, grid_affine, settings)
    mask_image = to_ants(inside.astype(np.float32), grid_affine)
    with _timed(timings, "n4"):
        corrected = (
            n4_correct(
                resampled, mask_image, shrink_factor=settings.n4_shrink_factor, iterations=settings.n4_iterations
            )
            if settings.n4
            else resampled
        )
    space = to_patient_space(corrected, mask_image, truth, baseline, settings, timings)
    with _timed(timings, "normalise"):
        net = network_input(space, settings.crop_margin_vox)
    with _timed(timings, "write"):
        write_scan_files(out, space, net, f"{scan.path.name}: brain mask ({extraction})")
    timings["total"] = round(time.perf_counter() - start, 3)
    record = scan_record(
        scan,
        space,
        net,
        mask=mask,
        baseline_dir=baseline_dir,
        extraction=extraction,
        settings=settings,
        timings=timings,
    )
    write_json(record, out / RECORD)
    return record
