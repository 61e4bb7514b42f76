"""DICOM outputs of scans that came from DICOM series: SEG, TID 1500 SR and parametric maps on the source grid.

One tiny patient, two visits, each a real MR series (written as DICOM, converted by dcm2niix: the
native grid, in another axis order than the series' slices at the follow-up). Its segmentations are
tracked and assessed by the real `track` and `rano` code, moved to the native grid as `predict` does,
and exported. The checks read the objects back with highdicom, dcmqi and pydicom and compare them
with the tables and the native maps, locating every pixel on the native grid independently of the
module (through the headers' positions and the NIfTI affine).
"""

from __future__ import annotations

import datetime
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import highdicom as hd
import nibabel as nib
import numpy as np
import pandas as pd
import pydicom
import pytest
import yaml
from brainmets.cli import main
from brainmets.demo.acquisition import orientation_matrix
from brainmets.demo.lesions import random_rotation
from brainmets.dicom.outputs import (
    OBJECTS,
    Assessment,
    Lesion,
    build_measurement_report,
    build_segmentation,
    export_scan,
    tracking_uid,
    write_objects,
)
from brainmets.dicom.series_writer import derived_uid, write_mr_series
from brainmets.dicom.source_grid import frames_on_source, read_source_series, source_planes
from brainmets.io import save_nifti, write_tsv
from brainmets.preprocess.native import maps_to_native
from brainmets.preprocess.pipeline import PATIENT_TO_SCAN, RECORD, RECORD_FORMAT, RECORD_VERSION
from brainmets.preprocess.registration import identity_transform, write_transform
from brainmets.rano.rano import assess
from brainmets.track.track import track_manifest

from dicomtools import dciodvfy_errors, dcm2niix_image
from slurm.project import REPO, dry_run_jobs, make_project, snakemake

PATIENT = "P01"
#: visit -> axis codes of its series' voxels (the second is sagittal, the third coronal)
VISITS = {"2026-01-05": "LPS", "2026-03-02": "PIR", "2026-05-04": "LIA", "2026-07-06": "RAS"}
SHAPE = (40, 36, 16)
SPACING = (1.0, 1.0, 2.5)
#: lesions (patient-space voxel centre, radii in mm) at each visit: A shrinks, B resolves, C is new and
#: resolves, then A (a segmentation of one segment), then nothing (a segmentation without lesions)
LESIONS = {
    "2026-01-05": [((12, 12, 7), (7.0, 6.0, 5.0)), ((30, 28, 9), (2.5, 2.5, 2.5))],
    "2026-03-02": [((12, 12, 7), (5.0, 4.0, 4.0)), ((30, 8, 4), (3.5, 3.5, 3.5))],
    "2026-05-04": [((12, 12, 7), (4.0, 4.0, 4.0))],
    "2026-07-06": [],
}


@dataclass
class Visit:
    """One exported visit: its folders and the native grid's image."""

    series: Path
    scan: Path
    out: Path
    native: nib.Nifti1Image


def write_series(image: nib.Nifti1Image, folder: Path, timepoint: str, series_number: int) -> None:
    """Write an integer image as the post-contrast T1 series of the visit `timepoint` (its own study and frame)."""
    write_mr_series(
        nib.Nifti1Image(np.rint(np.asarray(image.dataobj)).astype(np.int16), image.affine),
        folder,
        patient_id="SITE-0042",
        patient_name="Doe^Jane",
        study_instance_uid=derived_uid("study", timepoint),
        study_date=timepoint.replace("-", ""),
        series_number=series_number,
        series_description="T1 MPRAGE post",
        contrast_agent="Gadobutrol",
        frame_of_reference_uid=derived_uid("frame", timepoint),
    )


def _ellipsoids(lesions: list[tuple[tuple[int, int, int], tuple[float, float, float]]]) -> np.ndarray:
    """A binary patient-space mask of ellipsoids (centre in voxels, radii in mm)."""
    grid = np.indices(SHAPE).astype(float)
    mask = np.zeros(SHAPE, bool)
    for centre, radii in lesions:
        distance = sum(((grid[a] - centre[a]) * SPACING[a] / radii[a]) ** 2 for a in range(3))
        mask |= distance <= 1.0
    return mask


def _patient_affine() -> np.ndarray:
    """The patient-space (RAS) affine of the test lattice."""
    affine = np.diag([*SPACING, 1.0])
    affine[:3, 3] = [-20.0, -18.0, -20.0]
    return affine


