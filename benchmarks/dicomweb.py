"""Speed of fetching a series from a DICOMweb archive: cold (every instance over WADO-RS), warm (from the
cache), and the sheet from the archive's answers; prints figures.

A clinical-sized series (256 x 256 x SLICES, 1 mm, one file per slice) is written and stored in the archive:
a local Orthanc with its DICOMweb plugin (`--orthanc`: the Debian packages `orthanc` and `orthanc-dicomweb`
must be installed; it runs on 127.0.0.1 with its storage in a temporary folder and is stopped at the end),
or an archive given by `--url` with credentials in the environment (README, "Working with a PACS").

Run: `python benchmarks/dicomweb.py --orthanc [--slices N]`
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from brainmets.dicom.dicomweb import Archive, DicomwebSettings
from brainmets.dicom.pacs_source import archive_sheet, fetch_series
from brainmets.dicom.series_writer import derived_uid, write_mr_series


def main() -> None:
    """Store one synthetic series, then time a cold fetch, a warm fetch and the sheet from the archive."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=176, help="slices of the series (256 x 256 each)")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--orthanc", action="store_true", help="start a local Orthanc for the benchmark")
    where.add_argument("--url", help="an archive's DICOMweb root (credentials from the environment)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="brainmets-dicomweb-bench-") as tmp:
        root = Path(tmp)
        data = np.random.default_rng(0).normal(400, 60, (256, 256, args.slices)).clip(0).astype(np.int16)
        study = derived_uid("dicomweb benchmark", str(args.slices), "study")
        write_mr_series(
            nib.Nifti1Image(data, np.eye(4)),
            root / "series",
            patient_id="BENCH-1",
            patient_name="Bench^One",
            study_instance_uid=study,
            study_date="20260105",
            series_number=5,
            series_description="T1 MPRAGE post",
            contrast_agent="Gadobutrol",
            frame_of_reference_uid=derived_uid("dicomweb benchmark", "frame"),
        )
        files = sorted((root / "series").glob("*.dcm"))
        megabytes = sum(f.stat().st_size for f in files) / 1e6
        if args.orthanc:
            sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
            from orthanc import USER, Orthanc

            server = Orthanc(root / "orthanc", "benchmark-only")
            server.start()
            environ = {"BRAINMETS_DICOMWEB_USER": USER, "BRAINMETS_DICOMWEB_PASSWORD": "benchmark-only"}
            url = server.url
        else:
            server, environ, url = None, dict(os.environ), args.url
        try:
            archive = Archive(url, DicomwebSettings(), environ=environ)
            if server is not None:
                start = time.perf_counter()
                server.upload(files)
                print(
                    f"stored {len(files)} instances ({megabytes:.1f} MB) through REST: "
                    f"{time.perf_counter() - start:.2f} s"
                )
            else:
                start = time.perf_counter()
                archive.store(study, [pydicom.dcmread(f) for f in files])
                print(
                    f"stored {len(files)} instances ({megabytes:.1f} MB) with STOW-RS: "
                    f"{time.perf_counter() - start:.2f} s"
                )
            series = str(pydicom.dcmread(files[0], stop_before_pixels=True).SeriesInstanceUID)
            for label in ("cold (WADO-RS)", "warm (cache)"):
                start = time.perf_counter()
                fetch_series(archive, study, series, root / "cache", root / f"fetched-{label[:4]}")
                seconds = time.perf_counter() - start
                print(
                    f"fetch {label}: {seconds:.2f} s, {megabytes / seconds:.1f} MB/s, "
                    f"{len(files) / seconds:.0f} instances/s"
                )
            start = time.perf_counter()
            sheet = archive_sheet(archive, ["BENCH-1"])
            print(f"sheet from the archive (metadata of {len(files)} instances): {time.perf_counter() - start:.2f} s, "
                  f"{len(sheet.sheet)} row(s)")  # fmt: skip
        finally:
            if server is not None:
                server.stop()


if __name__ == "__main__":
    main()
