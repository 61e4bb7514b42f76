"""Whole scans to results without the workflow: preprocessing, ensemble inference, uncertainty, native maps.

Each scan is preprocessed on its own (it is its own baseline, so patient space is its resampled grid),
predicted with the loaded model (loaded once for all scans) and every map is resampled onto the
scan's native grid:

    OUT_DIR/<scan>/                  the preprocessing stage's files (t1ce_zscore.nii.gz, brain_mask.nii.gz, ...)
    OUT_DIR/<scan>/<map>.nii.gz      probability, segmentation and uncertainty maps in patient space
    OUT_DIR/<scan>/lesions.tsv       one row per lesion
    OUT_DIR/<scan>/native/<map>.nii.gz   the same maps and the brain mask on the input file's grid
                                         (same affine and shape)

<scan> is the input file name without .nii/.nii.gz, prefixed with its parent folders (joined by _)
as far as needed to tell the inputs apart (.../P01/2024-01-15/t1ce.nii.gz -> 2024-01-15_t1ce).

An input that is a folder holding a DICOM series is converted first (dcm2niix) to
OUT_DIR/<scan>/source/t1ce.nii.gz (+ t1ce.json, dcm2niix's sidecar), <scan> being the folder's name; that
image is the scan, and `native/` is on its grid (the source series' grid). Its results are also
written as DICOM objects that reference the series (`brainmets.export.dicom`):

    OUT_DIR/<scan>/dicom/{segmentation,measurements,probability,total_entropy}.dcm
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

from brainmets.errors import BrainmetsError
from brainmets.inference.pipeline import LABEL_MAPS, LESIONS, MAP_FILES, SEGMENTATION, Segmenter, predict_scan
from brainmets.io import read_nifti_header
from brainmets.preprocess.settings import PreprocessSettings

log = logging.getLogger(__name__)

NATIVE_DIR = "native"
#: where the DICOM objects of a DICOM input go inside its scan folder
DICOM_DIR = "dicom"


#: where a DICOM input's converted image goes inside its scan folder
SOURCE_IMAGE = "source/t1ce.nii.gz"


def _strip_nifti(name: str, path: str | os.PathLike[str]) -> str:
    """A file name without .nii or .nii.gz (a DICOM folder's name as it is)."""
    if os.path.isdir(path):
        return name
    for suffix in (".nii.gz", ".nii"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    raise BrainmetsError(f"{path}: not a NIfTI file name (expected .nii or .nii.gz)")


def scan_names(paths: Sequence[str | os.PathLike[str]]) -> list[str]:
    """Result folder names: the file name without .nii/.nii.gz, after as many parent folders as make them unique."""
    resolved = [Path(p).resolve() for p in paths]
    if len(set(resolved)) < len(resolved):
        raise BrainmetsError("the same scan is given twice; give each input once")
    stems = [_strip_nifti(p.name, p) for p in resolved]
    for depth in range(max(len(p.parts) for p in resolved)):
        names = [
            "_".join([*p.parent.parts[len(p.parent.parts) - depth :], stem])
            for p, stem in zip(resolved, stems, strict=True)
        ]
        if len(set(names)) == len(names):
            return names
    raise BrainmetsError("input scans cannot be told apart by their paths")  # unreachable: paths are unique


def native_maps(scan_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Resample a predicted scan's patient-space maps and brain mask onto its native grid in `native/`; name -> path."""
    from brainmets.preprocess.native import map_file_to_native
    from brainmets.preprocess.pipeline import BRAIN_MASK

    root = Path(scan_dir)
    files, labels = {**MAP_FILES, "brain_mask": BRAIN_MASK}, (*LABEL_MAPS, "brain_mask")
    return {
        name: map_file_to_native(
            root / filename, root, root / NATIVE_DIR / filename, kind="label" if name in labels else "map"
        )
        for name, filename in files.items()
    }


def ensemble_size(segmenter: Segmenter) -> int:
    """Members the segmenter averages per scan: folds x mirrorings (folds alone count for the published recipe)."""
    from brainmets.inference.ensemble import mirror_combinations

    if segmenter.settings.recipe == "published":
        return len(segmenter.predictors)
    return len(segmenter.predictors) * len(mirror_combinations(segmenter.settings.mirror_axes))


def segment_scans(
    images: Sequence[str | os.PathLike[str]],
    segmenter: Segmenter,
    out_dir: str | os.PathLike[str],
    preprocess_settings: PreprocessSettings,
    series_uids: Sequence[str] = (),
) -> dict[str, Path]:
    """Preprocess, predict and map back each scan into OUT_DIR/<scan>/; returns scan name -> folder.

    A DICOM folder's series is the one of `series_uids` it holds, else its only series.
    """
    from brainmets.dicom.series import convert_series, find_series, read_series
    from brainmets.preprocess.pipeline import BRAIN_MASK, ZSCORE, preprocess_scan

    chosen: dict[int, str | None] = {}
    for index, image in enumerate(images):  # every input's header before anything is written
        if os.path.isdir(image):
            held = [s.uid for s in read_series(image) if s.uid in series_uids]
            chosen[index] = held[0] if held else None
            find_series(image, chosen[index])
        else:
            read_nifti_header(image)
    names = scan_names(images)
    folders = {}
    for index, (image, name) in enumerate(zip(images, names, strict=True)):
        started = time.perf_counter()
        scan_dir = Path(out_dir) / name
        stage = f"scan {index + 1}/{len(names)} {name}"
        if index in chosen:
            log.info("%s: converting the DICOM series", stage)
            image = convert_series(image, scan_dir / SOURCE_IMAGE, chosen[index])
        log.info("%s: preprocessing (reorient, resample, brain extraction, bias correction)", stage)
        preprocess_scan(image, scan_dir, settings=preprocess_settings)
        log.info("%s: inference (%d ensemble members)", stage, ensemble_size(segmenter))
        predict_scan(segmenter, scan_dir / ZSCORE, scan_dir / BRAIN_MASK, scan_dir)
        log.info("%s: maps to the native grid", stage)
        native_maps(scan_dir)
        if index in chosen:  # a DICOM series also gets its results as DICOM objects on the series' grid
            from brainmets.export.dicom import export_segmented_scan

            log.info("%s: DICOM SEG, SR and parametric maps", stage)
            export_segmented_scan(
                images[index], scan_dir, scan_dir / DICOM_DIR, segmentation=SEGMENTATION, series_uid=chosen[index]
            )
        log.info("%s: done -> %s (%s) in %.0f s", stage, scan_dir, LESIONS, time.perf_counter() - started)
        folders[name] = scan_dir
    return folders