@pytest.fixture(scope="module")
def patient(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Visit]:
    """Two visits of one patient, from DICOM series to exported DICOM objects."""
    root = tmp_path_factory.mktemp("dicom_outputs")
    results = root / "results" / PATIENT
    rng = np.random.default_rng(7)
    head = np.clip(rng.normal(300, 40, SHAPE), 0, None).astype(np.int16)
    visits: dict[str, Visit] = {}
    manifest = ["timepoint\tmask"]
    for n, (timepoint, code) in enumerate(VISITS.items(), start=1):
        canonical = nib.Nifti1Image(head, _patient_affine())
        target = nib.orientations.axcodes2ornt(tuple(code))
        written = canonical.as_reoriented(
            nib.orientations.ornt_transform(nib.orientations.io_orientation(canonical.affine), target)
        )
        series = root / "dicom" / timepoint
        write_series(written, series, timepoint, 5 + n)
        native = dcm2niix_image(series, root / "converted" / timepoint)
        scan = results / timepoint
        scan.mkdir(parents=True)
        save_nifti(np.asarray(native.dataobj, np.float32), native.affine, scan / "source" / "t1ce.nii.gz")
        patient_grid = nib.as_closest_canonical(native)
        record = {
            "format": RECORD_FORMAT,
            "format_version": RECORD_VERSION,
            "native": {"affine": native.affine.tolist(), "shape": list(native.shape)},
            "patient_space": {"affine": _patient_affine().tolist(), "shape": list(SHAPE)},
        }
        assert np.allclose(patient_grid.affine, _patient_affine(), atol=1e-4)  # the same lattice at both visits
        (scan / RECORD).write_text(json.dumps(record))
        write_transform(identity_transform(), scan / PATIENT_TO_SCAN)
        mask = _ellipsoids(LESIONS[timepoint])
        probability = np.clip(np.where(mask, 0.9, 0.05) + rng.normal(0, 0.02, SHAPE), 0, 1).astype(np.float32)
        entropy = -(probability * np.log2(probability + 1e-9) + (1 - probability) * np.log2(1 - probability + 1e-9))
        save_nifti(mask.astype(np.uint8), _patient_affine(), scan / "segmentation.nii.gz")
        save_nifti(probability, _patient_affine(), scan / "probability.nii.gz")
        save_nifti(entropy.astype(np.float32), _patient_affine(), scan / "uncertainty_total_entropy.nii.gz")
        moved = [
            ("segmentation.nii.gz", "label"),
            ("probability.nii.gz", "map"),
            ("uncertainty_total_entropy.nii.gz", "map"),
        ]
        maps_to_native([(scan / name, kind, scan / "native" / name) for name, kind in moved], scan)
        manifest.append(f"{timepoint}\t{timepoint}/segmentation.nii.gz")
        visits[timepoint] = Visit(series, scan, scan / "dicom", native)
    (results / "segmentations.tsv").write_text("\n".join(manifest) + "\n")
    lesions = track_manifest(results / "segmentations.tsv", results, patient_id=PATIENT)
    write_tsv(assess(lesions), results / "rano_response.tsv")
    for timepoint, visit in visits.items():
        export_scan(
            visit.series,
            visit.scan,
            results / "tracked" / f"{timepoint}.nii.gz",
            results / "lesions.tsv",
            visit.out,
            patient_id=PATIENT,
            timepoint=timepoint,
            response=results / "rano_response.tsv",
        )
    return visits


def _tables(visit: Visit) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The patient's lesion and response tables."""
    folder = visit.scan.parent
    return pd.read_csv(folder / "lesions.tsv", sep="\t"), pd.read_csv(folder / "rano_response.tsv", sep="\t")


def _native_values(
    frame: pydicom.Dataset, volume: np.ndarray, affine: np.ndarray, rows: int, columns: int
) -> np.ndarray:
    """The values of a native-grid volume at every pixel of one frame (its LPS position, orientation and spacing)."""
    position = np.asarray(frame.PlanePositionSequence[0].ImagePositionPatient, float)
    orientation = np.asarray(frame.PlaneOrientationSequence[0].ImageOrientationPatient, float)
    row_mm, column_mm = (float(v) for v in frame.PixelMeasuresSequence[0].PixelSpacing)
    r, c = np.meshgrid(np.arange(rows), np.arange(columns), indexing="ij")
    lps = position + c[..., None] * column_mm * orientation[:3] + r[..., None] * row_mm * orientation[3:]
    ras = lps * [-1.0, -1.0, 1.0]
    voxel = (np.linalg.inv(affine) @ np.concatenate([ras, np.ones((rows, columns, 1))], axis=-1)[..., None])[..., :3, 0]
    index = np.rint(voxel).astype(int)
    assert np.abs(voxel - index).max() < 1e-3
    return volume[index[..., 0], index[..., 1], index[..., 2]]


