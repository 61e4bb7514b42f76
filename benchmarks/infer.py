"""Inference speed of the paper preset on the CPU, against plain Keras and nnU-Net v2's own predictor.

Prints, in one run on the same machine:
  1. one forward pass of the paper network on a 128^3 window: plain Keras (`model.predict`) versus
     brainmets' compiled inference graph, wall seconds, CPU seconds and GFLOP/s
     (one forward is about 1.06 TFLOP);
  2. one 1 mm demo brain (cropped to the brain, z-scored) through the whole sliding window (1 fold,
     no mirroring, overlap 0.5): brainmets versus nnU-Net v2's nnUNetPredictor with a PlainConvUNet
     built to the same settings and random weights; wall seconds, peak memory and the ratio.
Each part runs in its own process so that peak memory is that part's alone. nnU-Net runs from a
separate environment (created by --install-nnunet) so that its torch never meets the project's.

    python benchmarks/infer.py --install-nnunet     # once: benchmarks/.venv-nnunet
    python benchmarks/infer.py                      # all figures (~10 min on 2 cores)
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
NNUNET_VENV = HERE / ".venv-nnunet"
#: the benchmark environment's direct pins; torch matches the project's, torchvision is not needed
NNUNET_PACKAGES = ["nnunetv2==2.8.1", "dynamic-network-architectures==0.4.4"]
#: nnU-Net's other requirements (dynamic-network-architectures' timm -> torchvision is left out:
#: PlainConvUNet and the predictor do not import it)
NNUNET_DEPENDENCIES = [
    "acvl-utils", "batchgenerators", "batchgeneratorsv2", "blosc2", "einops", "graphviz", "imagecodecs",
    "matplotlib", "nibabel", "numpy", "pandas", "requests", "scikit-image", "scikit-learn", "scipy", "seaborn",
    "SimpleITK", "tifffile", "tqdm", "yacs",
]
TORCH = "torch==2.13.0"
#: multiply-adds x 2 of one paper-network forward on 128^3 (issue 5)
FORWARD_TFLOP_128 = 1.06
PAPER = {"filters": [32, 64, 128, 256, 320, 320], "kernel_size": 3, "conv_bias": True, "norm_epsilon": 1e-5,
         "negative_slope": 0.01}


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
    box = tuple(slice(a, b) for a, b in zip(start, stop))
    brain = head.brain[box]
    image, _, _ = zscore_over_brain(head.intensity[box].astype(np.float32), brain)
    np.save(path / "image.npy", image.astype(np.float32))
    np.save(path / "mask.npy", brain)


def part_forward(patch: int, reps: int) -> dict:
    """One forward of the paper network: plain Keras predict vs the compiled inference graph."""
    import keras

    from brainmets.inference.runtime import compile_predictor
    from brainmets.training.model import build_unet, full_resolution_model

    keras.utils.set_random_seed(0)
    model = full_resolution_model(build_unet(**PAPER))
    x = np.random.default_rng(0).normal(size=(1, patch, patch, patch, 1)).astype(np.float32)
    variants = {
        "keras_predict": lambda: model.predict(x, verbose=0),
        "compiled_graph": compile_predictor(model, (patch,) * 3),
    }
    results = {}
    for name, fn in variants.items():
        (fn() if name == "keras_predict" else fn(x))  # warm-up: graph building, oneDNN primitive caches
        walls, cpus = [], []
        for _ in range(reps):
            wall, cpu = time.perf_counter(), time.process_time()
            fn() if name == "keras_predict" else fn(x)
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
        results[name] = {"wall_s": min(walls), "cpu_s": min(cpus)}
    return results


def demo_batch_speed(reps: int = 3) -> None:
    """Seconds per 48^3 window of the demo network, one window per call against `batch_size: auto`."""
    import keras

    from brainmets.inference.pipeline import windows_per_call
    from brainmets.inference.runtime import compile_predictor
    from brainmets.training.model import build_unet, full_resolution_model
    from brainmets.training.settings import load_preset

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
    """Sliding-window prediction of the demo brain with brainmets (1 random-weight fold, no mirroring)."""
    import keras

    from brainmets.inference.ensemble import predict_ensemble
    from brainmets.inference.runtime import compile_predictor
    from brainmets.training.model import build_unet, full_resolution_model

    image, mask = np.load(data / "image.npy"), np.load(data / "mask.npy")
    keras.utils.set_random_seed(0)
    predictor = compile_predictor(full_resolution_model(build_unet(**PAPER)), (patch,) * 3)
    predictor(np.zeros((1, patch, patch, patch, 1), np.float32))  # compile outside the timing, as nnU-Net's is
    wall, cpu = time.perf_counter(), time.process_time()
    predict_ensemble(image, [predictor], (patch,) * 3, brain_mask=mask, overlap=0.5, mirror_axes=(), batch_size=1)
    return {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu, "peak_gib": peak_rss_gib(),
            "shape": list(image.shape)}


def part_scan_nnunet(data: Path, patch: int) -> dict:
    """Sliding-window prediction of the demo brain with nnU-Net v2's predictor (PlainConvUNet, random weights)."""
    from types import SimpleNamespace

    import torch
    from dynamic_network_architectures.architectures.unet import PlainConvUNet
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    network = PlainConvUNet(
        input_channels=1, n_stages=len(PAPER["filters"]), features_per_stage=PAPER["filters"],
        conv_op=torch.nn.Conv3d, kernel_sizes=PAPER["kernel_size"], strides=[1, 2, 2, 2, 2, 2],
        n_conv_per_stage=2, num_classes=1, n_conv_per_stage_decoder=2, conv_bias=PAPER["conv_bias"],
        norm_op=torch.nn.InstanceNorm3d, norm_op_kwargs={"eps": PAPER["norm_epsilon"], "affine": True},
        nonlin=torch.nn.LeakyReLU, nonlin_kwargs={"negative_slope": PAPER["negative_slope"], "inplace": True},
        deep_supervision=False,
    ).eval()
    predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=False,
                                perform_everything_on_device=False, device=torch.device("cpu"), allow_tqdm=False)
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
    return {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu, "peak_gib": peak_rss_gib(),
            "shape": list(image.shape[1:])}


