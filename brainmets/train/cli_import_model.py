"""`brainmets import-model`: the published Brain-Mets-Seg fold checkpoints -> a brainmets model directory."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

HELP = "Import published Brain-Mets-Seg checkpoints (trained_models/Model_<k>) into a model directory"

FORMATS = ("brain-mets-seg",)


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the arguments of `brainmets import-model`."""
    parser.add_argument(
        "src",
        type=Path,
        metavar="SRC",
        help="the published trained_models folder (any of its Model_<k> folders) or one Model_<k> folder",
    )
    parser.add_argument("--format", choices=FORMATS, required=True, help="checkpoint format of SRC")
    parser.add_argument("--out", type=Path, required=True, help="new model directory (must not exist or be empty)")


def run(args: argparse.Namespace) -> None:
    """Read and check every fold, then write the model directory."""
    from brainmets.train.published_import import import_brain_mets_seg

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    out = import_brain_mets_seg(args.src, args.out)
    print(out)
