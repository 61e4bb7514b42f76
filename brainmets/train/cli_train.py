"""`brainmets train`: train one cross-validation fold (one job per fold, one GPU per job)."""

from __future__ import annotations

import argparse

HELP = "Train one cross-validation fold of the U-Net on prepared cases (resumes an interrupted run)"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the command's arguments."""
    parser.add_argument("--cases", required=True, help="directory of prepared cases (results/training)")
    parser.add_argument("--fold", required=True, type=int, help="fold to train, 0 .. train.folds - 1")
    parser.add_argument("--model-dir", required=True, help="model directory; the fold writes MODEL_DIR/fold_<K>/")
    parser.add_argument("--config", default="config/config.yaml", help="configuration (model.preset, train.*)")
    parser.add_argument(
        "--threads", type=int, help="CPU threads for TensorFlow and the augmentation pipeline (default: all cores)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar, only errors")


def run(args: argparse.Namespace) -> None:
    """Claim a GPU (unless train.device is cpu), then train the fold."""
    from brainmets.gpu import claim_for_job
    from brainmets.network.threads import set_tensorflow_threads
    from brainmets.train.settings import load_settings

    settings = load_settings(args.config)
    claim = claim_for_job(settings.device, settings.gpu_lock_dir)  # held until the process exits
    if claim.device is not None:
        print(f"fold {args.fold}: GPU {claim.device} ({claim.source})", flush=True)

    from brainmets.train.loop import train_fold  # imports TensorFlow, after CUDA_VISIBLE_DEVICES is final

    set_tensorflow_threads(args.threads)
    train_fold(args.cases, args.fold, args.model_dir, settings, verbose=0 if args.quiet else 1, threads=args.threads)
