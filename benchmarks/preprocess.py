"""Preprocessing figures: seconds and peak memory per step, and accuracy on a demo cohort.

    python benchmarks/preprocess.py timing [--images BASELINE FOLLOW_UP] [--methods deepbet hdbet] [--spacing 1]
    python benchmarks/preprocess.py accuracy [--cohort DIR] [--methods deepbet hdbet] [--spacing 1]
    python benchmarks/preprocess.py round-trip [--seeds 5] [--spacing 1]

`timing` preprocesses a baseline and a follow-up (default: a freshly generated 1 mm demo patient)
with each skull stripper and prints wall seconds, CPU seconds (all threads) and peak resident
memory of every step; on a busy machine CPU seconds are the steadier figure.
`accuracy` preprocesses every longitudinal patient of a demo cohort (default: a fresh one, `--patients`)
and prints, per scan, the registration error against the generator's known poses (mean over the
brain, mm), skull-strip Dice against the truth brain mask (native grid), and the round-trip Dice
(patient -> native -> patient) of every truth lesion of 5 mm or more. Runs on the CPU; the machine's
load average is printed with the figures.
`round-trip` draws spheres of 5-20 mm in a patient space, takes them to the grid of each demo
protocol (random pose, storage orientation and oblique tilt, as the demo's scans) and back, and
prints the smallest and mean Dice per protocol and diameter for both label interpolations
(nearest neighbour and signed distance), with the seconds each round trip took.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from multiprocessing import get_context
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from brainmets.demo.acquisition import PROTOCOLS, plan_scan
from brainmets.demo.cohort import generate_cohort
from brainmets.demo.settings import DemoSettings
from brainmets.evaluation.metrics import dice_coefficient
from brainmets.io import read_tsv
from brainmets.preprocess import PreprocessSettings, preprocess_scan, to_native, to_patient
from brainmets.preprocess.pipeline import BRAIN_MASK, SCAN_TO_PATIENT
from brainmets.preprocess.registration import (
    affine_matrix_ras,
    affine_transform_ras,
    read_transform,
)
from brainmets.preprocess.space import LABEL_INTERPOLATIONS, grid_image, resample_labels
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the figures of merit of the tests
from measures import mean_displacement_mm  # noqa: E402

#: sphere diameters (mm) of `round-trip`
ROUND_TRIP_DIAMETERS_MM = (5.0, 6.0, 8.0, 10.0, 12.0, 15.0, 20.0)


def _usage(pid: int) -> tuple[float, float]:
    """Resident memory (MB) and user + system CPU seconds (all threads) of a process, from /proc."""
    with open(f"/proc/{pid}/status") as status:
        rss = next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmRSS:"))
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return rss, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _sample(pid: int, stop: Event, connection: Connection) -> None:
    """Child process: sample the parent every 20 ms until told to stop, then send the samples."""
    samples = []
    while not stop.is_set():
        samples.append((time.perf_counter(), *_usage(pid)))
        time.sleep(0.02)
    connection.send(samples)


class UsageSampler:
    """Samples this process's resident memory and CPU time every 20 ms from a separate process,
    so that library calls holding the GIL (ANTs, torch) are measured too."""

    def __enter__(self) -> UsageSampler:
        context = get_context("fork")
        self._stop = context.Event()
        self._receive, send = context.Pipe(duplex=False)
        self._process = context.Process(target=_sample, args=(os.getpid(), self._stop, send), daemon=True)
        self._process.start()
        time.sleep(0.1)
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.1)
        self._stop.set()
        self.samples: list[tuple[float, float, float]] = self._receive.recv()
        self._process.join()

    def peak_between(self, start: float, stop: float) -> float:
        """Highest resident memory (MB) sampled in [start, stop] (perf_counter seconds)."""
        inside = [mb for t, mb, _ in self.samples if start <= t <= stop]
        return max(inside) if inside else float("nan")

    def cpu_between(self, start: float, stop: float) -> float:
        """CPU seconds used in [start, stop] (perf_counter seconds), from the nearest samples."""
        inside = [cpu for t, _, cpu in self.samples if start <= t <= stop]
        return inside[-1] - inside[0] if len(inside) > 1 else float("nan")


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two boolean arrays."""
    total = a.sum() + b.sum()
    return float(2 * (a & b).sum() / total) if total else 1.0


def timing(images: list[Path], methods: list[str], spacing: float, work: Path) -> None:
    """Print seconds, CPU seconds and peak memory (MB) per step of preprocessing a baseline and a follow-up."""
    rows = []
    for method in methods:
        settings = PreprocessSettings(spacing_mm=(spacing,) * 3)
        settings = dataclasses.replace(settings, skullstrip=dataclasses.replace(settings.skullstrip, method=method))
        baseline_dir = None
        for k, image in enumerate(images):
            scan_dir = work / method / f"scan{k}"
            with UsageSampler() as sampler:
                start = time.perf_counter()
                record = preprocess_scan(image, scan_dir, settings=settings, baseline_dir=baseline_dir)
            baseline_dir = baseline_dir or scan_dir
            scan = "baseline" if k == 0 else "follow-up"
            clock = start
            for step, seconds in record["timings_s"].items():
                stop = start + record["timings_s"]["total"] if step == "total" else clock + seconds
                rows.append(
                    {
                        "method": method,
                        "scan": scan,
                        "step": step,
                        "seconds": seconds,
                        "cpu_seconds": sampler.cpu_between(start if step == "total" else clock, stop),
                        "peak_rss_mb": sampler.peak_between(start if step == "total" else clock, stop),
                    }
                )
                if step != "total":
                    clock += seconds
    print(
        f"scans {', '.join(map(str, images))} -> {spacing} mm, "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.1f}"))


