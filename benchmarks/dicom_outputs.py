"""Speed and size of a scan's DICOM outputs; prints figures.

A clinical-sized series (256 x 256 x 176, 1 mm, one file per slice) is written, converted with dcm2niix,
and its SEG (LESIONS lesions), SR and one parametric map are built and written, as `brainmets
dicom-export` does after it has put the tracked lesions on the native grid.

Run: `python benchmarks/dicom_outputs.py [--lesions N]`
"""

from __future__ import annotations

import argparse
import datetime
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from brainmets.dicom.outputs import (
    Assessment,
    Lesion,
    build_measurement_report,
    build_parametric_map,
    build_segmentation,
    write_objects,
)
from brainmets.dicom.series import convert_series
from brainmets.dicom.series_writer import derived_uid, write_mr_series
from brainmets.dicom.source_grid import read_source_series, source_planes

SHAPE = (256, 256, 176)


def main() -> None:
    """Build and write the objects of one synthetic scan and print each step's seconds and each file's size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lesions", type=int, default=5, help="lesions in the segmentation")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        image = nib.Nifti1Image(rng.integers(0, 1000, SHAPE).astype(np.int16), np.eye(4))
        write_mr_series(
            image,
            root / "series",
            patient_id="P",
            patient_name="P^",
            study_instance_uid=derived_uid("benchmark study"),
            study_date="20260101",
            series_number=3,
            series_description="T1 POST",
            contrast_agent="Gd",
            frame_of_reference_uid=derived_uid("benchmark frame"),
        )
        convert_series(root / "series", root / "t1ce.nii.gz")
        native = nib.load(root / "t1ce.nii.gz")
        labels = np.zeros(native.shape, np.uint8)
        for i in range(1, args.lesions + 1):  # 15 x 20 x 20 mm boxes along the first axis
            x = int(i * (native.shape[0] - 20) / (args.lesions + 1))
            labels[x : x + 15, 100:120, 60:80] = i
        probability = rng.random(native.shape, dtype=np.float32)
        when = datetime.datetime(2026, 1, 1)
        timings = {}
        start = time.perf_counter()
        source = read_source_series(root / "series")
        planes = source_planes(source, native.affine, native.shape, "series")
        timings["read headers, map slices"] = time.perf_counter() - start
        start = time.perf_counter()
        seg, segments = build_segmentation(source, planes, labels, "P", when)
        timings["SEG"] = time.perf_counter() - start
        start = time.perf_counter()
        lesions = [Lesion(i, 6.0, 25.0, 20.0, "target") for i in range(1, args.lesions + 1)]
        report = build_measurement_report(source, seg, segments, lesions, Assessment("BL", 125.0), "P", "x", when)
        timings["SR"] = time.perf_counter() - start
        start = time.perf_counter()
        parametric = build_parametric_map(source, planes, probability, "probability", when)
        timings["parametric map"] = time.perf_counter() - start
        start = time.perf_counter()
        paths = write_objects({"segmentation": seg, "measurements": report, "probability": parametric}, root / "out")
        timings["write"] = time.perf_counter() - start
        for step, seconds in timings.items():
            print(f"{step:<26} {seconds:6.2f} s")
        for path in paths:
            print(f"{path.name:<26} {path.stat().st_size / 2**20:6.2f} MiB")


if __name__ == "__main__":
    main()
