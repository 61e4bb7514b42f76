"""`brainmets prepare-case`: turn a preprocessed image + label into the arrays training reads."""

from __future__ import annotations

import argparse

HELP = "Stack a preprocessed image, its lesion label and boundary weights into a training case directory"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the command's arguments."""
    parser.add_argument("--image", required=True, help="preprocessed image (z-scored brain, background 0; NIfTI)")
    parser.add_argument("--label", required=True, help="ground-truth lesion mask on the same grid (NIfTI)")
    parser.add_argument("--out-dir", required=True, help="case directory to write (data.npy, case.json)")
    parser.add_argument(
        "--patient", help="patient id that keeps all of a patient's scans in one fold (default: the directory name)"
    )
    parser.add_argument("--weights", help="precomputed weight map from `brainmets weight-map` (default: computed here)")
    parser.add_argument("--config", help="configuration whose train.weight_map sets the weight parameters")


def run(args: argparse.Namespace) -> None:
    """Write the case."""
    from brainmets.train.cases import prepare_case
    from brainmets.train.settings import load_settings

    params = load_settings(args.config).weight_map if args.config else None
    prepare_case(args.image, args.label, args.out_dir, patient=args.patient, weights_path=args.weights, params=params)
