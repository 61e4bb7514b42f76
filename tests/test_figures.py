"""Three-plane pictures: outline and overlay drawn where the masks are, errors for mismatched inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from brainmets.errors import BrainmetsError
from brainmets.figures import default_centre, three_plane_figure
from matplotlib.image import imread


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


def test_overlay_colours_the_masked_region(tmp_path: Path) -> None:
    image, mask = _volume()
    probability = np.where(mask, 0.9, 0.0).astype(np.float32)
    picture = imread(
        three_plane_figure(image, tmp_path / "overlay.png", overlay=probability, overlay_label="probability")
    )
    colourful = np.abs(picture[..., 0] - picture[..., 2]) > 0.3  # the grey image has r == g == b
    assert colourful.sum() > 100


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
