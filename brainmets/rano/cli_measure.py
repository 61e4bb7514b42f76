"""`brainmets measure`: one row per lesion of a binary mask (volume, RANO-BM diameters, centroid)."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "Measure every lesion (26-connected component) of a binary mask: volume, LD/PD on axial slices, centroid."


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the arguments of `brainmets measure`."""
    parser.add_argument("mask", type=Path, help="binary NIfTI mask (0/1); an empty mask gives an empty table")
    parser.add_argument("--out", type=Path, required=True, help="lesion table to write (TSV)")
    parser.add_argument(
        "--config", type=Path, help="YAML configuration whose `rano` section sets the measurability thresholds"
    )


def run(args: argparse.Namespace) -> None:
    """Measure the mask's lesions and write the table atomically."""
    from brainmets.io import load_mask, write_tsv
    from brainmets.rano.measure import measure_lesions
    from brainmets.rano.settings import load_settings

    settings = load_settings(args.config)
    mask, img = load_mask(args.mask)
    write_tsv(measure_lesions(mask, img.affine, settings), args.out)
