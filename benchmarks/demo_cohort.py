"""Generate the default demo cohort and print its cost and how closely its scans agree with its truth.

Figures: wall and CPU time; per lesion, the relative difference between the volume of the scan's
label map and the truth table (measured on the 1 mm common grid), by lesion size; per scan, the
distance (mm) between the brain-mask centroid on the scan and the common-grid centroid moved by the
truth pose. Usage: python benchmarks/demo_cohort.py [OUT_DIR] [WORKERS]
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from brainmets.demo.cohort import generate_cohort
from brainmets.demo.settings import DemoSettings


def _centroid_mm(path: Path) -> np.ndarray:
    """World centroid (mm) of the nonzero voxels of a NIfTI mask."""
    img = nib.load(path)
    return img.affine[:3, :3] @ np.argwhere(np.asarray(img.dataobj) > 0).mean(axis=0) + img.affine[:3, 3]


def main(out: Path, workers: int) -> None:
    """Generate the default cohort into `out` and print timing and truth-consistency figures."""
    start, cpu = time.perf_counter(), time.process_time()
    generate_cohort(out, DemoSettings(), workers=workers)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = time.process_time() - cpu + children.ru_utime + children.ru_stime
    print(
        f"default cohort (4 x 3 + 12 training, workers={workers}): "
        f"wall {time.perf_counter() - start:.1f} s, CPU {cpu_s:.1f} s"
    )

    lesions = pd.read_csv(out / "truth" / "lesions.tsv", sep="\t")
    volumes = lesions.groupby(["patient_id", "timepoint", "lesion_id"])["volume_ml"].sum()
    rows = []
    for (patient, timepoint, lesion_id), volume in volumes[volumes > 0].items():
        img = nib.load(out / patient / timepoint / "lesions.nii.gz")
        native = (np.asarray(img.dataobj) == lesion_id).sum() * abs(np.linalg.det(img.affine[:3, :3])) / 1000
        rows.append({"volume_ml": volume, "error": abs(native - volume) / volume})
    errors = pd.DataFrame(rows)
    for low, high in ((0.0, 0.1), (0.1, 1.0), (1.0, 100.0)):
        part = errors[(errors["volume_ml"] >= low) & (errors["volume_ml"] < high)]["error"]
        if len(part):
            median, worst = 100 * part.median(), 100 * part.max()
            print(
                f"scan vs truth volume, lesions {low}-{high} mL (n={len(part)}): "
                f"median {median:.1f} %, max {worst:.1f} %"
            )

    poses = pd.read_csv(out / "truth" / "poses.tsv", sep="\t")
    distances = []
    for _, row in poses.iterrows():
        pose = np.array([float(v) for v in row["common_to_scanner"].split()]).reshape(4, 4)
        common = _centroid_mm(out / "truth" / row["patient_id"] / "brain_mask.nii.gz")
        scan = _centroid_mm(out / row["patient_id"] / row["timepoint"] / "brain_mask.nii.gz")
        distances.append(np.linalg.norm(scan - (pose[:3, :3] @ common + pose[:3, 3])))
    print(f"brain centroid on the scan vs the truth pose: max {max(distances):.3f} mm over {len(distances)} scans")
    response = pd.read_csv(out / "truth" / "expected_response.tsv", sep="\t")
    print(
        response[["patient_id", "timepoint", "sum_ld_mm", "target_response", "overall_response"]].to_string(index=False)
    )


if __name__ == "__main__":
    workers = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]), workers)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp), workers)
