"""Boundary-weight maps: >= 1, peak at borders, decay with distance, small lesions weigh more."""

from __future__ import annotations

import math

import nibabel as nib
import numpy as np
import pytest
from brainmets.cli import main
from brainmets.io import save_nifti
from brainmets.train.settings import WeightMapSettings
from brainmets.train.weightmap import boundary_weight_map

PARAMS = WeightMapSettings(
    border_weight=2.0, border_sigma_mm=2.0, small_lesion_weight=3.0, small_lesion_volume_mm3=500.0
)


def _ball(shape, centre, radius_vox):
    grid = np.indices(shape)
    return sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True)) <= radius_vox**2


@pytest.fixture(scope="module")
def two_lesions():
    label = _ball((64, 48, 48), (18, 24, 24), 9) | _ball((64, 48, 48), (50, 24, 24), 2)
    return label, boundary_weight_map(label, (1.0, 1.0, 1.0), PARAMS)


def test_single_voxel_lesion_matches_the_formula_by_hand():
    label = np.zeros((9, 9, 9), np.uint8)
    label[4, 4, 4] = 1
    w = boundary_weight_map(label, (1.0, 1.0, 1.0), PARAMS)
    # d = 0.5 mm at the lesion voxel, V = 1 mm^3
    expected_centre = 1 + (2.0 + 3.0 * math.exp(-1 / 500)) * math.exp(-(0.5**2) / 8)
    assert w[4, 4, 4] == pytest.approx(expected_centre, rel=1e-6)
    # the face neighbour: nearest lesion voxel 1 mm away -> d = 0.5 mm, same weight
    assert w[5, 4, 4] == pytest.approx(expected_centre, rel=1e-6)
    # 3 voxels away along an axis: d = 3 - 0.5 = 2.5 mm
    assert w[4, 4, 7] == pytest.approx(1 + (2.0 + 3.0 * math.exp(-1 / 500)) * math.exp(-(2.5**2) / 8), rel=1e-6)


def test_weights_are_at_least_one_and_bounded(two_lesions):
    _, w = two_lesions
    assert w.min() >= 1.0
    assert w.max() <= 1 + PARAMS.border_weight + PARAMS.small_lesion_weight
    assert w.dtype == np.float32


def test_weights_peak_at_borders_and_decay_with_distance(two_lesions):
    label, w = two_lesions
    # along a ray from the large lesion's centre (18, 24, 24) through its border at radius 9
    ray = w[18, 24, 24:48]
    border = 9  # last lesion voxel on the ray
    assert ray[border] == pytest.approx(ray[border + 1])  # both sides of the border get d = 0.5 mm
    assert ray[border] == ray.max()
    assert np.all(np.diff(ray[: border + 1]) > 0)  # rises from the lesion's centre to its border
    assert np.all(np.diff(ray[border + 1 : border + 9]) < 0)  # and falls away from it outside
    assert np.all(np.diff(ray[border + 1 :]) <= 0)  # (until float32 rounds it to 1)
    assert ray[0] < 1.01 and ray[-1] < 1.01  # deep inside and far away: close to 1


def test_small_lesion_gets_more_weight_than_large(two_lesions):
    label, w = two_lesions
    large = w[:34][label[:34]]
    small = w[34:][label[34:]]
    assert small.mean() > large.mean()
    assert small.max() > large.max()


def test_no_lesion_gives_uniform_weight():
    assert np.array_equal(boundary_weight_map(np.zeros((8, 8, 8)), (1, 1, 1)), np.ones((8, 8, 8), np.float32))


def test_anisotropic_spacing_measures_distance_in_mm():
    label = np.zeros((5, 5, 21), np.uint8)
    label[2, 2, 10] = 1
    w = boundary_weight_map(label, (1.0, 1.0, 3.0), PARAMS)
    # one voxel along axis 2 is 3 mm: d = 3 - 0.5 = 2.5 mm, the same as three voxels along axis 0 at 1 mm would be
    amplitude = 2.0 + 3.0 * math.exp(-3 / 500)
    assert w[2, 2, 11] == pytest.approx(1 + amplitude * math.exp(-(2.5**2) / 8), rel=1e-6)


def test_weight_map_command_writes_nifti_on_the_label_grid(tmp_path):
    label = _ball((32, 32, 32), (16, 16, 16), 5).astype(np.uint8)
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    save_nifti(label, affine, tmp_path / "label.nii.gz")
    assert main(["weight-map", "--label", str(tmp_path / "label.nii.gz"), "--out", str(tmp_path / "w.nii.gz")]) == 0
    img = nib.load(tmp_path / "w.nii.gz")
    np.testing.assert_allclose(img.affine, affine)
    np.testing.assert_allclose(img.get_fdata(), boundary_weight_map(label, (1.0, 1.0, 2.0)), rtol=1e-6)


def test_weight_map_command_refuses_a_missing_label(tmp_path, capsys):
    assert main(["weight-map", "--label", str(tmp_path / "no.nii.gz"), "--out", str(tmp_path / "w.nii.gz")]) == 2
    assert "no.nii.gz: file not found" in capsys.readouterr().err
    assert not (tmp_path / "w.nii.gz").exists()
