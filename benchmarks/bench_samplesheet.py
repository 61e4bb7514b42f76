"""Time `load_samples` on a sheet as large as the biggest cohort the workflow plans for (2,431 scans).

Prints the time without the per-file checks, with the header checks the workflow runs at DAG-building
time (existence, shape, spacing, affine, mask grid) and with the complete read of `brainmets
check-samples` (every image and mask decompressed and checked).
Usage: python benchmarks/bench_samplesheet.py [N_ROWS]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from brainmets.io import save_nifti
from brainmets.samplesheet import load_samples


def main(n_rows: int = 2431) -> None:
    """Write n_rows small gzipped NIfTI images + masks and a sheet naming them; print load times (s)."""
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        lines = ["patient_id\ttimepoint\timage\tmask\ttraining"]
        for i in range(n_rows):
            image = save_nifti(rng.random((16, 16, 16)).astype(np.float32), np.eye(4), root / f"s{i}" / "t1ce.nii.gz")
            mask = save_nifti(
                (rng.random((16, 16, 16)) > 0.9).astype(np.uint8), np.eye(4), root / f"s{i}" / "mask.nii.gz"
            )
            lines.append(f"p{i // 3:04d}\t{2020 + i % 3}-01-01\t{image}\t{mask}\t{'true' if i % 5 == 0 else 'false'}")
        sheet = root / "samples.tsv"
        sheet.write_text("\n".join(lines) + "\n")
        for check_files, read_data in ((False, False), (True, False), (True, True)):
            start = time.perf_counter()
            samples = load_samples(sheet, check_files=check_files, read_data=read_data)
            elapsed = time.perf_counter() - start
            per_row_ms = 1000 * elapsed / len(samples)
            print(
                f"rows={len(samples)} check_files={check_files} read_data={read_data}: {elapsed:.2f} s "
                f"({per_row_ms:.2f} ms per row)"
            )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2431)
