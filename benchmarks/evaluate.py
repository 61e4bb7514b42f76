"""Time the per-scan evaluation (both definitions) on a brain-sized grid and compare voxel HD95 with the
surface-distance package; prints figures.

Usage: python benchmarks/evaluate.py [--shape 160 192 160] [--lesions 20] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import surface_distance
from brainmets.evaluation.brats2025 import evaluate_brats2025
from brainmets.evaluation.metrics import evaluate_segmentation, hausdorff95_mm
from scipy import ndimage


def synthetic_case(shape: tuple[int, int, int], lesions: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Spherical metastases of radius 1-12 voxels, and a prediction that shifts, grows, misses and adds some."""
    rng = np.random.default_rng(seed)
    grid = np.ogrid[tuple(slice(0, n) for n in shape)]
    truth = np.zeros(shape, bool)
    pred = np.zeros(shape, bool)
    for i in range(lesions):
        radius = rng.uniform(1.0, 12.0)
        centre = rng.uniform(15, np.array(shape) - 15)
        sphere = sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True)) <= radius**2
        truth |= sphere
        if i % 5 != 4:  # every fifth lesion is missed
            pred |= np.roll(sphere, int(rng.integers(-2, 3)), axis=int(rng.integers(0, 3)))
    for _ in range(max(lesions // 4, 1)):  # false positives
        centre = rng.uniform(15, np.array(shape) - 15)
        pred |= sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True)) <= rng.uniform(1.0, 4.0) ** 2
    return truth, ndimage.binary_dilation(pred, iterations=int(rng.integers(0, 2)))


def main() -> None:
    """Print evaluation time per scan and definition, and the voxel HD95 difference to the surface-distance package."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=[160, 192, 160])
    parser.add_argument("--lesions", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    spacing = (1.0, 1.0, 1.0)
    truth, pred = synthetic_case(tuple(args.shape), args.lesions, args.seed)

    start = time.perf_counter()
    row, match = evaluate_segmentation(truth, pred, spacing)
    evaluation_s = time.perf_counter() - start
    start = time.perf_counter()
    brats2025, _ = evaluate_brats2025(truth, pred, spacing)
    brats2025_s = time.perf_counter() - start
    start = time.perf_counter()
    ours = hausdorff95_mm(truth, pred, spacing)
    ours_s = time.perf_counter() - start
    start = time.perf_counter()
    reference = surface_distance.compute_robust_hausdorff(
        surface_distance.compute_surface_distances(truth, pred, spacing), 95
    )
    package_s = time.perf_counter() - start

    print(f"grid {tuple(args.shape)}, {len(match.lesions)} truth lesions, {row['fp_lesions']} false positives")
    print(f"full evaluation, brats2023 (voxel + lesion-wise): {evaluation_s:.2f} s; brats2025: {brats2025_s:.2f} s")
    print(
        f"voxel HD95: {ours:.4f} mm in {ours_s:.2f} s; surface-distance {reference:.4f} mm in {package_s:.2f} s; "
        f"difference {abs(ours - reference):.2e} mm"
    )
    print(
        f"dice {row['dice']:.4f}, lesion-wise dice {row['lesion_dice']:.4f}, "
        f"lesion-wise HD95 {row['lesion_hd95_mm']:.2f} mm; brats2025 lesion-wise DSC "
        f"{brats2025['lesionwise_dsc_mean']:.4f}, HD95 {brats2025['lesionwise_hd95_mean']:.2f} mm"
    )


if __name__ == "__main__":
    main()
