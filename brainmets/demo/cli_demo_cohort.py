"""`brainmets demo-cohort`: write the synthetic demo cohort with its ground truth and sample sheet."""

from __future__ import annotations

import argparse

from brainmets.demo.settings import DemoSettings

HELP = "Generate the synthetic demo cohort (T1-CE scans, truth label maps, RANO-BM truth, sample sheet)."


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of `brainmets demo-cohort`; their defaults are those of the `demo` section."""
    default = DemoSettings()
    parser.add_argument("--out", required=True, help="output directory (also the path prefix in its samples.tsv)")
    parser.add_argument(
        "--patients", type=int, default=default.patients, help="longitudinal patients (default %(default)s)"
    )
    parser.add_argument(
        "--timepoints",
        type=int,
        default=default.timepoints,
        help="scans per longitudinal patient, 2-12 (default %(default)s)",
    )
    parser.add_argument(
        "--train", type=int, default=default.train, help="training subjects, one scan each (default %(default)s)"
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=default.seed,
        help="random seed; the same seed gives the same cohort (default %(default)s)",
    )
    parser.add_argument(
        "--scale",
        type=float,
        default=default.scale,
        help="voxel-size multiplier, 0.5-4; 2 gives an 8x smaller cohort for tests (default %(default)s)",
    )
    parser.add_argument("--workers", type=int, default=1, help="subjects generated in parallel (default 1)")
    parser.add_argument(
        "--dicom",
        action="store_true",
        help="also write each visit of the longitudinal patients as a DICOM study under OUT/dicom "
        "(localiser, non-contrast T1, post-contrast T1), the input of `brainmets dicom-sheet`",
    )


def run(args: argparse.Namespace) -> None:
    """Check the options against the `demo` section's schema, generate the cohort and print its sample sheet."""
    from brainmets.demo.cohort import generate_cohort
    from brainmets.demo.settings import settings_from_config
    from brainmets.errors import BrainmetsError

    options = {key: getattr(args, key) for key in ("out", "patients", "timepoints", "train", "seed", "scale")}
    settings = settings_from_config({"demo": options}, "demo-cohort")
    try:
        sheet = generate_cohort(args.out, settings, workers=args.workers, dicom=args.dicom)
    except OSError as error:
        problem = error.strerror or error
        raise BrainmetsError(f"{args.out}: cannot write the demo cohort ({problem}); choose a writable --out") from None
    print(f"demo cohort written; sample sheet: {sheet}")
    if args.dicom:
        print(f"DICOM studies: {sheet.parent / 'dicom'} (make a sheet with `brainmets dicom-sheet`)")
