"""`brainmets segment`: raw T1-CE scans -> preprocessing, ensemble inference, uncertainty and native maps."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from brainmets.inference.cli_predict import add_inference_arguments
from brainmets.preprocess.cli_preprocess import add_skull_stripped_argument, add_skullstrip_argument

HELP = "Segment metastases with uncertainty on raw T1-CE scans with a trained model (no workflow needed)."


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the arguments of `brainmets segment`."""
    parser.add_argument(
        "images",
        nargs="+",
        type=Path,
        metavar="IMAGE",
        help="T1-CE scans: NIfTI files (.nii or .nii.gz) or folders each holding a DICOM series",
    )
    parser.add_argument(
        "--series-uid",
        action="append",
        default=[],
        metavar="UID",
        help="SeriesInstanceUID of the series to use in a DICOM folder that holds several; repeatable (one per folder)",
    )
    parser.add_argument("--out-dir", type=Path, required=True, help="results go to OUT_DIR/<scan name>/")
    add_inference_arguments(parser)
    add_skullstrip_argument(parser)
    add_skull_stripped_argument(parser)


def run(args: argparse.Namespace) -> None:
    """Load the model once, then preprocess, predict and map back every scan."""
    from brainmets.inference.cli_predict import settings_from_args
    from brainmets.inference.pipeline import load_segmenter
    from brainmets.inference.segment import segment_scans
    from brainmets.network.threads import set_tensorflow_threads
    from brainmets.preprocess.cli_preprocess import override_skullstrip
    from brainmets.preprocess.settings import load_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    settings = settings_from_args(args)
    preprocess_settings = override_skullstrip(
        load_settings(args.config), method=args.skullstrip, skull_stripped=args.skull_stripped
    )
    set_tensorflow_threads(args.threads)
    segmenter = load_segmenter(args.model, settings)
    scans = segment_scans(args.images, segmenter, args.out_dir, preprocess_settings, series_uids=args.series_uid)
    for name, folder in scans.items():
        print(f"{name}: {folder}")
