"""A small generated patient folder, laid out as the workflow writes results/<patient>/, for the review tests.

Three visits on one 2 mm patient-space grid (x axis flipped, so that mm and voxel order differ): lesion 1
(radius 9 mm) shrinks, lesion 2 (7 mm) stays, and a small bright spot appears at the second visit and stays:
a new lesion (progression at visit 2), with a high total entropy, as a false positive has.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from brainmets.io import save_nifti

SHAPE = (48, 56, 44)
AFFINE = np.array([[-2.0, 0, 0, 47.0], [0, 2.0, 0, -55.0], [0, 0, 2.0, -40.0], [0, 0, 0, 1]])
VISITS = ["2024-01-10", "2024-03-12", "2024-05-14"]
#: lesion centres (voxel indices) and radius (mm) per visit (0: absent)
LESIONS = {
    1: ((16, 20, 22), [9.0, 7.0, 6.0]),
    2: ((32, 36, 20), [7.0, 7.0, 7.0]),
    3: ((30, 18, 30), [0.0, 3.0, 3.0]),
}
#: mean total entropy the generator gives each lesion's voxels (bits)
LESION_ENTROPY = {1: 0.2, 2: 0.3, 3: 0.85}


def ball(centre: tuple[int, int, int], radius_mm: float) -> np.ndarray:
    """Voxels within `radius_mm` of a voxel centre on the 2 mm grid."""
    grid = np.indices(SHAPE).astype(float)
    return (((grid - np.array(centre, float)[:, None, None, None]) * 2.0) ** 2).sum(0) <= radius_mm**2


def lesion_centroid_mm(lesion: int) -> np.ndarray:
    """World coordinates (mm) of a lesion's centre."""
    return (AFFINE @ np.array([*LESIONS[lesion][0], 1.0]))[:3]


def write_patient(folder: Path, visits: list[str] = VISITS) -> Path:
    """Write each visit's brain, segmentation and entropy map (lesions of the first visits) and the manifest."""
    grid = np.indices(SHAPE).astype(float)
    centre = (np.array(SHAPE, float) - 1) / 2
    brain_mask = (
        ((grid - centre[:, None, None, None]) / (np.array(SHAPE, float)[:, None, None, None] * 0.42)) ** 2
    ).sum(0) <= 1
    rng = np.random.default_rng(0)
    rows = ["timepoint\tmask"]
    for v, visit in enumerate(visits):
        brain = np.where(brain_mask, 400.0 + 60 * np.sin(grid[0] / 5) + rng.normal(0, 10, SHAPE), 0.0)
        segmentation = np.zeros(SHAPE, np.uint8)
        entropy = np.zeros(SHAPE, np.float32)
        for lesion, (where, radii) in LESIONS.items():
            if radii[v] > 0:
                inside = ball(where, radii[v])
                entropy[ball(where, radii[v] + 4.0) & ~inside] = 0.6  # an uncertain rim around each lesion
                brain[inside] = 900.0
                segmentation[inside] = 1
                entropy[inside] = LESION_ENTROPY[lesion]
        save_nifti(brain.astype(np.float32), AFFINE, folder / visit / "brain.nii.gz")
        save_nifti(segmentation, AFFINE, folder / visit / "segmentation.nii.gz")
        save_nifti(entropy, AFFINE, folder / visit / "uncertainty_total_entropy.nii.gz")
        rows.append(f"{visit}\t{visit}/segmentation.nii.gz")
    (folder / "segmentations.tsv").write_text("\n".join(rows) + "\n")
    return folder


def track_and_assess(folder: Path, patient: str = "P1", review: Path | None = None) -> None:
    """Run `brainmets track` and `brainmets rano` on the folder as the workflow does."""
    from brainmets.cli import main

    extra = ["--review", str(review)] if review else []
    assert main(["track", str(folder / "segmentations.tsv"), "--out", str(folder), "--patient", patient, *extra]) == 0
    assert main(["rano", str(folder / "lesions.tsv"), "--out", str(folder / "rano_response.tsv")]) == 0
