"""`brainmets to-native`: put a patient-space map back on the grid of the scan the user gave."""

from __future__ import annotations

import argparse

HELP = "Resample a patient-space map onto a scan's native grid (label: nearest, map: linear)."


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the command-line arguments."""
    parser.add_argument("map", help="NIfTI map in patient space (full grid or a crop of it)")
    parser.add_argument("--scan-dir", required=True, help="the scan's preprocessed directory (holds preprocessing.json)")
    parser.add_argument("--kind", choices=("label", "map"), default="label", help="label: nearest neighbour; map: linear")
    parser.add_argument("--out", required=True, help="output NIfTI on the native grid, e.g. results/P/T/native/segmentation.nii.gz")


def run(args: argparse.Namespace) -> None:
    """Resample and write the map."""
    from brainmets.preprocess.native import map_file_to_native

    map_file_to_native(args.map, args.scan_dir, args.out, kind=args.kind)