def _truth_in_patient_space(
    truth_path: Path, pose_baseline: np.ndarray, patient_affine: np.ndarray, shape: tuple[int, ...]
) -> np.ndarray:
    """The generator's common-frame lesion labels resampled (nearest) onto patient space with the known pose."""
    truth = nib.load(truth_path)
    to_common_voxel = np.linalg.inv(truth.affine) @ np.linalg.inv(pose_baseline) @ patient_affine
    return ndimage.affine_transform(
        np.asarray(truth.dataobj), to_common_voxel[:3, :3], to_common_voxel[:3, 3], output_shape=shape, order=0
    )


def accuracy(cohort: Path, methods: list[str], spacing: float, work: Path) -> None:
    """Print registration error, skull-strip Dice and lesion round-trip Dice per scan of a demo cohort."""
    samples = read_tsv(cohort / "samples.tsv", ["patient_id", "timepoint", "image"])
    samples = samples[~samples["training"].astype(str).str.lower().eq("true")]
    poses = read_tsv(cohort / "truth" / "poses.tsv", ["patient_id", "timepoint", "common_to_scanner", "common_grid"])
    poses = poses.set_index(["patient_id", "timepoint"])
    rows = []
    for method in methods:
        settings = PreprocessSettings(spacing_mm=(spacing,) * 3)
        settings = dataclasses.replace(settings, skullstrip=dataclasses.replace(settings.skullstrip, method=method))
        for patient, visits in samples.sort_values("timepoint").groupby("patient_id"):
            baseline_dir = None
            for _, visit in visits.iterrows():
                scan_dir = work / method / patient / visit["timepoint"]
                record = preprocess_scan(visit["image"], scan_dir, settings=settings, baseline_dir=baseline_dir)
                pose_row = poses.loc[(patient, visit["timepoint"])]
                pose = np.array(pose_row["common_to_scanner"].split(), float).reshape(4, 4)
                if baseline_dir is None:
                    baseline_dir, pose_baseline = scan_dir, pose
                mask_img = nib.load(scan_dir / BRAIN_MASK)
                patient_affine, shape = mask_img.affine, mask_img.shape
                # registration: estimated patient -> scan map against the true one, over the baseline brain
                brain_points = nib.affines.apply_affine(
                    patient_affine, np.argwhere(nib.load(baseline_dir / BRAIN_MASK).get_fdata() > 0)
                )
                estimated = affine_matrix_ras(read_transform(scan_dir / SCAN_TO_PATIENT))
                true = pose @ np.linalg.inv(pose_baseline)
                # skull stripping on the native grid
                native_mask, _ = to_native(np.asarray(mask_img.dataobj), patient_affine, scan_dir, kind="label")
                truth_brain = np.asarray(nib.load(Path(visit["image"]).parent / "brain_mask.nii.gz").dataobj) > 0
                # round trip of the truth lesions
                lesions = _truth_in_patient_space(Path(pose_row["common_grid"]), pose_baseline, patient_affine, shape)
                back, _ = to_patient(
                    to_native(lesions, patient_affine, scan_dir, kind="label")[0], scan_dir, kind="label"
                )
                voxel_ml = float(np.prod(record["patient_space"]["spacing_mm"])) / 1000
                trips = []
                for label in np.unique(lesions[lesions > 0]):
                    volume_ml = (lesions == label).sum() * voxel_ml
                    if (6 * volume_ml * 1000 / np.pi) ** (1 / 3) >= 5.0:
                        trips.append(dice(lesions == label, back == label))
                rows.append(
                    {
                        "method": method,
                        "patient": patient,
                        "timepoint": visit["timepoint"],
                        "native_spacing_mm": "x".join(f"{s:g}" for s in record["native"]["spacing_mm"]),
                        "registration_error_mm": mean_displacement_mm(estimated, true, brain_points)
                        if scan_dir != baseline_dir
                        else np.nan,
                        "skullstrip_dice": dice(native_mask > 0, truth_brain),
                        "lesions_5mm": len(trips),
                        "round_trip_dice_min": min(trips) if trips else np.nan,
                        "seconds": record["timings_s"]["total"],
                    }
                )
                print(
                    " ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in rows[-1].items()),
                    flush=True,
                )
    table = pd.DataFrame(rows)
    print(f"cohort {cohort}, {spacing} mm, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(
        table.groupby("method")[["registration_error_mm", "skullstrip_dice", "round_trip_dice_min", "seconds"]]
        .agg(["mean", "min", "max"])
        .round(3)
        .to_string()
    )


