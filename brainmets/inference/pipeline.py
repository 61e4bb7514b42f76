"""From a model directory and a patient-space scan to the files of the inference stage.

Per scan, in the scan's folder (patient space, the grid of the preprocessed image):

    probability.nii.gz                       mean lesion probability over folds x mirrorings (float32)
    segmentation.nii.gz                      lesion label, probability > 0.5 minus lesions under min_lesion_ml (uint8)
    uncertainty_total_entropy.nii.gz         H(mean p), bits
    uncertainty_expected_entropy.nii.gz      mean H(p_m), bits (the published system's map)
    uncertainty_mutual_information.nii.gz    total - expected, bits
    lesions.tsv                              one row per 26-connected lesion (see LESION_COLUMNS)
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd

from brainmets.errors import BrainmetsError
from brainmets.inference.ensemble import predict_ensemble
from brainmets.inference.settings import InferenceSettings
from brainmets.inference.uncertainty import UNCERTAINTY_MAPS, EnsembleMaps, lesion_table, threshold_lesions
from brainmets.io import float_triple, int_triple, load_nifti, save_nifti, voxel_spacing_mm, write_tsv
from brainmets.network.sliding import BatchPredictor
from brainmets.preprocess.space import uncrop

log = logging.getLogger(__name__)

PROBABILITY = "probability.nii.gz"
SEGMENTATION = "segmentation.nii.gz"
LESIONS = "lesions.tsv"
#: uncertainty map name -> file name
UNCERTAINTY_FILES = {name: f"uncertainty_{name}.nii.gz" for name in UNCERTAINTY_MAPS}
#: every NIfTI map the stage writes, map name -> file name; label maps move by signed distance, others linearly
MAP_FILES = {"probability": PROBABILITY, "segmentation": SEGMENTATION, **UNCERTAINTY_FILES}
LABEL_MAPS = ("segmentation",)
#: the arrays of EnsembleMaps
ENSEMBLE_FIELDS = ("probability", *UNCERTAINTY_MAPS)

#: a z-scored brain has mean 0 and standard deviation 1; wider tolerances allow for cropping and rounding
ZSCORE_TOLERANCE = 0.1
#: `batch_size: auto` puts this many voxels (one 128^3 paper-preset window) into each network call
AUTO_BATCH_VOXELS = 128**3
#: and never more than this many windows
AUTO_BATCH_MAX = 8
#: relative difference between scan spacing and model spacing that is still accepted
SPACING_TOLERANCE = 0.01


def windows_per_call(batch_size: int | str, patch_size: Sequence[int]) -> int:
    """Windows per network call: the setting, or for `auto` as many as fill AUTO_BATCH_VOXELS (1 to 8)."""
    if batch_size != "auto":
        return int(batch_size)
    return int(max(1, min(AUTO_BATCH_MAX, AUTO_BATCH_VOXELS // int(np.prod(patch_size)))))


@dataclasses.dataclass
class Segmenter:
    """A loaded model ready to predict scans: its metadata, compiled fold predictors and settings."""

    metadata: dict[str, Any]
    predictors: list[BatchPredictor]
    settings: InferenceSettings

    @property
    def patch_size(self) -> tuple[int, int, int]:
        """The network's window (voxels)."""
        return int_triple(self.metadata["patch_size"])

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        """The voxel spacing (mm) the model was trained at."""
        return float_triple(self.metadata["spacing_mm"])

    def predict(self, image: np.ndarray, brain_mask: np.ndarray | None) -> EnsembleMaps:
        """Mean probability and uncertainty maps of one z-scored volume at the model's spacing."""
        if self.settings.recipe == "published":
            from brainmets.inference.published import predict_published

            # the published recipe has its own overlap (0.75) and flips (8), and no brain mask
            batch_size = windows_per_call(self.settings.batch_size, self.patch_size)
            return predict_published(image, self.predictors, self.patch_size, batch_size=batch_size)
        return predict_ensemble(
            image,
            self.predictors,
            self.patch_size,
            brain_mask=brain_mask,
            overlap=self.settings.overlap,
            mirror_axes=self.settings.mirror_axes,
            batch_size=windows_per_call(self.settings.batch_size, self.patch_size),
        )


def load_segmenter(model_dir: str | os.PathLike[str], settings: InferenceSettings) -> Segmenter:
    """Load and validate a model directory and compile one predictor per fold for the configured device."""
    from brainmets.inference.runtime import compile_fold_predictors, dtype_policy, resolve_device, resolve_precision
    from brainmets.network.modeldir import load_fold_weights, model_files

    started = time.perf_counter()
    model_files(model_dir, settings.weights)  # a missing or broken model.json refused before anything is logged
    device = resolve_device(settings.device)
    with dtype_policy(resolve_precision(settings.precision, device, settings.recipe)):
        metadata, network, fold_weights = load_fold_weights(model_dir, weights=settings.weights)
    jit = device.startswith("/GPU") if settings.jit_compile == "auto" else bool(settings.jit_compile)
    predictors = compile_fold_predictors(network, fold_weights, metadata["patch_size"], device=device, jit_compile=jit)
    log.info(
        "model %s: %d folds on %s loaded in %.1f s", model_dir, len(predictors), device, time.perf_counter() - started
    )
    return Segmenter(metadata, predictors, settings)


