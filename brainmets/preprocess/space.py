"""Image grids: loading a scan into RAS, moving between nibabel and ANTs, resampling, cropping.

ANTs works in LPS physical space and nibabel in RAS; the conversion goes through ANTsPy's own
`from_nibabel_nifti`/`to_nibabel_nifti` so that the two always agree on where a voxel lies.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import nibabel as nib
import numpy as np
from scipy import ndimage

from brainmets.components import signed_distance_mm
from brainmets.errors import BrainmetsError
from brainmets.io import int_triple, load_nifti, voxel_spacing_mm

if TYPE_CHECKING:
    import ants

RAS = nib.orientations.axcodes2ornt(("R", "A", "S"))
#: decimals (mm) of a voxel spacing that count when a grid is resampled: 1e-5 mm, far above float32 noise
SPACING_DECIMALS = 5


@dataclass(frozen=True)
class Scan:
    """One input image: its voxels reoriented to RAS, plus the native grid it came on."""

    path: Path
    data: np.ndarray  # float32, RAS-reoriented voxels
    affine: np.ndarray  # voxel -> RAS mm of `data`
    native_affine: np.ndarray  # voxel -> RAS mm of the file as given
    native_shape: tuple[int, int, int]

    @property
    def spacing_mm(self) -> np.ndarray:
        """Voxel edge lengths (mm) of the RAS-reoriented data."""
        return voxel_spacing_mm(self.affine)


def load_scan(path: str | os.PathLike[str], *, allow_constant: bool = False) -> Scan:
    """Load and validate a NIfTI scan and reorient it to the closest canonical (RAS) grid."""
    img = load_nifti(path, allow_constant=allow_constant)
    ras = nib.as_closest_canonical(img)
    return Scan(
        path=Path(path),
        data=np.asarray(ras.get_fdata(dtype=np.float32)),
        affine=ras.affine.copy(),
        native_affine=img.affine.copy(),
        native_shape=int_triple(img.shape[:3]),
    )


def to_ants(data: np.ndarray, affine: np.ndarray) -> ants.ANTsImage:
    """An ANTs float image holding `data` on the grid described by the RAS `affine` (mm)."""
    import ants

    img = nib.Nifti1Image(np.asarray(data, dtype=np.float32), np.asarray(affine, dtype=np.float64))
    img.header.set_xyzt_units("mm", "sec")
    return ants.from_nibabel_nifti(img)


def from_ants(image: ants.ANTsImage) -> tuple[np.ndarray, np.ndarray]:
    """The voxels (float32) and RAS affine (mm) of an ANTs image."""
    import ants

    img = ants.to_nibabel_nifti(image)
    return np.asarray(img.get_fdata(dtype=np.float32)), img.affine.copy()


def resample_to_spacing(image: ants.ANTsImage, spacing_mm: tuple[float, float, float]) -> ants.ANTsImage:
    """Linearly resample an ANTs image to the given voxel spacing (mm), keeping origin and direction.

    The input spacing is taken to SPACING_DECIMALS decimals first: ANTs rounds extent / spacing to a
    voxel count, which flips at exact halves (69 x 3 mm to 2 mm) with the float32 noise of a header, so the
    same scan stored by two converters (a NIfTI and its DICOM series through dcm2niix) would get different grids.
    """
    import ants

    spacing_in = tuple(round(float(s), SPACING_DECIMALS) for s in image.spacing)
    if np.allclose(spacing_in, spacing_mm, atol=1e-6):
        return image.clone()
    snapped = image.clone()
    snapped.set_spacing(spacing_in)
    return ants.resample_image(snapped, tuple(float(s) for s in spacing_mm), use_voxels=False, interp_type=0)


def grid_image(affine: np.ndarray, shape: tuple[int, ...]) -> ants.ANTsImage:
    """An all-zero ANTs image on the RAS-reoriented version of a grid; a reference for resampling."""
    ras = nib.as_closest_canonical(nib.Nifti1Image(np.zeros(shape, dtype=np.float32), np.asarray(affine, float)))
    return to_ants(np.asarray(ras.dataobj), ras.affine)


def from_ras(data: np.ndarray, native_affine: np.ndarray) -> np.ndarray:
    """Undo the RAS reorientation: array axes back in the order and direction of the native grid."""
    native = nib.orientations.io_orientation(np.asarray(native_affine, float))
    return nib.orientations.apply_orientation(data, nib.orientations.ornt_transform(RAS, native))


def bounding_box(mask: np.ndarray, margin_vox: int = 0) -> tuple[list[int], list[int]]:
    """Start (inclusive) and stop (exclusive) voxel indices of the mask's bounding box plus a margin."""
    boxes = ndimage.find_objects(np.asarray(mask, dtype=np.uint8))
    if not boxes or boxes[0] is None:
        raise BrainmetsError("the brain mask is empty; nothing to crop")
    start = [max(0, s.start - margin_vox) for s in boxes[0]]
    stop = [min(n, s.stop + margin_vox) for s, n in zip(boxes[0], mask.shape, strict=True)]
    return start, stop


