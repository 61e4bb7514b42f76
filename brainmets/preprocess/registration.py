"""Longitudinal registration: each follow-up onto the patient's baseline (ANTs, rigid then affine)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from brainmets.errors import BrainmetsError, StorageError, raise_if_fault
from brainmets.io import atomic_path, write_failure_errno

if TYPE_CHECKING:
    import ants


#: ANTsPy's shrink factors of its linear presets (the pyramid levels, in voxels of the images it is given)
PRESET_SHRINK_FACTORS = (6, 4, 2, 1)
#: RAS <-> LPS: ANTs keeps world coordinates in LPS, nibabel in RAS
_FLIP_XY = np.diag([-1.0, -1.0, 1.0, 1.0])


#: the random seed of ANTs' metric sampling (any fixed value makes registration repeatable)
REGISTRATION_SEED = 1


def register_to_baseline(
    moving: ants.ANTsImage,
    fixed: ants.ANTsImage,
    stages: tuple[str, ...] = ("QuickRigid", "AffineFast"),
    grid_mm: float | None = 2.0,
) -> ants.ANTsTransform:
    """Affine transform that pulls `moving` onto `fixed` (maps fixed-space points to moving-space mm).

    Stages are ANTsPy linear presets run in order, each starting from the previous result;
    ANTs collapses them into one affine. Both images should be brain-extracted. When `grid_mm` (mm) is
    coarser than the fixed image's finest spacing, both images are first resampled (linear) to that
    isotropic grid and the presets' shrink factors are divided by the coarsening, so the pyramid keeps its
    levels in mm: the presets iterate only at their two coarsest levels, so the fine grid adds time but no
    accuracy. None, or a grid no coarser than the images, registers the images as given.
    """
    import ants

    shrink = PRESET_SHRINK_FACTORS
    if grid_mm is not None:
        ratio = grid_mm / min(fixed.spacing)
        if ratio > 1:
            fixed = ants.resample_image(fixed, (grid_mm,) * 3, False, 0)
            moving = ants.resample_image(moving, (grid_mm,) * 3, False, 0)
            shrink = tuple(max(1, round(s / ratio)) for s in PRESET_SHRINK_FACTORS)
    # ANTs jitters the metric's sampling points at random unless given a seed, which ANTsPy takes from this
    # module setting (its set_ants_deterministic would also force one ITK thread): with a fixed seed the same
    # scans give the same transform on every run, where a small brain would now and then register badly
    ants.config._random_seed = REGISTRATION_SEED
    with tempfile.TemporaryDirectory(prefix="brainmets-reg-") as work:
        initial: str | None = None
        for k, stage in enumerate(stages):
            result = ants.registration(
                fixed,
                moving,
                type_of_transform=stage,
                initial_transform=initial,
                outprefix=f"{work}/s{k}_",
                aff_shrink_factors=shrink,
            )
            initial = result["fwdtransforms"][0]
        if initial is None:
            raise BrainmetsError("preprocess.registration lists no stage; name at least one, e.g. QuickRigid")
        return ants.read_transform(initial)


def identity_transform() -> ants.ANTsTransform:
    """The 3-D affine identity, the baseline's transform into its own (patient) space."""
    return affine_transform_ras(np.eye(4))


def affine_transform_ras(matrix: np.ndarray) -> ants.ANTsTransform:
    """An ANTs affine transform from a 4x4 matrix (RAS mm -> RAS mm); the inverse of `affine_matrix_ras`."""
    import ants

    lps = _FLIP_XY @ np.asarray(matrix, dtype=float) @ _FLIP_XY
    transform = ants.create_ants_transform(transform_type="AffineTransform", dimension=3)
    transform.set_parameters(list(lps[:3, :3].ravel()) + list(lps[:3, 3]))
    transform.set_fixed_parameters([0.0, 0.0, 0.0])
    return transform


def write_transform(transform: ants.ANTsTransform, path: str | os.PathLike[str]) -> Path:
    """Write an ANTs transform (.mat) atomically; returns the path."""
    import ants

    with atomic_path(path) as tmp:
        ants.write_transform(transform, str(tmp))
        # ITK reports no failed write: on a full disk it leaves an empty or cut file and returns, so the file
        # is read back before it may replace the output
        try:
            written = ants.read_transform(str(tmp))
            complete = np.allclose(written.parameters, transform.parameters) and np.allclose(
                written.fixed_parameters, transform.fixed_parameters
            )
        except (RuntimeError, ValueError):
            complete = False
        if not complete:
            raise StorageError(path, write_failure_errno(Path(path).parent), "cannot write")
    return Path(path)


def read_transform(path: str | os.PathLike[str]) -> ants.ANTsTransform:
    """Read an ANTs transform file, refusing a missing or unreadable one."""
    import ants

    p = Path(path)
    if not p.is_file():
        raise BrainmetsError(f"{p}: transform file not found; run `brainmets preprocess` for this scan first")
    try:
        return ants.read_transform(str(p))
    except Exception as error:
        raise_if_fault(error, p, "cannot read")
        raise BrainmetsError(f"{p}: not a readable ANTs transform ({type(error).__name__})") from None


def affine_matrix_ras(transform: ants.ANTsTransform) -> np.ndarray:
    """The 4x4 matrix (RAS mm -> RAS mm) of an ANTs affine transform."""
    params = np.asarray(transform.parameters, dtype=float)
    centre = np.asarray(transform.fixed_parameters, dtype=float)
    if params.size != 12 or centre.size != 3:
        raise BrainmetsError(f"expected a 3-D affine transform, found {transform.transform_type}")
    matrix = params[:9].reshape(3, 3)
    lps = np.eye(4)
    lps[:3, :3] = matrix
    lps[:3, 3] = params[9:] + centre - matrix @ centre  # ITK: y = M (x - c) + t + c
    return _FLIP_XY @ lps @ _FLIP_XY
