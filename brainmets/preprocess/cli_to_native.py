"""`brainmets to-native`: put patient-space maps back on the grid of the scan the user gave."""

from __future__ import annotations

import argparse

HELP = "Resample patient-space maps onto a scan's native grid (labels: signed distance, maps: linear)."


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the command-line arguments: one MAP with --kind/--out, or --labels/--maps with --out-dir."""
    parser.add_argument("map", nargs="?", help="one NIfTI map in patient space (full grid or a crop of it)")
    parser.add_argument(
        "--scan-dir", required=True, help="the scan's preprocessed directory (holds preprocessing.json)"
    )
    parser.add_argument(
        "--kind", choices=("label", "map"), default="label", help="for MAP: label (integer labels) or map (linear)"
    )
    parser.add_argument(
        "--out", help="for MAP: output NIfTI on the native grid, e.g. results/P/T/native/segmentation.nii.gz"
    )
    parser.add_argument("--labels", nargs="+", default=[], metavar="LABELS", help="label maps to move")
    parser.add_argument(
        "--maps", nargs="+", default=[], metavar="MAPS", help="probability/uncertainty maps to move (linear)"
    )
    parser.add_argument("--out-dir", help="with --labels/--maps: folder for the native maps, same file names")
    parser.add_argument(
        "--label-interpolation",
        default="distance",
        help=(
            "label maps: distance (cubic B-spline of the signed distance; smooth surfaces, default) "
            "or nearest (neighbour)"
        ),
    )


def run(args: argparse.Namespace) -> None:
    """Resample and write each map."""
    from pathlib import Path

    from brainmets.errors import BrainmetsError
    from brainmets.preprocess.native import maps_to_native

    if args.map is not None:
        if args.out is None or args.labels or args.maps or args.out_dir:
            raise BrainmetsError(
                "with MAP give --out (and --kind); use --labels/--maps with --out-dir for several maps"
            )
        jobs = [(args.map, args.kind, Path(args.out))]
    else:
        if not (args.labels or args.maps) or args.out_dir is None:
            raise BrainmetsError("give MAP with --out, or --labels/--maps with --out-dir")
        names = [Path(p).name for p in args.labels + args.maps]
        if len(set(names)) != len(names):
            raise BrainmetsError(
                f"two inputs share a file name ({', '.join(names)}); they would overwrite each other in --out-dir"
            )
        jobs = [(p, "label", Path(args.out_dir) / Path(p).name) for p in args.labels]
        jobs += [(p, "map", Path(args.out_dir) / Path(p).name) for p in args.maps]
    maps_to_native(jobs, args.scan_dir, labels=args.label_interpolation)
