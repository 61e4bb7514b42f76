"""Three-plane pictures: outline and overlay drawn where the masks are, errors for mismatched inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from brainmets.errors import BrainmetsError
from brainmets.figures import default_centre, three_plane_figure
from matplotlib.image import imread
from scipy import ndimage


def _volume() -> tuple[np.ndarray, np.ndarray]:
    """A smooth 40 x 48 x 36 image with a box-shaped mask off centre."""
    grid = np.indices((40, 48, 36)).astype(np.float32)
    image = 100 - np.sqrt(((grid - [[[[20]]], [[[24]]], [[[18]]]]) ** 2).sum(0))
    mask = np.zeros(image.shape, bool)
    mask[22:31, 10:19, 20:29] = True
    return image, mask


def _green(picture: np.ndarray) -> np.ndarray:
    """Pixels drawn in pure-ish green (the default outline colour)."""
    r, g, b = picture[..., 0], picture[..., 1], picture[..., 2]
    return (g > 0.8) & (r < 0.3) & (b < 0.3)


def test_outline_is_drawn_only_when_given(tmp_path: Path) -> None:
    image, mask = _volume()
    plain = imread(three_plane_figure(image, tmp_path / "plain.png"))
    outlined = imread(three_plane_figure(image, tmp_path / "outlined.png", outline=mask, title="mask"))
    assert plain.shape == outlined.shape and plain.shape[1] > 2 * plain.shape[0]  # three panels side by side
    assert not _green(plain).any()
    green = _green(outlined)
    assert green.sum() > 100
    # each of the three panels shows the outline
    thirds = np.array_split(np.arange(outlined.shape[1]), 3)
    assert all(green[:, cols].any() for cols in thirds)


#: the box of `_volume`'s mask (voxels, end exclusive) and the anisotropic spacing the position tests draw with
BOX = ((22, 31), (10, 19), (20, 29))
SPACING = (1.0, 1.5, 2.0)
#: (array axis shown horizontally, array axis shown vertically) of the axial, coronal and sagittal panels
PANEL_AXES = ((0, 1), (0, 2), (1, 2))


def _noise_volume() -> np.ndarray:
    """A 40 x 48 x 36 image of grey noise: every panel is a grey rectangle whose edges can be found."""
    return (100 + np.random.default_rng(0).normal(size=(40, 48, 36))).astype(np.float32)


def _panels(picture: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Pixel box (top, bottom, left, right; end exclusive) of the grey image of each panel, left to right."""
    r, g, b = picture[..., 0], picture[..., 1], picture[..., 2]
    grey = (np.abs(r - g) < 0.02) & (np.abs(g - b) < 0.02) & (r > 0.1) & (r < 0.9)
    labels, _ = ndimage.label(grey)
    largest = np.argsort(np.bincount(labels.ravel())[1:])[-3:] + 1  # the three largest grey regions
    objects = ndimage.find_objects(labels)
    boxes = [
        (objects[i - 1][0].start, objects[i - 1][0].stop, objects[i - 1][1].start, objects[i - 1][1].stop)
        for i in largest
    ]
    return sorted(boxes, key=lambda box: box[2])


def _projected_box(panel: tuple[int, int, int, int], axes: tuple[int, int], shape) -> tuple[float, ...]:
    """Pixel box (top, bottom, left, right) where BOX appears in a panel, drawn at SPACING, anterior/superior up."""
    top, bottom, left, right = panel
    (h0, h1), (v0, v1) = BOX[axes[0]], BOX[axes[1]]
    width, height = shape[axes[0]], shape[axes[1]]  # voxels; the spacing scales both the box and the panel
    column = lambda voxel: left + voxel / width * (right - left)  # noqa: E731
    row = lambda voxel: bottom - voxel / height * (bottom - top)  # noqa: E731  (origin at the bottom)
    return row(v1), row(v0), column(h0), column(h1)


def _inside(mask: np.ndarray, box: tuple[float, ...], margin: float) -> np.ndarray:
    """The pixels of `mask` within `box` grown by `margin` pixels (shrunk when negative)."""
    rows, cols = np.indices(mask.shape)
    top, bottom, left, right = box
    return mask & (rows >= top - margin) & (rows < bottom + margin) & (cols >= left - margin) & (cols < right + margin)


