"""Lesion measurement: diameters at pixel edges in mm, measurability, volumes, centroids, bad input."""

from __future__ import annotations

import math

import nibabel as nib
import numpy as np
import pytest
from brainmets.cli import main
from brainmets.components import label_lesions
from brainmets.errors import BrainmetsError
from brainmets.io import load_mask, read_tsv, save_nifti
from brainmets.rano.measure import (
    MEASUREMENT_COLUMNS,
    axial_diameters,
    measure_lesions,
)
from brainmets.rano.rano import is_measurable
from brainmets.rano.settings import RanoSettings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def ellipse_prism(
    a_mm: float,
    b_mm: float,
    angle: float,
    spacing: tuple[float, float, float],
    offset: tuple[float, float],
    n_slices: int = 3,
) -> np.ndarray:
    """Rasterised elliptic prism (pixel centres inside the ellipse) on `n_slices` axial slices."""
    sx, sy, _ = spacing
    ni, nj = math.ceil(2 * a_mm / sx) + 8, math.ceil(2 * a_mm / sy) + 8
    x = (np.arange(ni)[:, None] - ni / 2 + offset[0]) * sx
    y = (np.arange(nj)[None, :] - nj / 2 + offset[1]) * sy
    u = x * math.cos(angle) + y * math.sin(angle)
    v = -x * math.sin(angle) + y * math.cos(angle)
    disc = (u / a_mm) ** 2 + (v / b_mm) ** 2 <= 1.0
    volume = np.zeros((ni, nj, n_slices + 2), dtype=bool)
    volume[:, :, 1 : n_slices + 1] = disc[:, :, None]
    return volume


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    a_mm=st.floats(3.0, 30.0),
    ratio=st.floats(0.3, 1.0),
    angle=st.floats(0.0, math.pi),
    sx=st.floats(0.4, 1.5),
    sy=st.floats(0.4, 1.5),
    sz=st.floats(0.8, 6.0),
    offset=st.tuples(st.floats(-0.5, 0.5), st.floats(-0.5, 0.5)),
)
def test_ellipse_diameters_within_one_and_a_half_voxels(a_mm, ratio, angle, sx, sy, sz, offset):
    # the minor diameter spans at least 5 in-plane voxels (a 5 mm PD, the measurability bar, at 1 mm)
    b_mm = min(max(a_mm * ratio, 2.5 * max(sx, sy)), a_mm)
    mask = ellipse_prism(a_mm, b_mm, angle, (sx, sy, sz), offset)
    table = measure_lesions(mask, np.diag([sx, sy, sz, 1.0]))
    assert len(table) == 1
    tolerance = 1.5 * max(sx, sy)
    assert abs(table.loc[0, "longest_diameter_mm"] - 2 * a_mm) <= tolerance
    assert abs(table.loc[0, "perpendicular_diameter_mm"] - 2 * b_mm) <= tolerance
    assert table.loc[0, "n_axial_slices"] == 3


def test_rectangle_diameters_use_the_pixel_edge_contour_and_physical_spacing():
    # 4 x 3 pixels of 2 mm x 1 mm. The boundary runs through the edge midpoints, so the outline is
    # the 8 mm x 3 mm rectangle with each corner cut at the neighbouring edge midpoints; its longest
    # distance joins opposite cut corners: max(hypot(4 * 2, 2 * 1), hypot(3 * 2, 3 * 1)) = sqrt(68).
    mask = np.zeros((10, 10, 5), dtype=bool)
    mask[2:6, 4:7, 1:3] = True
    row = measure_lesions(mask, np.diag([2.0, 1.0, 3.0, 1.0])).iloc[0]
    assert row["longest_diameter_mm"] == pytest.approx(math.sqrt(68))
    assert row["volume_ml"] == pytest.approx(4 * 3 * 2 * 6.0 / 1000)
    assert row["n_axial_slices"] == 2


def test_line_of_pixels_measures_its_length_and_width():
    # a 1-pixel-wide line of 9 pixels of 0.7 mm x 1.3 mm along axis 1: LD 9 x 1.3 mm, PD 0.7 mm
    mask = np.zeros((5, 14, 5), dtype=bool)
    mask[2, 2:11, 1:3] = True
    row = measure_lesions(mask, np.diag([0.7, 1.3, 2.0, 1.0])).iloc[0]
    assert row["longest_diameter_mm"] == pytest.approx(9 * 1.3)
    assert row["perpendicular_diameter_mm"] == pytest.approx(0.7)


def test_single_voxel_diameters_are_its_pixel_extents():
    mask = np.zeros((5, 5, 5), dtype=bool)
    mask[2, 2, 2] = True
    row = measure_lesions(mask, np.diag([0.5, 1.2, 1.0, 1.0])).iloc[0]
    assert row["longest_diameter_mm"] == pytest.approx(1.2)
    assert row["perpendicular_diameter_mm"] == pytest.approx(0.5)


