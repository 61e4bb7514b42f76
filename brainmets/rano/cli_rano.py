"""`brainmets rano`: RANO-BM response per patient and visit from `track` lesion tables."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from brainmets.config import config_schema
from brainmets.rano.settings import RanoSettings

HELP = "RANO-BM response (target, non-target, new lesions, overall, confirmation) from tracked lesion tables."


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the arguments of `brainmets rano`."""
    parser.add_argument(
        "lesions",
        type=Path,
        nargs="+",
        help="lesion table(s) written by `brainmets track`; several files (or a patient_id column) cover a cohort",
    )
    parser.add_argument(
        "--clinical",
        type=Path,
        help="TSV with timepoint and optional patient_id, steroid_dose_mg, clinical_status, baseline "
        "(the sample sheet qualifies; other columns are ignored)",
    )
    parser.add_argument("--config", type=Path, help="YAML configuration whose `rano` section sets the thresholds")
    parser.add_argument(
        "--after-progression",
        choices=config_schema()["properties"]["rano"]["properties"]["after_progression"]["enum"],
        help="visits after the first progression: stop (responses left empty) or rebaseline (the progression "
        f"scan opens a new assessment period); default: rano.after_progression of --config, else "
        f"{RanoSettings().after_progression}",
    )
    parser.add_argument(
        "--patient",
        help="patient id for a lesion table without a patient_id column (default: the name of the folder holding it)",
    )
    parser.add_argument("--out", type=Path, required=True, help="response table to write (TSV)")
    parser.add_argument("--best-out", type=Path, help="also write the best overall response per patient (TSV)")
    parser.add_argument(
        "--trajectory",
        help="also draw each patient's sum-of-diameters trajectory (PNG); with several patients the path "
        "must contain {patient}",
    )
    parser.add_argument(
        "--timeline",
        help="also draw each patient's lesion timeline (PNG); with several patients the path must contain {patient}",
    )


def run(args: argparse.Namespace) -> None:
    """Assess every patient and write the response table (and optional best-response table and pictures)."""
    from brainmets.errors import BrainmetsError
    from brainmets.io import write_tsv
    from brainmets.rano.rano import assess, best_overall_response, read_clinical_table, read_lesion_tables
    from brainmets.rano.settings import load_settings

    settings = load_settings(args.config)
    if args.after_progression is not None:
        settings = dataclasses.replace(settings, after_progression=args.after_progression)
    lesions = read_lesion_tables(args.lesions, args.patient)
    clinical = None if args.clinical is None else read_clinical_table(args.clinical)
    several = lesions["patient_id"].nunique() > 1
    for option in ("trajectory", "timeline"):
        template = getattr(args, option)
        if template and several and "{patient}" not in template:
            raise BrainmetsError(f"--{option} {template}: several patients need a path containing {{patient}}")
    response = assess(lesions, clinical, settings)
    write_tsv(response, args.out)
    if args.best_out is not None:
        write_tsv(best_overall_response(response), args.best_out)
    if args.trajectory or args.timeline:
        from brainmets.rano.pictures import draw_patient_pictures

        draw_patient_pictures(lesions, response, args.trajectory, args.timeline)
