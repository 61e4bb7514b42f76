"""Where the brats2023 and brats2025 scores of the same scans disagree most, and the counts that explain it.

Scores every analysis scan with a ground-truth mask under both definitions, from a finished workflow's
native-grid segmentations, and prints the scans sorted by the gap between the two lesion-wise Dice
scores, with the lesion counts behind each gap. Prints figures and asserts nothing.

Usage: python benchmarks/definitions.py --results results --samples resources/demo/samples.tsv [--top 6]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from brainmets.evaluation.brats2025 import LARGE_LESION_MM3, evaluate_brats2025
from brainmets.evaluation.metrics import evaluate_segmentation
from brainmets.io import load_mask, voxel_spacing_mm
from brainmets.samplesheet import load_samples


def compare_scan(truth: np.ndarray, pred: np.ndarray, spacing: tuple[float, float, float]) -> dict[str, float]:
    """Both definitions' lesion-wise scores of one scan and the lesion counts where they part."""
    old, match = evaluate_segmentation(truth, pred, spacing)
    new, lesions = evaluate_brats2025(truth, pred, spacing)
    scored = match.lesions[match.lesions["scored"]]
    return {
        "brats2023_dice": old["lesion_dice"],
        "brats2025_dice": new["lesionwise_dsc_mean"],
        "brats2023_hd95": old["lesion_hd95_mm"],
        "brats2025_hd95": new["lesionwise_hd95_mean"],
        "lesions_2023": len(scored),
        f"lesions_ge{LARGE_LESION_MM3:g}mm3": int(lesions["large"].sum()),
        "components_2025": len(lesions),
        "detected_2023": int(scored["detected"].sum()),
        "matched_2025": int(lesions["matched"].sum()),
        "merged_hits_2023": int((scored["hits"] > 1).sum()),
        "fp_2023": old["fp_lesions"],
        "fp_2025": new["all_instance_fp"],
    }


def main() -> None:
    """Print the per-scan comparison, worst disagreement first, and the cohort means."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--samples", type=Path, default=Path("resources/demo/samples.tsv"))
    parser.add_argument("--top", type=int, default=6)
    args = parser.parse_args()
    sheet = load_samples(args.samples).reset_index()
    rows = []
    for row in sheet[~sheet["training"] & sheet["mask"].notna()].to_dict("records"):
        pred_path = args.results / str(row["patient_id"]) / str(row["timepoint"]) / "native" / "segmentation.nii.gz"
        truth, image = load_mask(row["mask"], labels=True)
        pred, _ = load_mask(pred_path, labels=True)
        spacing = tuple(float(s) for s in voxel_spacing_mm(image.affine))
        rows.append({"scan": f"{row['patient_id']}/{row['timepoint']}", **compare_scan(truth, pred, spacing)})
    table = pd.DataFrame(rows)
    table["dice_gap"] = table["brats2025_dice"] - table["brats2023_dice"]
    table["hd95_gap"] = table["brats2025_hd95"] - table["brats2023_hd95"]
    order = table["dice_gap"].abs().fillna(np.inf).sort_values(ascending=False).index
    with pd.option_context("display.width", 250, "display.max_columns", 30, "display.precision", 3):
        print(table.loc[order].head(args.top).to_string(index=False))
        print(
            f"\n{len(table)} scans; means: brats2023 Dice {table['brats2023_dice'].mean():.3f}, "
            f"HD95 {table['brats2023_hd95'].mean():.2f} mm; brats2025 Dice {table['brats2025_dice'].mean():.3f}, "
            f"HD95 {table['brats2025_hd95'].mean():.2f} mm (NaN scans left out)"
        )


if __name__ == "__main__":
    main()
