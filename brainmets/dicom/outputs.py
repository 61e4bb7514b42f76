"""A scan's results as DICOM objects that reference its source series: SEG, TID 1500 SR and parametric maps.

All objects lie on the source series' own grid (the native grid, not patient space) and share its
Study Instance UID and Frame of Reference UID. The segmentation has one segment per lesion, labelled
with its persistent lesion id from tracking; each segment and the report's measurement group of the
lesion carry the same Tracking ID ("lesion <id>") and Tracking UID, derived from the patient id and
the lesion id alone, so they are the same at every visit of the patient. Every new UID is derived from
the source UIDs and the content (`derived_uid`), and dates and times from the results' own time, so
writing the same results again gives the same bytes.
"""

from __future__ import annotations

import datetime
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict, TypeVar

import highdicom as hd
import numpy as np
import pandas as pd
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from brainmets import __version__
from brainmets.dicom.series_writer import derived_uid
from brainmets.dicom.source_grid import Plane, frames_on_source
from brainmets.errors import BrainmetsError
from brainmets.io import atomic_path
from brainmets.rano.rano import _visits, check_lesion_table

D = TypeVar("D", bound=Dataset)

#: the objects written per scan, by name: file stem -> offset added to the source series number
OBJECTS = {"segmentation": 1, "measurements": 2, "probability": 3, "total_entropy": 4}

MANUFACTURER = "brainmets"
#: stored value of 1.0 in a parametric map (16-bit)
PM_LEVELS = 65535
ALGORITHM = hd.AlgorithmIdentificationSequence(
    name="brainmets", family=codes.cid7162.ArtificialIntelligence, version=__version__
)
#: a private coding scheme (DICOM PS3.16 8.2: designators starting "99") for RANO-BM terms without a standard code
SCHEME = "99BRAINMETS"
MILLIMETRE = hd.sr.CodedConcept("mm", "UCUM", "millimeter")
MILLILITRE = hd.sr.CodedConcept("ml", "UCUM", "milliliter")
NO_UNITS = hd.sr.CodedConcept("1", "UCUM", "no units")
BIT = hd.sr.CodedConcept("bit", "UCUM", "bit")
METASTASIS = codes.SCT.NeoplasmMetastatic
#: the container of a measurement report's own evaluations (TID 1500)
QUALITATIVE_EVALUATIONS = hd.sr.CodedConcept("C0034375", "UMLS", "Qualitative Evaluations")
SUM_OF_DIAMETERS = hd.sr.CodedConcept("SLD", SCHEME, "Sum of longest diameters of target lesions")
NEW_LESION = hd.sr.CodedConcept("NEW", SCHEME, "New lesion (not at baseline)")
CATEGORIES = {
    "target": codes.DCM.TargetLesionAtBaseline,
    "non-target": codes.DCM.NonTargetLesionAtBaseline,
    "new": NEW_LESION,
}
#: RANO-BM overall responses (rano_response.tsv) as codes of the private scheme
RESPONSES = {
    "BL": hd.sr.CodedConcept("BL", SCHEME, "Baseline"),
    "CR": hd.sr.CodedConcept("CR", SCHEME, "Complete response"),
    "PR": hd.sr.CodedConcept("PR", SCHEME, "Partial response"),
    "SD": hd.sr.CodedConcept("SD", SCHEME, "Stable disease"),
    "PD": hd.sr.CodedConcept("PD", SCHEME, "Progressive disease"),
    "non-CR/non-PD": hd.sr.CodedConcept("NCRNPD", SCHEME, "Non-CR/non-PD"),
}


@dataclass(frozen=True)
class Lesion:
    """One tracked lesion at one visit: id, RANO-BM measurements (mm, mL) and its RANO-BM category."""

    lesion_id: int
    volume_ml: float
    longest_diameter_mm: float
    perpendicular_diameter_mm: float
    category: str | None  # target, non-target, new; None for a visit before the RANO-BM baseline


@dataclass(frozen=True)
class Segments:
    """Where the lesions of a SEG are: lesion id -> segment number, and -> indices of the source images showing it."""

    number: dict[int, int]
    images: dict[int, list[int]]


@dataclass(frozen=True)
class Assessment:
    """The RANO-BM assessment of one visit: overall response and sum of target diameters (mm), where set."""

    overall_response: str | None
    sum_ld_mm: float | None