def check_zscored(image: np.ndarray, brain_mask: np.ndarray, source: str) -> None:
    """Raise BrainmetsError unless the brain voxels have mean ~0 and standard deviation ~1."""
    brain = image[brain_mask]
    if brain.size == 0:
        raise BrainmetsError(f"{source}: the brain mask is empty; check the skull stripping of this scan")
    mean, std = float(brain.mean()), float(brain.std())
    if abs(mean) > ZSCORE_TOLERANCE or abs(std - 1.0) > ZSCORE_TOLERANCE:
        raise BrainmetsError(
            f"{source}: brain voxels have mean {mean:.3g} and standard deviation {std:.3g}, not a z-scored image; "
            "give the normalised image written by `brainmets preprocess`"
        )


def check_spacing(affine: np.ndarray, spacing_mm: Sequence[float], source: str) -> None:
    """Raise BrainmetsError unless the image's voxel spacing matches the model's (mm)."""
    found = voxel_spacing_mm(affine)
    expected = np.asarray(spacing_mm, dtype=float)
    if np.any(np.abs(found - expected) > SPACING_TOLERANCE * expected):
        raise BrainmetsError(
            f"{source}: voxel spacing {tuple(round(float(v), 3) for v in found)} mm differs from the model's "
            f"{tuple(float(v) for v in expected)} mm; resample it with `brainmets preprocess` (preprocess.spacing_mm)"
        )


def scan_results(
    maps: EnsembleMaps, affine: np.ndarray, min_lesion_ml: float
) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    """All maps to write (name -> array) and the lesion table of one predicted scan."""
    spacing = float_triple(voxel_spacing_mm(affine))
    label = threshold_lesions(maps.probability if maps.label is None else maps.label, spacing, min_lesion_ml)
    table = lesion_table(label, maps.probability, maps.uncertainty(), spacing)
    centroids_mm = nib.affines.apply_affine(affine, table[["centroid_i", "centroid_j", "centroid_k"]].to_numpy(float))
    for axis, name in enumerate(("x", "y", "z")):
        table[f"centroid_{name}_mm"] = np.asarray(centroids_mm).reshape(-1, 3)[:, axis]
    arrays = {"probability": maps.probability, "segmentation": label, **maps.uncertainty()}
    return arrays, table


def write_scan_results(
    arrays: Mapping[str, np.ndarray], table: pd.DataFrame, affine: np.ndarray, out_dir: str | os.PathLike[str]
) -> dict[str, Path]:
    """Write every map and the lesion table into `out_dir` atomically; returns name -> path."""
    out = Path(out_dir)
    paths = {name: save_nifti(arrays[name], affine, out / MAP_FILES[name]) for name in MAP_FILES}
    paths["lesions"] = write_tsv(table, out / LESIONS)
    return paths


def crop_start(
    full_affine: np.ndarray, full_shape: tuple[int, ...], affine: np.ndarray, shape: tuple[int, ...]
) -> list[int] | None:
    """Voxel offset of a grid inside a larger grid when it is an axis-aligned crop of it, else None."""
    offset = np.linalg.solve(np.asarray(full_affine, float), np.asarray(affine, float))
    start = offset[:3, 3]
    if not (np.allclose(offset[:3, :3], np.eye(3), atol=1e-4) and np.allclose(start, np.rint(start), atol=1e-3)):
        return None
    begin = [int(v) for v in np.rint(start)]
    if min(begin) < 0 or any(b + n > f for b, n, f in zip(begin, shape, full_shape, strict=True)):
        return None
    return begin


def predict_scan(
    segmenter: Segmenter,
    image_path: str | os.PathLike[str],
    brain_mask_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
) -> dict[str, Path]:
    """Predict one preprocessed scan and write its maps and lesion table on the brain mask's grid; returns name -> path.

    The image may be the brain mask's whole grid or a crop of it (the preprocessing stage's network
    input is cropped to the brain); the network runs on the image, the maps are written on the mask's
    grid (patient space), zero outside the crop.
    """
    image_img = load_nifti(image_path)
    mask_img = load_nifti(brain_mask_path)
    start = crop_start(mask_img.affine, mask_img.shape, image_img.affine, image_img.shape)
    if start is None:
        raise BrainmetsError(
            f"{brain_mask_path}: brain mask grid (shape {mask_img.shape}) neither equals nor contains the grid of "
            f"{image_path} (shape {image_img.shape}); give the mask written with that image"
        )
    check_spacing(image_img.affine, segmenter.spacing_mm, str(image_path))
    image = np.asarray(image_img.dataobj, dtype=np.float32)
    box = tuple(slice(b, b + n) for b, n in zip(start, image.shape, strict=True))
    full_mask = np.asarray(mask_img.dataobj) > 0
    brain_mask = full_mask[box]
    check_zscored(image, brain_mask, str(image_path))
    started = time.perf_counter()
    maps = segmenter.predict(image, brain_mask)
    if image.shape != full_mask.shape:
        maps = EnsembleMaps(
            **{name: uncrop(getattr(maps, name), start, full_mask.shape) for name in ENSEMBLE_FIELDS},
            label=None if maps.label is None else uncrop(maps.label, start, full_mask.shape),
        )
    arrays, table = scan_results(maps, mask_img.affine, segmenter.settings.min_lesion_ml)
    log.info("%s: %d lesions in %.1f s", image_path, len(table), time.perf_counter() - started)
    return write_scan_results(arrays, table, mask_img.affine, out_dir)
