"""Size and build time of a review page on real anatomy: prints MB per part and seconds.

The patient: the real skull-stripped BraTS-METS T1-CE scan (../shared/data/real/, 1 mm) resampled to the
given patient-space spacing (1.5 mm for the demo, 1 mm for real data), N visits with the scan's own noise
redrawn, three lesions that shrink, and an entropy map that is high on the lesions' rims and low elsewhere
(as a trained ensemble's is). The page embeds the viewer (about 2.3 MB) and, per visit, the T1-CE, the
tracked lesion ids and the entropy map cropped to the brain.

    python benchmarks/review_page.py [--spacing 1.5] [--visits 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

HERE = Path(__file__).resolve().parent
REAL = HERE.parent.parent / "shared" / "data" / "real" / "BraTS-MET-00110-000-t1c.nii.gz"
DATES = ["2024-01-10", "2024-03-12", "2024-05-14", "2024-07-16", "2024-09-17", "2024-11-19"]


def write_patient(folder: Path, spacing: float, visits: int) -> None:
    """Brain, segmentation and entropy of every visit of a patient on real anatomy, and its tracking manifest."""
    from brainmets.io import load_nifti, save_nifti

    img = load_nifti(REAL)
    zoom = 1.0 / spacing
    brain = ndimage.zoom(np.asarray(img.dataobj, dtype=np.float32), zoom, order=1)
    affine = img.affine.copy()
    affine[:3, :3] = img.affine[:3, :3] * spacing
    rng = np.random.default_rng(0)
    grid = np.indices(brain.shape)
    centres = [np.array(brain.shape) * f for f in ((0.4, 0.5, 0.6), (0.6, 0.4, 0.5), (0.5, 0.65, 0.4))]
    rows = ["timepoint\tmask"]
    for v, date in enumerate(DATES[:visits]):
        image = np.where(brain > 0, brain + rng.normal(0, 0.03 * brain[brain > 0].std(), brain.shape), 0)
        segmentation = np.zeros(brain.shape, np.uint8)
        for centre, radius in zip(centres, (9.0, 6.0, 4.0), strict=True):
            distance = np.sqrt((((grid - centre[:, None, None, None]) * spacing) ** 2).sum(0))
            segmentation[distance <= radius * (1 - 0.1 * v)] = 1
        outside = ndimage.distance_transform_edt(segmentation == 0) * spacing
        inside = ndimage.distance_transform_edt(segmentation > 0) * spacing
        entropy = np.clip(np.exp(-np.maximum(outside, inside) / 2.0) - 0.02, 0, 1).astype(np.float32) * (brain > 0)
        save_nifti(image.astype(np.float32), affine, folder / date / "brain.nii.gz")
        save_nifti(segmentation, affine, folder / date / "segmentation.nii.gz")
        save_nifti(entropy, affine, folder / date / "uncertainty_total_entropy.nii.gz")
        rows.append(f"{date}\t{date}/segmentation.nii.gz")
    (folder / "segmentations.tsv").write_text("\n".join(rows) + "\n")


def main() -> None:
    """Build one page and print its size by part and the build time."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spacing", type=float, default=1.5, help="patient-space spacing (mm)")
    parser.add_argument("--visits", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="folder to keep the patient and its page in")
    args = parser.parse_args()
    from brainmets.cli import main as brainmets
    from brainmets.review.page import build_review_page

    folder = args.keep or Path(tempfile.mkdtemp(prefix="review-page-")) / "P1"
    write_patient(folder, args.spacing, args.visits)
    assert brainmets(["track", str(folder / "segmentations.tsv"), "--out", str(folder), "--patient", "P1"]) == 0
    assert brainmets(["rano", str(folder / "lesions.tsv"), "--out", str(folder / "rano_response.tsv")]) == 0
    started = time.perf_counter()
    sizes = build_review_page(folder, folder / "review.html")
    elapsed = time.perf_counter() - started
    per_visit = {k: sizes[k] / args.visits / 1e6 for k in ("t1", "labels", "entropy")}
    print(f"{args.visits} visits at {args.spacing} mm: page {sizes['page'] / 1e6:.2f} MB "
          f"(viewer {sizes['viewer'] / 1e6:.2f} MB; per visit T1-CE {per_visit['t1']:.2f}, lesion ids "
          f"{per_visit['labels']:.3f}, entropy {per_visit['entropy']:.3f} MB), built in {elapsed:.1f} s")  # fmt: skip
    print(f"page: {folder / 'review.html'}", file=sys.stderr)


if __name__ == "__main__":
    main()