def tracking_uid(patient_id: str, lesion_id: int) -> str:
    """The Tracking UID of a lesion: the same for the same patient and lesion id at every visit."""
    return derived_uid("tracking", patient_id, str(lesion_id))


def tracking_id(lesion_id: int) -> str:
    """The Tracking ID (a label unique within the patient) of a lesion."""
    return f"lesion {lesion_id}"


def _text(value: object) -> str | None:
    """A table cell as text; None when empty."""
    return None if value is None or pd.isna(value) or str(value) == "" else str(value)  # type: ignore[call-overload]


def visit_lesions(
    lesions: pd.DataFrame, response: pd.DataFrame | None, timepoint: str, source: str
) -> tuple[list[Lesion], Assessment]:
    """The lesions present at `timepoint` and its assessment, from `track`'s lesion table and `rano`'s response table.

    Fragments of a split lesion count as RANO-BM counts them (LD and volume summed, PD the largest). A
    lesion is a target when the visit's row lists it, new when first seen after the baseline of the
    visit's assessment period, otherwise non-target.
    """
    table = check_lesion_table(lesions, source)
    when = pd.Timestamp(timepoint)
    if not (table["timepoint"] == when).any():
        raise BrainmetsError(f"{source}: no rows for timepoint {timepoint}; track the patient's visits again")
    visits = _visits(table)
    visit = next(iter(visits.values()))[when]
    present = table[(table["component"] > 0) & (table["lesion_id"] > 0)]
    first_seen = present.groupby("lesion_id")["timepoint"].min()
    row = None
    period_baseline = None
    if response is not None and not response.empty:
        rows = response.assign(_when=pd.to_datetime(response["timepoint"])).sort_values("_when")
        matching = rows[rows["_when"] == when]
        if len(matching):
            row = matching.iloc[-1]
            period = int(row["period"])
            earlier = rows[rows["period"] == period - 1] if period > 1 else rows[rows["period"] == period]
            period_baseline = earlier["_when"].iloc[-1 if period > 1 else 0]
    targets = {int(i) for i in str(_text(row["target_ids"]) or "").split(";") if i} if row is not None else set()
    found = []
    for lesion_id in sorted(visit.ld):
        category = None
        if period_baseline is not None:
            if lesion_id in targets:
                category = "target"
            elif first_seen[lesion_id] > period_baseline:
                category = "new"
            else:
                category = "non-target"
        found.append(
            Lesion(
                lesion_id,
                float(visit.volume[lesion_id]),
                float(visit.ld[lesion_id]),
                float(visit.pd[lesion_id]),
                category,
            )
        )
    if row is None:
        return found, Assessment(None, None)
    sum_ld = pd.to_numeric(row["sum_ld_mm"], errors="coerce")
    return found, Assessment(_text(row["overall_response"]), None if pd.isna(sum_ld) else float(sum_ld))


def _digest(*parts: object) -> str:
    """A short hex digest of the content an object is made from (arrays by their bytes)."""
    h = hashlib.sha256()
    for part in parts:
        h.update(np.ascontiguousarray(part).tobytes() if isinstance(part, np.ndarray) else repr(part).encode())
    return h.hexdigest()


def _series_number(source: Sequence[Dataset], name: str) -> int:
    """The series number of a derived object: the source's times 100 plus the object's offset."""
    return int(source[0].get("SeriesNumber") or 0) * 100 + OBJECTS[name]


class _Identity(TypedDict):
    """Keyword arguments that name a new object and its maker."""

    series_instance_uid: str
    series_number: int
    sop_instance_uid: str
    instance_number: int
    manufacturer: str


class _Equipment(TypedDict):
    """Keyword arguments that describe the equipment making an image object."""

    manufacturer_model_name: str
    software_versions: str
    device_serial_number: str


def _identity(source: Sequence[Dataset], name: str, content: str) -> _Identity:
    """The new object's series and instance (UIDs from the source series UID, its name and content) and maker."""
    series = derived_uid(str(source[0].SeriesInstanceUID), name, "series")
    return {
        "series_instance_uid": series,
        "series_number": _series_number(source, name),
        "sop_instance_uid": derived_uid(series, content, "instance"),
        "instance_number": 1,
        "manufacturer": MANUFACTURER,
    }


