"""`brainmets track`: persistent lesion ids over one patient's timepoints, with per-lesion measurements."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "Track lesions over a patient's timepoints (masks on one grid): lesion table and label maps of lesion ids."


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the arguments of `brainmets track`."""
    parser.add_argument(
        "manifest",
        type=Path,
        help="TSV with columns timepoint (ISO date) and mask (binary NIfTI, relative to the manifest's folder "
        "or absolute); every mask on the same patient-space grid",
    )
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="output folder: writes OUT/lesions.tsv and OUT/tracked/<timepoint>.nii.gz",
    )
    parser.add_argument(
        "--config", type=Path, help="YAML configuration: `track` section (matching) and `rano` (measurability)"
    )
    parser.add_argument("--patient", help="write this id into a leading patient_id column of lesions.tsv")
    parser.add_argument(
        "--review",
        type=Path,
        help="a reviewer's review.tsv (lesion_id, timepoint, decision reject/accept/merge, into) to apply; "
        "ids are those of tracking without it (brainmets.track.corrections)",
    )


def run(args: argparse.Namespace) -> None:
    """Track the manifest's masks and write the lesion table and tracked label maps atomically."""
    from brainmets.rano.settings import load_settings as load_rano_settings
    from brainmets.track.settings import load_settings
    from brainmets.track.track import track_manifest

    settings, rano_settings = load_settings(args.config), load_rano_settings(args.config)
    track_manifest(args.manifest, args.out, settings, rano_settings, args.patient, args.review)
