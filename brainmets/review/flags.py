"""Flags for review: the lesions of one patient a reader should look at first, each with its reasons.

A lesion at a visit is flagged when
- `uncertain`: its mean total entropy reaches `review.uncertainty_flag_bits` (a likely false positive
  or a doubtful outline);
- `new`: it was first seen after the baseline (a new lesion can make the response progression);
- `near threshold`: its longest diameter lies within `review.measurability_margin_mm` of a RANO-BM size
  threshold (measurability at 10 mm and 5 mm perpendicular, or 5 mm for an unequivocal new lesion), so a
  small error in the outline changes its role;
- `decides response`: rejecting it at that visit and the later ones would change the overall response (or
  its confirmation) at some visit. Later visits go with it, since a lesion rejected at one visit only would
  come back as a new lesion at the next.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from brainmets.io import table_records
from brainmets.rano.rano import REJECTED, assess, check_lesion_table, is_rejected
from brainmets.rano.settings import RanoSettings
from brainmets.review.settings import ReviewSettings

#: columns of the per-visit lesion table of the review page, in order: one row per lesion id present at a
#: visit (fragments of a split lesion summed: volume and LD summed, PD the largest, centroid by volume);
#: role is target, non-target or new (or rejected); flags are ";"-joined names, reasons a sentence each
REVIEW_LESION_COLUMNS: list[str] = [
    "timepoint",
    "lesion_id",
    "volume_ml",
    "longest_diameter_mm",
    "perpendicular_diameter_mm",
    "role",
    "mean_entropy_bits",
    "centroid_x_mm",
    "centroid_y_mm",
    "centroid_z_mm",
    "review",
    "flags",
    "reasons",
]


def lesions_by_visit(lesions: pd.DataFrame) -> pd.DataFrame:
    """One row per (timepoint, lesion id) present in a tracked lesion table: fragments summed, centroid in mm."""
    table = lesions[(lesions["component"] > 0) & (lesions["lesion_id"] > 0)].copy()
    table["timepoint"] = table["timepoint"].astype(str).str[:10]
    table["review"] = table["review"].fillna("").astype(str) if "review" in table else ""
    for axis in "xyz":
        table[f"weighted_{axis}"] = table[f"centroid_{axis}_mm"] * table["volume_ml"]
    grouped = table.groupby(["timepoint", "lesion_id"], sort=True).agg(
        volume_ml=("volume_ml", "sum"),
        longest_diameter_mm=("longest_diameter_mm", "sum"),
        perpendicular_diameter_mm=("perpendicular_diameter_mm", "max"),
        weighted_x=("weighted_x", "sum"),
        weighted_y=("weighted_y", "sum"),
        weighted_z=("weighted_z", "sum"),
        review=("review", lambda marks: "; ".join(dict.fromkeys(m for m in marks if m))),
    )
    for axis in "xyz":
        grouped[f"centroid_{axis}_mm"] = grouped[f"weighted_{axis}"] / grouped["volume_ml"].where(
            grouped["volume_ml"] > 0
        )
    return grouped.drop(columns=["weighted_x", "weighted_y", "weighted_z"]).reset_index()


def _with_rejected(lesions: pd.DataFrame, timepoint: str, lesion_id: int) -> pd.DataFrame:
    """A copy of a lesion table with one lesion's rows marked rejected from a visit (ISO date) on."""
    table = lesions.copy()
    review = table["review"].fillna("").astype(str) if "review" in table else pd.Series("", index=table.index)
    rows = (table["timepoint"].astype(str).str[:10] >= timepoint) & (table["lesion_id"] == lesion_id)
    table["review"] = review.where(~rows, REJECTED)
    return table


def _changes(before: pd.DataFrame, after: pd.DataFrame) -> list[str]:
    """The visits whose overall response (or its confirmation) differs between two response tables."""
    changed = []
    for (t, a, ca), (b, cb) in zip(
        zip(before["timepoint"], before["overall_response"].fillna(""), before["confirmed"], strict=True),
        zip(after["overall_response"].fillna(""), after["confirmed"], strict=True),
        strict=True,
    ):
        if a != b or bool(ca) != bool(cb):
            changed.append(f"{t} {a or '-'}{' confirmed' if ca else ''} -> {b or '-'}{' confirmed' if cb else ''}")
    return changed