def spheres(
    rng: np.random.Generator, shape: tuple[int, int, int], spacing_mm: float, per_size: int
) -> tuple[np.ndarray, dict[int, float]]:
    """A label map of non-touching balls, `per_size` of each diameter (mm) at random sub-voxel centres.

    Returns the label map and the diameter (mm) of each label.
    """
    points = np.indices(shape).transpose(1, 2, 3, 0) * spacing_mm
    labels = np.zeros(shape, np.uint8)
    taken = np.zeros(shape, bool)  # the balls so far, widened by 2 voxels
    diameters: dict[int, float] = {}
    for diameter in ROUND_TRIP_DIAMETERS_MM:
        placed = 0
        while placed < per_size:
            centre = rng.uniform(diameter, np.asarray(shape) * spacing_mm - diameter)
            ball = np.linalg.norm(points - centre, axis=-1) <= diameter / 2
            if taken[ball].any():
                continue
            placed += 1
            labels[ball] = len(diameters) + 1
            diameters[len(diameters) + 1] = diameter
            taken = ndimage.binary_dilation(labels > 0, iterations=2)
    return labels, diameters


def round_trip(seeds: int, spacing: float) -> None:
    """Print round-trip Dice (patient -> native -> patient) of spheres per demo protocol and label interpolation."""
    shape = (int(round(120 / spacing)),) * 3
    patient_affine = np.diag([spacing, spacing, spacing, 1.0])
    corners = np.array([[x, y, z] for x in (0, 120) for y in (0, 120) for z in (0, 120)], float)
    patient_grid = grid_image(patient_affine, shape)
    rows = []
    for protocol in PROTOCOLS:
        for seed in range(seeds):
            rng = np.random.default_rng(seed)
            scan = plan_scan(rng, corners, protocol=protocol)
            labels, diameters = spheres(rng, shape, spacing, per_size=2)
            native_grid = grid_image(scan.affine, scan.shape)
            for how in LABEL_INTERPOLATIONS:
                start = time.perf_counter()
                native, native_affine = resample_labels(
                    labels,
                    patient_affine,
                    affine_transform_ras(np.linalg.inv(scan.pose)),
                    native_grid,
                    interpolation=how,
                )
                back, _ = resample_labels(
                    native, native_affine, affine_transform_ras(scan.pose), patient_grid, interpolation=how
                )
                seconds = time.perf_counter() - start
                rows += [
                    {
                        "protocol": protocol.name,
                        "interpolation": how,
                        "diameter_mm": d,
                        "dice": dice_coefficient(labels == k, back == k),
                        "seconds": seconds,
                    }
                    for k, d in diameters.items()
                ]
    table = pd.DataFrame(rows)
    print(
        f"{seeds} poses per protocol, 2 spheres per diameter each, patient space {spacing} mm, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    summary = table.pivot_table(
        index=["protocol", "diameter_mm"], columns="interpolation", values="dice", aggfunc=["min", "mean"]
    )
    print(summary.round(3).to_string())
    print("seconds per round trip:", table.groupby("interpolation")["seconds"].mean().round(2).to_dict())


def main() -> None:
    """Parse the command line and print the requested figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("timing", "accuracy", "round-trip"))
    parser.add_argument(
        "--images",
        type=Path,
        nargs="+",
        help="baseline [and follow-up] for `timing` (default: a generated 1 mm demo patient)",
    )
    parser.add_argument("--cohort", type=Path, help="demo cohort for `accuracy` (default: a generated 2-patient one)")
    parser.add_argument("--methods", nargs="+", default=["deepbet", "hdbet"], choices=("deepbet", "hdbet"))
    parser.add_argument("--spacing", type=float, default=1.0, help="patient-space spacing (mm)")
    parser.add_argument("--scale", type=float, default=1.0, help="voxel-size factor of a generated cohort")
    parser.add_argument("--patients", type=int, default=2, help="longitudinal patients of a generated cohort")
    parser.add_argument("--seeds", type=int, default=5, help="poses per protocol for `round-trip`")
    args = parser.parse_args()
    if args.what == "round-trip":
        round_trip(args.seeds, args.spacing)
        return
    with tempfile.TemporaryDirectory(prefix="brainmets-bench-") as tmp:
        work = Path(tmp)
        if args.what == "timing":
            images = args.images
            if not images:
                generate_cohort(work / "demo", DemoSettings(patients=1, timepoints=2, train=0, scale=args.scale))
                images = sorted((work / "demo" / "patient01").glob("*/t1ce.nii.gz"))
            timing(images, args.methods, args.spacing, work)
        else:
            cohort = args.cohort
            if cohort is None:
                cohort = work / "demo"
                generate_cohort(cohort, DemoSettings(patients=args.patients, train=0, scale=args.scale))
            accuracy(cohort, args.methods, args.spacing, work)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
