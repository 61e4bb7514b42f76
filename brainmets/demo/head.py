"""Synthetic heads: the MNI152 brain with CSF, skull and scalp shells, T1-CE-like contrast, per-patient warps.

The brain comes from nilearn's MNI152 1 mm template and its brain mask (shipped with nilearn, loaded
offline). Everything outside the brain is synthesised as shells at a distance from the brain surface:
subarachnoid CSF with enhancing vessels, an enhancing dural layer, the skull (dark cortical tables
around bright marrow) and the scalp (fat and muscle), so that skull stripping has real work to do.
Each patient's anatomy is the template under a random smooth deformation (global scaling plus a
separable low-frequency warp).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

#: outer edge (mm from the brain surface) of each shell: CSF, dura, skull tables/marrow, scalp
CSF_MM = 2.0
DURA_MM = 3.0
SKULL_MM = 9.5
SCALP_MM = 15.0

#: T1-CE-like intensities (white matter = 1)
INTENSITY = {
    "csf": 0.15,
    "dura": 0.95,
    "skull_table": 0.06,
    "marrow": 0.75,
    "scalp_fat": 1.1,
    "scalp_muscle": 0.45,
    "vessel": 1.25,
}
#: share of the intracranial CSF spaces filled by enhancing vessels
VESSEL_FRACTION = 0.06


@dataclass(frozen=True)
class Head:
    """A head on a regular grid: T1-CE-like intensity, brain mask and tissue (GM+WM) probability."""

    intensity: np.ndarray  # float32, white matter ~ 1
    brain: np.ndarray  # bool
    tissue: np.ndarray  # float32 in [0, 1], parenchyma (GM + WM) probability
    affine: np.ndarray  # 4x4, voxel -> world (mm)

    @property
    def spacing_mm(self) -> float:
        """Isotropic voxel size of the grid (mm)."""
        return float(abs(self.affine[0, 0]))


def _on_grid(data: np.ndarray, factor: float, order: int) -> np.ndarray:
    """Resample a 1 mm template volume to a grid `factor` mm apart (identity when factor is 1)."""
    if factor == 1.0:
        return data
    return ndimage.zoom(data, 1.0 / factor, order=order, grid_mode=True, mode="grid-constant")


@functools.lru_cache(maxsize=2)
def template_head(spacing_mm: float = 1.0) -> Head:
    """The MNI152 brain with synthetic CSF, dura, skull and scalp, on an isotropic grid of `spacing_mm`."""
    from nilearn import datasets

    t1_img = datasets.load_mni152_template(resolution=1)
    t1 = np.asarray(t1_img.get_fdata(), dtype=np.float32)
    brain = np.asarray(datasets.load_mni152_brain_mask(resolution=1).get_fdata(), dtype=np.float32)
    gm = np.asarray(datasets.load_mni152_gm_template(resolution=1).get_fdata(), dtype=np.float32)
    wm = np.asarray(datasets.load_mni152_wm_template(resolution=1).get_fdata(), dtype=np.float32)
    affine = np.array(t1_img.affine, dtype=float)
    # crop to the brain plus room for the shells, so later resampling touches fewer voxels
    margin = int(np.ceil(SCALP_MM + 4))
    box = np.argwhere(brain > 0.5)
    low = np.maximum(box.min(axis=0) - margin, 0)
    high = np.minimum(box.max(axis=0) + margin + 1, brain.shape)
    crop = tuple(slice(a, b) for a, b in zip(low, high, strict=True))
    t1, brain, gm, wm = (a[crop] for a in (t1, brain, gm, wm))
    affine[:3, 3] += affine[:3, :3] @ low

    factor = float(spacing_mm)
    t1, gm, wm = (_on_grid(a, factor, 1) for a in (t1, gm, wm))
    brain_mask = _on_grid(brain, factor, 1) > 0.5
    affine = affine @ np.diag([factor, factor, factor, 1.0])
    if factor != 1.0:
        affine[:3, 3] += affine[:3, :3] @ np.full(3, (factor - 1.0) / (2.0 * factor))

    white = np.percentile(t1[wm > 0.9], 50) if (wm > 0.9).any() else t1.max()
    intensity = np.where(brain_mask, t1 / white, 0.0).astype(np.float32)
    outside = ndimage.distance_transform_edt(~brain_mask, sampling=factor).astype(np.float32)
    # a smooth random thickness wobble so shells are not perfect offsets of the brain surface
    rng = np.random.default_rng(12345)
    wobble = ndimage.gaussian_filter(rng.standard_normal(outside.shape).astype(np.float32), 8.0 / factor)
    wobble *= 1.5 / max(float(np.abs(wobble).max()), 1e-6)
    d = outside + wobble * (outside > CSF_MM)
    shells = [
        ((d > 0) & (d <= CSF_MM), INTENSITY["csf"]),
        ((d > CSF_MM) & (d <= DURA_MM), INTENSITY["dura"]),
        ((d > DURA_MM) & (d <= SKULL_MM), INTENSITY["skull_table"]),
        ((d > DURA_MM + 2.0) & (d <= SKULL_MM - 2.0), INTENSITY["marrow"]),
        ((d > SKULL_MM) & (d <= SCALP_MM - 2.5), INTENSITY["scalp_fat"]),
        ((d > SCALP_MM - 2.5) & (d <= SCALP_MM), INTENSITY["scalp_muscle"]),
    ]
    for where, value in shells:
        intensity[where & ~brain_mask] = value
    tissue = np.clip(gm + wm, 0.0, 1.0) * brain_mask
    # enhancing vessels in the sulci and cisterns: bright blobs where the CSF spaces meet a smooth random field
    field = ndimage.gaussian_filter(rng.standard_normal(outside.shape).astype(np.float32), 1.2 / factor)
    csf_space = brain_mask & (tissue < 0.25)
    if csf_space.any():
        vessels = csf_space & (field > np.quantile(field[csf_space], 1.0 - VESSEL_FRACTION))
        intensity[vessels] = INTENSITY["vessel"]
    intensity = ndimage.gaussian_filter(intensity, 0.5 / factor)
    return Head(intensity.astype(np.float32), brain_mask, tissue.astype(np.float32), affine)


def _smooth_profile(rng: np.random.Generator, n: int, spacing_mm: float) -> np.ndarray:
    """A random smooth 1-D profile (unit peak) over `n` samples: a few low-frequency cosines."""
    x = np.arange(n) * spacing_mm
    length = max(n * spacing_mm, 1.0)
    freqs = rng.uniform(0.5, 2.0, size=3) / length
    phases = rng.uniform(0, 2 * np.pi, size=3)
    profile = sum(np.cos(2 * np.pi * f * x + p) for f, p in zip(freqs, phases, strict=True))
    return (profile / np.abs(profile).max()).astype(np.float32)


def warp_head(template: Head, rng: np.random.Generator, amplitude_mm: float = 4.0) -> Head:
    """A patient's head: the template under a random global scaling and a smooth warp of up to ~`amplitude_mm`."""
    shape = template.intensity.shape
    spacing = template.spacing_mm
    centre = (np.asarray(shape) - 1) / 2.0
    scale = rng.uniform(0.94, 1.06, size=3)
    grids = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in shape), indexing="ij", sparse=True)
    coords = []
    for axis in range(3):
        displacement = np.zeros(shape, dtype=np.float32)
        for _ in range(2):
            profiles = [_smooth_profile(rng, n, spacing) for n in shape]
            term = profiles[0][:, None, None] * profiles[1][None, :, None] * profiles[2][None, None, :]
            displacement += term * (rng.uniform(-1, 1) * amplitude_mm / 2.0 / spacing)
        coords.append(centre[axis] + (grids[axis] - centre[axis]) * scale[axis] + displacement)
    stacked = np.stack(np.broadcast_arrays(*coords))
    intensity = ndimage.map_coordinates(template.intensity, stacked, order=1, mode="constant")
    brain = ndimage.map_coordinates(template.brain.astype(np.uint8), stacked, order=0, mode="constant") > 0
    coarse = stacked[:, ::2, ::2, ::2]
    tissue_coarse = ndimage.map_coordinates(template.tissue, coarse, order=1, mode="constant")
    tissue = ndimage.zoom(tissue_coarse, np.asarray(shape) / np.asarray(tissue_coarse.shape), order=1)
    return Head(intensity.astype(np.float32), brain, tissue.astype(np.float32), template.affine.copy())
