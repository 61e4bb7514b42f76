"""`brainmets demo-cohort`: write the synthetic demo cohort with its ground truth and sample sheet."""

from __future__ import annotations

import argparse

HELP = "Generate the synthetic demo cohort (T1-CE scans, truth label maps, RANO-BM truth, sample sheet)."


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of `brainmets demo-cohort`."""
    parser.add_argument("--out", required=True, help="output directory (also the path prefix in its samples.tsv)")
    parser.add_argument("--patients", type=int, default=4, help="longitudinal patients (default 4)")
    parser.add_argument("--timepoints", type=int, default=3, help="scans per longitudinal patient (default 3)")
    parser.add_argument("--train", type=int, default=12, help="training subjects, one scan each (default 12)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same cohort")
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="voxel-size multiplier; 2 gives an 8x smaller cohort for tests (default 1)",
    )
    parser.add_argument("--workers", type=int, default=1, help="subjects generated in parallel (default 1)")


def run(args: argparse.Namespace) -> None:
    """Generate the cohort and print where its sample sheet is."""
    from brainmets.demo.cohort import generate_cohort
    from brainmets.errors import BrainmetsError

    try:
        sheet = generate_cohort(
            args.out,
            patients=args.patients,
            timepoints=args.timepoints,
            train=args.train,
            seed=args.seed,
            scale=args.scale,
            workers=args.workers,
        )
    except OSError as error:
        problem = error.strerror or error
        raise BrainmetsError(f"{args.out}: cannot write the demo cohort ({problem}); choose a writable --out") from None
    print(f"demo cohort written; sample sheet: {sheet}")
