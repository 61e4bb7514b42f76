"""Writing a 3-D image as a DICOM MR Image Storage series, one file per slice, with deterministic UIDs.

The slices run along the image's third voxel axis; within a slice the DICOM columns follow the first
voxel axis and the rows the second, so ImagePositionPatient and ImageOrientationPatient (LPS) carry the
NIfTI affine (RAS) exactly and dcm2niix gives the same voxels on the same grid back.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, MRImageStorage, generate_uid

from brainmets import __version__
from brainmets.errors import BrainmetsError
from brainmets.io import atomic_path

#: prefix of every UID brainmets derives (pydicom's root; the suffix is a hash of the inputs)
UID_PREFIX = "1.2.826.0.1.3680043.8.498."
#: RAS <-> LPS: the NIfTI world and the DICOM patient frame differ by the sign of x and y
RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
#: largest |cosine| between voxel axes accepted as orthogonal (DICOM slices cannot be sheared)
ORTHOGONAL_TOLERANCE = 1e-4


def derived_uid(*parts: str) -> str:
    """A UID that is a hash of `parts`: the same inputs always give the same UID."""
    return str(generate_uid(prefix=UID_PREFIX, entropy_srcs=["brainmets", *parts]))


def _ds(value: float) -> str:
    """A decimal string (DS) for `value` with as many significant digits as its 16 characters hold."""
    for digits in range(16, 0, -1):
        text = f"{value:.{digits}g}"
        if len(text) <= 16:
            return text
    raise ValueError(f"{value} does not fit a DICOM decimal string")  # unreachable for finite floats


def _stored_values(data: np.ndarray) -> tuple[np.ndarray, float, float]:
    """16-bit stored values with rescale slope and intercept such that value = stored * slope + intercept."""
    if np.issubdtype(data.dtype, np.integer) or np.array_equal(data, np.rint(data)):
        low, high = float(data.min()), float(data.max())
        if low >= 0 and high <= np.iinfo(np.uint16).max:
            return data.astype(np.uint16), 1.0, 0.0
        if low >= np.iinfo(np.int16).min and high <= np.iinfo(np.int16).max:
            return data.astype(np.int16), 1.0, 0.0
    values = np.asarray(data, dtype=np.float64)
    low, high = float(values.min()), float(values.max())
    slope = (high - low) / np.iinfo(np.uint16).max if high > low else 1.0
    # slope and intercept as the decimal strings the header holds, so a reader recovers the same values
    slope, intercept = float(_ds(slope)), float(_ds(low))
    stored = np.clip(np.rint((values - intercept) / slope), 0, np.iinfo(np.uint16).max)
    return stored.astype(np.uint16), slope, intercept


def slice_geometry(affine: np.ndarray) -> tuple[list[float], list[float], np.ndarray, np.ndarray]:
    """ImageOrientationPatient, PixelSpacing (mm, [row, column]), slice positions' origin and step (LPS mm).

    Refused: a voxel grid whose axes are not orthogonal (DICOM slices cannot be sheared).
    """
    lps = RAS_TO_LPS @ np.asarray(affine, dtype=float)
    axes = lps[:3, :3]
    lengths = np.sqrt((axes**2).sum(axis=0))
    if not (np.isfinite(axes).all() and lengths.min() > 0):
        raise BrainmetsError("the image's affine is singular or not finite; it cannot be written as DICOM")
    unit = axes / lengths
    cosines = unit.T @ unit - np.eye(3)
    if np.abs(cosines).max() > ORTHOGONAL_TOLERANCE:
        raise BrainmetsError("the image's voxel axes are not orthogonal (sheared grid); it cannot be written as DICOM")
    orientation = [*unit[:, 0], *unit[:, 1]]
    # rows are spaced along the second voxel axis, columns along the first
    spacing = [float(lengths[1]), float(lengths[0])]
    return [float(v) for v in orientation], spacing, lps[:3, 3], lps[:3, 2]


def write_mr_series(
    image: nib.Nifti1Image,
    out_dir: str | os.PathLike[str],
    *,
    patient_id: str,
    patient_name: str,
    study_instance_uid: str,
    study_date: str,
    series_number: int,
    series_description: str,
    contrast_agent: str | None,
    frame_of_reference_uid: str,
    study_time: str = "090000",
    series_time: str | None = None,
    study_id: str = "1",
    accession_number: str = "",
    study_description: str = "MRI BRAIN",
    patient_birth_date: str = "",
    patient_sex: str = "",
    series_instance_uid: str | None = None,
    image_type: Sequence[str] = ("ORIGINAL", "PRIMARY", "OTHER"),
    mr_acquisition_type: str | None = None,
    scanning_sequence: str = "GR\\IR",
    sequence_variant: str = "SK\\SP\\MP",
    scan_options: str = "",
    sequence_name: str = "*tfl3d1",
    echo_time_ms: float = 2.5,
    repetition_time_ms: float = 2000.0,
    inversion_time_ms: float | None = 900.0,
    flip_angle_deg: float = 9.0,
    magnetic_field_strength_t: float = 3.0,
    manufacturer: str = "brainmets",
    model_name: str = "synthetic scanner",
    institution_name: str = "",
    body_part: str = "BRAIN",
    protocol_name: str | None = None,
) -> list[Path]:
    """Write a 3-D image as an MR Image Storage series (one file per slice along the third voxel axis).

    Voxel values are stored as 16-bit integers (with RescaleSlope/RescaleIntercept when they are not
    integers in range), positions and orientation in LPS mm from the image's affine. UIDs are derived
    from the study UID, series number and description, so the same inputs give the same files. The
    files are named `IM{instance:05d}.dcm` in `out_dir`; returns their paths in slice order.
    """
    data = np.asanyarray(image.dataobj)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise BrainmetsError(f"{out_dir}: expected a 3-D image to write as a DICOM series, got shape {data.shape}")
    if not np.isfinite(np.asarray(data, dtype=float)).all():
        raise BrainmetsError(f"{out_dir}: the image has NaN or infinite voxels; they cannot be written as DICOM")
    orientation, pixel_spacing, origin, step = slice_geometry(image.affine)
    thickness = float(np.linalg.norm(step))
    stored, slope, intercept = _stored_values(data)
    if mr_acquisition_type is None:
        mr_acquisition_type = "3D" if thickness <= 2.0 else "2D"
    if series_instance_uid is None:
        series_instance_uid = derived_uid(study_instance_uid, str(series_number), series_description, "series")
    series_time = series_time or study_time
    normal = np.cross(orientation[:3], orientation[3:])

    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(data.shape[2]):
        instance = k + 1
        sop_instance_uid = derived_uid(series_instance_uid, str(instance), "instance")
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = UID(sop_instance_uid)
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = UID(derived_uid("implementation", __version__))
        meta.ImplementationVersionName = f"BRAINMETS_{__version__}"[:16]
        ds = Dataset()
        ds.file_meta = meta
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.ImageType = list(image_type)
        ds.SOPClassUID = MRImageStorage
        ds.SOPInstanceUID = sop_instance_uid
        ds.StudyDate = study_date
        ds.SeriesDate = study_date
        ds.AcquisitionDate = study_date
        ds.ContentDate = study_date
        ds.StudyTime = study_time
        ds.SeriesTime = series_time
        ds.AcquisitionTime = series_time
        ds.ContentTime = series_time
        ds.AccessionNumber = accession_number
        ds.Modality = "MR"
        ds.Manufacturer = manufacturer
        ds.InstitutionName = institution_name
        ds.ReferringPhysicianName = ""
        ds.StudyDescription = study_description
        ds.SeriesDescription = series_description
        ds.ManufacturerModelName = model_name
        ds.PatientName = patient_name
        ds.PatientID = patient_id
        ds.PatientBirthDate = patient_birth_date
        ds.PatientSex = patient_sex
        if contrast_agent:
            ds.ContrastBolusAgent = contrast_agent
            ds.ContrastBolusRoute = "IV"
        ds.BodyPartExamined = body_part
        ds.ScanningSequence = scanning_sequence
        ds.SequenceVariant = sequence_variant
        ds.ScanOptions = scan_options
        ds.MRAcquisitionType = mr_acquisition_type
        ds.SequenceName = sequence_name
        ds.AngioFlag = "N"
        ds.SliceThickness = _ds(thickness)
        ds.RepetitionTime = _ds(repetition_time_ms)
        ds.EchoTime = _ds(echo_time_ms)
        if "IR" in scanning_sequence.split("\\"):
            ds.InversionTime = _ds(inversion_time_ms) if inversion_time_ms is not None else ""
        ds.NumberOfAverages = "1"
        ds.ImagingFrequency = _ds(42.577478 * magnetic_field_strength_t)
        ds.ImagedNucleus = "1H"
        ds.EchoNumbers = "1"
        ds.MagneticFieldStrength = _ds(magnetic_field_strength_t)
        ds.SpacingBetweenSlices = _ds(thickness)
        ds.EchoTrainLength = "1"
        ds.SoftwareVersions = f"brainmets {__version__}"
        ds.ProtocolName = protocol_name if protocol_name is not None else series_description
        ds.FlipAngle = _ds(flip_angle_deg)
        ds.PatientPosition = "HFS"
        ds.StudyInstanceUID = study_instance_uid
        ds.SeriesInstanceUID = series_instance_uid
        ds.StudyID = study_id
        ds.SeriesNumber = str(series_number)
        ds.AcquisitionNumber = "1"
        ds.InstanceNumber = str(instance)
        position = origin + k * step
        ds.ImagePositionPatient = [_ds(float(v)) for v in position]
        ds.ImageOrientationPatient = [_ds(v) for v in orientation]
        ds.FrameOfReferenceUID = frame_of_reference_uid
        ds.PositionReferenceIndicator = ""
        ds.SliceLocation = _ds(float(np.dot(position, normal)))
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = int(data.shape[1])
        ds.Columns = int(data.shape[0])
        ds.PixelSpacing = [_ds(v) for v in pixel_spacing]
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        signed = stored.dtype == np.int16
        ds.PixelRepresentation = 1 if signed else 0
        plane = np.ascontiguousarray(stored[:, :, k].T)
        if slope != 1.0 or intercept != 0.0:
            ds.RescaleIntercept = _ds(intercept)
            ds.RescaleSlope = _ds(slope)
            ds.RescaleType = "US"
        ds.PixelData = plane.astype("<i2" if signed else "<u2").tobytes()
        path = folder / f"IM{instance:05d}.dcm"
        with atomic_path(path) as tmp:
            pydicom.dcmwrite(tmp, ds, enforce_file_format=True)
        paths.append(path)
    return paths