def _frames(ds: pydicom.Dataset) -> list[pydicom.Dataset]:
    """The per-frame functional groups of a multi-frame object, shared groups merged in."""
    shared = ds.SharedFunctionalGroupsSequence[0]
    merged = []
    for frame in ds.PerFrameFunctionalGroupsSequence:
        item = pydicom.Dataset()
        for group in (shared, frame):
            for element in group:
                item.add(element)
        merged.append(item)
    return merged


def _lesion(label: str) -> int:
    """The lesion id of a segment label ("lesion 3"); 0 for the empty segment of a visit without lesions."""
    return 0 if label == "no lesion" else int(label.removeprefix("lesion "))


def _tracked_native(visit: Visit) -> np.ndarray:
    """The visit's tracked lesion ids on the native grid, by reorientation (the test lattice is shared)."""
    tracked = nib.load(visit.scan.parent / "tracked" / f"{visit.scan.name}.nii.gz")
    ornt = nib.orientations.ornt_transform(
        nib.orientations.io_orientation(tracked.affine), nib.orientations.io_orientation(visit.native.affine)
    )
    return nib.orientations.apply_orientation(np.asarray(tracked.dataobj), ornt)


def test_seg_segments_are_the_tracked_lesions_on_the_source_grid(patient: dict[str, Visit]) -> None:
    """Each segment is one tracked lesion on the source images; together they are the native segmentation."""
    for visit in patient.values():
        seg = hd.seg.segread(visit.out / "segmentation.dcm")
        ds = pydicom.dcmread(visit.out / "segmentation.dcm")
        truth = _tracked_native(visit)
        native_seg = np.asarray(nib.load(visit.scan / "native" / "segmentation.nii.gz").dataobj)
        assert np.array_equal(truth > 0, native_seg > 0)
        frames = _frames(ds)
        pixels = ds.pixel_array.reshape(len(frames), ds.Rows, ds.Columns)
        ids = {_lesion(d.SegmentLabel): int(d.SegmentNumber) for d in seg.SegmentSequence}
        lesions = sorted(int(i) for i in np.unique(truth) if i)
        assert sorted(ids) == (lesions or [0])  # a visit without lesions: one empty segment, "no lesion"
        assert all(("TrackingUID" in d) == bool(lesions) for d in seg.SegmentSequence)
        voxels = dict.fromkeys(ids, 0)
        for frame, plane in zip(frames, pixels, strict=True):
            number = int(frame.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
            lesion = next(i for i, s in ids.items() if s == number)
            expected = _native_values(frame, truth, visit.native.affine, ds.Rows, ds.Columns) == lesion
            assert np.array_equal(plane.astype(bool), expected & (lesion > 0))
            voxels[lesion] += int(plane.astype(bool).sum())
        # frames without the segment are left out of the SEG: none of them may hold a voxel of it
        assert voxels == {i: int((truth == i).sum()) if i else 0 for i in ids}


def test_seg_references_the_source_series(patient: dict[str, Visit]) -> None:
    """Same study, frame of reference and patient as the source; every source image referenced."""
    for visit in patient.values():
        source = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(visit.series.glob("*.dcm"))]
        for name in OBJECTS:
            ds = pydicom.dcmread(visit.out / f"{name}.dcm")
            assert ds.StudyInstanceUID == source[0].StudyInstanceUID
            assert ds.PatientID == source[0].PatientID
            if name != "measurements":
                assert ds.FrameOfReferenceUID == source[0].FrameOfReferenceUID
                referenced = ds.ReferencedSeriesSequence[0]
                assert referenced.SeriesInstanceUID == source[0].SeriesInstanceUID
                uids = {item.ReferencedSOPInstanceUID for item in referenced.ReferencedInstanceSequence}
                assert uids == {s.SOPInstanceUID for s in source}