#: the equipment that makes an image object (SEG, parametric map)
EQUIPMENT = _Equipment(manufacturer_model_name="brainmets", software_versions=__version__, device_serial_number="1")


def _settle(ds: D, when: datetime.datetime) -> D:
    """Replace what highdicom takes from the clock or a random source with values derived from `when` and the object.

    Dates and times become `when`; the Dimension Organization UID is derived from the SOP Instance UID.
    """
    date, time = when.strftime("%Y%m%d"), when.strftime("%H%M%S")
    for prefix in ("InstanceCreation", "Content", "Series"):
        if f"{prefix}Date" in ds or prefix != "Series":
            setattr(ds, f"{prefix}Date", date)
            setattr(ds, f"{prefix}Time", time)
    for item in ds.get("ContributingEquipmentSequence", []):
        if "ContributionDateTime" in item:
            item.ContributionDateTime = date + time
    dimensions = derived_uid(str(ds.SOPInstanceUID), "dimensions")
    for item in [*ds.get("DimensionOrganizationSequence", []), *ds.get("DimensionIndexSequence", [])]:
        if "DimensionOrganizationUID" in item:
            item.DimensionOrganizationUID = dimensions
    return ds


def build_segmentation(
    source: Sequence[Dataset],
    planes: Sequence[Plane],
    labels: np.ndarray,
    patient_id: str,
    when: datetime.datetime,
) -> tuple[hd.seg.Segmentation, Segments]:
    """The SEG of a native-grid lesion label map (lesion ids): one segment per lesion; returns it and its segments."""
    frames = frames_on_source(np.asarray(labels), planes)
    ids = [int(i) for i in np.unique(frames) if i != 0]
    segment_of = {lesion_id: number for number, lesion_id in enumerate(ids, start=1)}
    lookup = np.zeros(int(frames.max()) + 1, dtype=np.uint16)
    for lesion_id, number in segment_of.items():
        lookup[lesion_id] = number
    segments = lookup[frames.astype(np.int64)]
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=tracking_id(lesion_id),
            segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
            segmented_property_type=METASTASIS,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=ALGORITHM,
            tracking_uid=tracking_uid(patient_id, lesion_id),
            tracking_id=tracking_id(lesion_id),
            anatomic_regions=[codes.SCT.Brain],
        )
        for lesion_id, number in segment_of.items()
    ]
    if not descriptions:  # a SEG needs a segment: an empty one says that no lesion was found
        descriptions = [
            hd.seg.SegmentDescription(
                segment_number=1,
                segment_label="no lesion",
                segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
                segmented_property_type=METASTASIS,
                algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
                algorithm_identification=ALGORITHM,
            )
        ]
    identity = _identity(source, "segmentation", _digest(segments, sorted(segment_of.items()), patient_id))
    seg = hd.seg.Segmentation(
        source_images=source,
        pixel_array=segments,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        **identity,
        **EQUIPMENT,
        series_description="brainmets tracked lesions",
        content_label="LESIONS",
        content_description="brain metastases, one segment per tracked lesion",
        omit_empty_frames=True,
    )
    images = {lesion_id: np.flatnonzero((frames == lesion_id).any(axis=(1, 2))).tolist() for lesion_id in ids}
    return _settle(seg, when), Segments(segment_of, images)


def build_parametric_map(
    source: Sequence[Dataset],
    planes: Sequence[Plane],
    values: np.ndarray,
    name: str,
    when: datetime.datetime,
) -> hd.pm.ParametricMap:
    """A parametric map of a native-grid map in [0, 1]: `probability` or `total_entropy` (bits).

    Stored as 16-bit integers with a real-world value mapping of slope 1/65535 (values within 7.7e-6 of
    the map's), half the size of 32-bit floats.
    """
    unit_values = np.clip(frames_on_source(np.asarray(values, np.float32), planes), 0.0, 1.0)
    frames = np.rint(unit_values.astype(np.float64) * PM_LEVELS).astype(np.uint16)
    label, explanation, unit = {
        "probability": ("probability", "lesion probability (ensemble mean)", NO_UNITS),
        "total_entropy": ("entropy", "total predictive entropy of the lesion probability (bits)", BIT),
    }[name]
    mapping = hd.pm.RealWorldValueMapping(
        lut_label=label,
        lut_explanation=explanation,
        unit=unit,
        value_range=(0, PM_LEVELS),
        slope=1.0 / PM_LEVELS,
        intercept=0.0,
    )
    identity = _identity(source, name, _digest(frames))
    pm = hd.pm.ParametricMap(
        source_images=source,
        pixel_array=frames,
        **identity,
        **EQUIPMENT,
        contains_recognizable_visual_features=False,
        real_world_value_mappings=[mapping],
        voi_lut_transformations=[hd.VOILUTTransformation(window_center=PM_LEVELS / 2, window_width=PM_LEVELS)],
        series_description=f"brainmets {explanation}"[:64],
        content_label=label.upper(),
        content_description=explanation[:64],
    )
    pm.Laterality = ""  # General Series, type 2C: dciodvfy asks for it in a parametric map (the brain is unpaired)
    return _settle(pm, when)


