"""A DICOM series folder as a scan: each refusal in one line, conversion with its sidecar, nothing half-written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from brainmets import samplesheet
from brainmets.cli import main
from brainmets.dicom.series import convert_series, find_series
from brainmets.dicom.series_writer import write_mr_series
from brainmets.errors import BrainmetsError
from brainmets.samplesheet import load_samples
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

STUDY = dict(
    patient_id="P001",
    patient_name="Demo^P001",
    study_instance_uid="1.2.826.0.1.3680043.8.498.10",
    study_date="20240115",
    frame_of_reference_uid="1.2.826.0.1.3680043.8.498.11",
)
POST = dict(series_number=7, series_description="T1 MPRAGE", contrast_agent="Gadobutrol")
PRE = dict(series_number=5, series_description="T1 MPRAGE", contrast_agent=None)


def head(seed: int = 0, shape: tuple[int, int, int] = (24, 26, 20)) -> nib.Nifti1Image:
    """A small int16 image on an oblique LPS-stored grid (0.9 x 1.1 x 1.5 mm)."""
    rng = np.random.default_rng(seed)
    angle = np.deg2rad(7.0)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([-1.0, -1.0, 1.0]) @ np.diag([0.9, 1.1, 1.5])
    affine[:3, 3] = [20.0, 30.0, -10.0]
    return nib.Nifti1Image(rng.integers(0, 2000, size=shape).astype(np.int16), affine)


def series(folder: Path, image: nib.Nifti1Image | None = None, **changes: object) -> Path:
    """Write a post-contrast series (or with `changes`) into `folder`; returns the folder."""
    write_mr_series(image if image is not None else head(), folder, **{**STUDY, **POST, **changes})  # type: ignore[arg-type]
    return folder


def refusal(folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    """The one stderr line of a refused `brainmets convert-dicom`, after checking nothing was written."""
    out = tmp_path / "results" / "P001" / "2024-01-15" / "source" / "t1ce.nii.gz"
    assert main(["convert-dicom", str(folder), "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"brainmets convert-dicom: error: {folder}")
    written = [p for p in (tmp_path / "results").rglob("*") if p.is_file()] if (tmp_path / "results").exists() else []
    assert written == []
    return err


def non_image(path: Path, modality: str, sop_class: str) -> None:
    """Write a minimal DICOM object without pixels (a report or presentation state)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.SeriesInstanceUID, ds.SeriesNumber = modality, generate_uid(), 99
    ds.StudyInstanceUID, ds.PatientID = STUDY["study_instance_uid"], STUDY["patient_id"]
    path.parent.mkdir(parents=True, exist_ok=True)
    pydicom.dcmwrite(path, ds, enforce_file_format=True)


