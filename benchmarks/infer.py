"""Inference speed of the paper preset on the CPU, against nnU-Net v2's own predictor, and bfloat16's accuracy.

Prints, in one run on the same machine (with the processor's model, its bfloat16 flags and the load):
  1. one forward pass of the paper network on a 128^3 window through brainmets' compiled inference
     graph in float32 and in bfloat16: wall seconds, CPU seconds, CPU seconds per wall second, GFLOP/s
     (one forward is about 1.06 TFLOP) against the rate of a float32 matrix product on the same cores,
     and how far bfloat16's logits are from float32's;
  2. one 1 mm demo brain (cropped to the brain, z-scored) through the whole sliding window (1 fold,
     no mirroring, overlap 0.5, `inference.precision: auto`): brainmets versus nnU-Net v2's
     nnUNetPredictor with a PlainConvUNet built to the same settings and random weights; wall and CPU
     seconds, CPU seconds per wall second, windows computed, peak memory and
     `ratio brainmets / nnU-Net: wall X, CPU Y`;
  3. the default recipe (5 folds x 8 flips, overlap 0.5) and the published one (5 folds x 8 flips,
     overlap 0.75) per 1 mm brain: the windows they compute on that brain (every flip counted) times
     part 2's measured seconds per window.
Each part runs in its own process so that peak memory is that part's alone. nnU-Net runs from a
separate environment (created by --install-nnunet) so that its torch never meets the project's.
Where the processor has no native bfloat16 (no amx_bf16 / avx512_bf16) TensorFlow emulates it about
20x slower than float32: part 1 then times a single bfloat16 call (set-up included).

    python benchmarks/infer.py --install-nnunet     # once: benchmarks/.venv-nnunet
    python benchmarks/infer.py                      # all figures (~15 min on 2 cores; ~30 more with emulated bfloat16)
    python benchmarks/infer.py --patch 64           # quick check on 64^3 windows
    python benchmarks/infer.py --demo-batch         # demo network: 1 window per call vs batch_size auto

With a trained model it also measures the acceptance figures on the demo test scans (the sheet's
rows with a `mask` that are not training rows): lesion sensitivity for lesions of 10 mm or more
(equivalent-sphere diameter, i.e. >= 0.524 mL), false positives per scan, and the AUROC with which
the total entropy separates misclassified from correct brain voxels, all in patient space:

    python benchmarks/infer.py --demo-figures --model results/model --samples resources/demo/samples.tsv

After `make demo` the same figures come from the workflow's own outputs, without predicting again,
on each scan's native grid (the truth as acquired; the brain is the preprocessing's mask mapped back):

    python benchmarks/infer.py --demo-figures --results results --samples resources/demo/samples.tsv

The accuracy guard of bfloat16 predicts the same test scans (or any model's, e.g. an imported
checkpoint's) in float32 and in bfloat16 and prints, per scan and over all, the voxel Dice between the
two label maps, the lesions found by one and not the other, the largest probability difference, and
the acceptance figures of each:

    python benchmarks/infer.py --precision-guard --model results/model --samples resources/demo/samples.tsv
"""

from __future__ import annotations

import argparse
import dataclasses
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
sys.path.insert(0, str(HERE.parent / "tests"))  # the figures of merit of the tests
NNUNET_VENV = HERE / ".venv-nnunet"
#: the benchmark environment's direct pins; torch matches the project's, torchvision is not needed
NNUNET_PACKAGES = ["nnunetv2==2.8.1", "dynamic-network-architectures==0.4.4"]
#: nnU-Net's other requirements (dynamic-network-architectures' timm -> torchvision is left out:
#: PlainConvUNet and the predictor do not import it)
NNUNET_DEPENDENCIES = [
    "acvl-utils",
    "batchgenerators",
    "batchgeneratorsv2",
    "blosc2",
    "einops",
    "graphviz",
    "imagecodecs",
    "matplotlib",
    "nibabel",
    "numpy",
    "pandas",
    "requests",
    "scikit-image",
    "scikit-learn",
    "scipy",
    "seaborn",
    "SimpleITK",
    "tifffile",
    "tqdm",
    "yacs",
]
TORCH = "torch==2.13.0"
#: multiply-adds x 2 of one paper-network forward on 128^3 (issue 5)
FORWARD_TFLOP_128 = 1.06
#: (folds, mirroring axes, overlap) of the recipes timed per 1 mm brain
RECIPES = {"default": (5, (0, 1, 2), 0.5), "published": (5, (0, 1, 2), 0.75)}
PAPER = {
    "filters": [32, 64, 128, 256, 320, 320],
    "kernel_size": 3,
    "conv_bias": True,
    "norm_epsilon": 1e-5,
    "negative_slope": 0.01,
}


