"""Three-plane pictures of a volume with a mask outline and/or a colour overlay (matplotlib, Agg).

Arrays are RAS-oriented (axis 0 left->right, 1 posterior->anterior, 2 inferior->superior). Pictures
are drawn in neurological convention: the patient's right on the right of each panel, anterior
and superior up.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage

from brainmets.errors import BrainmetsError
from brainmets.io import atomic_path, int_triple, load_nifti, voxel_spacing_mm

#: panel name -> (axis cut through, axes shown horizontally and vertically, their end labels)
PLANES = {
    "axial": (2, (0, 1), ("L", "R", "P", "A")),
    "coronal": (1, (0, 2), ("L", "R", "I", "S")),
    "sagittal": (0, (1, 2), ("P", "A", "I", "S")),
}


def default_centre(
    image: np.ndarray, outline: np.ndarray | None = None, overlay: np.ndarray | None = None
) -> tuple[int, int, int]:
    """Voxel through which to cut: centre of mass of the outline, else of the overlay, else of the image."""
    for candidate in (outline, overlay):
        if candidate is not None and np.any(candidate):
            return int_triple(round(c) for c in ndimage.center_of_mass(np.asarray(candidate) > 0))
    weights = np.clip(np.asarray(image, dtype=np.float64), 0, None)
    if weights.sum() > 0:
        return int_triple(round(c) for c in ndimage.center_of_mass(weights))
    return int_triple(s // 2 for s in image.shape)


def three_plane_figure(
    image: np.ndarray,
    path: str | os.PathLike[str],
    *,
    spacing_mm: Sequence[float] = (1.0, 1.0, 1.0),
    outline: np.ndarray | None = None,
    overlay: np.ndarray | None = None,
    centre: Sequence[int] | None = None,
    title: str | None = None,
    outline_color: str = "lime",
    overlay_cmap: str = "hot",
    overlay_range: tuple[float, float] | None = None,
    overlay_label: str | None = None,
    dpi: int = 100,
) -> Path:
    """Write a PNG with axial, coronal and sagittal slices through `centre` (voxel); returns the path.

    `outline` (mask or label map) is drawn as contours, `overlay` (probability, uncertainty) as a
    semi-transparent colour map over non-zero voxels; all arrays share the image's grid.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    volume = np.asarray(image, dtype=np.float32)
    if volume.ndim != 3:
        raise BrainmetsError(f"{path}: a three-plane picture needs a 3-D image, got shape {volume.shape}")
    for name, extra in (("outline", outline), ("overlay", overlay)):
        if extra is not None and np.shape(extra) != volume.shape:
            raise BrainmetsError(f"{path}: {name} shape {np.shape(extra)} differs from the image shape {volume.shape}")
    spacing = np.asarray(spacing_mm, dtype=float)
    cut = tuple(default_centre(volume, outline, overlay) if centre is None else (int(c) for c in centre))
    cut = tuple(int(np.clip(c, 0, n - 1)) for c, n in zip(cut, volume.shape, strict=True))
    finite = volume[np.isfinite(volume)]
    low, high = np.percentile(finite, (0.5, 99.5)) if finite.size else (0.0, 1.0)
    if overlay is not None:
        values = np.asarray(overlay, dtype=np.float32)
        lowest, highest = float(values.min()), float(values.max())
        o_low, o_high = overlay_range or (lowest, highest if highest > lowest else lowest + 1)

    figure = Figure(figsize=(12, 4.4), dpi=dpi, facecolor="black")
    FigureCanvasAgg(figure)
    for k, (plane, (axis, (h_axis, v_axis), (left, right, bottom, top))) in enumerate(PLANES.items()):
        ax = figure.add_subplot(1, 3, k + 1)
        index: list[slice | int] = [slice(None)] * 3
        index[axis] = cut[axis]
        take = tuple(index)
        extent = (0, volume.shape[h_axis] * spacing[h_axis], 0, volume.shape[v_axis] * spacing[v_axis])
        ax.imshow(
            volume[take].T, cmap="gray", vmin=low, vmax=high, origin="lower", extent=extent, interpolation="nearest"
        )
        if overlay is not None:
            layer = np.ma.masked_where(values[take] <= o_low, values[take])
            shown = ax.imshow(
                layer.T,
                cmap=overlay_cmap,
                vmin=o_low,
                vmax=o_high,
                alpha=0.6,
                origin="lower",
                extent=extent,
                interpolation="nearest",
            )
            if k == 2:
                bar = figure.colorbar(shown, ax=ax, fraction=0.046, pad=0.02)
                bar.ax.tick_params(colors="white")
                if overlay_label:
                    bar.set_label(overlay_label, color="white")
        if outline is not None:
            labels = np.asarray(outline)[take].T
            if np.any(labels):
                rows = (np.arange(labels.shape[0]) + 0.5) * spacing[v_axis]
                cols = (np.arange(labels.shape[1]) + 0.5) * spacing[h_axis]
                for value in np.unique(labels[labels > 0]):
                    ax.contour(
                        cols, rows, (labels == value).astype(float), levels=[0.5], colors=outline_color, linewidths=1.0
                    )
        ax.set_title(f"{plane} {cut[axis]}", color="white", fontsize=10)
        ax.set_axis_off()
        for x, y, text, ha, va in (
            (0.01, 0.5, left, "left", "center"),
            (0.99, 0.5, right, "right", "center"),
            (0.5, 0.01, bottom, "center", "bottom"),
            (0.5, 0.99, top, "center", "top"),
        ):
            ax.text(x, y, text, color="yellow", fontsize=9, ha=ha, va=va, transform=ax.transAxes)
    if title:
        figure.suptitle(title, color="white", fontsize=11)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", facecolor=figure.get_facecolor())
    return Path(path)


def lesion_overlay_figure(
    image_path: str | os.PathLike[str],
    segmentation_path: str | os.PathLike[str],
    entropy_path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    title: str = "",
) -> Path:
    """Write a scan's report picture: predicted lesions (outline) and total entropy (bits, colour) over the image."""
    image = load_nifti(image_path)
    return three_plane_figure(
        np.asarray(image.dataobj, dtype=np.float32),
        out,
        spacing_mm=tuple(voxel_spacing_mm(image.affine)),
        outline=np.asarray(load_nifti(segmentation_path, allow_constant=True).dataobj),
        overlay=np.asarray(load_nifti(entropy_path, allow_constant=True).dataobj, dtype=np.float32),
        overlay_range=(0.0, 1.0),
        overlay_label="total entropy (bits)",
        title=title,
    )