def build_measurement_report(
    source: Sequence[Dataset],
    seg: hd.seg.Segmentation,
    segments: Segments,
    lesions: Sequence[Lesion],
    visit: Assessment,
    patient_id: str,
    timepoint: str,
    when: datetime.datetime,
) -> hd.sr.Comprehensive3DSR:
    """The TID 1500 measurement report: a volumetric group per lesion (referencing its segment) and the visit's."""
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=derived_uid("device", "brainmets"), name="brainmets", manufacturer_name=MANUFACTURER
        ),
    )
    time_point = hd.sr.TimePointContext(time_point=timepoint)
    groups: list[hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations | hd.sr.MeasurementsAndQualitativeEvaluations]
    groups = []
    for lesion in lesions:
        evaluations = []
        if lesion.category is not None:
            evaluations.append(
                hd.sr.QualitativeEvaluation(name=codes.DCM.BaselineCategory, value=CATEGORIES[lesion.category])
            )
        common = {
            "tracking_identifier": hd.sr.TrackingIdentifier(
                uid=tracking_uid(patient_id, lesion.lesion_id), identifier=tracking_id(lesion.lesion_id)
            ),
            "finding_type": METASTASIS,
            "finding_sites": [hd.sr.FindingSite(codes.SCT.Brain)],
            "time_point_context": time_point,
            "algorithm_id": hd.sr.AlgorithmIdentification(name="brainmets", version=__version__),
            "measurements": [
                hd.sr.Measurement(name=codes.SCT.Volume, value=lesion.volume_ml, unit=MILLILITRE),
                hd.sr.Measurement(
                    name=codes.SCT.LongAxis, value=lesion.longest_diameter_mm, unit=MILLIMETRE, method=codes.NCIt.RANO
                ),
                hd.sr.Measurement(
                    name=codes.SCT.PerpendicularAxis,
                    value=lesion.perpendicular_diameter_mm,
                    unit=MILLIMETRE,
                    method=codes.NCIt.RANO,
                ),
            ],
            "qualitative_evaluations": evaluations or None,
        }
        if lesion.lesion_id not in segments.number:
            # a lesion measured in patient space that covers no voxel centre of a coarser native grid: its
            # measurements are reported, without a region
            groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(**common))
            continue
        # highdicom's ReferencedSegment.from_segmentation fails on a SEG of one segment (its
        # identification is then shared by all frames), so the reference is built here
        reference = hd.sr.ReferencedSegment(
            sop_class_uid=seg.SOPClassUID,
            sop_instance_uid=seg.SOPInstanceUID,
            segment_number=segments.number[lesion.lesion_id],
            source_images=[
                hd.sr.SourceImageForSegmentation.from_source_image(source[i]) for i in segments.images[lesion.lesion_id]
            ],
        )
        groups.append(hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(referenced_segment=reference, **common))
    measurements = []
    if visit.sum_ld_mm is not None:
        measurements.append(
            hd.sr.Measurement(name=SUM_OF_DIAMETERS, value=visit.sum_ld_mm, unit=MILLIMETRE, method=codes.NCIt.RANO)
        )
    responses = []
    if visit.overall_response is not None:
        responses.append(hd.sr.QualitativeEvaluation(codes.DCM.CurrentResponse, RESPONSES[visit.overall_response]))
    groups.append(
        hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(
                uid=derived_uid("visit", patient_id, timepoint), identifier=f"RANO-BM {timepoint}"
            ),
            time_point_context=time_point,
            method=codes.NCIt.RANO,
            measurements=measurements or None,
            qualitative_evaluations=responses or None,
        )
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=codes.LN.MRIHeadReport,
        imaging_measurements=groups,
    )
    if visit.overall_response is not None:  # TID 1500's own evaluations: the visit's response
        own = hd.sr.ContainerContentItem(
            name=QUALITATIVE_EVALUATIONS, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS
        )
        own.ContentSequence = hd.sr.ContentSequence(
            [
                hd.sr.CodeContentItem(
                    name=codes.DCM.CurrentResponse,
                    value=RESPONSES[visit.overall_response],
                    relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
                )
            ]
        )
        report[0].ContentSequence.append(own)
    identity = _identity(source, "measurements", _digest(seg.SOPInstanceUID, lesions, visit, patient_id))
    sr = hd.sr.Comprehensive3DSR(
        evidence=[*source, seg],
        content=report,
        **identity,
        is_complete=True,
        series_description="brainmets RANO-BM measurements",
    )
    scheme = Dataset()
    scheme.CodingSchemeDesignator = SCHEME
    scheme.CodingSchemeName = "brainmets RANO-BM terms"
    scheme.CodingSchemeResponsibleOrganization = "brainmets"
    sr.CodingSchemeIdentificationSequence = [scheme]
    return _settle(sr, when)