def flag_lesions(
    lesions: pd.DataFrame,
    mean_entropy: Mapping[tuple[str, int], float],
    clinical: pd.DataFrame | None = None,
    settings: ReviewSettings | None = None,
    rano_settings: RanoSettings | None = None,
) -> pd.DataFrame:
    """The review page's lesion table of one patient (`REVIEW_LESION_COLUMNS`), each lesion flagged with its reasons.

    `lesions`: the patient's tracked lesion table (review applied); `mean_entropy`: (ISO timepoint,
    lesion id) -> mean total entropy over the lesion's voxels (bits).
    """
    settings = settings or ReviewSettings()
    rano_settings = rano_settings or RanoSettings()
    check_lesion_table(lesions, "lesion table")
    response = assess(lesions, clinical, rano_settings)
    table = lesions_by_visit(lesions)
    if table.empty:
        return pd.DataFrame(columns=REVIEW_LESION_COLUMNS)
    baseline = str(response["timepoint"].iloc[0]) if len(response) else table["timepoint"].min()
    targets_at = dict(
        zip(response["timepoint"].astype(str), response["target_ids"].fillna("").astype(str), strict=True)
    )
    rejected = is_rejected(table["review"])
    first_seen = table[~rejected].groupby("lesion_id")["timepoint"].min().to_dict()
    rows: list[dict[str, Any]] = []
    for record, is_out in zip(table_records(table), rejected, strict=True):
        t, lesion = str(record["timepoint"]), int(record["lesion_id"])
        targets = {int(i) for i in targets_at.get(t, "").split(";") if i}
        is_new = first_seen.get(lesion, t) > baseline
        role = REJECTED if is_out else "target" if lesion in targets else "new" if is_new else "non-target"
        entropy = float(mean_entropy.get((t, lesion), np.nan))
        flags, reasons = [], []
        if not np.isnan(entropy) and entropy >= settings.uncertainty_flag_bits:
            flags.append("uncertain")
            reasons.append(f"mean entropy {entropy:.2f} bits >= {settings.uncertainty_flag_bits:g}")
        if is_new and not is_out:
            flags.append("new")
            reasons.append(f"new lesion, first seen {first_seen[lesion]}")
        near = _near_thresholds(record, is_new, settings, rano_settings)
        if near and not is_out:
            flags.append("near threshold")
            reasons.extend(near)
        if not is_out:
            changed = _changes(response, assess(_with_rejected(lesions, t, lesion), clinical, rano_settings))
            if changed:
                flags.append("decides response")
                reasons.append(f"without it from {t} on: " + ", ".join(changed))
        rows.append(
            {
                **record,
                "role": role,
                "mean_entropy_bits": entropy,
                "flags": ";".join(flags),
                "reasons": "; ".join(reasons),
            }
        )
    return pd.DataFrame(rows, columns=REVIEW_LESION_COLUMNS)


def _near_thresholds(record: Mapping[str, Any], is_new: bool, s: ReviewSettings, r: RanoSettings) -> list[str]:
    """Sentences naming each RANO-BM size threshold the lesion's diameters lie within the margin of."""
    margin = s.measurability_margin_mm
    ld, pd_ = float(record["longest_diameter_mm"]), float(record["perpendicular_diameter_mm"])
    near = []
    if abs(ld - r.measurable_min_ld_mm) <= margin:
        near.append(f"LD {ld:.1f} mm within {margin:g} mm of the {r.measurable_min_ld_mm:g} mm measurability threshold")
    if abs(pd_ - r.measurable_min_pd_mm) <= margin and ld >= r.measurable_min_ld_mm - margin:
        near.append(f"PD {pd_:.1f} mm within {margin:g} mm of the {r.measurable_min_pd_mm:g} mm threshold")
    if is_new and abs(ld - r.new_lesion_min_ld_mm) <= margin:
        near.append(f"LD {ld:.1f} mm within {margin:g} mm of the {r.new_lesion_min_ld_mm:g} mm new-lesion threshold")
    return near