def crop(data: np.ndarray, affine: np.ndarray, start: list[int], stop: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Crop an array to [start, stop) and shift its affine so every voxel keeps its position in mm."""
    box = tuple(slice(a, b) for a, b in zip(start, stop, strict=True))
    shifted = np.asarray(affine, float).copy()
    shifted[:3, 3] = affine[:3, :3] @ np.asarray(start, float) + affine[:3, 3]
    return data[box], shifted


def uncrop(data: np.ndarray, start: list[int], shape: tuple[int, ...], fill: float = 0) -> np.ndarray:
    """Place a cropped array back at `start` inside an array of the full `shape`."""
    full = np.full(shape, fill, dtype=data.dtype)
    full[tuple(slice(a, a + n) for a, n in zip(start, data.shape, strict=True))] = data
    return full


#: ways to move a label map between grids: through its signed distance (default) or nearest neighbour
LABEL_INTERPOLATIONS = ("distance", "nearest")
#: signed distances are kept to this many source voxels outside the labels; farther away they are constant
_DISTANCE_BAND_VOX = 4


def resample_labels(
    data: np.ndarray,
    affine: np.ndarray,
    transform: ants.ANTsTransform,
    reference: ants.ANTsImage,
    *,
    interpolation: str = "distance",
) -> tuple[np.ndarray, np.ndarray]:
    """Move an integer label map (0 = background; RAS `affine`, mm) with `transform` onto `reference`'s grid.

    "distance" carries the labelled surface through a cubic B-spline of its signed distance (mm,
    negative inside), so a lesion keeps its shape on a grid of another spacing or tilt instead of
    picking up a second staircase; where two labels touch, the nearer one wins. "nearest" is plain
    nearest-neighbour lookup. Returns, like `from_ants`, float32 labels on the reference grid and its RAS affine.
    """
    if interpolation not in LABEL_INTERPOLATIONS:
        raise BrainmetsError(
            f"label interpolation {interpolation!r} is unknown; use one of {', '.join(LABEL_INTERPOLATIONS)}"
        )
    labels = np.rint(np.asarray(data, np.float32))
    if interpolation == "nearest":
        return from_ants(transform.apply_to_image(to_ants(labels, affine), reference, "nearestneighbor"))
    inside = labels != 0
    if not inside.any():
        return from_ants(reference.clone() * 0)
    spacing = voxel_spacing_mm(affine)
    band_mm = _DISTANCE_BAND_VOX * float(spacing.max())
    # signed distance on the labels' bounding box widened by the band (past the array's edge, where
    # all is background); beyond it the distance is the constant band_mm, stored as 0 so that it
    # equals what ANTs reads outside the source grid
    margin = int(np.ceil(band_mm / spacing.min())) + 1
    first, last = bounding_box(inside)
    box = tuple(slice(a, b) for a, b in zip(first, last, strict=True))
    box_labels = np.pad(labels[box], margin)
    box_affine = np.asarray(affine, float).copy()
    box_affine[:3, 3] += box_affine[:3, :3] @ (np.asarray(first, float) - margin)
    signed, nearest = signed_distance_mm(box_labels != 0, spacing)
    shifted = (np.minimum(signed, band_mm) - band_mm).astype(np.float32)
    moved, moved_affine = from_ants(transform.apply_to_image(to_ants(shifted, box_affine), reference, "bspline"))
    values = np.unique(box_labels[box_labels != 0])
    if values.size == 1:
        return np.where(moved < -band_mm, values[0], 0).astype(np.float32), moved_affine
    nearest_label = box_labels[tuple(nearest)]
    moved_label = from_ants(transform.apply_to_image(to_ants(nearest_label, box_affine), reference, "nearestneighbor"))[
        0
    ]
    return np.where(moved < -band_mm, moved_label, 0).astype(np.float32), moved_affine
