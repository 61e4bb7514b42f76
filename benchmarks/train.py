"""Training figures: demo-preset speed, memory and cross-validated Dice; one paper-preset training step.

Usage (from the repository root; run with `nice` on a shared machine):

    python benchmarks/train.py --demo-dir resources/demo --folds 0 1 2 3 4 --paper-size 64

The demo cohort's training subjects are brought to the training input form with a quick stand-in for
the preprocessing stage (RAS, linear resampling to `--spacing` (default 1 mm), z-score inside the
cohort's own brain mask, background 0, crop to the brain; no N4, no skull-stripping network), prepared
with `prepare_case`, and trained with the configured preset and fold count. Without --demo-dir, synthetic
96^3 cases of tests/synthetic.py are used. Prints: iterations/s and peak memory of the demo
preset, per-fold wall time and best held-out validation Dice, and one paper-preset training step.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from brainmets.io import save_nifti
from brainmets.train.cases import list_cases, prepare_case
from brainmets.train.settings import load_settings
from nibabel.processing import resample_from_to, resample_to_output

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the synthetic cases of the tests
from synthetic import write_synthetic_cases  # noqa: E402


def peak_rss_gb() -> float:
    """Peak resident memory of this process so far (GB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def quick_preprocess(folder: Path, out: Path, spacing_mm: float = 1.0) -> tuple[Path, Path]:
    """t1ce/lesions/brain_mask of one demo scan -> RAS z-scored brain image and label on a spacing_mm grid (NIfTI)."""
    image = resample_to_output(nib.as_closest_canonical(nib.load(folder / "t1ce.nii.gz")), (spacing_mm,) * 3, order=1)
    brain = np.asarray(resample_from_to(nib.load(folder / "brain_mask.nii.gz"), image, order=0).dataobj) > 0
    label = np.asarray(resample_from_to(nib.load(folder / "lesions.nii.gz"), image, order=0).dataobj) > 0
    data = np.asarray(image.dataobj, dtype=np.float32)
    data = np.where(brain, (data - data[brain].mean()) / data[brain].std(), 0.0)
    box = tuple(slice(max(i.min() - 2, 0), i.max() + 3) for i in np.nonzero(brain))
    affine = image.affine.copy()
    affine[:3, 3] = image.affine[:3, :3] @ [s.start for s in box] + image.affine[:3, 3]
    name = f"{folder.parent.name}_{folder.name}"
    save_nifti(data[box].astype(np.float32), affine, out / f"{name}_image.nii.gz")
    save_nifti(label[box].astype(np.uint8), affine, out / f"{name}_label.nii.gz")
    return out / f"{name}_image.nii.gz", out / f"{name}_label.nii.gz"


def prepare(demo_dir: Path | None, work: Path, settings, spacing_mm: float = 1.0) -> Path:
    """Prepared cases under work/cases, from the demo cohort's training subjects or synthetic volumes."""
    cases_dir = work / "cases"
    if demo_dir is None:
        write_synthetic_cases(work, patients=12, timepoints=1, shape=(96, 96, 96))
        return cases_dir
    for folder in sorted(demo_dir.glob("train*/*/")):
        target = cases_dir / folder.parent.name
        if not (target / "case.json").is_file():
            image, label = quick_preprocess(folder, work / "nifti", spacing_mm)
            prepare_case(image, label, target, patient=folder.parent.name, params=settings.weight_map)
    return cases_dir


def demo_speed(cases_dir: Path, settings, iterations: int = 20) -> None:
    """Iterations/s of the demo preset's training step fed by the DALI pipeline."""
    from brainmets.train.dali import build_pipeline, numpy_batches
    from brainmets.train.loop import build_training_model, make_optimizer, make_train_step

    model = build_training_model(settings, False)
    step = make_train_step(model, make_optimizer(settings, False), settings)
    batches = numpy_batches(
        build_pipeline(list_cases(cases_dir), settings.patch_size, settings.batch_size, settings.augmentation, seed=0)
    )
    step(*next(batches))
    started = time.perf_counter()
    for _ in range(iterations):
        step(*next(batches))
    rate = iterations / (time.perf_counter() - started)
    print(
        f"demo preset ({settings.preset}, {model.count_params():,} parameters, patch {settings.patch_size}, "
        f"batch {settings.batch_size}): {rate:.2f} iterations/s, {rate * settings.batch_size:.2f} volumes/s, "
        f"peak RSS {peak_rss_gb():.2f} GB"
    )


def paper_step(size: int) -> None:
    """Wall time of one paper-preset training step (batch 2) at size^3, after the first (traced) step."""
    from brainmets.train.loop import build_training_model, make_optimizer, make_train_step
    from brainmets.train.settings import settings_from_config

    settings = settings_from_config({"model": {"preset": "paper"}, "train": {"device": "cpu"}})
    model = build_training_model(settings, False)
    step = make_train_step(model, make_optimizer(settings, False), settings)
    label = np.zeros((2, size, size, size, 1), np.float32)
    label[:, size // 3 : size // 2, size // 3 : size // 2, size // 3 : size // 2] = 1
    image = np.random.default_rng(0).normal(size=label.shape).astype(np.float32) + 2 * label
    started = time.perf_counter()
    step(image, label, 1 + label)
    first = time.perf_counter() - started
    started = time.perf_counter()
    step(image, label, 1 + label)
    print(
        f"paper preset ({model.count_params():,} parameters) at {size}^3, batch 2: first step {first:.1f} s "
        f"(with tracing), next step {time.perf_counter() - started:.1f} s, peak RSS {peak_rss_gb():.2f} GB"
    )


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo-dir", type=Path, help="demo cohort (brainmets demo-cohort); default: synthetic cases")
    parser.add_argument("--work", type=Path, default=Path("benchmarks/out/train_bench"))
    parser.add_argument("--config", default="config/config.yaml")
    parser.add_argument("--folds", type=int, nargs="*", default=[0], help="folds to train (default: 0)")
    parser.add_argument("--spacing", type=float, default=1.0, help="grid of the demo cases (mm, isotropic; default 1)")
    parser.add_argument("--paper-size", type=int, default=64, help="edge of the paper-preset step's input (0: skip)")
    args = parser.parse_args()

    from brainmets.train.loop import train_fold

    settings = load_settings(args.config).replace(device="cpu")
    started = time.perf_counter()
    cases_dir = prepare(args.demo_dir, args.work, settings, args.spacing)
    cases = list_cases(cases_dir)
    print(
        f"{len(cases)} cases prepared in {time.perf_counter() - started:.0f} s; shapes "
        f"{sorted({c.shape for c in cases})[:3]}..."
    )
    demo_speed(cases_dir, settings)
    dices = []
    for fold in args.folds:
        started = time.perf_counter()
        state = train_fold(cases_dir, fold, args.work / "model", settings, verbose=1 if sys.stdout.isatty() else 0)
        dices.append(state["best_dice"])
        seconds = time.perf_counter() - started
        print(
            f"fold {fold}: {seconds:.0f} s for {settings.epochs} x {settings.iterations_per_epoch} "
            f"iterations, best validation Dice {state['best_dice']:.3f} at epoch {state['best_epoch']} on "
            f"{len(state['validation_cases'])} held-out case(s) {state['validation_cases']}",
            flush=True,
        )
    print(f"mean best validation Dice over folds {args.folds}: {np.mean(dices):.3f}; peak RSS {peak_rss_gb():.2f} GB")
    if args.paper_size:
        paper_step(args.paper_size)


if __name__ == "__main__":
    main()