def test_overlay_colours_the_masked_region_and_nothing_else(tmp_path: Path) -> None:
    image = _noise_volume()
    _, mask = _volume()
    probability = np.where(mask, 0.6, 0.0).astype(np.float32)
    picture = imread(
        three_plane_figure(
            image,
            tmp_path / "overlay.png",
            spacing_mm=SPACING,
            overlay=probability,
            overlay_range=(0.0, 1.0),
            overlay_label="probability",
        )
    )
    r, g, b = picture[..., 0], picture[..., 1], picture[..., 2]
    # "hot" at 0.6 is orange (1, 0.62, 0), blended over grey; the grey image has r == g == b, the labels are yellow
    colourful = (r - b > 0.3) & (r - g > 0.15)
    panels = _panels(picture)
    for panel, axes in zip(panels, PANEL_AXES, strict=True):
        top, bottom, left, right = panel
        # the panel keeps the physical aspect ratio: spacing 1 / 1.5 / 2 mm
        width_mm, height_mm = (image.shape[a] * SPACING[a] for a in axes)
        assert (bottom - top) / (right - left) == pytest.approx(height_mm / width_mm, rel=0.02)
        in_panel = np.zeros_like(colourful)
        in_panel[top:bottom, left:right] = colourful[top:bottom, left:right]
        box = _projected_box(panel, axes, image.shape)
        lesion_pixels = _inside(np.ones_like(colourful), box, -2).sum()
        assert lesion_pixels > 200
        assert _inside(in_panel, box, -2).sum() >= 0.95 * lesion_pixels  # the lesion is coloured ...
        assert in_panel.sum() == _inside(in_panel, box, 2).sum()  # ... and nothing far from it


def test_outline_runs_along_the_masks_border(tmp_path: Path) -> None:
    image = _noise_volume()
    _, mask = _volume()
    picture = imread(three_plane_figure(image, tmp_path / "outline.png", spacing_mm=SPACING, outline=mask))
    green = _green(picture)
    for panel, axes in zip(_panels(picture), PANEL_AXES, strict=True):
        top, bottom, left, right = panel
        in_panel = np.zeros_like(green)
        in_panel[top:bottom, left:right] = green[top:bottom, left:right]
        box = _projected_box(panel, axes, image.shape)
        assert in_panel.sum() > 50
        assert in_panel.sum() == _inside(in_panel, box, 3).sum()  # nothing away from the box ...
        assert not _inside(in_panel, box, -3).any()  # ... nor inside it: an outline, not a fill
        rows, cols = np.nonzero(in_panel)
        for edge, coordinate in zip(box, (rows, rows, cols, cols), strict=True):
            assert (np.abs(coordinate - edge) <= 3).sum() > 5  # each of the four sides is drawn


def test_default_centre_follows_the_outline_then_the_overlay() -> None:
    image, mask = _volume()
    assert default_centre(image, outline=mask) == (26, 14, 24)  # centre of the box 22:31, 10:19, 20:29
    overlay = np.zeros(image.shape, np.float32)
    overlay[5:7, 5:7, 5:7] = 1
    assert default_centre(image, overlay=overlay) == (6, 6, 6)
    assert default_centre(image, outline=np.zeros(image.shape, bool), overlay=overlay) == (6, 6, 6)


def test_mismatched_or_flat_inputs_are_refused_without_writing(tmp_path: Path) -> None:
    image, mask = _volume()
    with pytest.raises(BrainmetsError, match="outline shape"):
        three_plane_figure(image, tmp_path / "bad.png", outline=mask[:-1])
    with pytest.raises(BrainmetsError, match="needs a 3-D image"):
        three_plane_figure(image[:, :, 0], tmp_path / "bad.png")
    assert not list(tmp_path.iterdir())


def test_report_overlay_outlines_the_lesion_and_colours_its_entropy(tmp_path: Path) -> None:
    """The predict job's picture from NIfTI files: the outline on the lesion's border, entropy colour inside it."""
    from brainmets.figures import lesion_overlay_figure
    from brainmets.io import save_nifti

    image = _noise_volume()
    _, mask = _volume()
    affine = np.diag([*SPACING, 1.0])
    save_nifti(image, affine, tmp_path / "image.nii.gz")
    save_nifti(mask.astype(np.uint8), affine, tmp_path / "segmentation.nii.gz")
    save_nifti(np.where(mask, 0.6, 0.0).astype(np.float32), affine, tmp_path / "entropy.nii.gz")
    files = [tmp_path / name for name in ("image.nii.gz", "segmentation.nii.gz", "entropy.nii.gz")]
    picture = imread(lesion_overlay_figure(*files, tmp_path / "overlay.png", title="patient01 2024-01-01"))
    r, g, b = picture[..., 0], picture[..., 1], picture[..., 2]
    colourful, green = (r - b > 0.3) & (r - g > 0.15), _green(picture)
    for panel, axes in zip(_panels(picture), PANEL_AXES, strict=True):
        top, bottom, left, right = panel
        box = _projected_box(panel, axes, image.shape)
        for drawn in (colourful, green):
            in_panel = np.zeros_like(drawn)
            in_panel[top:bottom, left:right] = drawn[top:bottom, left:right]
            assert in_panel.sum() > 50 and in_panel.sum() == _inside(in_panel, box, 3).sum()
        assert _inside(colourful, box, -3).sum() >= 0.9 * _inside(np.ones_like(colourful), box, -3).sum()
