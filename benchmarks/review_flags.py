"""How well the review page's uncertainty flag separates false-positive lesions from true ones, on a finished run.

For every analysis scan with a ground-truth mask, each predicted lesion (26-connected component of the
native-grid segmentation) is a false positive when it touches no truth voxel; its score is the mean total
entropy over its voxels (native/uncertainty_total_entropy.nii.gz, the patient-space map the review page
reads, resampled with the segmentation). Prints the lesion-level AUROC, the sensitivity (false positives
flagged) and the share of true lesions flagged at the configured `review.uncertainty_flag_bits`, and the
highest threshold that flags 90 % of the false positives, a candidate for that setting.

Needs a finished run (`make demo`): `python benchmarks/review_flags.py --results results [--samples
config/samples.tsv] [--config config/config.yaml]`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # the figures of merit of the tests

from brainmets.io import load_mask, load_nifti  # noqa: E402
from brainmets.review.settings import load_settings  # noqa: E402
from brainmets.samplesheet import load_samples  # noqa: E402

from review_measures import flag_figures, lesion_uncertainty, threshold_for_sensitivity  # noqa: E402


def scan_lesions(results: Path, samples: Path) -> pd.DataFrame:
    """Each predicted lesion of the analysis scans with a truth mask: ids, size, mean entropy, false_positive."""
    sheet = load_samples(samples, check_files=False).reset_index()
    rows = []
    for record in sheet[~sheet["training"] & sheet["mask"].notna()].to_dict("records"):
        scan = results / str(record["patient_id"]) / str(record["timepoint"]) / "native"
        if not (scan / "segmentation.nii.gz").is_file():
            continue
        prediction, _ = load_mask(scan / "segmentation.nii.gz")
        entropy = np.asarray(load_nifti(scan / "uncertainty_total_entropy.nii.gz", allow_constant=True).dataobj)
        truth, _ = load_mask(Path(str(record["mask"])), labels=True)
        table = lesion_uncertainty(prediction, entropy, truth)
        table.insert(0, "timepoint", record["timepoint"])
        table.insert(0, "patient_id", record["patient_id"])
        rows.append(table)
    if not rows:
        raise SystemExit(f"{results}: no predicted scan with a truth mask; run the workflow (make demo) first")
    return pd.concat(rows, ignore_index=True)


def main() -> None:
    """Print the flag's figures on a finished run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--samples", type=Path, default=Path("config/samples.tsv"))
    parser.add_argument("--config", type=Path, default=Path("config/config.yaml"))
    args = parser.parse_args()
    threshold = load_settings(args.config).uncertainty_flag_bits
    lesions = scan_lesions(args.results, args.samples)
    figures = flag_figures(lesions, threshold)
    fp = lesions["false_positive"].astype(bool)
    print(f"scans: {lesions[['patient_id', 'timepoint']].drop_duplicates().shape[0]}, predicted lesions: "
          f"{len(lesions)}, false positives: {int(fp.sum())}")  # fmt: skip
    print(f"mean entropy, true lesions: median {lesions.loc[~fp, 'mean_entropy_bits'].median():.3f} bits; "
          f"false positives: median {lesions.loc[fp, 'mean_entropy_bits'].median():.3f} bits")  # fmt: skip
    print(f"lesion-level AUROC (false vs true by mean entropy): {figures['auroc']:.3f}")
    print(f"at review.uncertainty_flag_bits = {threshold:g}: sensitivity {figures['sensitivity']:.1%} of false "
          f"positives flagged, {figures['flagged_true']:.1%} of true lesions flagged")  # fmt: skip
    print(f"highest threshold flagging >= 90 % of false positives: {threshold_for_sensitivity(lesions, 0.9):.3f} bits")


if __name__ == "__main__":
    main()
