"""`brainmets convert-dicom`: one DICOM series (a folder) -> a NIfTI image with dcm2niix's sidecar JSON beside it."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "Convert the DICOM series of a folder to a NIfTI image (dcm2niix), refusing what is not one 3-D series."


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the arguments of `brainmets convert-dicom`."""
    parser.add_argument("folder", type=Path, help="folder holding the series' DICOM files (searched recursively)")
    parser.add_argument("--out", type=Path, required=True, help="converted image (.nii.gz); its .json sidecar beside")
    parser.add_argument(
        "--series-uid", default=None, help="SeriesInstanceUID of the series to convert, when the folder holds several"
    )


def run(args: argparse.Namespace) -> None:
    """Find, check and convert the series; print where the image went."""
    from brainmets.dicom.series import convert_series, sidecar_path

    out = convert_series(args.folder, args.out, args.series_uid)
    print(f"{args.folder} -> {out} (+ {sidecar_path(out).name})")
