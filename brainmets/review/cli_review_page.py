"""`brainmets review-page`: the self-contained review page of one patient (NiiVue, lesion tables, flags, timeline)."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "Write a patient's review page: every visit in NiiVue, lesion tables with flags, the RANO-BM timeline."


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the arguments of `brainmets review-page`."""
    parser.add_argument(
        "patient_dir",
        type=Path,
        help="the patient's results folder: lesions.tsv, rano_response.tsv, tracked/<timepoint>.nii.gz and "
        "<timepoint>/{brain,uncertainty_total_entropy}.nii.gz (optional review.tsv: the decisions so far)",
    )
    parser.add_argument("--out", type=Path, required=True, help="page to write (HTML)")
    parser.add_argument("--patient", help="patient id (default: the folder's name)")
    parser.add_argument("--clinical", type=Path, help="clinical table for RANO-BM (the sample sheet qualifies)")
    parser.add_argument("--config", type=Path, help="YAML configuration: `review` (flags) and `rano` sections")


def run(args: argparse.Namespace) -> None:
    """Build the page and print its size."""
    from brainmets.rano.rano import read_clinical_table
    from brainmets.rano.settings import load_settings as load_rano_settings
    from brainmets.review.page import build_review_page
    from brainmets.review.settings import load_settings

    clinical = None if args.clinical is None else read_clinical_table(args.clinical)
    sizes = build_review_page(
        args.patient_dir,
        args.out,
        patient=args.patient,
        clinical=clinical,
        settings=load_settings(args.config),
        rano_settings=load_rano_settings(args.config),
    )
    volumes = sum(v for k, v in sizes.items() if k not in ("page", "viewer"))
    print(
        f"{args.out}: {sizes['page'] / 1e6:.2f} MB "
        f"(viewer {sizes['viewer'] / 1e6:.2f} MB, volumes {volumes / 1e6:.2f} MB)"
    )
