"""Surface distances between two masks: surface elements (surface-distance package) and surface voxels (MedPy).

The BraTS-2023 lesion-wise scorer takes its HD95 from that package. The surface is sampled at the corners
of the voxel grid: a corner is a surface element (surfel) when the 2x2x2 voxels around it are neither all
inside nor all outside the mask, and it carries the area (mm^2) of the marching-cubes triangles of that
2x2x2 configuration. Distances (mm) go from each surfel of one mask to the nearest surfel of the other,
and the robust Hausdorff distance is the larger of the two directions' area-weighted percentiles.

The area of each of the 256 configurations is the area of the classic (Lorensen) marching-cubes
triangulation of the configuration or of its complement, whichever has at most four corners inside; for
the configurations with more than four corners the package's table does not use the triangulation of
the configuration itself, and the complement reproduces it exactly.

The BraTS-2025 scorer (panoptica) uses MedPy's surface voxels instead: `voxel_surface_distances`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

#: weight of each corner of a 2x2x2 neighbourhood in its code; index (a, b, c) is the voxel at offset
#: (a - 1, b - 1, c - 1) from the corner
_CORNER_WEIGHTS = (1 << (7 - np.arange(8))).reshape(2, 2, 2)

_FACE_NEIGHBOURS = ndimage.generate_binary_structure(3, 1)  # MedPy's and panoptica's erosion for surfaces


@functools.cache
def _triangles(code: int) -> np.ndarray:
    """Marching-cubes triangles (n x 3 corners x 3 coordinates, voxel units) of one 2x2x2 configuration."""
    from skimage import measure

    if code in (0, 255):
        return np.zeros((0, 3, 3))
    if bin(code).count("1") > 4:
        code = 255 - code
    corners = ((code & _CORNER_WEIGHTS) > 0).astype(float)
    vertices, faces, *_ = measure.marching_cubes(corners, 0.5, method="lorensen", allow_degenerate=True)
    return (np.round(vertices.astype(float) * 2) / 2)[faces]  # on edge midpoints exactly


@functools.cache
def surfel_area_table(spacing_mm: tuple[float, float, float]) -> np.ndarray:
    """Surface area (mm^2) of each of the 256 2x2x2 neighbourhood codes at the given voxel spacing."""
    spacing = np.asarray(spacing_mm, dtype=float)
    table = np.zeros(256)
    for code in range(256):
        triangles = _triangles(code) * spacing
        if len(triangles):
            normals = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
            table[code] = 0.5 * np.linalg.norm(normals, axis=1).sum()
    table.setflags(write=False)
    return table


@dataclass(frozen=True)
class SurfaceDistances:
    """Distances (mm) from each surfel of one mask to the other's surface, with the surfels' areas (mm^2)."""

    truth_to_pred: np.ndarray
    truth_areas: np.ndarray
    pred_to_truth: np.ndarray
    pred_areas: np.ndarray


def _neighbourhood_codes(mask: np.ndarray) -> np.ndarray:
    """Code (0-255) of the 2x2x2 voxels around every corner of the grid (one more corner than voxels per axis)."""
    padded = np.pad(mask.astype(np.uint8), 1)
    codes = np.zeros(tuple(n + 1 for n in mask.shape), dtype=np.int64)
    for a, b, c in np.ndindex(2, 2, 2):
        view = padded[a : a + codes.shape[0], b : b + codes.shape[1], c : c + codes.shape[2]]
        codes += view * int(_CORNER_WEIGHTS[a, b, c])
    return codes


def surface_distances(truth: np.ndarray, pred: np.ndarray, spacing_mm: tuple[float, float, float]) -> SurfaceDistances:
    """Surfel distances (mm) and areas (mm^2) of two non-empty boolean masks of one shape."""
    spacing = tuple(float(s) for s in spacing_mm)
    box = ndimage.find_objects((truth | pred).astype(np.uint8))[0]
    truth_codes, pred_codes = _neighbourhood_codes(truth[box]), _neighbourhood_codes(pred[box])
    truth_surface = (truth_codes != 0) & (truth_codes != 255)
    pred_surface = (pred_codes != 0) & (pred_codes != 255)
    areas = surfel_area_table(spacing)
    return SurfaceDistances(
        truth_to_pred=ndimage.distance_transform_edt(~pred_surface, sampling=spacing)[truth_surface],
        truth_areas=areas[truth_codes[truth_surface]],
        pred_to_truth=ndimage.distance_transform_edt(~truth_surface, sampling=spacing)[pred_surface],
        pred_areas=areas[pred_codes[pred_surface]],
    )


def _area_percentile(distances: np.ndarray, areas: np.ndarray, percent: float) -> float:
    """The smallest distance (mm) whose surfels, with all nearer ones, hold `percent` % of the surface area."""
    order = np.lexsort((areas, distances))
    cumulative = np.cumsum(areas[order]) / np.sum(areas)
    index = min(int(np.searchsorted(cumulative, percent / 100.0)), len(distances) - 1)
    return float(distances[order][index])


def robust_hausdorff_mm(distances: SurfaceDistances, percent: float = 95.0) -> float:
    """Area-weighted `percent`-th percentile Hausdorff distance (mm): the larger of the two directions."""
    return max(
        _area_percentile(distances.truth_to_pred, distances.truth_areas, percent),
        _area_percentile(distances.pred_to_truth, distances.pred_areas, percent),
    )


def voxel_surface_distances(
    truth: np.ndarray, pred: np.ndarray, spacing_mm: tuple[float, float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Distances (mm) from each surface voxel of `truth` to `pred`'s surface voxels, and back (MedPy's way).

    Surface voxels are those a 6-connected erosion removes (the array border counts as outside); both
    masks must be non-empty. The crop around both masks keeps one voxel of margin, which changes nothing.
    """
    box = tuple(
        slice(max(s.start - 1, 0), s.stop + 1) for s in ndimage.find_objects((truth | pred).astype(np.uint8))[0]
    )
    t, p = truth[box], pred[box]
    t_surface = t & ~ndimage.binary_erosion(t, structure=_FACE_NEIGHBOURS)
    p_surface = p & ~ndimage.binary_erosion(p, structure=_FACE_NEIGHBOURS)
    return (
        ndimage.distance_transform_edt(~p_surface, sampling=spacing_mm)[t_surface],
        ndimage.distance_transform_edt(~t_surface, sampling=spacing_mm)[p_surface],
    )