def peak_rss_gib() -> float:
    """Peak resident memory of this process so far (GiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def install_nnunet() -> None:
    """Create benchmarks/.venv-nnunet with torch pinned to the project's version and nnU-Net v2."""
    pip = [str(NNUNET_VENV / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([sys.executable, "-m", "venv", str(NNUNET_VENV)], check=True)
    (NNUNET_VENV / ".gitignore").write_text("*\n")
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as constraints:
        constraints.write(TORCH + "\n")
    subprocess.run([*pip, "-c", constraints.name, TORCH], check=True)
    subprocess.run([*pip, "--no-deps", *NNUNET_PACKAGES], check=True)
    subprocess.run([*pip, "-c", constraints.name, *NNUNET_DEPENDENCIES], check=True)
    os.unlink(constraints.name)


def demo_brain(path: Path) -> None:
    """Write the 1 mm MNI-based demo head's brain, cropped to the brain and z-scored, as .npy (image, mask)."""
    from brainmets.demo.head import template_head
    from brainmets.preprocess.intensity import zscore_over_brain
    from brainmets.preprocess.space import bounding_box

    head = template_head(1.0)
    start, stop = bounding_box(head.brain)
    box = tuple(slice(a, b) for a, b in zip(start, stop, strict=True))
    brain = head.brain[box]
    image, _, _ = zscore_over_brain(head.intensity[box].astype(np.float32), brain)
    np.save(path / "image.npy", image.astype(np.float32))
    np.save(path / "mask.npy", brain)


def cpu_description() -> str:
    """The processor's model name and its bfloat16 flags, as lscpu and /proc/cpuinfo name them."""
    from brainmets.inference.runtime import BFLOAT16_CPU_FLAGS, cpu_flags

    model = "unknown processor"
    with open("/proc/cpuinfo", encoding="ascii", errors="replace") as lines:
        for line in lines:
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    flags = cpu_flags()
    found = [f for f in (*BFLOAT16_CPU_FLAGS, "avx512f", "avx2") if f in flags]
    return f"{model}; flags: {' '.join(found) or 'none of avx2/avx512/bf16'}"


def paper_predictor(patch: int, precision: str):
    """The paper network (random weights, seed 0) compiled for `precision` windows of patch^3."""
    import keras
    from brainmets.inference.runtime import compile_predictor, dtype_policy
    from brainmets.network.model import build_unet, full_resolution_model

    keras.utils.set_random_seed(0)
    with dtype_policy(precision):
        model = full_resolution_model(build_unet(**PAPER))
    return compile_predictor(model, (patch,) * 3)


def matmul_gflops(size: int = 2048, reps: int = 5) -> float:
    """Float32 GFLOP/s of a TensorFlow matrix product on all cores (fastest of `reps`): a reachable rate here."""
    import tensorflow as tf

    a = tf.random.normal((size, size), dtype=tf.float32)
    product = tf.function(lambda x: tf.linalg.matmul(x, x))
    product(a).numpy()  # warm-up
    best = float("inf")
    for _ in range(reps):
        started = time.perf_counter()
        product(a).numpy()
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best / 1e9


def part_forward(patch: int, reps: int, precisions: list[str]) -> dict:
    """One forward of the paper network in each precision (same weights): seconds, and bfloat16's logit agreement."""
    from brainmets.inference.runtime import native_bfloat16

    x = np.random.default_rng(0).normal(size=(1, patch, patch, patch, 1)).astype(np.float32)
    results, logits = {}, {}
    for precision in precisions:
        predictor = paper_predictor(patch, precision)
        emulated = precision == "bfloat16" and not native_bfloat16("/CPU:0")
        if not emulated:
            predictor(x)  # warm-up: graph building, oneDNN primitive caches
        walls, cpus = [], []
        for _ in range(1 if emulated else reps):
            wall, cpu = time.perf_counter(), time.process_time()
            logits[precision] = predictor(x)
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
        results[precision] = {"wall_s": min(walls), "cpu_s": min(cpus), "emulated": emulated}
    if set(logits) == {"float32", "bfloat16"}:
        results["bfloat16"]["sign_agreement"] = float(
            np.mean(np.sign(logits["bfloat16"]) == np.sign(logits["float32"]))
        )
        results["bfloat16"]["max_logit_difference"] = float(np.abs(logits["bfloat16"] - logits["float32"]).max())
    results["matmul_gflops"] = matmul_gflops()
    return results


def demo_batch_speed(reps: int = 3) -> None:
    """Seconds per 48^3 window of the demo network, one window per call against `batch_size: auto`."""
    import keras
    from brainmets.inference.pipeline import windows_per_call
    from brainmets.inference.runtime import compile_predictor
    from brainmets.network.model import build_unet, full_resolution_model
    from brainmets.train.settings import load_preset

    preset = load_preset("demo")
    patch = tuple(preset["patch_size"])
    keras.utils.set_random_seed(0)
    predictor = compile_predictor(full_resolution_model(build_unet(**preset["network"])), patch)
    for name, batch in (("1 window per call", 1), ("batch_size auto", windows_per_call("auto", patch))):
        x = np.random.default_rng(0).normal(size=(batch, *patch, 1)).astype(np.float32)
        predictor(x)  # warm-up
        started = time.perf_counter()
        for _ in range(reps):
            predictor(x)
        per_window = (time.perf_counter() - started) / (reps * batch)
        print(f"demo network, {name} ({batch}): {per_window * 1000:.1f} ms per {patch[0]}^3 window")


def part_scan_brainmets(data: Path, patch: int) -> dict:
    """Sliding-window prediction of the demo brain with brainmets (1 random-weight fold, no mirroring).

    The precision is chosen by the `auto` setting.
    """
    from brainmets.inference.ensemble import predict_ensemble
    from brainmets.inference.runtime import resolve_precision
    from brainmets.network.threads import set_tensorflow_threads

    set_tensorflow_threads(os.cpu_count())  # as the workflow's rule passes its threads
    image, mask = np.load(data / "image.npy"), np.load(data / "mask.npy")
    precision = resolve_precision("auto", "/CPU:0")
    predictor = paper_predictor(patch, precision)
    predictor(np.zeros((1, patch, patch, patch, 1), np.float32))  # compile outside the timing, as nnU-Net's is
    windows = []

    def counting(batch: np.ndarray) -> np.ndarray:
        windows.append(len(batch))
        return predictor(batch)

    wall, cpu = time.perf_counter(), time.process_time()
    predict_ensemble(image, [counting], (patch,) * 3, brain_mask=mask, overlap=0.5, mirror_axes=(), batch_size=1)
    return {
        "wall_s": time.perf_counter() - wall,
        "cpu_s": time.process_time() - cpu,
        "peak_gib": peak_rss_gib(),
        "shape": list(image.shape),
        "windows": sum(windows),
        "precision": precision,
    }


def recipe_windows(mask: np.ndarray, patch: int, folds: int, mirror_axes: tuple[int, ...], overlap: float) -> int:
    """Windows a recipe computes on one brain: every fold x flip, each flip with its own brain windows."""
    from brainmets.inference.ensemble import mirror_combinations
    from brainmets.network.sliding import brain_windows

    per_fold = sum(
        len(brain_windows(np.flip(mask, flip), (patch,) * 3, overlap)) for flip in mirror_combinations(mirror_axes)
    )
    return folds * per_fold


def part_scan_nnunet(data: Path, patch: int) -> dict:
    """Sliding-window prediction of the demo brain with nnU-Net v2's predictor (PlainConvUNet, random weights)."""
    from types import SimpleNamespace

    import torch
    from dynamic_network_architectures.architectures.unet import PlainConvUNet
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    network = PlainConvUNet(
        input_channels=1,
        n_stages=len(PAPER["filters"]),
        features_per_stage=PAPER["filters"],
        conv_op=torch.nn.Conv3d,
        kernel_sizes=PAPER["kernel_size"],
        strides=[1, 2, 2, 2, 2, 2],
        n_conv_per_stage=2,
        num_classes=1,
        n_conv_per_stage_decoder=2,
        conv_bias=PAPER["conv_bias"],
        norm_op=torch.nn.InstanceNorm3d,
        norm_op_kwargs={"eps": PAPER["norm_epsilon"], "affine": True},
        nonlin=torch.nn.LeakyReLU,
        nonlin_kwargs={"negative_slope": PAPER["negative_slope"], "inplace": True},
        deep_supervision=False,
    ).eval()
    predictor = nnUNetPredictor(
        tile_step_size=0.5,
        use_gaussian=True,
        use_mirroring=False,
        perform_everything_on_device=False,
        device=torch.device("cpu"),
        allow_tqdm=False,
    )
    # the predictor's sliding window reads only these from the plans: the patch and the number of outputs
    predictor.network = network
    predictor.configuration_manager = SimpleNamespace(patch_size=[patch] * 3)
    predictor.label_manager = SimpleNamespace(num_segmentation_heads=1)
    predictor.allowed_mirroring_axes = None
    predictor.list_of_parameters = [network.state_dict()]
    image = torch.from_numpy(np.load(data / "image.npy"))[None]
    with torch.no_grad():
        network(torch.zeros(1, 1, patch, patch, patch))  # first-call set-up outside the timing
        wall, cpu = time.perf_counter(), time.process_time()
        predictor.predict_sliding_window_return_logits(image)
    return {
        "wall_s": time.perf_counter() - wall,
        "cpu_s": time.process_time() - cpu,
        "peak_gib": peak_rss_gib(),
        "shape": list(image.shape[1:]),
    }


def score_scan(
    scan: str,
    truth: np.ndarray,
    label: np.ndarray,
    entropy: np.ndarray,
    brain: np.ndarray,
    spacing_mm: tuple[float, float, float],
) -> tuple[dict, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """One scan's large-lesion detections, false positives and entropy AUROC (maps on one grid).

    Also returns the brain voxels' (entropy, label, truth), which print_figures pools over scans.
    """
    from brainmets.evaluation.metrics import match_lesions

    from measures import misclassification_auroc

    min_ml = np.pi / 6 * 10.0**3 / 1000.0  # a 10 mm sphere
    match = match_lesions(truth > 0, label > 0, spacing_mm)
    large = match.lesions[match.lesions["volume_ml"] >= min_ml]
    inside = brain > 0
    row = {
        "scan": scan,
        "large_lesions": len(large),
        "large_detected": int(large["detected"].sum()),
        "false_positives": match.false_positives,
        "entropy_auroc": misclassification_auroc(entropy, label > 0, truth > 0, inside),
    }
    print(row, flush=True)
    return row, (entropy[inside], label[inside] > 0, truth[inside] > 0)


def print_figures(rows: list[dict], voxels: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> None:
    """The acceptance figures over the scored scans; the AUROC pools every scan's brain voxels."""
    import pandas as pd

    from measures import misclassification_auroc

    entropy, label, truth = (np.concatenate(parts) for parts in zip(*voxels, strict=True))
    pooled = misclassification_auroc(entropy, label, truth, np.ones_like(label))
    table = pd.DataFrame(rows)
    sensitivity = table["large_detected"].sum() / max(table["large_lesions"].sum(), 1)
    print(
        f"{len(table)} demo test scans: sensitivity for lesions >= 10 mm {sensitivity:.3f} "
        f"({table['large_detected'].sum()} of {table['large_lesions'].sum()}, target >= 0.9), "
        f"false positives per scan {table['false_positives'].mean():.2f} (max {table['false_positives'].max()}, "
        f"target <= 1), total-entropy AUROC over all scans' brain voxels {pooled:.3f} "
        f"({int((label != truth).sum())} misclassified; target >= 0.8), per scan mean "
        f"{table['entropy_auroc'].mean():.3f} (min {table['entropy_auroc'].min():.3f})"
    )


def results_figures(results: Path, samples: Path, limit: int | None) -> None:
    """The acceptance figures from a finished workflow's native-grid maps of the demo test scans."""
    from brainmets.io import load_nifti, voxel_spacing_mm
    from brainmets.preprocess import to_native
    from brainmets.preprocess.pipeline import BRAIN_MASK
    from brainmets.samplesheet import load_samples

    sheet = load_samples(samples).reset_index()
    rows, voxels = [], []
    for row in sheet[~sheet["training"] & sheet["mask"].notna()].head(limit).to_dict("records"):
        scan_dir = results / str(row["patient_id"]) / str(row["timepoint"])
        load = lambda path: np.asarray(load_nifti(path, allow_constant=True).dataobj)  # noqa: E731
        truth_image = load_nifti(row["mask"], allow_constant=True)
        mask = load_nifti(scan_dir / BRAIN_MASK, allow_constant=True)
        brain, _ = to_native(np.asarray(mask.dataobj), mask.affine, scan_dir, kind="label")
        scored, inside = score_scan(
            f"{row['patient_id']}/{row['timepoint']}",
            np.asarray(truth_image.dataobj),
            load(scan_dir / "native" / "segmentation.nii.gz"),
            load(scan_dir / "native" / "uncertainty_total_entropy.nii.gz"),
            brain,
            tuple(voxel_spacing_mm(truth_image.affine)),
        )
        rows.append(scored)
        voxels.append(inside)
    print_figures(rows, voxels)


def patient_space_truth(scan_dir: Path) -> np.ndarray:
    """A preprocessed scan's truth (stored on the cropped network-input grid) placed on its brain mask's grid."""
    from brainmets.io import load_nifti
    from brainmets.preprocess.pipeline import BRAIN_MASK, RECORD, TRUTH
    from brainmets.preprocess.space import uncrop

    start = json.loads((scan_dir / RECORD).read_text())["crop"]["start"]
    shape = load_nifti(scan_dir / BRAIN_MASK, allow_constant=True).shape
    return uncrop(np.asarray(load_nifti(scan_dir / TRUTH, allow_constant=True).dataobj), start, shape)


def demo_figures(model: Path, samples: Path, config: Path | None, limit: int | None) -> None:
    """Preprocess (with the truth carried along), predict and score the demo test scans; print the figures."""
    from brainmets.inference.pipeline import load_segmenter, predict_scan
    from brainmets.inference.settings import load_settings as load_inference_settings
    from brainmets.io import load_nifti, voxel_spacing_mm
    from brainmets.preprocess.pipeline import BRAIN_MASK, ZSCORE, preprocess_scan
    from brainmets.preprocess.settings import load_settings
    from brainmets.samplesheet import load_samples

    sheet = load_samples(samples).reset_index()
    tests = sheet[~sheet["training"] & sheet["mask"].notna()].head(limit)
    settings = load_inference_settings(config)
    segmenter = load_segmenter(model, settings)
    rows, voxels = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for k, row in enumerate(tests.to_dict("records")):
            scan_dir = Path(tmp) / str(k)
            preprocess_scan(row["image"], scan_dir, settings=load_settings(config), mask=row["mask"])
            predict_scan(segmenter, scan_dir / ZSCORE, scan_dir / BRAIN_MASK, scan_dir)
            spacing = tuple(voxel_spacing_mm(load_nifti(scan_dir / BRAIN_MASK, allow_constant=True).affine))
            segmentation, entropy, brain = (
                np.asarray(load_nifti(scan_dir / name, allow_constant=True).dataobj)
                for name in ("segmentation.nii.gz", "uncertainty_total_entropy.nii.gz", BRAIN_MASK)
            )
            scored, inside = score_scan(
                f"{row['patient_id']}/{row['timepoint']}",
                patient_space_truth(scan_dir),
                segmentation,
                entropy,
                brain,
                spacing,
            )
            rows.append(scored)
            voxels.append(inside)
    print_figures(rows, voxels)


def lesions_missed_by(label: np.ndarray, other: np.ndarray) -> int:
    """Lesions (26-connected components) of `label` that no voxel of `other` touches."""
    from scipy import ndimage

    components, count = ndimage.label(label > 0, structure=np.ones((3, 3, 3)))
    hit = np.unique(components[(other > 0) & (components > 0)])
    return count - len(hit)


def precision_guard(model: Path, samples: Path, config: Path | None, limit: int | None) -> None:
    """Predict the demo test scans in float32 and in bfloat16 and print how far the two results are apart."""
    import pandas as pd
    from brainmets.inference.pipeline import load_segmenter, predict_scan
    from brainmets.inference.settings import load_settings as load_inference_settings
    from brainmets.io import load_nifti, voxel_spacing_mm
    from brainmets.preprocess.pipeline import BRAIN_MASK, ZSCORE, preprocess_scan
    from brainmets.preprocess.settings import load_settings
    from brainmets.samplesheet import load_samples

    sheet = load_samples(samples).reset_index()
    tests = sheet[~sheet["training"] & sheet["mask"].notna()].head(limit)
    settings = load_inference_settings(config)
    segmenters = {p: load_segmenter(model, dataclasses.replace(settings, precision=p)) for p in ("float32", "bfloat16")}
    print(f"CPU: {cpu_description()}; load average {os.getloadavg()[0]:.1f}")
    rows, scored = [], {p: ([], []) for p in segmenters}
    with tempfile.TemporaryDirectory() as tmp:
        for k, row in enumerate(tests.to_dict("records")):
            scan_dir = Path(tmp) / str(k)
            preprocess_scan(row["image"], scan_dir, settings=load_settings(config), mask=row["mask"])
            load = lambda path: np.asarray(load_nifti(path, allow_constant=True).dataobj)  # noqa: E731
            spacing = tuple(voxel_spacing_mm(load_nifti(scan_dir / BRAIN_MASK, allow_constant=True).affine))
            maps, seconds = {}, {}
            for precision, segmenter in segmenters.items():
                started = time.perf_counter()
                predict_scan(segmenter, scan_dir / ZSCORE, scan_dir / BRAIN_MASK, scan_dir / precision)
                seconds[precision] = time.perf_counter() - started
                maps[precision] = {
                    name: load(scan_dir / precision / f"{name}.nii.gz")
                    for name in ("segmentation", "probability", "uncertainty_total_entropy")
                }
                figures, inside = score_scan(
                    f"{row['patient_id']}/{row['timepoint']} {precision}",
                    patient_space_truth(scan_dir),
                    maps[precision]["segmentation"],
                    maps[precision]["uncertainty_total_entropy"],
                    load(scan_dir / BRAIN_MASK),
                    spacing,
                )
                scored[precision][0].append(figures)
                scored[precision][1].append(inside)
            a, b = maps["float32"]["segmentation"] > 0, maps["bfloat16"]["segmentation"] > 0
            rows.append(
                {
                    "scan": f"{row['patient_id']}/{row['timepoint']}",
                    "dice": 2 * (a & b).sum() / max(a.sum() + b.sum(), 1),
                    "lesions_float32_only": lesions_missed_by(a, b),
                    "lesions_bfloat16_only": lesions_missed_by(b, a),
                    "max_probability_difference": float(
                        np.abs(maps["float32"]["probability"] - maps["bfloat16"]["probability"]).max()
                    ),
                    "float32_s": seconds["float32"],
                    "bfloat16_s": seconds["bfloat16"],
                }
            )
            print(
                ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in rows[-1].items()),
                flush=True,
            )
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(
        f"bfloat16 against float32 over {len(table)} scans: voxel Dice min {table['dice'].min():.4f} "
        f"(mean {table['dice'].mean():.4f}), lesions found by float32 only {table['lesions_float32_only'].sum()}, "
        f"by bfloat16 only {table['lesions_bfloat16_only'].sum()}, largest probability difference "
        f"{table['max_probability_difference'].max():.4f}"
    )
    for precision, (figures, voxels) in scored.items():
        print(f"{precision}: ", end="")
        print_figures(figures, voxels)


def run_part(python: str, part: str, args: argparse.Namespace, data: Path) -> dict:
    """Run one part in a fresh process and return its JSON result."""
    command = [
        python,
        __file__,
        "--part",
        part,
        "--patch",
        str(args.patch),
        "--reps",
        str(args.reps),
        "--data",
        str(data),
        "--precisions",
        *args.precisions,
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"part {part} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    """Run every part and print the figures side by side."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patch", type=int, default=128, help="window edge (voxels); the paper preset's is 128")
    parser.add_argument("--reps", type=int, default=2, help="timed forward passes per variant (the fastest is kept)")
    parser.add_argument("--skip-nnunet", action="store_true", help="leave out nnU-Net's predictor")
    parser.add_argument(
        "--precisions",
        nargs="+",
        choices=("float32", "bfloat16"),
        default=["float32", "bfloat16"],
        help="precisions of the forward part (leave out bfloat16 where it is emulated to save ~10 min)",
    )
    parser.add_argument("--install-nnunet", action="store_true", help="create benchmarks/.venv-nnunet and exit")
    parser.add_argument(
        "--demo-batch", action="store_true", help="time the demo network at 1 window per call and at auto"
    )
    parser.add_argument("--demo-figures", action="store_true", help="measure the acceptance figures of --model")
    parser.add_argument(
        "--precision-guard",
        action="store_true",
        help="predict the test scans with --model in float32 and bfloat16 and compare",
    )
    parser.add_argument("--model", type=Path, help="trained model directory (for --demo-figures)")
    parser.add_argument(
        "--results", type=Path, help="a finished workflow's results/ (for --demo-figures, instead of --model)"
    )
    parser.add_argument("--samples", type=Path, default=Path("resources/demo/samples.tsv"), help="demo sample sheet")
    parser.add_argument("--config", type=Path, help="configuration (preprocess and inference sections)")
    parser.add_argument("--limit", type=int, help="score only the first N test scans")
    parser.add_argument("--part", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.install_nnunet:
        install_nnunet()
        return
    if args.demo_batch:
        demo_batch_speed(args.reps)
        return
    if args.precision_guard:
        if args.model is None:
            raise SystemExit("--precision-guard needs --model DIR")
        precision_guard(args.model, args.samples, args.config, args.limit)
        return
    if args.demo_figures:
        if args.results is not None:
            results_figures(args.results, args.samples, args.limit)
        elif args.model is not None:
            demo_figures(args.model, args.samples, args.config, args.limit)
        else:
            raise SystemExit("--demo-figures needs --model DIR or --results DIR")
        return
    if args.part:
        part = {
            "forward": lambda: part_forward(args.patch, args.reps, args.precisions),
            "brainmets": lambda: part_scan_brainmets(args.data, args.patch),
            "nnunet": lambda: part_scan_nnunet(args.data, args.patch),
        }[args.part]
        print(json.dumps(part()))
        return

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        demo_brain(data)
        mask = np.load(data / "mask.npy")
        forward = run_part(sys.executable, "forward", args, data)
        ours = run_part(sys.executable, "brainmets", args, data)
        nnunet_python = NNUNET_VENV / "bin" / "python"
        theirs = None
        if not args.skip_nnunet:
            if not nnunet_python.is_file():
                raise SystemExit(f"{nnunet_python} not found: run `python {__file__} --install-nnunet` first")
            theirs = run_part(str(nnunet_python), "nnunet", args, data)
    print_speed(args.patch, args.reps, forward, ours, theirs, mask, load_before)


def print_speed(
    patch: int, reps: int, forward: dict, ours: dict, theirs: dict | None, mask: np.ndarray, load_before: float
) -> None:
    """Print the figures of the forward, scan and recipe parts side by side."""
    from brainmets.network.sliding import window_slices

    scale = (patch / 128) ** 3
    print(
        f"CPU: {cpu_description()}; {os.cpu_count()} cores; "
        f"load average before/after: {load_before:.1f} / {os.getloadavg()[0]:.1f}"
    )
    matmul = forward.pop("matmul_gflops")
    print(f"one forward pass of the paper network on {patch}^3 (fastest of {reps}; emulated bfloat16: 1 call):")
    for name, r in forward.items():
        gflops = FORWARD_TFLOP_128 * scale * 1000 / r["wall_s"]
        print(
            f"  {name:9s} {r['wall_s']:7.2f} s wall  {r['cpu_s']:7.2f} s CPU  "
            f"{r['cpu_s'] / r['wall_s']:4.2f} CPU s/wall s  {gflops:6.1f} GFLOP/s ({gflops / matmul:.0%} of the matrix "
            f"product's)  x{forward[next(iter(forward))]['wall_s'] / r['wall_s']:.2f} of {next(iter(forward))}"
            + ("  (emulated: no native bfloat16 here)" if r["emulated"] else "")
        )
    print(f"  float32 matrix product (2048^2, TensorFlow, all cores): {matmul:6.1f} GFLOP/s, this CPU's reachable rate")
    if "sign_agreement" in forward.get("bfloat16", {}):
        bf16 = forward["bfloat16"]
        print(
            f"  bfloat16 against float32: {bf16['sign_agreement']:.2%} of logit signs agree, "
            f"largest logit difference {bf16['max_logit_difference']:.3g} (random weights)"
        )
    per_window = ours["wall_s"] / max(ours["windows"], 1)
    print(f"one 1 mm demo brain {tuple(ours['shape'])}, 1 fold, no mirroring, overlap 0.5, patch {patch}^3:")
    print(
        f"  brainmets ({ours['precision']:8s}) {ours['wall_s']:7.1f} s wall  {ours['cpu_s']:7.1f} s CPU  "
        f"{ours['cpu_s'] / ours['wall_s']:4.2f} CPU s/wall s  {ours['windows']} windows  "
        f"peak {ours['peak_gib']:.2f} GiB"
    )
    if theirs is not None:
        their_windows = len(window_slices(theirs["shape"], (patch,) * 3, 0.5))
        print(
            f"  nnU-Net v2 (float32)  {theirs['wall_s']:7.1f} s wall  {theirs['cpu_s']:7.1f} s CPU  "
            f"{theirs['cpu_s'] / theirs['wall_s']:4.2f} CPU s/wall s  {their_windows} windows  "
            f"peak {theirs['peak_gib']:.2f} GiB"
        )
        print(
            f"  ratio brainmets / nnU-Net: wall {ours['wall_s'] / theirs['wall_s']:.2f}, "
            f"CPU {ours['cpu_s'] / theirs['cpu_s']:.2f} (target <= 0.55 in float32, <= 0.4 with native bfloat16)"
        )
    for name, (folds, axes, overlap) in RECIPES.items():
        windows = recipe_windows(mask, patch, folds, axes, overlap)
        print(
            f"{name} recipe ({folds} folds x {2 ** len(axes)} flips, overlap {overlap}) per 1 mm brain: "
            f"{windows} windows x {per_window:.1f} s = {windows * per_window / 60:.1f} min ({ours['precision']}); "
            f"at the float32 matrix product's rate it would still take "
            f"{windows * FORWARD_TFLOP_128 * scale * 1000 / matmul / 60:.1f} min"
        )


if __name__ == "__main__":
    main()
