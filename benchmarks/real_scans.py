"""Brain masks on the real scans of `../shared/data/real/`: Dice, time and memory per skull stripper and grid.

    python benchmarks/real_scans.py [--methods deepbet hdbet] [--spacings 1 1.5 2] [--data ../shared/data/real]

For the raw clinical head (TCGA-FG-6692, 0.898 x 0.898 x 5.5 mm, LAS, oblique) each stripper runs
through `brainmets preprocess` at each patient-space spacing (N4 off: it does not change the mask)
and the brain mask, taken back to the native grid as `segment` writes it, is compared with the
reference mask: Dice, volume ratio, wall and CPU seconds of the whole step, peak memory. For the
skull-stripped BraTS-METS case it prints whether the input is recognised as skull-stripped and, when
it is stripped again regardless (`--no-skull-stripped`), how much of the given brain each stripper keeps.
Each run is a fresh process, so the peak memory is its own; the load average is printed with the figures.

    python benchmarks/real_scans.py --model DIR [--config FILE] [--skullstrip deepbet]

instead runs `brainmets segment` with the model in DIR (e.g. the demo's `results/model`, or one made by
`brainmets import-model`) on both scans, each in its own process, and prints per scan: wall and CPU
seconds, peak memory, lesions found and their volume, whether every native map lies on the input's grid,
and for the raw head the Dice of the native brain mask against the reference.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import nibabel as nib
import numpy as np

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real"
HEAD, HEAD_BRAIN, STRIPPED = (
    "TCGA-FG-6692_raw_t1c.nii.gz",
    "TCGA-FG-6692_raw_t1c_brainmask.nii.gz",
    "BraTS-MET-00110-000-t1c.nii.gz",
)


def native_brain_mask(
    image: Path, method: str, spacing_mm: float, skull_stripped: bool | None
) -> tuple[np.ndarray, dict]:
    """Preprocess `image` (N4 off) and return its brain mask on the native grid plus seconds and peak memory (GB)."""
    from brainmets.preprocess.native import file_to_native
    from brainmets.preprocess.pipeline import BRAIN_MASK, preprocess_scan
    from brainmets.preprocess.settings import PreprocessSettings, SkullStripSettings

    settings = PreprocessSettings(
        spacing_mm=(spacing_mm,) * 3,
        n4=False,
        skullstrip=SkullStripSettings(method=method),
        skull_stripped=skull_stripped,
    )
    with tempfile.TemporaryDirectory() as out:
        wall, cpu = time.perf_counter(), time.process_time()
        record = preprocess_scan(image, out, settings=settings)
        figures = {
            "wall_s": time.perf_counter() - wall,
            "cpu_s": time.process_time() - cpu,
            "strip_s": record["timings_s"]["skullstrip"],
            "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
            "extraction": record["brain_extraction"],
        }
        mask, _ = file_to_native(Path(out) / BRAIN_MASK, out, kind="label")
    return mask > 0, figures


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two boolean masks."""
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))


def head_row(data: Path, method: str, spacing_mm: float) -> str:
    """One line of figures for the raw head."""
    mask, f = native_brain_mask(data / HEAD, method, spacing_mm, None)
    reference = np.asarray(nib.load(data / HEAD_BRAIN).dataobj) > 0
    return (
        f"{HEAD:34s} {method:8s} {spacing_mm:4.1f} mm  Dice {dice(mask, reference):.4f}  volume "
        f"{mask.sum() / reference.sum():.3f} x reference  strip {f['strip_s']:6.1f} s  step {f['wall_s']:6.1f} s wall "
        f"{f['cpu_s']:6.1f} s CPU  peak {f['peak_gb']:.2f} GB"
    )