def write_objects(objects: dict[str, Dataset], out_dir: str | os.PathLike[str]) -> list[Path]:
    """Write each object as OUT_DIR/<name>.dcm, atomically (a temporary name, then a rename)."""
    paths = []
    for name, ds in objects.items():
        path = Path(out_dir) / f"{name}.dcm"
        with atomic_path(path) as tmp:
            ds.save_as(tmp, enforce_file_format=True)
        paths.append(path)
    return paths


#: native maps of a predicted scan that the objects are made from (`brainmets predict --native-dir`)
NATIVE_MAPS = {"segmentation": "segmentation.nii.gz", "probability": "probability.nii.gz"}
NATIVE_MAPS["total_entropy"] = "uncertainty_total_entropy.nii.gz"


def _of_patient(table: pd.DataFrame, patient_id: str) -> pd.DataFrame:
    """The rows of one patient in a table that may cover a cohort (a patient_id column)."""
    return table[table["patient_id"] == patient_id] if "patient_id" in table.columns else table


def _results_time(paths: Sequence[Path]) -> datetime.datetime:
    """When the results were made: the newest modification time of `paths` (UTC, whole seconds)."""
    newest = max(p.stat().st_mtime for p in paths)
    return datetime.datetime.fromtimestamp(int(newest), tz=datetime.UTC).replace(tzinfo=None)


def export_results(
    source_dir: str | os.PathLike[str],
    native_dir: str | os.PathLike[str],
    labels: np.ndarray,
    lesions: pd.DataFrame,
    response: pd.DataFrame | None,
    out_dir: str | os.PathLike[str],
    *,
    patient_id: str,
    timepoint: str,
    when: datetime.datetime,
    series_uid: str | None = None,
    tables: str = "lesion table",
) -> list[Path]:
    """Write the SEG, measurement report and parametric maps of one visit into `out_dir`.

    `labels` are the visit's lesion ids on the native grid (that of NATIVE_DIR's maps), `lesions` and
    `response` the patient's tables from tracking and RANO-BM, `tables` how errors name them. Every
    object is built before the first file is written.
    """
    from brainmets.dicom.source_grid import read_source_series, source_planes
    from brainmets.io import load_nifti

    maps = {name: Path(native_dir) / file for name, file in NATIVE_MAPS.items()}
    source = read_source_series(source_dir, series_uid)
    grid = load_nifti(maps["segmentation"], allow_constant=True)
    planes = source_planes(source, grid.affine, grid.shape, str(source_dir))
    if labels.shape != grid.shape:
        raise BrainmetsError(f"{maps['segmentation']}: not on the scan's native grid; predict the scan again")
    values = {}
    for name in ("probability", "total_entropy"):
        image = load_nifti(maps[name], allow_constant=True)
        if image.shape != grid.shape or not np.allclose(image.affine, grid.affine, atol=1e-4):
            raise BrainmetsError(f"{maps[name]}: not on the grid of {maps['segmentation']}; predict the scan again")
        values[name] = np.asarray(image.get_fdata(dtype=np.float32))
    found, visit = visit_lesions(lesions, response, timepoint, tables)
    if visit.overall_response is not None and visit.overall_response not in RESPONSES:
        raise BrainmetsError(
            f"{tables}: overall_response {visit.overall_response!r} at {timepoint} is not a RANO-BM response "
            f"({', '.join(RESPONSES)}); write the table with `brainmets rano`"
        )
    seg, segments = build_segmentation(source, planes, labels, patient_id, when)
    objects: dict[str, Dataset] = {
        "segmentation": seg,
        "measurements": build_measurement_report(source, seg, segments, found, visit, patient_id, timepoint, when),
    }
    for name, array in values.items():
        objects[name] = build_parametric_map(source, planes, array, name, when)
    return write_objects(objects, out_dir)