def score_scan(scan: str, truth: np.ndarray, label: np.ndarray, entropy: np.ndarray, brain: np.ndarray,
               spacing_mm: tuple[float, float, float]) -> tuple[dict, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """One scan's large-lesion detections, false positives and entropy AUROC (maps on one grid).

    Also returns the brain voxels' (entropy, label, truth), which print_figures pools over scans.
    """
    from brainmets.evaluation.metrics import match_lesions
    from brainmets.inference.uncertainty import misclassification_auroc

    min_ml = np.pi / 6 * 10.0**3 / 1000.0  # a 10 mm sphere
    match = match_lesions(truth > 0, label > 0, spacing_mm)
    large = match.lesions[match.lesions["volume_ml"] >= min_ml]
    inside = brain > 0
    row = {"scan": scan, "large_lesions": len(large), "large_detected": int(large["detected"].sum()),
           "false_positives": match.false_positives,
           "entropy_auroc": misclassification_auroc(entropy, label > 0, truth > 0, inside)}
    print(row, flush=True)
    return row, (entropy[inside], label[inside] > 0, truth[inside] > 0)


def print_figures(rows: list[dict], voxels: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> None:
    """The acceptance figures over the scored scans; the AUROC pools every scan's brain voxels."""
    import pandas as pd

    from brainmets.inference.uncertainty import misclassification_auroc

    entropy, label, truth = (np.concatenate(parts) for parts in zip(*voxels, strict=True))
    pooled = misclassification_auroc(entropy, label, truth, np.ones_like(label))
    table = pd.DataFrame(rows)
    sensitivity = table["large_detected"].sum() / max(table["large_lesions"].sum(), 1)
    print(f"{len(table)} demo test scans: sensitivity for lesions >= 10 mm {sensitivity:.3f} "
          f"({table['large_detected'].sum()} of {table['large_lesions'].sum()}, target >= 0.9), "
          f"false positives per scan {table['false_positives'].mean():.2f} (max {table['false_positives'].max()}, "
          f"target <= 1), total-entropy AUROC over all scans' brain voxels {pooled:.3f} "
          f"({int((label != truth).sum())} misclassified; target >= 0.8), per scan mean "
          f"{table['entropy_auroc'].mean():.3f} (min {table['entropy_auroc'].min():.3f})")


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
        scored, inside = score_scan(f"{row['patient_id']}/{row['timepoint']}", np.asarray(truth_image.dataobj),
                                    load(scan_dir / "native" / "segmentation.nii.gz"),
                                    load(scan_dir / "native" / "uncertainty_total_entropy.nii.gz"), brain,
                                    tuple(voxel_spacing_mm(truth_image.affine)))
        rows.append(scored)
        voxels.append(inside)
    print_figures(rows, voxels)


def demo_figures(model: Path, samples: Path, config: Path | None, limit: int | None) -> None:
    """Preprocess (with the truth carried along), predict and score the demo test scans; print the figures."""
    from brainmets.inference.pipeline import InferenceSettings, load_segmenter, predict_scan, settings_from_config
    from brainmets.io import load_nifti, read_yaml, voxel_spacing_mm
    from brainmets.preprocess.pipeline import BRAIN_MASK, TRUTH, ZSCORE, preprocess_scan
    from brainmets.preprocess.settings import load_settings
    from brainmets.samplesheet import load_samples

    sheet = load_samples(samples).reset_index()
    tests = sheet[~sheet["training"] & sheet["mask"].notna()].head(limit)
    settings = settings_from_config(read_yaml(config), str(config)) if config else InferenceSettings()
    segmenter = load_segmenter(model, settings)
    rows, voxels = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for k, row in enumerate(tests.to_dict("records")):
            scan_dir = Path(tmp) / str(k)
            preprocess_scan(row["image"], scan_dir, settings=load_settings(config), mask=row["mask"])
            predict_scan(segmenter, scan_dir / ZSCORE, scan_dir / BRAIN_MASK, scan_dir)
            load = lambda name: np.asarray(load_nifti(scan_dir / name, allow_constant=True).dataobj)  # noqa: E731
            spacing = tuple(voxel_spacing_mm(load_nifti(scan_dir / BRAIN_MASK, allow_constant=True).affine))
            scored, inside = score_scan(f"{row['patient_id']}/{row['timepoint']}", load(TRUTH),
                                        load("segmentation.nii.gz"), load("uncertainty_total_entropy.nii.gz"),
                                        load(BRAIN_MASK), spacing)
            rows.append(scored)
            voxels.append(inside)
    print_figures(rows, voxels)


def run_part(python: str, part: str, args: argparse.Namespace, data: Path) -> dict:
    """Run one part in a fresh process and return its JSON result."""
    command = [python, __file__, "--part", part, "--patch", str(args.patch), "--reps", str(args.reps), "--data", str(data)]
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
    parser.add_argument("--install-nnunet", action="store_true", help="create benchmarks/.venv-nnunet and exit")
    parser.add_argument("--demo-batch", action="store_true", help="time the demo network at 1 window per call and at auto")
    parser.add_argument("--demo-figures", action="store_true", help="measure the acceptance figures of --model")
    parser.add_argument("--model", type=Path, help="trained model directory (for --demo-figures)")
    parser.add_argument("--results", type=Path, help="a finished workflow's results/ (for --demo-figures, instead of --model)")
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
    if args.demo_figures:
        if args.results is not None:
            results_figures(args.results, args.samples, args.limit)
        elif args.model is not None:
            demo_figures(args.model, args.samples, args.config, args.limit)
        else:
            raise SystemExit("--demo-figures needs --model DIR or --results DIR")
        return
    if args.part:
        part = {"forward": lambda: part_forward(args.patch, args.reps),
                "brainmets": lambda: part_scan_brainmets(args.data, args.patch),
                "nnunet": lambda: part_scan_nnunet(args.data, args.patch)}[args.part]
        print(json.dumps(part()))
        return

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        demo_brain(data)
        forward = run_part(sys.executable, "forward", args, data)
        ours = run_part(sys.executable, "brainmets", args, data)
        nnunet_python = NNUNET_VENV / "bin" / "python"
        theirs = None
        if not args.skip_nnunet:
            if not nnunet_python.is_file():
                raise SystemExit(f"{nnunet_python} not found: run `python {__file__} --install-nnunet` first")
            theirs = run_part(str(nnunet_python), "nnunet", args, data)

    scale = (args.patch / 128) ** 3
    print(f"CPU cores: {os.cpu_count()}; load average before/after: {load_before:.1f} / {os.getloadavg()[0]:.1f}")
    print(f"one forward pass of the paper network on {args.patch}^3 (fastest of {args.reps}):")
    base = forward["keras_predict"]["wall_s"]
    for name, r in forward.items():
        gflops = FORWARD_TFLOP_128 * scale * 1000 / r["wall_s"]
        print(f"  {name:15s} {r['wall_s']:7.2f} s wall  {r['cpu_s']:7.2f} s CPU  {gflops:6.1f} GFLOP/s"
              f"  speed-up x{base / r['wall_s']:.2f}")
    print(f"one 1 mm demo brain {tuple(ours['shape'])}, 1 fold, no mirroring, overlap 0.5, patch {args.patch}^3:")
    print(f"  brainmets        {ours['wall_s']:7.1f} s wall  {ours['cpu_s']:7.1f} s CPU  peak {ours['peak_gib']:.2f} GiB")
    if theirs is not None:
        print(f"  nnU-Net v2       {theirs['wall_s']:7.1f} s wall  {theirs['cpu_s']:7.1f} s CPU  peak {theirs['peak_gib']:.2f} GiB")
        print(f"  ratio brainmets / nnU-Net: wall {ours['wall_s'] / theirs['wall_s']:.2f}, "
              f"CPU {ours['cpu_s'] / theirs['cpu_s']:.2f} (target <= 0.8)")


if __name__ == "__main__":
    main()
