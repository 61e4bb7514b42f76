"""`brainmets predict`: one preprocessed patient-space scan -> probability, label, uncertainty maps, lesion table."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from brainmets.gpu import GpuClaim
    from brainmets.inference.settings import InferenceSettings

HELP = "Predict lesions with uncertainty on a preprocessed (patient-space, z-scored) scan with a trained model."


def batch_size_argument(value: str) -> int | str:
    """The --batch-size value: `auto` or a whole number of windows."""
    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is neither auto nor a whole number of windows") from None


def add_inference_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options shared by `predict` and `segment`: model, configuration and per-run overrides.

    Without an option, the `inference` section of --config decides; its defaults are those of the schema.
    """
    from brainmets.config import config_schema
    from brainmets.inference.settings import InferenceSettings

    default = InferenceSettings()
    keys = config_schema()["properties"]["inference"]["properties"]
    parser.add_argument("--model", type=Path, required=True, help="model directory (model.json + fold_<k>/)")
    parser.add_argument("--config", type=Path, help="YAML configuration whose `inference` section sets the defaults")
    parser.add_argument("--overlap", type=float, help=f"sliding-window overlap in [0, 1) (default {default.overlap})")
    parser.add_argument(
        "--mirror-axes",
        type=int,
        nargs="*",
        metavar="AXIS",
        help=f"test-time mirroring axes (default {' '.join(map(str, default.mirror_axes))}); give none to switch "
        "mirroring off",
    )
    parser.add_argument(
        "--min-lesion-ml",
        type=float,
        help=f"drop predicted lesions smaller than this (mL; default {default.min_lesion_ml:g})",
    )
    parser.add_argument(
        "--batch-size",
        type=batch_size_argument,
        help=f"windows per network call, or auto (default {default.batch_size}: as many as fill one 128^3 window, "
        "at most 8)",
    )
    parser.add_argument(
        "--device", choices=keys["device"]["enum"], help=f"where the network runs (default {default.device})"
    )
    parser.add_argument(
        "--weights", choices=keys["weights"]["enum"], help=f"which checkpoint of each fold (default {default.weights})"
    )
    parser.add_argument("--threads", type=int, help="CPU threads for TensorFlow (default: all)")
    parser.add_argument(
        "--recipe",
        choices=keys["recipe"]["enum"],
        help=f"inference recipe (default {default.recipe}): default is brainmets' own, published that of "
        "Brain-Mets-Seg predict.py (overlap 0.75, 8 flips)",
    )
    parser.add_argument(
        "--precision",
        choices=keys["precision"]["enum"],
        help=f"network arithmetic (default {default.precision}: bfloat16 where the CPU or GPU has it natively, "
        "else float32)",
    )


def settings_from_args(args: argparse.Namespace) -> InferenceSettings:
    """InferenceSettings from the `inference` section of --config (if given) with the command-line overrides.

    The overrides are checked against the schema like the file (the file itself was checked before).
    """
    from brainmets.inference.settings import settings_from_config
    from brainmets.io import read_yaml

    section = dict((read_yaml(args.config, allow_empty=True) if args.config else {}).get("inference") or {})
    options = ("overlap", "mirror_axes", "min_lesion_ml", "batch_size", "device", "weights", "recipe", "precision")
    section.update({key: getattr(args, key) for key in options if getattr(args, key) is not None})
    return settings_from_config({"inference": section}, "command line")


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the arguments of `brainmets predict`."""
    parser.add_argument(
        "--image",
        type=Path,
        required=True,
        help=(
            "z-scored image in patient space "
            "(the preprocessing stage's t1ce_zscore.nii.gz brain crop, or the whole grid)"
        ),
    )
    parser.add_argument(
        "--brain-mask", type=Path, required=True, help="brain mask in patient space; maps are written on its grid"
    )
    parser.add_argument("--out-dir", type=Path, required=True, help="folder for the maps and lesions.tsv")
    parser.add_argument(
        "--native-dir",
        type=Path,
        help="also write the segmentation, probability and total entropy on the native grid of the preprocessed "
        "scan in --out-dir (its preprocessing.json), into this folder (as `brainmets to-native`)",
    )
    parser.add_argument(
        "--overlay",
        type=Path,
        help="also draw the report picture (PNG): lesions and total entropy over --out-dir's t1ce.nii.gz",
    )
    parser.add_argument("--title", default="", help="title of the --overlay picture")
    add_inference_arguments(parser)


def claim_gpu_for_inference(device: str) -> GpuClaim:
    """One GPU for this inference job (lock files locally, SLURM's GPU under SLURM); logs which one."""
    from brainmets.gpu import claim_for_job

    claim = claim_for_job(device)
    if claim.device is not None:
        logging.getLogger(__name__).info("GPU %s (%s)", claim.device, claim.source)
    return claim


def write_native_and_overlay(
    paths: dict[str, Path], scan_dir: Path, native_dir: Path | None, overlay: Path | None, title: str
) -> None:
    """The predicted scan's segmentation, probability and total entropy on its native grid, and its report picture.

    In the job that predicted the scan, so that the workflow starts no further processes for them.
    """
    if native_dir is not None:
        from brainmets.preprocess.native import maps_to_native

        moved = [("segmentation", "label"), ("probability", "map"), ("total_entropy", "map")]
        maps_to_native([(paths[name], kind, native_dir / paths[name].name) for name, kind in moved], scan_dir)
    if overlay is not None:
        from brainmets.figures import lesion_overlay_figure
        from brainmets.preprocess.pipeline import IMAGE

        lesion_overlay_figure(scan_dir / IMAGE, paths["segmentation"], paths["total_entropy"], overlay, title)


def run(args: argparse.Namespace) -> None:
    """Load the model, predict the scan and write its outputs atomically (and, on request, native maps and picture)."""
    from brainmets.inference.pipeline import load_segmenter, predict_scan
    from brainmets.network.threads import set_tensorflow_threads

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    settings = settings_from_args(args)
    if args.native_dir is not None or args.overlay is not None:
        from brainmets.preprocess.pipeline import read_record

        read_record(args.out_dir)  # a scan folder written by `brainmets preprocess`, checked before any work
    claim = claim_gpu_for_inference(settings.device)  # the GPU lock is held until the prediction is written
    set_tensorflow_threads(args.threads)
    segmenter = load_segmenter(args.model, settings)
    paths = predict_scan(segmenter, args.image, args.brain_mask, args.out_dir)
    del claim  # releases the GPU lock
    write_native_and_overlay(paths, args.out_dir, args.native_dir, args.overlay, args.title)
