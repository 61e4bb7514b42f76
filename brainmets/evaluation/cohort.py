"""Cohort summaries of per-scan metrics: distribution statistics, pooled sensitivity per lesion size, figure.

Each scoring definition has its own per-scan columns: `brats2023` pools detection per lesion-volume bin,
`brats2025` pools the detection recall of its large and small lesions.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from brainmets.errors import BrainmetsError
from brainmets.evaluation import brats2025
from brainmets.evaluation.metrics import SIZE_BIN_LABELS
from brainmets.evaluation.scan import ID_COLUMNS
from brainmets.io import atomic_path, read_tsv

#: per-scan metrics summarised by mean, median and IQR across scans (summary row name = column name)
SCAN_METRICS = [
    "dice",
    "hd95_mm",
    "truth_volume_ml",
    "pred_volume_ml",
    "abs_volume_error_ml",
    "rel_volume_error",
    "lesion_dice",
    "lesion_hd95_mm",
    "tp_lesions",
    "fn_lesions",
    "fp_lesions",
    "lesion_sensitivity",
]

#: count columns that pooled proportions are computed from
COUNT_COLUMNS = [c for label in SIZE_BIN_LABELS for c in (f"lesions_{label}", f"detected_{label}")]

#: brats2025 lesion classes pooled in the summary and figure: (column prefix, figure label)
BRATS2025_CLASSES = (("large_instance", "large (\u2265 20 mm\u00b3)"), ("small_instance", "small (< 20 mm\u00b3)"))

#: lesion sensitivity per size bin of the published model's external validation (40 patients, 186 studies)
PUBLISHED_SENSITIVITY = {"lt0.05ml": 0.17, "0.05to0.5ml": 0.66, "0.5to4ml": 0.88, "ge4ml": 0.91}

#: how the bins are labelled on the figure
BIN_TITLES = {"lt0.05ml": "< 0.05 mL", "0.05to0.5ml": "0.05-0.5 mL", "0.5to4ml": "0.5-4 mL", "ge4ml": "\u2265 4 mL"}

#: columns of the cohort summary, one row per metric
SUMMARY_COLUMNS = [
    "metric",
    "n_scans",
    "mean",
    "median",
    "q1",
    "q3",
    "iqr",
    "pooled",
    "ci95_low",
    "ci95_high",
    "n_lesions",
]


def _numeric_columns(definition: str) -> list[str]:
    """The numeric per-scan columns `brainmets evaluate --definition` writes."""
    if definition == "brats2025":
        return list(brats2025.COLUMNS)
    return SCAN_METRICS + COUNT_COLUMNS + [f"sensitivity_{label}" for label in SIZE_BIN_LABELS]


def read_scan_metrics(paths: Sequence[str | os.PathLike[str]], definition: str) -> pd.DataFrame:
    """Concatenate per-scan metrics tables written by `brainmets evaluate`, checking columns and numbers."""
    if not paths:
        raise BrainmetsError("no per-scan metrics tables given; pass the TSV files written by `brainmets evaluate`")
    numeric = _numeric_columns(definition)
    tables = []
    for path in paths:
        table = read_tsv(path, required=ID_COLUMNS + numeric, text_columns=ID_COLUMNS)
        for column in numeric:
            values = pd.to_numeric(table[column], errors="coerce")
            bad = values.isna() & table[column].notna()
            if bad.any():
                row = int(np.flatnonzero(bad)[0]) + 2  # 1-based, after the header line
                raise BrainmetsError(
                    f"{path}: row {row}, column {column}: {table[column][bad].iloc[0]!r} is not a number; "
                    "rewrite the table with `brainmets evaluate`"
                )
            table[column] = values
        tables.append(table)
    return pd.concat(tables, ignore_index=True)


def _pooled_proportion(successes: int, trials: int) -> dict[str, float]:
    """Pooled proportion and its Wilson 95 % interval; NaN without trials."""
    if trials == 0:
        return {"pooled": np.nan, "ci95_low": np.nan, "ci95_high": np.nan}
    interval = stats.binomtest(successes, trials).proportion_ci(confidence_level=0.95, method="wilson")
    return {"pooled": successes / trials, "ci95_low": interval.low, "ci95_high": interval.high}


def _distribution(metric: str, values: pd.Series) -> dict[str, Any]:
    """Number of scans with a value, mean, median, quartiles and IQR of one metric."""
    finite = values.dropna().to_numpy(dtype=float)
    if finite.size == 0:
        return {"metric": metric, "n_scans": 0}
    q1, median, q3 = np.percentile(finite, [25, 50, 75])
    return {
        "metric": metric,
        "n_scans": int(finite.size),
        "mean": float(finite.mean()),
        "median": float(median),
        "q1": float(q1),
        "q3": float(q3),
        "iqr": float(q3 - q1),
    }


def _summarise_brats2025(scans: pd.DataFrame) -> pd.DataFrame:
    """Mean/median/IQR over scans of every brats2025 score, pooled large/small lesion recall (95 % CI)."""
    rows = [_distribution(metric, scans[metric]) for metric in brats2025.COLUMNS]
    for prefix, _ in BRATS2025_CLASSES:
        tp, fn = int(scans[f"{prefix}_tp"].sum()), int(scans[f"{prefix}_fn"].sum())
        next(r for r in rows if r["metric"] == f"{prefix}_rec").update(
            _pooled_proportion(tp, tp + fn), n_lesions=tp + fn
        )
    summary = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    return summary.astype({"n_scans": "Int64", "n_lesions": "Int64"})


def summarise_cohort(scans: pd.DataFrame, definition: str) -> pd.DataFrame:
    """Per-metric mean/median/IQR over scans, pooled lesion sensitivity (overall, per bin, 95 % CI), FPs per scan."""
    if definition == "brats2025":
        return _summarise_brats2025(scans)
    rows = [_distribution(metric, scans[metric]) for metric in SCAN_METRICS]
    tp, fn = int(scans["tp_lesions"].sum()), int(scans["fn_lesions"].sum())
    overall = next(r for r in rows if r["metric"] == "lesion_sensitivity")
    overall.update(_pooled_proportion(tp, tp + fn), n_lesions=tp + fn)
    false_positives = next(r for r in rows if r["metric"] == "fp_lesions")
    false_positives.update(metric="false_positives_per_scan", pooled=scans["fp_lesions"].sum() / len(scans))
    for label in SIZE_BIN_LABELS:
        lesions, detected = int(scans[f"lesions_{label}"].sum()), int(scans[f"detected_{label}"].sum())
        row = _distribution(f"sensitivity_{label}", scans[f"sensitivity_{label}"])
        row.update(_pooled_proportion(detected, lesions), n_lesions=lesions)
        rows.append(row)
    summary = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    return summary.astype({"n_scans": "Int64", "n_lesions": "Int64"})


def plot_sensitivity_by_size(summary: pd.DataFrame, path: str | os.PathLike[str], definition: str) -> Path:
    """Bar chart (PNG) of pooled lesion sensitivity per size class with 95 % CIs.

    With the brats2023 definition the published values are drawn beside them.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_metric = summary.set_index("metric")
    if definition == "brats2025":
        metrics, titles = [f"{prefix}_rec" for prefix, _ in BRATS2025_CLASSES], [t for _, t in BRATS2025_CLASSES]
    else:
        metrics, titles = [f"sensitivity_{label}" for label in SIZE_BIN_LABELS], list(BIN_TITLES.values())
    rows = by_metric.loc[metrics]
    x = np.arange(len(metrics))
    pooled = rows["pooled"].to_numpy(dtype=float)
    low, high = rows["ci95_low"].to_numpy(dtype=float), rows["ci95_high"].to_numpy(dtype=float)
    error = np.vstack([pooled - low, high - pooled])
    figure, axes = plt.subplots(figsize=(6, 4), dpi=120)
    has_lesions = np.isfinite(pooled)
    axes.bar(
        x[has_lesions], pooled[has_lesions], yerr=error[:, has_lesions], capsize=4, color="#4c72b0", label="this cohort"
    )
    if definition != "brats2025":
        published = [PUBLISHED_SENSITIVITY[label] for label in SIZE_BIN_LABELS]
        axes.plot(x, published, "D", color="#dd8452", label="published external validation")
    for i, n in enumerate(rows["n_lesions"].fillna(0).astype(int)):
        axes.annotate(f"n={n}", (x[i], 1.02), ha="center", fontsize=9)
    axes.set_xticks(x, titles)
    axes.set_ylim(0, 1.1)
    axes.set_xlabel("ground-truth lesion volume")
    axes.set_ylabel("lesion detection sensitivity")
    axes.set_title("Lesion detection by size (bars: pooled, 95 % Wilson CI)", fontsize=10)
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
    plt.close(figure)
    return Path(path)
