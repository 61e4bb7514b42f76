"""`brainmets finalise-model`: write MODEL_DIR/model.json once every fold has finished."""

from __future__ import annotations

import argparse

HELP = "Write the model directory's model.json after all folds have been trained"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the command's arguments."""
    parser.add_argument("--model-dir", required=True, help="model directory holding fold_<k>/ sub-directories")
    parser.add_argument(
        "--config", help="configuration whose train.folds lists the folds to require (default: every fold_<k>)"
    )


def run(args: argparse.Namespace) -> None:
    """Check the folds and write model.json."""
    from brainmets.network.modeldir import finalise_model_dir
    from brainmets.train.settings import load_settings

    folds = list(range(load_settings(args.config).folds)) if args.config else None
    finalise_model_dir(args.model_dir, folds)