def test_dcmqi_reads_the_seg_back_lesion_by_lesion(patient: dict[str, Visit], tmp_path: Path) -> None:
    """dcmqi's segimage2itkimage gives back each lesion of the native-grid map, voxel for voxel."""
    tool = str(Path(sys.executable).parent / "segimage2itkimage")
    for timepoint, visit in patient.items():
        out = tmp_path / timepoint
        out.mkdir()
        subprocess.run(
            [
                tool,
                "--inputDICOM",
                str(visit.out / "segmentation.dcm"),
                "--outputDirectory",
                str(out),
                "--outputType",
                "nifti",
            ],
            check=True,
            capture_output=True,
        )
        meta = json.loads((out / "meta.json").read_text())
        truth = nib.as_closest_canonical(nib.Nifti1Image(_tracked_native(visit), visit.native.affine))
        labels = [
            (attributes["labelID"], attributes["SegmentLabel"])
            for group in meta["segmentAttributes"]
            for attributes in group
        ]
        assert len(labels) == max(1, len(np.unique(truth.dataobj)) - 1)
        for group, segments in enumerate(meta["segmentAttributes"], start=1):
            image = _on_grid(nib.load(out / f"{group}.nii.gz"), truth)
            for attributes in segments:
                lesion = _lesion(attributes["SegmentLabel"])
                read = image == attributes["labelID"]
                assert np.array_equal(read, (np.asarray(truth.dataobj) == lesion) & (lesion > 0)), (timepoint, lesion)


def _on_grid(image: nib.Nifti1Image, reference: nib.Nifti1Image) -> np.ndarray:
    """A dcmqi image (it covers only the SEG's frames) placed on the RAS-ordered `reference` grid, zero elsewhere."""
    image = nib.as_closest_canonical(image)
    offset = np.linalg.solve(reference.affine, image.affine)
    start = np.rint(offset[:3, 3]).astype(int)
    assert np.allclose(offset[:3, :3], np.eye(3), atol=1e-4) and np.allclose(offset[:3, 3], start, atol=1e-3)
    placed = np.zeros(reference.shape, np.asarray(image.dataobj).dtype)
    box = tuple(slice(a, a + n) for a, n in zip(start, image.shape, strict=True))
    placed[box] = np.asarray(image.dataobj)
    assert placed[box].shape == image.shape  # inside the reference grid
    return placed


def _report_groups(path: Path) -> tuple[dict[int, dict], dict]:
    """Lesion id -> (tracking uid, segment, measurements, category) and the visit group of an SR."""
    sr = hd.sr.srread(path)
    lesions = {}
    for group in sr.content.get_volumetric_roi_measurement_groups():
        lesion = int(group.tracking_identifier.split()[-1])
        reference = group.referenced_segment[0].ReferencedSOPSequence[0]
        lesions[lesion] = {
            "uid": group.tracking_uid,
            "segment": int(reference.ReferencedSegmentNumber),
            "seg_uid": reference.ReferencedSOPInstanceUID,
            **{m.name.meaning: m.value for m in group.get_measurements()},
            "category": [q.value.meaning for q in group.get_qualitative_evaluations()],
        }
    visit = {}
    root = sr.ContentSequence
    for item in root:
        if item.ConceptNameCodeSequence[0].CodeMeaning == "Imaging Measurements":
            for group in item.ContentSequence:
                texts = {c.ConceptNameCodeSequence[0].CodeMeaning: c for c in group.ContentSequence}
                if "Referenced Segment" in texts:
                    continue
                for meaning, content in texts.items():
                    if content.ValueType == "NUM":
                        visit[meaning] = float(content.MeasuredValueSequence[0].NumericValue)
                    elif content.ValueType == "CODE":
                        visit[meaning] = content.ConceptCodeSequence[0].CodeValue
    return lesions, visit