def test_ld_is_the_largest_over_slices_and_reports_that_slice():
    mask = np.zeros((20, 20, 6), dtype=bool)
    mask[5:8, 5:8, 1] = True  # 3 x 3 pixels
    mask[5:13, 5:8, 2] = True  # 8 x 3 pixels: LD max(hypot(8, 2), hypot(7, 3)) = sqrt(68)
    mask[5:9, 5:8, 3] = True
    endpoints = axial_diameters(mask, np.eye(4)).endpoints_voxel
    row = measure_lesions(mask, np.eye(4)).iloc[0]
    assert row["ld_slice"] == 2
    assert row["longest_diameter_mm"] == pytest.approx(math.sqrt(68))
    assert np.linalg.norm(endpoints[1] - endpoints[0]) == pytest.approx(math.sqrt(68))
    assert set(endpoints[:, 2]) == {2}


def test_axial_axis_follows_the_affine_not_the_array_order():
    # array axis 0 points superior: the axial slices are mask[k, :, :]
    affine = np.array([[0, 0, 1.0, 0], [0, 1.0, 0, 0], [2.0, 0, 0, 0], [0, 0, 0, 1]])
    mask = np.zeros((6, 12, 12), dtype=bool)
    mask[2:4, 1:9, 3:5] = True  # 8 x 2 pixels on slices 2 and 3: LD hypot(8, 1)
    row = measure_lesions(mask, affine).iloc[0]
    assert row["longest_diameter_mm"] == pytest.approx(math.sqrt(65))
    assert row["n_axial_slices"] == 2
    assert row["ld_slice"] == 2


