"""`brainmets preprocess`: one scan from its native file to patient space (one workflow job per scan)."""

from __future__ import annotations

import argparse

HELP = "Preprocess one T1-CE scan (RAS, resample, skull strip, N4, register to baseline, z-score, crop)."


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the command-line arguments."""
    parser.add_argument("image", help="the scan's NIfTI file (.nii or .nii.gz), any orientation")
    parser.add_argument("--out-dir", required=True, help="scan directory to write, e.g. results/P01/2024-01-15")
    parser.add_argument("--mask", help="ground-truth label map on the image's native grid, carried into patient space")
    parser.add_argument(
        "--baseline",
        metavar="BASELINE_DIR",
        help="the patient's preprocessed baseline scan directory; omit for the baseline itself",
    )
    parser.add_argument("--config", help="YAML configuration with a `preprocess` section (default: built-in defaults)")
    parser.add_argument("--skullstrip", choices=("hdbet", "deepbet"), help="override preprocess.skullstrip.method")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="override preprocess.skullstrip.device")


def run(args: argparse.Namespace) -> None:
    """Preprocess the scan and print where the record went."""
    import dataclasses

    from brainmets.preprocess.pipeline import RECORD, preprocess_scan
    from brainmets.preprocess.settings import load_settings

    settings = load_settings(args.config)
    overrides = {k: v for k, v in (("method", args.skullstrip), ("device", args.device)) if v is not None}
    if overrides:
        settings = dataclasses.replace(settings, skullstrip=dataclasses.replace(settings.skullstrip, **overrides))
    record = preprocess_scan(args.image, args.out_dir, settings=settings, mask=args.mask, baseline_dir=args.baseline)
    print(f"{args.out_dir}/{RECORD}: {record['timings_s']['total']:.1f} s, brain {record['brain_volume_ml']:.0f} mL")