def test_sr_measurements_equal_the_lesion_and_response_tables(patient: dict[str, Visit]) -> None:
    """Volumes, diameters, categories, response and sum of diameters as the tables say; segments referenced."""
    expected_categories = {
        "2026-01-05": {1: "Target", 2: "Non-Target"},
        "2026-03-02": {1: "Target", 3: "New"},
        "2026-05-04": {1: "Target"},
        "2026-07-06": {},
    }
    for timepoint, visit in patient.items():
        table, response = _tables(visit)
        rows = table[(table["timepoint"] == timepoint) & (table["component"] > 0)].set_index("lesion_id")
        lesions, assessment = _report_groups(visit.out / "measurements.dcm")
        assert sorted(lesions) == sorted(rows.index)
        seg = pydicom.dcmread(visit.out / "segmentation.dcm")
        segment_uids = {int(s.SegmentNumber): s.get("TrackingUID") for s in seg.SegmentSequence}
        for lesion, found in lesions.items():
            assert found["Volume"] == pytest.approx(rows.loc[lesion, "volume_ml"], abs=1e-3)
            assert found["Long axis"] == pytest.approx(rows.loc[lesion, "longest_diameter_mm"], abs=0.01)
            assert found["Perpendicular Axis"] == pytest.approx(rows.loc[lesion, "perpendicular_diameter_mm"], abs=0.01)
            assert found["category"][0].startswith(expected_categories[timepoint][lesion])
            assert found["seg_uid"] == seg.SOPInstanceUID
            assert segment_uids[found["segment"]] == found["uid"]
        row = response[response["timepoint"] == timepoint].iloc[0]
        assert assessment["Sum of longest diameters of target lesions"] == pytest.approx(row["sum_ld_mm"], abs=0.01)
        if pd.isna(row["overall_response"]):  # after progression (rule `stop`): no response to report
            assert "Current Response" not in assessment
        else:
            code = {"non-CR/non-PD": "NCRNPD"}.get(row["overall_response"], row["overall_response"])
            assert assessment["Current Response"] == code
            root = pydicom.dcmread(visit.out / "measurements.dcm").ContentSequence
            own = next(i for i in root if i.ConceptNameCodeSequence[0].CodeMeaning == "Qualitative Evaluations")
            assert own.ContentSequence[0].ConceptCodeSequence[0].CodeValue == code  # the report's own evaluation
    assert set(response["overall_response"].fillna("")) == {"BL", "PD", ""}


def test_tracking_uids_follow_each_lesion_across_visits(patient: dict[str, Visit]) -> None:
    """A lesion's Tracking UID is the same at every visit, in SEG and SR; different lesions differ."""
    seen: dict[int, set[str]] = {}
    for visit in patient.values():
        seg = pydicom.dcmread(visit.out / "segmentation.dcm")
        for segment in seg.SegmentSequence:
            lesion = _lesion(segment.SegmentLabel)
            if not lesion:
                continue
            assert segment.TrackingID == f"lesion {lesion}"
            seen.setdefault(lesion, set()).add(segment.TrackingUID)
        for lesion, found in _report_groups(visit.out / "measurements.dcm")[0].items():
            seen[lesion].add(found["uid"])
    assert sorted(seen) == [1, 2, 3]
    assert all(len(uids) == 1 for uids in seen.values())
    assert len({next(iter(uids)) for uids in seen.values()}) == 3


def test_parametric_maps_hold_the_native_maps_on_the_source_grid(patient: dict[str, Visit]) -> None:
    """Probability and total entropy read back through their value mapping equal the native maps at every pixel."""
    for visit in patient.values():
        for name, file in (("probability", "probability"), ("total_entropy", "uncertainty_total_entropy")):
            ds = pydicom.dcmread(visit.out / f"{name}.dcm")
            assert hd.imread(visit.out / f"{name}.dcm").SOPInstanceUID == ds.SOPInstanceUID
            native = np.asarray(nib.load(visit.scan / "native" / f"{file}.nii.gz").get_fdata(dtype=np.float32))
            frames = _frames(ds)
            pixels = ds.pixel_array.reshape(len(frames), ds.Rows, ds.Columns)
            assert len(frames) == len(list(visit.series.glob("*.dcm")))
            for frame, plane in zip(frames, pixels, strict=True):
                mapping = frame.RealWorldValueMappingSequence[0]
                read = plane * float(mapping.RealWorldValueSlope) + float(mapping.RealWorldValueIntercept)
                expected = _native_values(frame, native, visit.native.affine, ds.Rows, ds.Columns)
                assert np.abs(read - expected).max() <= 0.5 / 65535 + 1e-7


def test_a_rerun_writes_the_same_bytes(patient: dict[str, Visit], tmp_path: Path) -> None:
    """Exporting the same results again gives byte-identical objects (UIDs included)."""
    timepoint, visit = next(iter(patient.items()))
    folder = visit.scan.parent
    export_scan(
        visit.series,
        visit.scan,
        folder / "tracked" / f"{timepoint}.nii.gz",
        folder / "lesions.tsv",
        tmp_path,
        patient_id=PATIENT,
        timepoint=timepoint,
        response=folder / "rano_response.tsv",
    )
    for name in OBJECTS:
        assert (tmp_path / f"{name}.dcm").read_bytes() == (visit.out / f"{name}.dcm").read_bytes(), name


