"""The demo cohort's scans as DICOM studies: a localiser, a non-contrast T1 and the post-contrast T1 per visit.

Each visit of a longitudinal patient becomes one study under DIR/dicom/<patient>/<YYYYMMDD>/, one
folder per series (MR Image Storage, one file per slice, written by `write_mr_series`):

    01_localizer/     3 parallel slices, ImageType ORIGINAL\\PRIMARY\\LOCALIZER
    03_t1/            the head without enhancing lesions, before contrast (same grid as the post-contrast T1)
    05_t1_post/       the post-contrast T1: the NIfTI demo scan's voxels and grid exactly

The headers are those of real studies, quirks included: on odd visits the post-contrast series names
its agent (ContrastBolusAgent, description "+C"); on even visits, as on many scanners, neither series
names it and both share one description, only the later acquisition time tells the post-contrast one.
UIDs are derived from the patient, the date and the series, so the same cohort gives the same files.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import nibabel as nib
import numpy as np

from brainmets.dicom.series_writer import derived_uid, write_mr_series

#: series number, folder, acquisition time of each series of a demo study
LOCALISER = (1, "01_localizer", "090100")
PRE_CONTRAST = (3, "03_t1", "090500")
POST_CONTRAST = (5, "05_t1_post", "092000")
#: the contrast agent named on the post-contrast series of odd visits
AGENT = "Gadobutrol"
#: in-plane size (voxels) and slice gap (mm) of the localiser
LOCALISER_SIZE = 64
LOCALISER_GAP_MM = 10.0


def study_folder(out: str | Path, patient: str, date: str) -> Path:
    """DIR/dicom/<patient>/<YYYYMMDD>: the folder of one demo visit's study."""
    return Path(out) / "dicom" / patient / date.replace("-", "")


def _sequence(protocol: str) -> dict[str, object]:
    """MR sequence attributes of a demo protocol: 3-D MPRAGE-like gradient echo or 2-D spin echo."""
    if protocol.startswith("3d"):
        return dict(
            mr_acquisition_type="3D",
            scanning_sequence="GR\\IR",
            sequence_variant="SK\\SP\\MP",
            sequence_name="*tfl3d1",
            repetition_time_ms=2000.0,
            echo_time_ms=2.5,
            inversion_time_ms=900.0,
        )
    return dict(
        mr_acquisition_type="2D",
        scanning_sequence="SE",
        sequence_variant="SP",
        sequence_name="*se2d1",
        repetition_time_ms=550.0,
        echo_time_ms=9.0,
        inversion_time_ms=None,
    )


def localiser_image(post: np.ndarray, affine: np.ndarray) -> nib.Nifti1Image:
    """Three parallel coarse slices through the middle of a scan: a quick localiser (int16)."""
    shape = np.asarray(post.shape)
    step = np.maximum(shape[:2] // LOCALISER_SIZE, 1)
    spacing = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    gap = max(1, int(round(LOCALISER_GAP_MM / spacing[2])))
    middle = shape[2] // 2
    picked = [min(max(middle + k * gap, 0), shape[2] - 1) for k in (-1, 0, 1)]
    data = post[:: step[0], :: step[1], picked]
    scaled = affine.copy()
    scaled[:3, 0] *= step[0]
    scaled[:3, 1] *= step[1]
    scaled[:3, 2] *= gap
    scaled[:3, 3] = affine[:3, :3] @ np.array([0.0, 0.0, picked[0]]) + affine[:3, 3]
    return nib.Nifti1Image(np.ascontiguousarray(data), scaled)


def write_demo_study(
    out: str | Path,
    patient: str,
    date: str,
    visit: int,
    post: np.ndarray,
    pre: np.ndarray,
    affine: np.ndarray,
    protocol: str,
) -> Path:
    """Write one visit's study (localiser, pre- and post-contrast T1; int16 voxels, RAS affine); returns its folder."""
    folder = study_folder(out, patient, date)
    day = date.replace("-", "")
    study = {
        "patient_id": patient,
        "patient_name": f"Demo^{patient}",
        "study_instance_uid": derived_uid("demo", patient, day, "study"),
        "study_date": day,
        "frame_of_reference_uid": derived_uid("demo", patient, day, "frame of reference"),
        "study_time": "090000",
        "accession_number": f"D{zlib.crc32(f'{patient} {day}'.encode()) % 10**8:08d}",
        "patient_birth_date": "19600101",
        "patient_sex": "O",
        "institution_name": "brainmets demo",
    }
    named = visit % 2 == 0  # first, third... visit: the agent is named
    description = "T1 MPRAGE" if protocol.startswith("3d") else "T1 SE AX"
    sequence = _sequence(protocol)
    localiser = dict(
        image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"),
        mr_acquisition_type="2D",
        scanning_sequence="GR",
        sequence_variant="SP",
        sequence_name="*fl2d1",
        repetition_time_ms=8.6,
        echo_time_ms=4.0,
        inversion_time_ms=None,
    )
    series = (
        (LOCALISER, localiser_image(post, affine), "localizer", None, localiser),
        (PRE_CONTRAST, nib.Nifti1Image(pre, affine), description, None, sequence),
        (POST_CONTRAST, nib.Nifti1Image(post, affine), f"{description} +C" if named else description,
         AGENT if named else None, sequence),
    )  # fmt: skip
    for (number, name, time), image, series_description, agent, attributes in series:
        write_mr_series(
            image,
            folder / name,
            series_number=number,
            series_description=series_description,
            contrast_agent=agent,
            series_time=time,
            **attributes,  # type: ignore[arg-type]
            **study,  # type: ignore[arg-type]
        )
    return folder
