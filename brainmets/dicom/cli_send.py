"""`brainmets send`: a scan's DICOM outputs (SEG, SR, parametric maps) stored in a DICOMweb archive, with a receipt."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "Store DICOM outputs (SEG, SR, parametric maps) in a DICOMweb archive (STOW-RS); a receipt per scan."


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the arguments of `brainmets send`."""
    parser.add_argument(
        "out_dir",
        type=Path,
        help="a scan's DICOM output folder (results/P/T/dicom), or a results folder: every dicom/ folder under it",
    )
    parser.add_argument(
        "--dicomweb", default=None, help="DICOMweb root URL (default: the configuration's dicomweb.url)"
    )
    parser.add_argument("--config", type=Path, default=None, help="configuration whose dicomweb section applies")
    parser.add_argument(
        "--receipt", type=Path, default=None, help="receipt file (one scan folder only; default sent.json in it)"
    )


def run(args: argparse.Namespace) -> None:
    """Send each folder's objects and write its receipt."""
    from brainmets.config import read_section
    from brainmets.dicom.dicomweb import archive_for
    from brainmets.dicom.pacs_send import result_objects, send_folder
    from brainmets.errors import BrainmetsError

    if not args.out_dir.is_dir():
        raise BrainmetsError(f"{args.out_dir}: folder not found; give a scan's DICOM output folder or a results folder")
    if result_objects(args.out_dir):
        folders = [args.out_dir]
    else:  # a results folder: each scan's DICOM outputs, results/<patient>/<timepoint>/dicom
        folders = sorted({p.parent for p in args.out_dir.rglob("dicom/*.dcm")})
    if not folders:
        raise BrainmetsError(f"{args.out_dir}: no DICOM objects (*.dcm) in it or in a dicom/ folder under it")
    if args.receipt is not None and len(folders) > 1:
        raise BrainmetsError(f"{args.out_dir}: --receipt names one file but {len(folders)} folders hold objects")
    archive = archive_for(args.dicomweb, read_section(args.config, "dicomweb"))
    for folder in folders:
        send_folder(archive, folder, args.receipt)