def test_rotated_grid_measures_the_same_lengths():
    # 4 x 12 pixels of 1.5 mm x 0.5 mm: LD from cut corner to cut corner = hypot(6, 5.5) mm
    mask = np.zeros((10, 20, 4), dtype=bool)
    mask[2:6, 3:15, 1:3] = True
    straight = measure_lesions(mask, np.diag([1.5, 0.5, 2.0, 1.0])).iloc[0]
    angle = math.radians(30)
    rotation = np.array([[math.cos(angle), -math.sin(angle), 0], [math.sin(angle), math.cos(angle), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([1.5, 0.5, 2.0])
    rotated = measure_lesions(mask, affine).iloc[0]
    assert straight["longest_diameter_mm"] == pytest.approx(math.hypot(6, 5.5))
    assert rotated["longest_diameter_mm"] == pytest.approx(math.hypot(6, 5.5))
    assert rotated["perpendicular_diameter_mm"] == pytest.approx(straight["perpendicular_diameter_mm"])


def test_components_are_26_connected_and_centroids_are_world_ras():
    mask = np.zeros((10, 10, 10), dtype=np.uint8)
    mask[1, 1, 1] = mask[2, 2, 2] = 1  # touch at a corner only: one lesion
    mask[6:8, 6:8, 6] = 1
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = [-10.0, 20.0, 5.0]
    table = measure_lesions(mask, affine)
    assert list(table.columns) == MEASUREMENT_COLUMNS
    assert list(table["component"]) == [1, 2]
    assert list(table["volume_ml"]) == pytest.approx([2 * 8 / 1000, 4 * 8 / 1000])
    assert table.loc[0, ["centroid_x_mm", "centroid_y_mm", "centroid_z_mm"]].tolist() == pytest.approx(
        [-7.0, 23.0, 8.0]
    )
    assert table.loc[1, ["centroid_x_mm", "centroid_y_mm", "centroid_z_mm"]].tolist() == pytest.approx(
        [3.0, 33.0, 17.0]
    )


def test_label_map_counts_as_binary():
    labels = np.zeros((8, 8, 8), dtype=np.int16)
    labels[1:3, 1:3, 1:3] = 4
    labels[3:5, 1:3, 1:3] = 7  # touches label 4: one lesion
    assert len(measure_lesions(labels, np.eye(4))) == 1


@pytest.mark.parametrize(
    ("ld", "pd", "slices", "measurable"),
    [
        (10.0, 5.0, 2, True),  # exactly on every threshold
        (9.99, 9.0, 4, False),  # LD below 10 mm
        (25.0, 4.99, 4, False),  # PD below 5 mm
        (25.0, 20.0, 1, False),  # one axial slice only
    ],
)
def test_measurability_rule(ld, pd, slices, measurable):
    assert bool(is_measurable([ld], [pd], [slices])[0]) is measurable


def test_measured_lesions_carry_the_measurability_of_their_diameters():
    # an elliptic prism 2 x 14 mm by 2 x 6 mm on 4 slices is measurable; on 1 slice, or 2 x 4 mm wide, not
    affine = np.diag([0.5, 0.5, 1.0, 1.0])
    assert bool(
        measure_lesions(ellipse_prism(14.0, 6.0, 0.4, (0.5, 0.5, 1.0), (0, 0), 4), affine).iloc[0]["measurable"]
    )
    one_slice = ellipse_prism(14.0, 6.0, 0.4, (0.5, 0.5, 1.0), (0, 0), 1)
    assert not measure_lesions(one_slice, affine).iloc[0]["measurable"]
    narrow = ellipse_prism(14.0, 2.0, 0.4, (0.5, 0.5, 1.0), (0, 0), 4)
    assert not measure_lesions(narrow, affine).iloc[0]["measurable"]
    wide = ellipse_prism(14.0, 6.0, 0.4, (0.5, 0.5, 1.0), (0, 0), 4)
    assert not measure_lesions(wide, affine, RanoSettings(measurable_min_slices=5)).iloc[0]["measurable"]
    assert not measure_lesions(wide, affine, RanoSettings(measurable_min_ld_mm=30.0)).iloc[0]["measurable"]


def test_empty_mask_gives_an_empty_table_with_the_columns():
    table = measure_lesions(np.zeros((8, 8, 8), dtype=bool), np.eye(4))
    assert table.empty
    assert list(table.columns) == MEASUREMENT_COLUMNS


def test_measure_command_writes_the_contract_columns(tmp_path):
    mask = np.zeros((16, 16, 8), dtype=np.uint8)
    mask[2:10, 2:6, 2:5] = 1
    mask[12:14, 12:14, 6] = 1
    save_nifti(mask, np.diag([1.0, 1.0, 2.0, 1.0]), tmp_path / "mask.nii.gz")
    assert main(["measure", str(tmp_path / "mask.nii.gz"), "--out", str(tmp_path / "lesions.tsv")]) == 0
    table = read_tsv(tmp_path / "lesions.tsv")
    assert list(table.columns) == MEASUREMENT_COLUMNS
    assert list(table["n_axial_slices"]) == [3, 1]
    assert table.loc[0, "volume_ml"] == pytest.approx(8 * 4 * 3 * 2 / 1000)


def test_measure_command_accepts_an_empty_mask(tmp_path):
    save_nifti(np.zeros((8, 8, 8), dtype=np.uint8), np.eye(4), tmp_path / "empty.nii.gz")
    assert main(["measure", str(tmp_path / "empty.nii.gz"), "--out", str(tmp_path / "lesions.tsv")]) == 0
    table = read_tsv(tmp_path / "lesions.tsv")
    assert table.empty and list(table.columns) == MEASUREMENT_COLUMNS


def test_non_binary_mask_is_refused_in_one_line(tmp_path, capsys):
    data = np.zeros((8, 8, 8), dtype=np.float32)
    data[2:4, 2:4, 2:4] = 0.7
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "prob.nii.gz")
    with pytest.raises(BrainmetsError, match=r"prob\.nii\.gz: not a binary mask .*0\.7"):
        load_mask(tmp_path / "prob.nii.gz")
    assert main(["measure", str(tmp_path / "prob.nii.gz"), "--out", str(tmp_path / "out.tsv")]) == 2
    error = capsys.readouterr().err
    assert len(error.strip().splitlines()) == 1 and "binarise" in error
    assert not (tmp_path / "out.tsv").exists()


def test_missing_mask_is_refused_in_one_line(tmp_path, capsys):
    assert main(["measure", str(tmp_path / "absent.nii.gz"), "--out", str(tmp_path / "out.tsv")]) == 2
    error = capsys.readouterr().err.strip()
    assert "absent.nii.gz: file not found" in error and len(error.splitlines()) == 1


def test_equal_longest_diameters_report_the_lower_slice():
    mask = np.zeros((20, 20, 6), dtype=bool)
    mask[5:13, 5:8, 1] = True
    mask[6:9, 5:8, 2] = True
    mask[5:13, 5:8, 3] = True
    assert measure_lesions(mask, np.eye(4)).iloc[0]["ld_slice"] == 1


def test_labelling_inside_the_bounding_box_numbers_like_the_whole_volume():
    from scipy import ndimage

    rng = np.random.default_rng(4)
    mask = np.zeros((30, 34, 26), dtype=bool)
    mask[5:25, 8:30, 3:20] = rng.random((20, 22, 17)) > 0.8
    labels, n = label_lesions(mask)
    expected, n_expected = ndimage.label(mask, structure=np.ones((3, 3, 3)))
    assert n == n_expected > 10
    assert np.array_equal(labels, expected)
    assert label_lesions(np.zeros((4, 4, 4)))[1] == 0
