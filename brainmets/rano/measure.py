"""Per-lesion measurements on axial slices, in physical units (RANO-BM).

A lesion is a 26-connected component of a binary segmentation. Its longest diameter (LD) is the
largest in-plane distance between two points of its boundary on any single axial slice (a 2-D
maximum Feret diameter). The boundary lies on the pixel edges: it is the marching-squares contour
through the middle of each edge between a lesion pixel and a background pixel, which follows
straight edges at any angle without the staircase bias of pixel corners. Its perpendicular diameter
(PD) is, on the slice of the LD, the longest chord of the lesion's convex outline perpendicular to
the LD (the second diameter of the bidimensional product). Distances use the full affine, so
anisotropic and sheared grids are measured correctly; the axial axis is the array axis that points
most along world inferior->superior (axis 2 after reorientation to RAS).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import ndimage
from scipy.spatial import ConvexHull
from scipy.spatial.distance import pdist, squareform
from skimage.measure import find_contours

from brainmets.components import label_lesions
from brainmets.io import voxel_volume_ml
from brainmets.rano.rano import is_measurable
from brainmets.rano.settings import RanoSettings

#: the measurement columns, in the order every lesion table writes them
MEASUREMENT_COLUMNS: list[str] = [
    "component",
    "volume_ml",
    "longest_diameter_mm",
    "perpendicular_diameter_mm",
    "n_axial_slices",
    "ld_slice",
    "measurable",
    "centroid_x_mm",
    "centroid_y_mm",
    "centroid_z_mm",
]


class AxialDiameters(NamedTuple):
    """The longest and perpendicular axial diameters (mm) of one lesion and where the LD lies."""

    longest_mm: float
    perpendicular_mm: float
    slice_index: int
    #: the two LD end points as voxel coordinates (2 x 3, on pixel edges of the LD slice)
    endpoints_voxel: np.ndarray


def axial_axis(affine: np.ndarray) -> int:
    """The array axis whose direction is closest to world inferior->superior."""
    columns = np.asarray(affine, dtype=float)[:3, :3]
    cosines = np.abs(columns[2]) / np.linalg.norm(columns, axis=0)
    return int(np.argmax(cosines))


def _plane_metric(affine: np.ndarray, plane_axes: tuple[int, int]) -> np.ndarray:
    """A 2x2 matrix mapping in-plane voxel offsets to 2-D coordinates whose Euclidean lengths are mm."""
    columns = np.asarray(affine, dtype=float)[:3, list(plane_axes)]
    return np.linalg.cholesky(columns.T @ columns).T


def _boundary_hull(pixels: np.ndarray) -> np.ndarray:
    """Convex-hull vertices (voxel coordinates, counter-clockwise) of a 2-D pixel set's boundary.

    The boundary is the marching-squares contour at level 0.5: it runs through the middle of every
    pixel edge between a lesion pixel and a background pixel.
    """
    contours = find_contours(np.pad(pixels, 1).astype(np.float32), 0.5)
    points = np.unique(np.concatenate(contours), axis=0) - 1.0
    return points[ConvexHull(points).vertices]


def _longest_chord(polygon: np.ndarray, direction: np.ndarray) -> float:
    """Length of the longest chord of a convex polygon (2-D, vertices in order) parallel to `direction`."""
    normal = np.array([-direction[1], direction[0]])
    start, end = polygon, np.roll(polygon, -1, axis=0)
    offsets = polygon @ normal  # the longest chord passes through a vertex
    a = (start @ normal)[None, :] - offsets[:, None]
    b = (end @ normal)[None, :] - offsets[:, None]
    crossing = (a * b <= 0) & (a != b)
    t = np.divide(a, a - b, out=np.zeros_like(a), where=crossing)
    along = (start @ direction)[None, :] + t * ((end - start) @ direction)[None, :]
    high = np.where(crossing, along, -np.inf).max(axis=1)
    low = np.where(crossing, along, np.inf).min(axis=1)
    return float(np.max(high - low, initial=0.0))


def _box_diagonal_mm(pixels: np.ndarray, metric: np.ndarray) -> float:
    """Longer diagonal (mm) of the bounding box of a 2-D pixel set, pixel edges included."""
    rows, columns = np.flatnonzero(pixels.any(axis=1)), np.flatnonzero(pixels.any(axis=0))
    extent_i, extent_j = rows[-1] - rows[0] + 1.0, columns[-1] - columns[0] + 1.0
    return float(max(np.linalg.norm(metric @ [extent_i, extent_j]), np.linalg.norm(metric @ [extent_i, -extent_j])))


def axial_diameters(component: np.ndarray, affine: np.ndarray) -> AxialDiameters:
    """LD and PD (mm) of one lesion given as a boolean array on a grid with this affine.

    LD: the largest distance between two boundary points on one axial slice (maximum Feret
    diameter), the largest over slices (ties: the lower slice). PD: on that slice, the longest
    chord of the lesion's convex outline perpendicular to the LD.
    """
    axis = axial_axis(affine)
    plane = [a for a in range(3) if a != axis]
    metric = _plane_metric(affine, (plane[0], plane[1]))
    stack = np.moveaxis(np.asarray(component, dtype=bool), axis, 2)
    slices = np.flatnonzero(stack.any(axis=(0, 1)))
    # no boundary distance on a slice exceeds the diagonals of its bounding box: visit the slices with
    # the largest boxes first and stop once no box can beat (or tie) the longest diameter found
    bounds = [_box_diagonal_mm(stack[:, :, k], metric) for k in slices]
    best: tuple[float, int, np.ndarray, np.ndarray] | None = None
    for bound, k in sorted(zip(bounds, slices, strict=True), key=lambda pair: (-pair[0], pair[1])):
        if best is not None and bound < best[0] - 1e-9:
            break
        hull = _boundary_hull(stack[:, :, k])
        hull_mm = hull @ metric.T
        distances = squareform(pdist(hull_mm))
        farthest = np.unravel_index(np.argmax(distances), distances.shape)
        longest = float(distances[farthest])
        if best is None or longest > best[0] + 1e-9 or (longest > best[0] - 1e-9 and k < best[1]):
            best = (longest, int(k), hull_mm, hull[list(farthest)])
    if best is None:
        raise ValueError("axial_diameters needs a non-empty component")
    longest, k, hull_mm, ends = best
    direction = (ends[1] - ends[0]) @ metric.T / longest
    perpendicular = _longest_chord(hull_mm, np.array([-direction[1], direction[0]]))
    endpoints = np.zeros((2, 3))
    endpoints[:, plane] = ends
    endpoints[:, axis] = k
    return AxialDiameters(longest, perpendicular, k, endpoints)


def measure_components(
    components: np.ndarray, affine: np.ndarray, settings: RanoSettings | None = None
) -> pd.DataFrame:
    """Measure every positive label of a component map as one lesion (volume mL, diameters mm, centroid mm)."""
    settings = settings or RanoSettings()
    affine = np.asarray(affine, dtype=float)
    voxel_ml = voxel_volume_ml(affine)
    axis = axial_axis(affine)
    rows = []
    for index, box in enumerate(ndimage.find_objects(np.asarray(components))):
        if box is None:
            continue
        label = index + 1
        component = np.asarray(components[box]) == label
        offset = np.array([s.start for s in box])
        voxels = np.argwhere(component)
        diameters = axial_diameters(component, affine)
        centroid = affine[:3, :3] @ (voxels.mean(axis=0) + offset) + affine[:3, 3]
        rows.append(
            {
                "component": label,
                "volume_ml": len(voxels) * voxel_ml,
                "longest_diameter_mm": diameters.longest_mm,
                "perpendicular_diameter_mm": diameters.perpendicular_mm,
                "n_axial_slices": int(component.any(axis=tuple(a for a in range(3) if a != axis)).sum()),
                "ld_slice": diameters.slice_index + int(offset[axis]),
                "centroid_x_mm": centroid[0],
                "centroid_y_mm": centroid[1],
                "centroid_z_mm": centroid[2],
            }
        )
    table = pd.DataFrame(rows, columns=[c for c in MEASUREMENT_COLUMNS if c != "measurable"])
    table = table.astype({"component": int, "n_axial_slices": int, "ld_slice": int})
    table.insert(
        MEASUREMENT_COLUMNS.index("measurable"),
        "measurable",
        is_measurable(
            table["longest_diameter_mm"], table["perpendicular_diameter_mm"], table["n_axial_slices"], settings
        ),
    )
    return table


def measure_lesions(labels: np.ndarray, affine: np.ndarray, settings: RanoSettings | None = None) -> pd.DataFrame:
    """One row per 26-connected component of the nonzero voxels (a label map counts as binary), in mm and mL.

    Components are numbered 1..n in scan order (that of `scipy.ndimage.label`); touching voxels of
    different labels form one lesion, as in the binary segmentation RANO-BM measures.
    """
    components, _ = label_lesions(labels)
    return measure_components(components, affine, settings)
