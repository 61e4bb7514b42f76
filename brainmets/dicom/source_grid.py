"""The source DICOM series of a scan and where each of its slices lies on the scan's native NIfTI grid.

dcm2niix may reverse the slice order, flip rows or reorder axes when it converts a series, so a map on
the converted (native) grid is put back onto the source images slice by slice: each image's pixel
(row, column) position (ImagePositionPatient, ImageOrientationPatient, PixelSpacing; LPS mm) is taken
through the NIfTI affine (RAS mm) to a voxel of the native grid. The grids must coincide: every pixel
of every source image on a voxel centre, and every image covering a whole plane of the grid.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from brainmets.errors import BrainmetsError

#: LPS (DICOM patient frame) <-> RAS (NIfTI world): the signs of x and y differ
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
#: largest distance (voxels) between a source pixel and the voxel centre it is taken to be
GRID_TOLERANCE_VOX = 0.01

#: index arrays into a native 3-D array giving one source image's (rows, columns) plane
Plane = tuple[np.ndarray, np.ndarray, np.ndarray]


def read_source_series(folder: str | os.PathLike[str], series_uid: str | None = None) -> list[Dataset]:
    """Headers (no pixel data) of the folder's image series (`find_series`' checks), ordered along the slice normal.

    Refused: an enhanced multi-frame series (one file holding every slice), whose frames the outputs do
    not yet reference.
    """
    from brainmets.dicom.series import find_series

    series = find_series(folder, series_uid)
    headers = [pydicom.dcmread(path, stop_before_pixels=True) for path in series.files]
    if len(headers) != len(series.slices) or any("ImagePositionPatient" not in ds for ds in headers):
        raise BrainmetsError(
            f"{folder}: series {series.label()} is an enhanced multi-frame image; DICOM outputs need a series "
            "of one image per slice"
        )
    normal = np.cross(*np.reshape(np.asarray(headers[0].ImageOrientationPatient, float), (2, 3)))
    return sorted(headers, key=lambda ds: (float(np.dot(normal, ds.ImagePositionPatient)), str(ds.SOPInstanceUID)))


def _unit_step(step: np.ndarray, what: str, source: str) -> tuple[int, int]:
    """The voxel axis and direction (+1/-1) of a one-pixel step that must be one voxel along one axis."""
    axis = int(np.argmax(np.abs(step)))
    sign = 1 if step[axis] > 0 else -1
    expected = np.zeros(3)
    expected[axis] = sign
    if np.abs(step - expected).max() > GRID_TOLERANCE_VOX:
        raise BrainmetsError(
            f"{source}: one {what} of the source images is {np.round(step, 3).tolist()} voxels on the converted "
            "grid, not one voxel along an axis; the series and its converted image do not share a grid"
        )
    return axis, sign


def source_planes(datasets: Sequence[Dataset], affine: np.ndarray, shape: tuple[int, ...], source: str) -> list[Plane]:
    """Per source image, the index arrays of its (rows, columns) plane in a native array of `shape` (RAS `affine`).

    Refused (one line naming `source`): an image whose pixels are not on voxel centres of the grid, or
    that does not cover a whole plane of it.
    """
    to_voxel = np.linalg.inv(np.asarray(affine, float)) @ LPS_TO_RAS
    planes: list[Plane] = []
    for ds in datasets:
        orientation = np.asarray(ds.ImageOrientationPatient, float)
        row_spacing, column_spacing = (float(v) for v in ds.PixelSpacing)
        corner = to_voxel @ np.append(np.asarray(ds.ImagePositionPatient, float), 1.0)
        # along a row the column index grows (first cosine triple); down a column the row index grows
        column_axis, column_sign = _unit_step(to_voxel[:3, :3] @ (orientation[:3] * column_spacing), "column", source)
        row_axis, row_sign = _unit_step(to_voxel[:3, :3] @ (orientation[3:] * row_spacing), "row", source)
        if row_axis == column_axis:
            raise BrainmetsError(f"{source}: the source images' rows and columns run along one axis of the grid")
        slice_axis = 3 - row_axis - column_axis
        start = np.rint(corner[:3]).astype(int)
        ends = start.copy()
        ends[row_axis] += row_sign * (int(ds.Rows) - 1)
        ends[column_axis] += column_sign * (int(ds.Columns) - 1)
        covers = (
            int(ds.Rows) == shape[row_axis]
            and int(ds.Columns) == shape[column_axis]
            and min(start.min(), ends.min()) >= 0
            and all(max(a, b) < n for a, b, n in zip(start, ends, shape, strict=False))
        )
        if np.abs(corner[:3] - start).max() > GRID_TOLERANCE_VOX or not covers:
            raise BrainmetsError(
                f"{source}: image {ds.SOPInstanceUID} (instance {ds.get('InstanceNumber', '?')}) does not lie on a "
                f"plane of the converted grid {tuple(shape)}; the series and its converted image do not share a grid"
            )
        index: list[np.ndarray] = [np.empty(0, int)] * 3
        index[slice_axis] = np.full((1, 1), start[slice_axis])
        index[row_axis] = (start[row_axis] + row_sign * np.arange(int(ds.Rows)))[:, None]
        index[column_axis] = (start[column_axis] + column_sign * np.arange(int(ds.Columns)))[None, :]
        planes.append((index[0], index[1], index[2]))
    return planes


def frames_on_source(volume: np.ndarray, planes: Sequence[Plane]) -> np.ndarray:
    """A native 3-D array as frames (n_images, rows, columns), one per source image in the planes' order."""
    return np.stack([volume[plane] for plane in planes])