def stripped_row(data: Path, method: str, spacing_mm: float, skull_stripped: bool | None) -> str:
    """One line of figures for the skull-stripped case: what its brain mask keeps of the given brain."""
    mask, f = native_brain_mask(data / STRIPPED, method, spacing_mm, skull_stripped)
    given = np.asarray(nib.load(data / STRIPPED).dataobj) > 0
    return (
        f"{STRIPPED:34s} {f['extraction'][:40]:40s} {spacing_mm:4.1f} mm  "
        f"keeps {(mask & given).sum() / given.sum():.4f} of the given brain, Dice {dice(mask, given):.4f}  "
        f"step {f['wall_s']:6.1f} s wall  peak {f['peak_gb']:.2f} GB"
    )


def segment_row(data: Path, scan: str, model: Path, config: Path | None, skullstrip: str) -> str:
    """One line of figures for `brainmets segment` with `model` on one real scan (its own process)."""
    import pandas as pd

    with tempfile.TemporaryDirectory() as out:
        command = [
            str(Path(sys.executable).parent / "brainmets"),
            "segment",
            str(data / scan),
            "--model",
            str(model),
            "--out-dir",
            out,
        ]
        command += ["--skullstrip", skullstrip] + (["--config", str(config)] if config else [])
        wall = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        wall = time.perf_counter() - wall
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode:
            return f"{scan:34s} segment failed ({done.returncode}): {done.stderr.strip().splitlines()[-1:]}"
        scan_dir = next(Path(out).iterdir())
        native = nib.load(data / scan)
        maps = [nib.load(f) for f in (scan_dir / "native").glob("*.nii.gz")]
        on_grid = all(m.shape == native.shape and np.allclose(m.affine, native.affine) for m in maps)
        lesions = pd.read_csv(scan_dir / "lesions.tsv", sep="\t")
        volume = lesions["volume_ml"].sum() if len(lesions) else 0.0
        line = (
            f"{scan:34s} {wall:6.1f} s wall {usage.ru_utime + usage.ru_stime:6.1f} s CPU  peak "
            f"{usage.ru_maxrss / 1e6:.2f} GB  {len(lesions)} lesions, {volume:.2f} mL  native maps on the input grid: "
            f"{on_grid}"
        )
        if scan == HEAD:
            mask = np.asarray(nib.load(scan_dir / "native" / "brain_mask.nii.gz").dataobj) > 0
            line += f"  brain Dice {dice(mask, np.asarray(nib.load(data / HEAD_BRAIN).dataobj) > 0):.4f}"
    return line


def main() -> None:
    """Print the figures, one fresh process per run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["deepbet", "hdbet"], choices=("deepbet", "hdbet"))
    parser.add_argument(
        "--spacings", nargs="+", type=float, default=[1.0, 1.5, 2.0], help="patient-space spacings (mm)"
    )
    parser.add_argument("--data", type=Path, default=DATA, help="folder of the real scans")
    parser.add_argument("--model", type=Path, help="segment both scans with this model directory instead")
    parser.add_argument("--config", type=Path, help="with --model: configuration whose inference section is used")
    parser.add_argument("--skullstrip", default="deepbet", choices=("deepbet", "hdbet"), help="with --model")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, load average {' '.join(f'{v:.1f}' for v in os.getloadavg())}", flush=True)
    if args.model:
        for scan in (STRIPPED, HEAD):
            with ProcessPoolExecutor(1, max_tasks_per_child=1) as pool:
                row = pool.submit(segment_row, args.data, scan, args.model, args.config, args.skullstrip)
                print(row.result(), flush=True)
        print(f"load average {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
        return
    runs = [(head_row, (args.data, m, s)) for m in args.methods for s in args.spacings]
    runs += [(stripped_row, (args.data, args.methods[0], s, None)) for s in args.spacings]
    runs += [(stripped_row, (args.data, m, 1.0, False)) for m in args.methods]
    for function, arguments in runs:
        with ProcessPoolExecutor(1, max_tasks_per_child=1) as pool:
            print(pool.submit(function, *arguments).result(), flush=True)
    print(f"load average {' '.join(f'{v:.1f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    sys.exit(main())
