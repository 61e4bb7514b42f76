"""Synthetic training cases (enhancing ellipsoids in a noisy brain) for tests and benchmarks."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from brainmets.io import save_nifti
from brainmets.train.cases import Case, prepare_case
from scipy import ndimage


def synthetic_scan(
    rng: np.random.Generator,
    shape: tuple[int, int, int] = (64, 64, 64),
    lesions: int = 3,
    radius_mm: tuple[float, float] = (2.0, 7.0),
) -> tuple[np.ndarray, np.ndarray]:
    """A z-scored 1-mm "brain" (background 0) with bright ellipsoidal lesions; returns (image, label)."""
    grid = np.indices(shape).astype(np.float32)
    centre = (np.asarray(shape) - 1) / 2.0
    brain = sum(((g - c) / (0.45 * s)) ** 2 for g, c, s in zip(grid, centre, shape, strict=True)) <= 1.0
    texture = ndimage.gaussian_filter(rng.normal(size=shape), 2.0) * 4.0
    image = texture + rng.normal(scale=0.6, size=shape)
    label = np.zeros(shape, dtype=bool)
    inside = np.argwhere(ndimage.binary_erosion(brain, iterations=int(radius_mm[1]) + 1))
    for _ in range(lesions):
        at = inside[rng.integers(len(inside))]
        radii = rng.uniform(*radius_mm, size=3)
        ball = sum(((g - a) / r) ** 2 for g, a, r in zip(grid, at, radii, strict=True)) <= 1.0
        label |= ball & brain
        image[ball & brain] += rng.uniform(2.0, 3.5)
    image = np.where(brain, image, 0.0)
    image[brain] = (image[brain] - image[brain].mean()) / image[brain].std()
    return image.astype(np.float32), label.astype(np.uint8)


def write_synthetic_cases(
    root: str | os.PathLike[str],
    patients: int,
    timepoints: int = 1,
    shape: tuple[int, int, int] = (64, 64, 64),
    seed: int = 0,
) -> list[Case]:
    """Write `patients` x `timepoints` synthetic scans as NIfTI (root/nifti) and prepared cases (root/cases)."""
    out = Path(root)
    cases = []
    for p in range(patients):
        for t in range(timepoints):
            rng = np.random.default_rng([seed, p, t])
            image, label = synthetic_scan(rng, shape, lesions=int(rng.integers(1, 5)))
            name = f"P{p:02d}_T{t}"
            affine = np.eye(4)
            save_nifti(image, affine, out / "nifti" / f"{name}_image.nii.gz")
            save_nifti(label, affine, out / "nifti" / f"{name}_label.nii.gz")
            cases.append(
                prepare_case(
                    out / "nifti" / f"{name}_image.nii.gz",
                    out / "nifti" / f"{name}_label.nii.gz",
                    out / "cases" / name,
                    patient=f"P{p:02d}",
                )
            )
    return cases
