"""`brainmets preprocess`: one scan from its native file to patient space (one workflow job per scan)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from brainmets.config import config_schema

if TYPE_CHECKING:
    from brainmets.preprocess.settings import PreprocessSettings

HELP = "Preprocess one T1-CE scan (RAS, resample, skull strip, N4, register to baseline, z-score, crop)."


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the command-line arguments."""
    parser.add_argument("image", nargs="?", help="the scan's NIfTI file (.nii or .nii.gz), any orientation")
    parser.add_argument("--image", dest="image_option", metavar="IMAGE", help="the same, given as an option")
    parser.add_argument("--out-dir", required=True, help="scan directory to write, e.g. results/P01/2024-01-15")
    parser.add_argument("--mask", help="ground-truth label map on the image's native grid, carried into patient space")
    parser.add_argument(
        "--baseline",
        "--reference",
        dest="baseline",
        metavar="BASELINE",
        help="the patient's preprocessed baseline scan directory (or any file in it); omit for the baseline itself",
    )
    parser.add_argument("--config", help="YAML configuration with a `preprocess` section (default: built-in defaults)")
    add_skullstrip_argument(parser)
    parser.add_argument(
        "--device", choices=_skullstrip_keys()["device"]["enum"], help="override preprocess.skullstrip.device"
    )
    add_skull_stripped_argument(parser)
    parser.add_argument(
        "--threads", type=int, help="CPU threads for ANTs/ITK and the skull-stripping network (default: all)"
    )


def _skullstrip_keys() -> dict:
    """The schema of the `preprocess.skullstrip` keys."""
    return config_schema()["properties"]["preprocess"]["properties"]["skullstrip"]["properties"]


def add_skullstrip_argument(parser: argparse.ArgumentParser) -> None:
    """Declare --skullstrip, the brain extractor overriding preprocess.skullstrip.method."""
    choices = _skullstrip_keys()["method"]["enum"]
    parser.add_argument("--skullstrip", choices=choices, help="override preprocess.skullstrip.method")


def add_skull_stripped_argument(parser: argparse.ArgumentParser) -> None:
    """Declare --skull-stripped / --no-skull-stripped (default: preprocess.skull_stripped, auto-detection)."""
    parser.add_argument(
        "--skull-stripped",
        action=argparse.BooleanOptionalAction,
        help="the input is already skull-stripped (its nonzero region is the brain) / is a head to strip; "
        "default: preprocess.skull_stripped (auto: detected from the image)",
    )


def override_skullstrip(
    settings: PreprocessSettings,
    *,
    method: str | None = None,
    device: str | None = None,
    skull_stripped: bool | None = None,
) -> PreprocessSettings:
    """The preprocessing settings with command-line overrides of the stripper, its device and --skull-stripped.

    An override of None keeps the configured value.
    """
    import dataclasses

    overrides: dict[str, Any] = {k: v for k, v in (("method", method), ("device", device)) if v is not None}
    if overrides:
        settings = dataclasses.replace(settings, skullstrip=dataclasses.replace(settings.skullstrip, **overrides))
    if skull_stripped is not None:
        settings = dataclasses.replace(settings, skull_stripped=skull_stripped)
    return settings


def set_threads(threads: int | None) -> None:
    """Limit ITK's and torch's CPU threads (call before ANTs or torch start); None keeps all cores."""
    import os

    if threads is None:
        return
    if threads < 1:
        from brainmets.errors import BrainmetsError

        raise BrainmetsError(f"--threads is {threads}; use 1 or more")
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)


def run(args: argparse.Namespace) -> None:
    """Preprocess the scan and print where the record went."""
    from pathlib import Path

    from brainmets.errors import BrainmetsError
    from brainmets.preprocess.pipeline import RECORD, preprocess_scan
    from brainmets.preprocess.settings import load_settings

    if (args.image is None) == (args.image_option is None):
        raise BrainmetsError("give the scan once, either as IMAGE or as --image IMAGE")
    image = args.image or args.image_option
    baseline = args.baseline
    if baseline is not None and Path(baseline).is_file():
        baseline = str(Path(baseline).parent)
    set_threads(args.threads)
    settings = override_skullstrip(
        load_settings(args.config), method=args.skullstrip, device=args.device, skull_stripped=args.skull_stripped
    )
    record = preprocess_scan(image, args.out_dir, settings=settings, mask=args.mask, baseline_dir=baseline)
    print(
        f"{Path(args.out_dir) / RECORD}: {record['timings_s']['total']:.1f} s, brain {record['brain_volume_ml']:.0f} mL"
    )
