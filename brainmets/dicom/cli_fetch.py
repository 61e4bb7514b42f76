"""`brainmets dicomweb-fetch`: one series of a study retrieved from a DICOMweb archive into a resumable cache."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "Retrieve a study's series from a DICOMweb archive (QIDO-RS, WADO-RS) into a complete, checked folder."


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the arguments of `brainmets dicomweb-fetch`."""
    parser.add_argument("--study-uid", required=True, help="StudyInstanceUID of the study")
    parser.add_argument(
        "--series-uid", default=None, help="SeriesInstanceUID of the series (default: the post-contrast T1, picked)"
    )
    parser.add_argument("--out", type=Path, required=True, help="folder to hold the complete series")
    parser.add_argument(
        "--dicomweb", default=None, help="DICOMweb root URL (default: the configuration's dicomweb.url)"
    )
    parser.add_argument("--config", type=Path, default=None, help="configuration whose dicomweb section applies")
    parser.add_argument(
        "--cache", type=Path, default=None, help="instance cache (default: the configuration's dicomweb.cache)"
    )


def run(args: argparse.Namespace) -> None:
    """Fetch what is missing, check it, and make the series folder."""
    from brainmets.config import read_section
    from brainmets.dicom.dicomweb import archive_for
    from brainmets.dicom.pacs_source import fetch_series

    section = read_section(args.config, "dicomweb")
    archive = archive_for(args.dicomweb, section)
    fetch_series(archive, args.study_uid, args.series_uid or None, args.cache or section["cache"], args.out)
