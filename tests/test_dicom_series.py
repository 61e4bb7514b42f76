"""MR series written from NIfTI images: dcm2niix gives the same voxels on the same grid back; dciodvfy accepts them."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from brainmets.demo.acquisition import orientation_matrix
from brainmets.demo.lesions import random_rotation
from brainmets.dicom.series_writer import write_mr_series
from brainmets.errors import BrainmetsError

from dicomtools import dciodvfy_errors, dcm2niix_image

HEADER = dict(
    patient_id="P001",
    patient_name="Demo^P001",
    study_instance_uid="1.2.826.0.1.3680043.8.498.1",
    study_date="20240115",
    series_number=5,
    series_description="T1 MPRAGE POST",
    contrast_agent="Gadobutrol",
    frame_of_reference_uid="1.2.826.0.1.3680043.8.498.2",
)


def oblique_image(code: str, data: np.ndarray, seed: int) -> nib.Nifti1Image:
    """An image stored in orientation `code`, tilted obliquely by 3-12 deg, anisotropic spacing (mm)."""
    rng = np.random.default_rng(seed)
    affine = np.eye(4)
    affine[:3, :3] = random_rotation(rng, 12.0, 3.0) @ orientation_matrix(code) * np.array([0.9, 1.1, 1.5])
    affine[:3, 3] = rng.uniform(-60, 60, size=3)
    return nib.Nifti1Image(data, affine)


def same_in_world(a: nib.Nifti1Image, b: nib.Nifti1Image) -> tuple[float, float]:
    """Largest affine difference (mm) and voxel difference of two images, both put in RAS+ voxel order."""
    ca, cb = nib.as_closest_canonical(a), nib.as_closest_canonical(b)
    assert ca.shape == cb.shape
    return float(np.abs(ca.affine - cb.affine).max()), float(np.abs(ca.get_fdata() - cb.get_fdata()).max())


@pytest.mark.parametrize("code", ["RAS", "LPS", "PIR", "LAI"])
def test_dcm2niix_gives_back_the_integer_image_and_its_grid(code: str, tmp_path: Path) -> None:
    """Integer voxels come back exactly, the affine to float precision, in every storage orientation."""
    data = np.random.default_rng(1).integers(-1000, 3000, size=(20, 24, 16)).astype(np.int16)
    image = oblique_image(code, data, seed=len(code) + ord(code[0]))
    files = write_mr_series(image, tmp_path / "series", **HEADER)
    assert len(files) == 16
    affine_error, voxel_error = same_in_world(image, dcm2niix_image(tmp_path / "series", tmp_path / "nii"))
    assert affine_error < 1e-4
    assert voxel_error == 0


def test_float_voxels_come_back_within_half_a_rescale_step(tmp_path: Path) -> None:
    """Non-integer voxels are stored with RescaleSlope/Intercept and come back within half a step."""
    data = np.random.default_rng(2).normal(100.0, 30.0, size=(16, 18, 12)).astype(np.float32)
    image = oblique_image("LAS", data, seed=3)
    files = write_mr_series(image, tmp_path / "series", **HEADER)
    slope = float(pydicom.dcmread(files[0]).RescaleSlope)
    affine_error, voxel_error = same_in_world(image, dcm2niix_image(tmp_path / "series", tmp_path / "nii"))
    assert affine_error < 1e-4
    assert voxel_error <= slope * 0.5 + 1e-3


def test_headers_carry_the_series_and_are_deterministic(tmp_path: Path) -> None:
    """Patient, study, series, contrast agent and geometry in the headers; the same inputs give the same UIDs."""
    data = np.arange(8 * 10 * 6, dtype=np.int16).reshape(8, 10, 6)
    affine = np.diag([0.5, 0.6, 3.0, 1.0])
    first = write_mr_series(nib.Nifti1Image(data, affine), tmp_path / "a", **HEADER)
    second = write_mr_series(nib.Nifti1Image(data, affine), tmp_path / "b", **HEADER)
    headers = [pydicom.dcmread(p) for p in first]
    again = [pydicom.dcmread(p) for p in second]
    assert [h.SOPInstanceUID for h in headers] == [h.SOPInstanceUID for h in again]
    assert len({h.SOPInstanceUID for h in headers}) == 6
    assert len({h.SeriesInstanceUID for h in headers}) == 1
    h = headers[2]
    assert (h.PatientID, str(h.PatientName), h.StudyDate, h.SeriesNumber) == ("P001", "Demo^P001", "20240115", 5)
    assert h.StudyInstanceUID == HEADER["study_instance_uid"]
    assert h.FrameOfReferenceUID == HEADER["frame_of_reference_uid"]
    assert h.ContrastBolusAgent == "Gadobutrol"
    assert (h.Rows, h.Columns, h.InstanceNumber) == (10, 8, 3)
    assert [float(v) for v in h.PixelSpacing] == [0.6, 0.5]
    assert float(h.SliceThickness) == 3.0 and float(h.SpacingBetweenSlices) == 3.0
    assert h.MRAcquisitionType == "2D"
    assert list(h.ImageType)[:2] == ["ORIGINAL", "PRIMARY"]
    # RAS (0, 0, 2) voxel -> LPS mm: x and y change sign
    assert [float(v) for v in h.ImagePositionPatient] == [0.0, 0.0, 6.0]
    assert [float(v) for v in h.ImageOrientationPatient] == [-1.0, 0.0, 0.0, 0.0, -1.0, 0.0]
    assert np.array_equal(h.pixel_array, data[:, :, 2].T)
    other = write_mr_series(nib.Nifti1Image(data, affine), tmp_path / "c", **{**HEADER, "series_number": 6})
    assert pydicom.dcmread(other[0]).SeriesInstanceUID != h.SeriesInstanceUID
    no_agent = write_mr_series(nib.Nifti1Image(data, affine), tmp_path / "d", **{**HEADER, "contrast_agent": None})
    assert "ContrastBolusAgent" not in pydicom.dcmread(no_agent[0])


def test_a_sheared_grid_is_refused(tmp_path: Path) -> None:
    """DICOM slices cannot be sheared: such an image is refused with one line, nothing written."""
    affine = np.eye(4)
    affine[0, 1] = 0.3
    with pytest.raises(BrainmetsError, match="not orthogonal"):
        write_mr_series(nib.Nifti1Image(np.ones((4, 4, 4), np.int16), affine), tmp_path / "s", **HEADER)
    assert not (tmp_path / "s").exists()


@pytest.mark.system
def test_dciodvfy_finds_no_error_in_a_written_slice(tmp_path: Path) -> None:
    """The IOD validator of dicom3tools reports no error for a post-contrast slice or a rescaled one."""
    integer = oblique_image("LPS", np.random.default_rng(4).integers(0, 900, size=(12, 12, 4)).astype(np.int16), 5)
    floats = oblique_image("RAS", np.random.default_rng(6).normal(size=(12, 12, 4)).astype(np.float32), 7)
    checked = [write_mr_series(integer, tmp_path / "a", **HEADER)[1]]
    checked.append(write_mr_series(floats, tmp_path / "b", **{**HEADER, "contrast_agent": None})[0])
    for path in checked:
        assert dciodvfy_errors(path) == [], path


@pytest.mark.system
@pytest.mark.parametrize("protocol", ["3d-1mm", "2d-0.5x0.5x3mm"])
def test_dciodvfy_finds_no_error_in_the_demo_studys_series(protocol: str, tmp_path: Path) -> None:
    """Localiser, non-contrast and post-contrast T1 of a demo study (both sequence kinds) validate without errors."""
    from brainmets.demo.dicom import write_demo_study

    rng = np.random.default_rng(8)
    post, pre = (rng.integers(0, 900, size=(16, 16, 12)).astype(np.int16) for _ in range(2))
    affine = oblique_image("LPS", post, 9).affine
    for visit in (0, 1):  # agent named, and not
        folder = write_demo_study(tmp_path / str(visit), "patient01", "2024-01-15", visit, post, pre, affine, protocol)
        for series in sorted(folder.iterdir()):
            assert dciodvfy_errors(next(series.glob("*.dcm"))) == [], series
