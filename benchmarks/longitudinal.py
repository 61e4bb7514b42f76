"""Speed of the longitudinal stage; prints figures (targets: both at most 5 s on 2 CPU cores).

1. RANO-BM assessment (+ best overall response) of 1,000 patients x 5 visits from lesion tables.
2. Measurement + tracking of one patient with 5 timepoints of 1 mm masks (MNI-sized grid,
   182 x 218 x 182, 12 lesions of 3-30 mm that shrink, grow, vanish and appear), in memory and
   as the `brainmets track` command does it, NIfTI reading and writing included.

Run: `python benchmarks/longitudinal.py [--patients N] [--seed S]`
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from brainmets.io import save_nifti, write_tsv
from brainmets.rano.measure import measure_lesions
from brainmets.rano.rano import assess, best_overall_response
from brainmets.track.track import track_lesions, track_manifest

DATES = ["2024-01-01", "2024-03-01", "2024-05-01", "2024-07-01", "2024-09-01"]
SHAPE = (182, 218, 182)


def lesion_tables(patients: int, rng: np.random.Generator) -> pd.DataFrame:
    """Random tracked lesion tables: 1-10 lesions per patient whose diameters drift over 5 visits."""
    rows = []
    for p in range(patients):
        n = int(rng.integers(1, 11))
        diameters = rng.uniform(3, 30, size=n)
        drift = rng.normal(1.0, 0.25, size=n)
        for t, date in enumerate(DATES):
            sizes = np.clip(diameters * drift**t, 0, None)
            sizes[sizes < 2.5] = 0.0
            for i, ld in enumerate(sizes, start=1):
                rows.append(
                    (
                        f"P{p:04d}",
                        date,
                        i,
                        int(ld > 0),
                        "present" if ld > 0 else "resolved",
                        ld * 0.8,
                        3 if ld > 0 else 0,
                        (ld / 20) ** 3,
                        ld,
                    )
                )
            if t and rng.random() < 0.1:
                rows.append((f"P{p:04d}", date, n + t, 1, "new", 4.0, 2, 0.02, 5.0))
    columns = [
        "patient_id",
        "timepoint",
        "lesion_id",
        "component",
        "event",
        "perpendicular_diameter_mm",
        "n_axial_slices",
        "volume_ml",
        "longest_diameter_mm",
    ]
    table = pd.DataFrame(rows, columns=columns)
    table["merged_into"] = None
    return table


def masks(rng: np.random.Generator) -> list[np.ndarray]:
    """Five 1 mm binary masks of one patient with 12 evolving spherical lesions."""
    centres = rng.uniform([30, 30, 30], np.array(SHAPE) - 30, size=(12, 3))
    radii = rng.uniform(1.5, 15, size=12)
    factors = rng.uniform(0.6, 1.3, size=12)
    result = []
    for t in range(5):
        mask = np.zeros(SHAPE, dtype=bool)
        for i, (centre, radius) in enumerate(zip(centres, radii * factors**t, strict=True)):
            if (i == 0 and t == 2) or (i == 1 and t == 0):
                continue  # lesion 0 vanishes once and returns; lesion 1 is new at the first follow-up
            box = tuple(slice(max(int(c - radius - 1), 0), int(c + radius + 2)) for c in centre)
            local = sum((g - c) ** 2 for g, c in zip(np.ogrid[box], centre, strict=True)) <= radius**2
            mask[box] |= local
        result.append(mask)
    return result


class Stopwatch:
    """Wall-clock and CPU seconds of a block (CPU time is what a shared, busy machine does not inflate)."""

    def __enter__(self) -> Stopwatch:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu

    def __str__(self) -> str:
        return f"{self.wall:.2f} s wall ({self.cpu:.2f} s CPU)"


def main() -> None:
    """Time both workloads and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)

    table = lesion_tables(args.patients, rng)
    with Stopwatch() as clock:
        response = assess(table)
        best = best_overall_response(response)
    print(
        f"RANO-BM: {args.patients} patients x {len(DATES)} visits ({len(table)} lesion rows) in {clock} "
        f"(target <= 5 s); best responses: {best['best_overall_response'].value_counts().to_dict()}"
    )

    volumes = masks(rng)
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    with Stopwatch() as clock:
        for mask in volumes:
            measure_lesions(mask, affine)
    print(f"measure only: 5 timepoints of {SHAPE} 1 mm masks in {clock}")
    with Stopwatch() as clock:
        tracked, _ = track_lesions(volumes, affine, DATES)
    print(
        f"measure + track: 5 timepoints of {SHAPE} 1 mm masks, {tracked['lesion_id'].nunique()} lesions, "
        f"in {clock} (target <= 5 s); events: {tracked['event'].value_counts().to_dict()}"
    )

    with tempfile.TemporaryDirectory() as folder:
        for date, mask in zip(DATES, volumes, strict=True):
            save_nifti(mask, affine, Path(folder) / f"{date}.nii.gz")
        manifest = pd.DataFrame({"timepoint": DATES, "mask": [f"{d}.nii.gz" for d in DATES]})
        write_tsv(manifest, Path(folder) / "manifest.tsv")
        with Stopwatch() as clock:
            track_manifest(Path(folder) / "manifest.tsv", Path(folder) / "out")
    print(f"brainmets track with NIfTI I/O (read 5 masks, write lesions.tsv and 5 label maps): {clock}")


if __name__ == "__main__":
    main()