def test_a_series_folder_converts_to_the_same_image_with_its_sidecar(tmp_path: Path, capsys) -> None:
    """`convert-dicom` writes the image (same voxels and grid, in world terms) and dcm2niix's sidecar."""
    image = head()
    out = tmp_path / "results" / "source" / "t1ce.nii.gz"
    assert main(["convert-dicom", str(series(tmp_path / "dicom", image)), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["t1ce.json", "t1ce.nii.gz"]
    converted = nib.as_closest_canonical(nib.load(out))
    original = nib.as_closest_canonical(image)
    np.testing.assert_allclose(converted.affine, original.affine, atol=1e-4)
    np.testing.assert_array_equal(np.asarray(converted.dataobj), np.asarray(original.dataobj))
    sidecar = json.loads((out.parent / "t1ce.json").read_text())
    assert sidecar["SeriesNumber"] == 7 and sidecar["SeriesDescription"] == "T1 MPRAGE"
    assert sidecar["StudyInstanceUID"] == STUDY["study_instance_uid"]
    assert "PatientName" not in sidecar and "PatientID" not in sidecar


def test_several_series_are_listed_with_how_to_choose_one(tmp_path: Path, capsys) -> None:
    """A folder with two series is refused, each listed by number, description and UID; --series-uid picks one."""
    folder = tmp_path / "study"
    series(folder / "a")
    series(folder / "b", head(1), **PRE)
    found = {s.number: s for s in (find_series(folder / "a"), find_series(folder / "b"))}
    err = refusal(folder, tmp_path, capsys)
    assert "2 series in one folder" in err
    for number in ("5", "7"):
        assert f'#{number} "T1 MPRAGE" ({found[number].uid})' in err
    assert "series_uid" in err and "--series-uid" in err
    out = convert_series(folder, tmp_path / "chosen.nii.gz", found["5"].uid)
    assert np.array_equal(
        np.asarray(nib.as_closest_canonical(nib.load(out)).dataobj), nib.as_closest_canonical(head(1)).dataobj
    )
    unknown = refusal(folder, tmp_path, capsys, "--series-uid", "1.2.3")
    assert "no series with UID 1.2.3" in unknown


def test_a_missing_slice_is_refused(tmp_path: Path, capsys) -> None:
    """A slice missing from the middle makes the spacing uneven: refused, naming the gap."""
    folder = series(tmp_path / "dicom")
    (folder / "IM00008.dcm").unlink()
    err = refusal(folder, tmp_path, capsys)
    assert "uneven slice spacing: 3 mm between slices 7 and 8 where the others are 1.5 mm apart" in err
    assert "1 slice(s) missing" in err


def test_unevenly_spaced_slices_are_refused(tmp_path: Path, capsys) -> None:
    """A slice moved along the stack (no slice missing) is refused too."""
    folder = series(tmp_path / "dicom")
    ds = pydicom.dcmread(folder / "IM00010.dcm")
    position = [float(v) for v in ds.ImagePositionPatient]
    ds.ImagePositionPatient = [position[0], position[1], position[2] + 0.5]
    ds.save_as(folder / "IM00010.dcm")
    assert "uneven slice spacing" in refusal(folder, tmp_path, capsys)


def test_a_localiser_is_refused(tmp_path: Path, capsys) -> None:
    """A series whose ImageType says LOCALIZER is not a scan."""
    folder = series(tmp_path / "dicom", image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"), series_description="Survey")
    assert "is a localiser" in refusal(folder, tmp_path, capsys)


def test_a_three_plane_localiser_without_the_image_type_is_refused(tmp_path: Path, capsys) -> None:
    """Slices in different orientations in one series (a tri-planar scout) are refused."""
    folder = series(tmp_path / "dicom", head(shape=(8, 8, 3)), series_description="3-plane loc")
    ds = pydicom.dcmread(folder / "IM00002.dcm")
    ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
    ds.save_as(folder / "IM00002.dcm")
    assert "slices in different orientations" in refusal(folder, tmp_path, capsys)


def test_a_four_d_series_is_refused(tmp_path: Path, capsys) -> None:
    """Two volumes of one series at the same positions (a dynamic series) are refused as 4-D."""
    folder = tmp_path / "dicom"
    uid = "1.2.826.0.1.3680043.8.498.12"
    series(folder / "t1", series_instance_uid=uid)
    series(folder / "t2", head(1), series_instance_uid=uid)
    for path in (folder / "t2").iterdir():  # the second volume's own instance UIDs
        ds = pydicom.dcmread(path)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.save_as(path)
    assert "is 4-D (2 volumes" in refusal(folder, tmp_path, capsys)


@pytest.mark.parametrize(
    ("modality", "sop_class", "said"),
    [
        ("SR", "1.2.840.10008.5.1.4.1.1.88.33", "SR: Comprehensive SR Storage"),
        ("SEG", "1.2.840.10008.5.1.4.1.1.66.4", "SEG: Segmentation Storage"),
        ("PR", "1.2.840.10008.5.1.4.1.1.11.1", "PR: Grayscale Softcopy Presentation State Storage"),
    ],
)
def test_a_non_image_object_is_refused(modality: str, sop_class: str, said: str, tmp_path: Path, capsys) -> None:
    """A report, segmentation or presentation state is named by its SOP class and refused."""
    non_image(tmp_path / "dicom" / "object.dcm", modality, sop_class)
    err = refusal(tmp_path / "dicom", tmp_path, capsys)
    assert f"is not an image ({said})" in err


def test_unreadable_files_are_refused(tmp_path: Path, capsys) -> None:
    """A file that is not DICOM among the slices is named (and counted) in the refusal."""
    folder = series(tmp_path / "dicom")
    (folder / "notes.txt").write_text("exported by hand\n")
    (folder / "IM00003.dcm").write_bytes(b"\x00" * 50)
    err = refusal(folder, tmp_path, capsys)
    assert "IM00003.dcm and 1 more not readable as DICOM" in err


def test_an_empty_or_missing_folder_is_refused(tmp_path: Path, capsys) -> None:
    """An empty folder and one that does not exist each get their line."""
    (tmp_path / "empty").mkdir()
    assert "empty: no DICOM files" in refusal(tmp_path / "empty", tmp_path, capsys)
    out = tmp_path / "x.nii.gz"
    assert main(["convert-dicom", str(tmp_path / "gone"), "--out", str(out)]) == 2
    assert "DICOM folder not found" in capsys.readouterr().err


SLOW_DCM2NIIX = """#!/bin/sh
# stands in for dcm2niix: writes part of an image where dcm2niix writes, then hangs until killed
while [ "$#" -gt 1 ]; do [ "$1" = "-o" ] && out="$2"; shift; done
printf 'partial' > "$out/image.nii.gz"
touch "{started}"
sleep 60
"""

KILLED_CONVERSION = """
import sys
import brainmets.dicom.series as series
from brainmets.cli import main
series.dcm2niix_command = lambda: sys.argv[1]
sys.exit(main(["convert-dicom", sys.argv[2], "--out", sys.argv[3]]))
"""


def test_a_killed_conversion_leaves_nothing_under_results(tmp_path: Path) -> None:
    """SIGKILL while dcm2niix writes: nothing under results/; the next conversion completes."""
    folder = series(tmp_path / "dicom")
    started = tmp_path / "started"
    fake = tmp_path / "dcm2niix"
    fake.write_text(SLOW_DCM2NIIX.replace("{started}", str(started)))
    fake.chmod(0o755)
    out = tmp_path / "results" / "P001" / "2024-01-15" / "source" / "t1ce.nii.gz"
    command = [sys.executable, "-c", KILLED_CONVERSION, str(fake), str(folder), str(out)]
    process = subprocess.Popen(command, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not started.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert started.exists(), "the conversion never reached dcm2niix"
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert not (tmp_path / "results").exists() or not [p for p in (tmp_path / "results").rglob("*") if p.is_file()]
    convert_series(folder, out)
    assert sorted(p.name for p in out.parent.iterdir()) == ["t1ce.json", "t1ce.nii.gz"]


def test_the_sample_sheet_takes_a_series_folder_and_its_series_uid(tmp_path: Path, capsys, monkeypatch) -> None:
    """`image` may be a DICOM folder, `series_uid` chooses in it; problems name the row and column."""
    folder = tmp_path / "P001" / "2024-01-15"
    series(folder / "post")
    series(folder / "pre", head(1), **PRE)
    post = find_series(folder / "post").uid
    nifti = tmp_path / "scan.nii.gz"
    nib.save(head(2), nifti)
    sheet = tmp_path / "samples.tsv"

    def write(*rows: str) -> Path:
        sheet.write_text("patient_id\ttimepoint\timage\tseries_uid\n" + "".join(r + "\n" for r in rows))
        return sheet

    samples = load_samples(write(f"P001\t2024-01-15\t{folder}\t{post}", f"P002\t2024-02-01\t{nifti}\t"))
    assert samples.loc[("P001", "2024-01-15"), "series_uid"] == post
    assert samples.loc[("P002", "2024-02-01"), "series_uid"] is None
    assert main(["check-samples", str(sheet)]) == 0
    assert "valid: 2 scans" in capsys.readouterr().out

    assert main(["check-samples", str(write(f"P001\t2024-01-15\t{folder}\t"))]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "row 1 (line 2), column image:" in err and "2 series in one folder" in err
    monkeypatch.setattr(samplesheet, "DICOM_FOLDER_LIMIT", 0)  # the workflow's quick check of a large sheet
    assert len(load_samples(sheet, header_limit=1000)) == 1  # folders only checked to exist
    with pytest.raises(BrainmetsError, match="2 series in one folder"):
        load_samples(sheet)
    assert main(["check-samples", str(write(f"P002\t2024-02-01\t{nifti}\t{post}"))]) == 2
    assert "column series_uid: given, but image" in capsys.readouterr().err
    assert main(["check-samples", str(write(f"P002\t2024-02-01\t{folder}\tT1-post"))]) == 2
    assert "column series_uid: 'T1-post' is not valid" in capsys.readouterr().err


@pytest.mark.slow
def test_a_converted_series_and_its_nifti_give_the_same_preprocessing_and_segmentation(
    tiny_cohort: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    """`segment` on a demo scan's NIfTI and on the DICOM series written from it: same maps, voxel for voxel.

    The two images hold the same voxels on the same grid, up to the float32 rounding of the NIfTI affine
    (about 1e-5 mm). N4 is off: ANTs' N4 answers a shift of its input's origin by 1e-5 mm with a field up
    to 1 % different, which is N4's own sensitivity, not the conversion's.
    """
    import pandas as pd
    import yaml
    from brainmets.inference.pipeline import LABEL_MAPS, MAP_FILES
    from scipy import ndimage

    from conftest import TINY_SPACING_MM

    sheet = pd.read_csv(tiny_cohort / "samples.tsv", sep="\t")
    nifti = Path(sheet[sheet["patient_id"] == "patient02"]["image"].iloc[0])
    folder = series(tmp_path / "patient02_dicom", nib.load(nifti))
    config = tmp_path / "config.yaml"
    settings = {"preprocess": {"spacing_mm": TINY_SPACING_MM, "skullstrip": {"method": "deepbet"}, "n4": False}}
    inference = {"mirror_axes": [], "overlap": 0.25, "precision": "float32"}
    config.write_text(yaml.safe_dump({**settings, "inference": inference}))
    out = tmp_path / "segmented"
    argv = ["segment", str(nifti), str(folder), "--model", str(tiny_model_dir), "--out-dir", str(out)]
    assert main([*argv, "--config", str(config)]) == 0
    from_nifti, from_dicom = out / nifti.name.removesuffix(".nii.gz"), out / folder.name
    assert (from_dicom / "source" / "t1ce.json").is_file()
    for name in ("t1ce_zscore.nii.gz", "brain_mask.nii.gz", "segmentation.nii.gz", "probability.nii.gz"):
        a, b = nib.load(from_nifti / name), nib.load(from_dicom / name)
        assert a.shape == b.shape, name
        np.testing.assert_allclose(a.affine, b.affine, atol=1e-4, err_msg=name)
        exact = name in ("brain_mask.nii.gz", "segmentation.nii.gz")  # labels equal, values to float precision
        np.testing.assert_allclose(
            np.asarray(a.dataobj), np.asarray(b.dataobj), atol=0 if exact else 1e-4, err_msg=name
        )
    assert np.asarray(nib.load(from_nifti / "segmentation.nii.gz").dataobj).any(), "nothing segmented: nothing compared"
    for (
        name,
        filename,
    ) in MAP_FILES.items():  # native maps: the same grid, though dcm2niix may store it in another order
        a = nib.as_closest_canonical(nib.load(from_nifti / "native" / filename))
        b = nib.as_closest_canonical(nib.load(from_dicom / "native" / filename))
        np.testing.assert_allclose(a.affine, b.affine, atol=1e-4, err_msg=filename)
        va, vb = np.asarray(a.dataobj), np.asarray(b.dataobj)
        if name in LABEL_MAPS:  # labels carried back to the scan's grid: a voxel may flip only on a lesion's border
            border = ndimage.grey_dilation(va, size=3) != ndimage.grey_erosion(va, size=3)
            differ = va != vb
            assert differ.sum() <= 1e-5 * va.size and not (differ & ~border).any(), f"{differ.sum()} voxels differ"
        else:
            np.testing.assert_allclose(va, vb, atol=1e-4, err_msg=filename)


@pytest.mark.slow
def test_segment_refuses_a_folder_of_several_series_until_one_is_chosen(
    tiny_model_dir: Path, tmp_path: Path, capsys
) -> None:
    """`segment FOLDER` of two series, given a UID of neither: one line naming --series-uid, nothing written."""
    folder = tmp_path / "study"
    series(folder / "a")
    series(folder / "b", head(1), **PRE)
    out = tmp_path / "segmented"
    argv = ["segment", str(folder), "--model", str(tiny_model_dir), "--out-dir", str(out)]
    assert main([*argv, "--series-uid", "1.2.3"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "2 series in one folder" in err and "--series-uid" in err
    assert not out.exists()
