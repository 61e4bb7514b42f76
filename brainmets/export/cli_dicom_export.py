"""`brainmets dicom-export`: a scan's results as DICOM objects that reference the scan's source series."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = (
    "Write a scan's lesion segmentation (SEG), RANO-BM measurement report (SR TID 1500) and probability and "
    "uncertainty parametric maps on the grid of its source DICOM series."
)


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the arguments of `brainmets dicom-export`."""
    parser.add_argument("--source", type=Path, required=True, help="folder holding the scan's source DICOM series")
    parser.add_argument("--series-uid", help="SeriesInstanceUID of the series to use when the folder holds several")
    parser.add_argument(
        "--scan-dir",
        type=Path,
        required=True,
        help="the scan's results folder (holds preprocessing.json and native/), e.g. results/P/T",
    )
    parser.add_argument(
        "--native-dir", type=Path, help="folder of the scan's native-grid maps (default: SCAN_DIR/native)"
    )
    parser.add_argument(
        "--tracked",
        type=Path,
        required=True,
        help="the visit's label map of persistent lesion ids, e.g. results/P/tracked/T.nii.gz",
    )
    parser.add_argument("--lesions", type=Path, required=True, help="the patient's lesions.tsv from `brainmets track`")
    parser.add_argument("--response", type=Path, help="the patient's rano_response.tsv from `brainmets rano`")
    parser.add_argument(
        "--patient", required=True, help="patient id (the sample sheet's); Tracking UIDs derive from it"
    )
    parser.add_argument("--timepoint", required=True, help="the visit's date, YYYY-MM-DD")
    parser.add_argument(
        "--out-dir",
        type=Path,
        required=True,
        help="output folder: segmentation.dcm, measurements.dcm, probability.dcm, total_entropy.dcm",
    )


def run(args: argparse.Namespace) -> None:
    """Build every object, then write them atomically."""
    from brainmets.export.dicom import export_scan

    for path in export_scan(
        args.source,
        args.scan_dir,
        args.tracked,
        args.lesions,
        args.out_dir,
        patient_id=args.patient,
        timepoint=args.timepoint,
        response=args.response,
        series_uid=args.series_uid,
        native_dir=args.native_dir,
    ):
        print(path)
