"""Per-patient pictures: the RANO-BM trajectory and the lesion timeline (PNG, written atomically)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from brainmets.io import atomic_path
from brainmets.rano.rano import target_diameter_history

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: colour of each lesion event on the timeline
EVENT_COLOURS = {
    "baseline": "#4d4d4d",
    "present": "#1f77b4",
    "new": "#d62728",
    "reappeared": "#ff7f0e",
    "split": "#9467bd",
    "merged": "#8c564b",
    "resolved": "#bdbdbd",
}


def _figure(width: float, height: float) -> tuple[Figure, Axes]:
    """A new matplotlib figure and axes on the non-interactive backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height), dpi=110)


def _save(fig: Figure, path: str | os.PathLike[str]) -> Path:
    """Write a figure as PNG atomically and close it; returns the path."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    plt.close(fig)
    return Path(path)


def _target_ids(response: pd.DataFrame) -> list[int]:
    """The target lesion ids of one patient's response table (of every assessment period)."""
    texts = response["target_ids"].fillna("").astype(str)
    return sorted({int(float(i)) for text in texts for i in text.split(";") if i.strip()})


def plot_trajectory(lesions: pd.DataFrame, response: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Sum of target diameters and each target's LD (mm) over time, with responses and new lesions marked."""
    response = response.sort_values("timepoint")
    days = response["days_from_baseline"].to_numpy(dtype=float)
    targets = _target_ids(response)
    fig, ax = _figure(8.0, 4.5)
    if targets:
        history = target_diameter_history(lesions, targets).reindex(response["timepoint"])
        for lesion_id in targets:
            ax.plot(days, history[lesion_id], marker="o", lw=1, ms=3, alpha=0.8, label=f"target {lesion_id}")
        values = response["sum_ld_mm"].to_numpy(dtype=float)
        ax.plot(days, values, color="black", lw=2.5, marker="s", label="sum of diameters")
        ax.set_ylabel("longest diameter (mm)")
    else:
        values = response["total_volume_ml"].to_numpy(dtype=float)
        ax.plot(days, values, color="black", lw=2.5, marker="s", label="total lesion volume (no target lesions)")
        ax.set_ylabel("volume (mL)")
    top = float(np.nanmax(values)) if np.isfinite(values).any() else 1.0
    for x, y, row in zip(days, values, response.itertuples(), strict=True):
        if not isinstance(row.overall_response, str):  # not assessed after progression
            continue
        label = row.overall_response + ("*" if bool(row.confirmed) else "")
        ax.annotate(
            label,
            (x, 0 if np.isnan(y) else y),
            textcoords="offset points",
            xytext=(0, 8),
            ha="center",
            fontsize=9,
            fontweight="bold",
        )
    new = response["new_lesions"].to_numpy() > 0
    if new.any():
        ax.scatter(days[new], np.zeros(new.sum()), marker="^", s=90, color="#d62728", zorder=5, label="new lesion(s)")
    progression = response["progression_date"].dropna()
    if len(progression):
        first = pd.Timestamp(progression.iloc[0])
        offset = (first - pd.Timestamp(response["timepoint"].iloc[0])).days
        ax.axvline(offset, color="#d62728", ls="--", lw=1, label=f"progression {first:%Y-%m-%d}")
    if "period" in response:  # under rano.after_progression: rebaseline, each PD scan opens a new period
        periods = response["period"].to_numpy()
        for index in np.flatnonzero(periods[1:] > periods[:-1]):
            ax.axvline(
                days[index],
                color="#7f7f7f",
                ls=":",
                lw=1.5,
                label=f"period {periods[index + 1]} from {response['timepoint'].iloc[index]}",
            )
    ax.set_ylim(bottom=-0.05 * top, top=1.2 * top + 1e-6)
    ax.set_xticks(days, [f"{d}\n(day {int(x)})" for d, x in zip(response["timepoint"], days, strict=True)], fontsize=8)
    ax.set_title(f"RANO-BM trajectory: {response['patient_id'].iloc[0]}  (* confirmed)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(fig, path)


def plot_lesion_timeline(lesions: pd.DataFrame, response: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """One row per lesion: its longest diameter (marker size, mm) at each visit and its events."""
    dates = sorted(response["timepoint"].astype(str))
    rows = lesions[(lesions["lesion_id"] > 0) & lesions["timepoint"].astype(str).isin(dates)]
    per_visit = rows.groupby(["lesion_id", "timepoint"], sort=True).agg(
        ld=("longest_diameter_mm", "sum"), event=("event", "first"), merged_into=("merged_into", "first")
    )
    ids = sorted(rows["lesion_id"].unique())
    targets = set(_target_ids(response))
    fig, ax = _figure(max(6.0, 1.4 * len(dates) + 2), max(2.5, 0.45 * len(ids) + 1.5))
    x_of = {d: i for i, d in enumerate(dates)}
    largest = max(float(per_visit["ld"].max()) if len(per_visit) else 1.0, 1.0)
    for y, lesion_id in enumerate(ids):
        visits = per_visit.loc[lesion_id]
        xs = [x_of[str(t)] for t in visits.index]
        ax.plot(xs, [y] * len(xs), color="#d9d9d9", lw=1, zorder=1)
        for x, visit in zip(xs, visits.itertuples(), strict=True):
            colour = EVENT_COLOURS.get(visit.event, "black")
            if visit.ld > 0:
                ax.scatter(x, y, s=30 + 400 * visit.ld / largest, color=colour, zorder=2)
                ax.annotate(
                    f"{visit.ld:.0f}", (x, y), textcoords="offset points", xytext=(0, -14), ha="center", fontsize=7
                )
            else:
                ax.scatter(x, y, marker="x", s=40, color=colour, zorder=2)
            if visit.event not in ("present", "baseline"):
                text = visit.event if pd.isna(visit.merged_into) else f"merged into {int(visit.merged_into)}"
                ax.annotate(
                    text, (x, y), textcoords="offset points", xytext=(0, 9), ha="center", fontsize=7, color=colour
                )
    ax.set_yticks(range(len(ids)), [f"{'T ' if i in targets else ''}lesion {i}" for i in ids], fontsize=8)
    ax.set_xticks(range(len(dates)), dates, fontsize=8)
    ax.set_ylim(-0.8, len(ids) - 0.2)
    ax.invert_yaxis()
    ax.set_xlim(-0.6, len(dates) - 0.4)
    ax.set_title(f"Lesion timeline: {response['patient_id'].iloc[0]}  (T = target; numbers: LD in mm)")
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def draw_patient_pictures(
    lesions: pd.DataFrame, response: pd.DataFrame, trajectory: str | None, timeline: str | None
) -> list[Path]:
    """Draw each patient's trajectory and/or timeline to paths where `{patient}` stands for the patient id."""
    written = []
    patient_ids = lesions["patient_id"].astype(str)
    for patient, visits in response.groupby("patient_id", sort=True):
        own = lesions[patient_ids == str(patient)]
        if trajectory:
            written.append(plot_trajectory(own, visits, trajectory.replace("{patient}", str(patient))))
        if timeline:
            written.append(plot_lesion_timeline(own, visits, timeline.replace("{patient}", str(patient))))
    return written
