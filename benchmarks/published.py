"""Cost on the CPU of the published model: import, the published recipe and the default recipe, on one real scan.

The benchmark writes its own five fold checkpoints in the published layout (full paper network,
random weights), then runs, each part in its own process so that peak memory is that part's alone:

  import     `brainmets import-model` of the five folds: wall seconds, peak RSS;
  published  the published recipe (overlap 0.75, 8 flips, 5 folds) on the scan's nonzero box;
  default    brainmets' default recipe (overlap 0.5, 8 flips, 5 folds, windows without brain skipped) on
             the same box (the preprocessing stage crops its network input to the brain).

The full recipes need hundreds of 128^3 forwards (about 20 s each on a 2-core AVX2 CPU), hours per
scan, so by default both recipes run reduced: 1 fold x 1 flip, of whose windows only the first
`--forwards` (default 2; 0 = all) go through the network (the others get zero logits). They print the
measured wall and CPU seconds per forward, the number of forwards the full recipe needs on this scan
and the extrapolated total, labelled as extrapolated. `--full` runs the full recipes instead.

    python benchmarks/published.py                                    # reduced, ../shared/data/real scan
    python benchmarks/published.py --forwards 0                       # 1 fold x 1 flip, every window
    python benchmarks/published.py --full                             # the full recipes (hours on a CPU)
    python benchmarks/published.py --scan other_t1c.nii.gz --work /tmp/bench   # reuses a model in --work

The scan must be skull-stripped (zero outside the brain) at 1 mm; it is z-scored over its nonzero voxels.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_SCAN = HERE.parent / ".." / "shared" / "data" / "real" / "BraTS-MET-00110-000-t1c.nii.gz"
FOLDS = 5
PATCH = (128, 128, 128)
DEFAULT_OVERLAP = 0.5
sys.path.insert(0, str(HERE.parent / "tests"))  # the published-layout checkpoint writer of the tests


def peak_rss_gib() -> float:
    """Peak resident memory of this process (GiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def zscored_scan(path: Path) -> np.ndarray:
    """The scan as float32, z-scored over its nonzero (brain) voxels, zero elsewhere."""
    import nibabel as nib

    image = np.asarray(nib.load(str(path)).dataobj, dtype=np.float32)
    brain = image != 0
    image[brain] = (image[brain] - image[brain].mean()) / image[brain].std()
    return image


def write_checkpoints(root: Path) -> None:
    """Five published-layout fold checkpoints of the full paper network with random weights."""
    from published_checkpoint import (
        published_variable_shapes,
        random_published_weights,
        write_published_checkpoint,
    )

    shapes = published_variable_shapes()
    for fold in range(FOLDS):
        write_published_checkpoint(
            root / f"Model_{fold}", random_published_weights(shapes, seed=fold), epoch=500 + fold
        )


def part_import(work: Path) -> dict:
    """Time `brainmets import-model` of the five folds."""
    from brainmets.cli import main

    started = time.perf_counter()
    status = main(
        ["import-model", str(work / "trained_models"), "--format", "brain-mets-seg", "--out", str(work / "model")]
    )
    if status != 0:
        raise SystemExit(f"import-model failed with status {status}")
    return {"wall_s": time.perf_counter() - started, "peak_gib": peak_rss_gib()}


class TimedPredictor:
    """A fold predictor that times its calls and, past `limit` calls (0: never), returns zero logits unrun."""

    def __init__(self, predictor, limit: int) -> None:
        """Wrap `predictor`; `limit` real calls at most (0 for all)."""
        self.predictor, self.limit = predictor, limit
        self.calls, self.wall_s, self.cpu_s = 0, 0.0, 0.0

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Logits of a batch of windows (zeros once the limit is reached)."""
        if self.limit and self.calls >= self.limit:
            return np.zeros_like(batch)
        wall, cpu = time.perf_counter(), time.process_time()
        out = self.predictor(batch)
        self.wall_s += time.perf_counter() - wall
        self.cpu_s += time.process_time() - cpu
        self.calls += len(batch)
        return out


def _predictors(work: Path, folds: int, limit: int) -> list[TimedPredictor]:
    """Timed, compiled CPU predictors of the first `folds` imported folds."""
    from brainmets.inference.runtime import compile_predictor
    from brainmets.network.modeldir import load_model_dir

    _, models = load_model_dir(work / "model")
    return [TimedPredictor(compile_predictor(m, PATCH), limit) for m in models[:folds]]


def _figures(predictors: list[TimedPredictor], wall: float, forwards_full: int) -> dict:
    """Wall time, peak memory and per-forward times of one recipe run."""
    calls = sum(p.calls for p in predictors)
    return {
        "wall_s": wall,
        "peak_gib": peak_rss_gib(),
        "forwards_run": calls,
        "forwards_full": forwards_full,
        "forward_wall_s": sum(p.wall_s for p in predictors) / calls,
        "forward_cpu_s": sum(p.cpu_s for p in predictors) / calls,
    }


def part_published(work: Path, scan: Path, full: bool, limit: int) -> dict:
    """The published recipe on the scan: full, or 1 fold x 1 flip with the full recipe's forward count."""
    from brainmets.inference.published import PUBLISHED_FLIPS, nonzero_box, predict_published, published_window_starts

    image = zscored_scan(scan)
    box = nonzero_box(image)
    padded = [max(s.stop - s.start, p) for s, p in zip(box, PATCH, strict=True)]
    windows = int(np.prod([len(published_window_starts(n, p)) for n, p in zip(padded, PATCH, strict=True)]))
    folds, flips = (FOLDS, PUBLISHED_FLIPS) if full else (1, PUBLISHED_FLIPS[:1])
    predictors = _predictors(work, folds, 0 if full else limit)
    started = time.perf_counter()
    predict_published(image, predictors, PATCH, flips=flips)
    figures = _figures(predictors, time.perf_counter() - started, windows * FOLDS * len(PUBLISHED_FLIPS))
    return {**figures, "box": [s.stop - s.start for s in box]}


def part_default(work: Path, scan: Path, full: bool, limit: int) -> dict:
    """brainmets' default recipe on the scan (brain = nonzero voxels): full, or 1 fold x 1 flip."""
    from brainmets.inference.ensemble import predict_ensemble
    from brainmets.inference.published import nonzero_box
    from brainmets.network.sliding import window_slices

    image = zscored_scan(scan)
    image = image[nonzero_box(image)]  # the preprocessing stage crops its network input to the brain
    brain = image != 0
    windows = sum(
        1
        for w in window_slices([max(s, p) for s, p in zip(image.shape, PATCH, strict=True)], PATCH, DEFAULT_OVERLAP)
        if brain[w].any()
    )
    folds, axes = (FOLDS, (0, 1, 2)) if full else (1, ())
    predictors = _predictors(work, folds, 0 if full else limit)
    started = time.perf_counter()
    predict_ensemble(image, predictors, PATCH, brain_mask=brain, overlap=DEFAULT_OVERLAP, mirror_axes=axes)
    return _figures(predictors, time.perf_counter() - started, windows * FOLDS * 8)


def run_part(part: str, args: argparse.Namespace) -> dict:
    """Run one part in a fresh process and return its figures."""
    command = [
        sys.executable,
        __file__,
        "--part",
        part,
        "--work",
        str(args.work),
        "--scan",
        str(args.scan),
        "--forwards",
        str(args.forwards),
    ]
    if args.full:
        command.append("--full")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(name: str, figures: dict, full: bool) -> None:
    """Print one recipe's measured and (when reduced) extrapolated figures."""
    per_forward = figures["forward_wall_s"]
    print(
        f"{name}: measured {figures['wall_s']:.0f} s wall for {figures['forwards_run']} forwards "
        f"({per_forward:.1f} s wall, {figures['forward_cpu_s']:.1f} s CPU per 128^3 forward), "
        f"peak RSS {figures['peak_gib']:.2f} GiB"
    )
    if not full:
        total = per_forward * figures["forwards_full"]
        print(
            f"{name}: full recipe needs {figures['forwards_full']} forwards on this scan -> "
            f"EXTRAPOLATED {total:.0f} s ({total / 3600:.2f} h) wall at the measured rate, not measured"
        )


def main() -> None:
    """Parse arguments; run one part (child) or all parts (parent) and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scan", type=Path, default=DEFAULT_SCAN, help="skull-stripped 1 mm T1-CE scan")
    parser.add_argument("--work", type=Path, help="folder for the checkpoints and the model (default: a temporary one)")
    parser.add_argument("--full", action="store_true", help="run the full recipes (5 folds x 8 flips)")
    parser.add_argument(
        "--forwards",
        type=int,
        default=2,
        help="reduced runs: windows that go through the network (default 2; 0 = every window)",
    )
    parser.add_argument("--part", choices=("import", "published", "default"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.part:
        part = {
            "import": lambda: part_import(args.work),
            "published": lambda: part_published(args.work, args.scan, args.full, args.forwards),
            "default": lambda: part_default(args.work, args.scan, args.full, args.forwards),
        }[args.part]
        print(json.dumps(part()))
        return
    if not args.scan.is_file():
        raise SystemExit(f"{args.scan}: scan not found")
    with tempfile.TemporaryDirectory(prefix="published-bench-") as tmp:
        args.work = args.work or Path(tmp)
        print(f"scan {args.scan.resolve()}; CPU: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
        if (args.work / "model" / "model.json").is_file():
            print(f"import-model: not run, {args.work / 'model'} exists")
        else:
            write_checkpoints(args.work / "trained_models")
            figures = run_part("import", args)
            print(
                f"import-model, {FOLDS} folds of the paper network: {figures['wall_s']:.1f} s wall, "
                f"peak RSS {figures['peak_gib']:.2f} GiB"
            )
        published = run_part("published", args)
        print(f"published recipe: nonzero box {published['box']} voxels")
        report("published recipe" + ("" if args.full else " (1 fold x 1 flip)"), published, args.full)
        default = run_part("default", args)
        report("default recipe" + ("" if args.full else " (1 fold x 1 flip)"), default, args.full)


if __name__ == "__main__":
    main()