def test_a_series_off_the_native_grid_is_refused_in_one_line(
    patient: dict[str, Visit], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A series half a voxel off the scan's native grid is refused with one line; nothing is written."""
    timepoint, visit = next(iter(patient.items()))
    shifted = visit.native.affine.copy()
    shifted[:3, 3] += shifted[:3, :3] @ [0.0, 0.5, 0.0]
    series = tmp_path / "shifted"
    write_series(nib.Nifti1Image(np.asarray(visit.native.dataobj), shifted), series, timepoint, 99)
    folder = visit.scan.parent
    argv = ["dicom-export", "--source", str(series), "--scan-dir", str(visit.scan)]
    argv += ["--tracked", str(folder / "tracked" / f"{timepoint}.nii.gz"), "--lesions", str(folder / "lesions.tsv")]
    argv += ["--patient", PATIENT, "--timepoint", timepoint, "--out-dir", str(tmp_path / "out")]
    assert main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and str(series) in error and "grid" in error, error
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("code", ["LPS", "PIR", "ASL"])
def test_every_source_image_is_found_on_an_oblique_converted_grid(code: str, tmp_path: Path) -> None:
    """On an oblique, anisotropic grid in any storage order, each source image's plane is its own pixel data."""
    rng = np.random.default_rng(len(code))
    affine = np.eye(4)
    affine[:3, :3] = random_rotation(rng, 15.0, 5.0) @ orientation_matrix(code) * np.array([0.9, 1.1, 1.6])
    affine[:3, 3] = rng.uniform(-50, 50, size=3)
    data = rng.integers(0, 3000, size=(18, 14, 10)).astype(np.int16)
    write_series(nib.Nifti1Image(data, affine), tmp_path / "series", "2026-01-05", 3)
    native = dcm2niix_image(tmp_path / "series", tmp_path / "nii")
    source = read_source_series(tmp_path / "series")
    planes = source_planes(source, native.affine, native.shape, "series")
    pixels = {ds.SOPInstanceUID: ds.pixel_array for ds in map(pydicom.dcmread, sorted((tmp_path / "series").iterdir()))}
    frames = frames_on_source(np.asarray(native.dataobj), planes)
    assert all(np.array_equal(frame, pixels[ds.SOPInstanceUID]) for frame, ds in zip(frames, source, strict=True))


def test_a_lesion_without_a_native_voxel_is_reported_without_a_region(
    patient: dict[str, Visit], tmp_path: Path
) -> None:
    """A lesion measured in patient space that covers no voxel of the native grid keeps its measurements in the SR."""
    timepoint, visit = next(iter(patient.items()))
    source = read_source_series(visit.series)
    planes = source_planes(source, visit.native.affine, visit.native.shape, str(visit.series))
    labels = _tracked_native(visit)
    labels[labels == 2] = 0
    when = datetime.datetime(2026, 1, 5, 12, 0, 0)
    seg, segments = build_segmentation(source, planes, labels, PATIENT, when)
    lesions = [Lesion(1, 0.5, 12.0, 6.0, "target"), Lesion(2, 0.004, 1.5, 1.0, "non-target")]
    report = build_measurement_report(source, seg, segments, lesions, Assessment("BL", 12.0), PATIENT, timepoint, when)
    write_objects({"measurements": report}, tmp_path)
    found, _ = _report_groups(tmp_path / "measurements.dcm")
    assert sorted(found) == [1]
    container = next(
        i for i in pydicom.dcmread(tmp_path / "measurements.dcm").ContentSequence if "ContentSequence" in i
    )
    groups = {}
    for group in container.ContentSequence:
        items = {i.ConceptNameCodeSequence[0].CodeMeaning: i for i in group.ContentSequence}
        groups[items["Tracking Identifier"].TextValue] = items
    assert "Referenced Segment" in groups["lesion 1"] and "Referenced Segment" not in groups["lesion 2"]
    assert float(groups["lesion 2"]["Volume"].MeasuredValueSequence[0].NumericValue) == pytest.approx(0.004)
    assert groups["lesion 2"]["Tracking Unique Identifier"].UID == tracking_uid(PATIENT, 2)


@pytest.mark.system
def test_dciodvfy_finds_no_error_in_any_object(patient: dict[str, Visit]) -> None:
    """Every object written passes the standard IOD validator without errors."""
    for visit in patient.values():
        for name in OBJECTS:
            assert dciodvfy_errors(visit.out / f"{name}.dcm") == [], name


@pytest.fixture(scope="module")
def dicom_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated project (2 patients x 2 visits) whose patient P1 came from DICOM series, P2 from NIfTI."""
    root = make_project(tmp_path_factory.mktemp("project"), patients=2, timepoints=2, training=2, folds=2)
    sheet = root / "config" / "samples.tsv"
    lines = sheet.read_text().splitlines()
    for index, line in enumerate(lines[1:], start=1):
        cells = line.split("\t")
        if cells[0] == "P1":
            image = nib.load(cells[2])
            folder = root / "dicom" / "P1" / cells[1]
            write_series(nib.Nifti1Image(np.asarray(image.dataobj) * 10, image.affine), folder, cells[1], 7)
            cells[2], cells[3] = str(folder), ""
            lines[index] = "\t".join(cells)
    sheet.write_text("\n".join(lines) + "\n")
    return root


@pytest.mark.workflow
def test_the_workflow_plans_dicom_outputs_for_dicom_scans_only(dicom_project: Path) -> None:
    """One dicom_outputs job per DICOM scan (P1's two visits), none for the NIfTI patient."""
    jobs = dry_run_jobs(dicom_project)
    planned = sorted((w["patient"], w["timepoint"]) for rule, w in jobs if rule == "dicom_outputs")
    assert planned == [("P1", "2024-01-15"), ("P1", "2024-02-15")]
    shown = snakemake(dicom_project, "results/P1/2024-02-15/dicom/segmentation.dcm", "-n", "-p")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "--tracked results/P1/tracked/2024-02-15.nii.gz" in shown.stdout
    assert f"--source {dicom_project / 'dicom' / 'P1' / '2024-02-15'}" in shown.stdout


@pytest.mark.workflow
def test_a_single_visit_target_plans_only_its_patient(dicom_project: Path) -> None:
    """`results/P1/<visit>/dicom/measurements.dcm` brings in P1's chain and the model, nothing of P2."""
    jobs = dry_run_jobs(dicom_project, "results/P1/2024-01-15/dicom/measurements.dcm")
    assert {w["patient"] for _, w in jobs if "patient" in w} == {"P1"}
    rules = [rule for rule, _ in jobs]
    assert rules.count("dicom_outputs") == 1 and rules.count("track") == 1 and rules.count("rano") == 1


@pytest.mark.workflow
def test_the_nifti_demo_config_plans_no_dicom_job(tmp_path: Path) -> None:
    """The shipped configuration (NIfTI demo cohort) plans no DICOM conversion and no DICOM outputs."""
    shutil.copytree(REPO / "config", tmp_path / "config")
    rules = {rule for rule, _ in dry_run_jobs(tmp_path)}
    assert "predict" in rules
    assert not rules & {"dicom_outputs", "dicom_to_nifti"}


def _write_head_series(folder: Path, timepoint: str, lesion_radius_vox: float, seed: int) -> None:
    """A 2 mm skull-stripped synthetic head (48 x 48 x 40, about 190 mL of brain) with one bright lesion, as DICOM."""
    shape = (48, 48, 40)
    grid = np.indices(shape).astype(float)
    centre = (np.asarray(shape) - 1) / 2
    head = (((grid - centre[:, None, None, None]) / (np.asarray(shape)[:, None, None, None] * 0.42)) ** 2).sum(0) < 1
    data = np.where(head, 1000 + np.random.default_rng(seed).normal(0, 50, shape), 0)
    data[((grid - (centre + 6)[:, None, None, None]) ** 2).sum(0) < lesion_radius_vox**2] += 800
    write_series(nib.Nifti1Image(data, np.diag([2.0, 2.0, 2.0, 1.0])), folder, timepoint, 7)


@pytest.mark.workflow
@pytest.mark.slow
def test_a_workflow_run_writes_dicom_outputs_that_match_its_results(tmp_path: Path, tiny_model_dir: Path) -> None:
    """A real run (one patient, two DICOM visits, a given tiny model): the objects agree with the run's own results.

    dcmqi's reading of each SEG is the native segmentation; the SR's measurements are lesions.tsv's; each
    lesion keeps its Tracking UID across the visits; running the rule again writes the same bytes.
    """
    overrides = {"model": {"dir": str(tiny_model_dir)}, "preprocess": {"spacing_mm": [2.0, 2.0, 2.0]}}
    project = make_project(tmp_path / "project", patients=1, timepoints=2, training=0, config_overrides=overrides)
    config = yaml.safe_load((project / "config" / "config.yaml").read_text())
    config["preprocess"]["skull_stripped"] = True
    (project / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    lines = ["patient_id\ttimepoint\timage"]
    for seed, (timepoint, radius) in enumerate((("2024-01-15", 3.0), ("2024-02-15", 2.2))):
        folder = project / "dicom" / "P1" / timepoint
        _write_head_series(folder, timepoint, radius, seed)
        lines.append(f"P1\t{timepoint}\t{folder}")
    (project / "config" / "samples.tsv").write_text("\n".join(lines) + "\n")
    result = snakemake(project, "--cores", "2", timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    results = project / "results" / "P1"
    lesions = pd.read_csv(results / "lesions.tsv", sep="\t")
    uids: dict[int, set[str]] = {}
    written = {}
    for timepoint in ("2024-01-15", "2024-02-15"):
        out = results / timepoint / "dicom"
        written[timepoint] = {name: (out / f"{name}.dcm").read_bytes() for name in OBJECTS}
        read = tmp_path / "dcmqi" / timepoint
        read.mkdir(parents=True)
        tool = str(Path(sys.executable).parent / "segimage2itkimage")
        command = [tool, "--inputDICOM", str(out / "segmentation.dcm"), "--outputDirectory", str(read)]
        subprocess.run([*command, "--outputType", "nifti"], check=True, capture_output=True)
        native = nib.as_closest_canonical(nib.load(results / timepoint / "native" / "segmentation.nii.gz"))
        union = np.zeros(native.shape, bool)
        for path in read.glob("*.nii.gz"):
            union |= _on_grid(nib.load(path), native) > 0
        assert np.array_equal(union, np.asarray(native.dataobj) > 0), timepoint
        rows = lesions[(lesions["timepoint"] == timepoint) & (lesions["component"] > 0)]
        found, _ = _report_groups(out / "measurements.dcm")
        assert sorted(found) == sorted(rows["lesion_id"].unique())
        for lesion, group in found.items():
            assert group["Volume"] == pytest.approx(rows[rows["lesion_id"] == lesion]["volume_ml"].sum(), abs=1e-3)
            uids.setdefault(lesion, set()).add(group["uid"])
    assert uids and all(len(u) == 1 for u in uids.values())
    again = snakemake(project, "--cores", "1", "--forcerun", "dicom_outputs", timeout=300)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    for timepoint, objects in written.items():
        for name, data in objects.items():
            assert (results / timepoint / "dicom" / f"{name}.dcm").read_bytes() == data, (timepoint, name)


@pytest.mark.slow
def test_segment_writes_dicom_outputs_for_a_dicom_input(tiny_model_dir: Path, tmp_path: Path) -> None:
    """`brainmets segment` on a DICOM series also writes its objects: the SEG is the native segmentation."""
    _write_head_series(tmp_path / "P7_visit1", "2024-03-01", 3.0, 0)
    config = tmp_path / "config.yaml"
    preprocess = {"spacing_mm": [2.0, 2.0, 2.0], "skull_stripped": True, "n4": False}
    config.write_text(yaml.safe_dump({"preprocess": preprocess, "inference": {"mirror_axes": []}}))
    out = tmp_path / "segmented"
    argv = ["segment", str(tmp_path / "P7_visit1"), "--model", str(tiny_model_dir), "--out-dir", str(out)]
    assert main([*argv, "--config", str(config)]) == 0
    scan = out / "P7_visit1"
    assert sorted(p.name for p in (scan / "dicom").iterdir()) == sorted(f"{name}.dcm" for name in OBJECTS)
    seg = hd.seg.segread(scan / "dicom" / "segmentation.dcm")
    source = pydicom.dcmread(next((tmp_path / "P7_visit1").iterdir()), stop_before_pixels=True)
    assert seg.StudyInstanceUID == source.StudyInstanceUID and seg.FrameOfReferenceUID == source.FrameOfReferenceUID
    read = tmp_path / "dcmqi"
    read.mkdir()
    tool = str(Path(sys.executable).parent / "segimage2itkimage")
    command = [tool, "--inputDICOM", str(scan / "dicom" / "segmentation.dcm"), "--outputDirectory", str(read)]
    subprocess.run([*command, "--outputType", "nifti"], check=True, capture_output=True)
    native = nib.as_closest_canonical(nib.load(scan / "native" / "segmentation.nii.gz"))
    union = np.zeros(native.shape, bool)
    for path in read.glob("*.nii.gz"):
        union |= _on_grid(nib.load(path), native) > 0
    assert np.array_equal(union, np.asarray(native.dataobj) > 0)
    found, assessment = _report_groups(scan / "dicom" / "measurements.dcm")
    assert len(found) == len(seg.SegmentSequence) - (seg.SegmentSequence[0].SegmentLabel == "no lesion")
    assert found and all(group["category"] for group in found.values())  # a baseline: targets and non-targets
    assert assessment.get("Current Response") == "BL"