def export_scan(
    source_dir: str | os.PathLike[str],
    scan_dir: str | os.PathLike[str],
    tracked: str | os.PathLike[str],
    lesions: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    patient_id: str,
    timepoint: str,
    response: str | os.PathLike[str] | None = None,
    series_uid: str | None = None,
    native_dir: str | os.PathLike[str] | None = None,
) -> list[Path]:
    """Write a workflow scan's SEG, measurement report and parametric maps for its source DICOM series.

    `scan_dir` is the scan's preprocessed folder (its record leads back to the native grid), `tracked`
    the patient-space label map of lesion ids of this visit, `lesions` and `response` the patient's
    tables from `track` and `rano`.
    """
    from brainmets.io import read_tsv
    from brainmets.preprocess.native import file_to_native

    native = Path(native_dir) if native_dir is not None else Path(scan_dir) / "native"
    inputs = [Path(tracked), Path(lesions), *(native / file for file in NATIVE_MAPS.values())]
    inputs += [Path(response)] if response is not None else []
    for path in inputs:
        if not path.is_file():
            raise BrainmetsError(f"{path}: not found; run the workflow up to tracking and RANO-BM first")
    labels, _ = file_to_native(tracked, scan_dir, kind="label")
    table = _of_patient(read_tsv(lesions, text_columns=["patient_id"]), patient_id)
    text = ["patient_id", "target_ids", "overall_response"]
    assessed = _of_patient(read_tsv(response, text_columns=text), patient_id) if response is not None else None
    tables = str(lesions) if response is None else f"{lesions} / {response}"
    return export_results(
        source_dir,
        native,
        labels,
        table,
        assessed,
        out_dir,
        patient_id=patient_id,
        timepoint=timepoint,
        when=_results_time(inputs),
        series_uid=series_uid,
        tables=tables,
    )


def export_segmented_scan(
    source_dir: str | os.PathLike[str],
    scan_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    series_uid: str | None = None,
) -> list[Path]:
    """The DICOM objects of a scan segmented on its own (`brainmets segment`): one visit, its own baseline.

    Lesion ids are those of tracking a single visit (components in scan order), the RANO-BM assessment
    that of a baseline (targets and non-targets); the patient id is the scan folder's name and the
    visit's date the series' StudyDate (1900-01-01 when the header has none).
    """
    from pydicom.valuerep import DA

    from brainmets.dicom.source_grid import read_source_series
    from brainmets.inference.pipeline import SEGMENTATION
    from brainmets.io import load_mask
    from brainmets.preprocess.native import to_native
    from brainmets.rano.rano import assess
    from brainmets.track.track import track_lesions

    scan = Path(scan_dir)
    mask, image = load_mask(scan / SEGMENTATION)
    header = read_source_series(source_dir, series_uid)[0]
    study_date = str(header.get("StudyDate") or "")
    try:
        timepoint = DA(study_date).isoformat() if study_date else "1900-01-01"
    except ValueError:
        timepoint = "1900-01-01"
    table, label_maps = track_lesions([mask], image.affine, [timepoint])
    table.insert(0, "patient_id", scan.name)
    labels, _ = to_native(label_maps[0], image.affine, scan, kind="label")
    native = scan / "native"
    when = _results_time([scan / SEGMENTATION, *(native / file for file in NATIVE_MAPS.values())])
    return export_results(
        source_dir,
        native,
        labels,
        table,
        assess(table),
        out_dir,
        patient_id=scan.name,
        timepoint=timepoint,
        when=when,
        series_uid=series_uid,
        tables=str(scan / SEGMENTATION),
    )
