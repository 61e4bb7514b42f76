"""Ground truth of the demo cohort: persistent-id label maps, the tracked lesion table and expected response.

The truth lesion table has the format `brainmets track` writes (one row per timepoint, lesion id and
connected component; absent lesions as component 0 with zero measurements and event "resolved" or
"merged"), measured on the patient's common 1 mm grid with the project's RANO-BM measurement, and the
expected response is that table run through the project's RANO-BM assessment with default thresholds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from brainmets.components import label_lesions
from brainmets.rano.measure import measure_components
from brainmets.track.track import TRACK_COLUMNS, absent_row

#: columns of the truth lesion table, in order: those `brainmets track` writes, with the patient first
LESION_TABLE_COLUMNS: list[str] = ["patient_id", *TRACK_COLUMNS]


def merge_touching(labels: np.ndarray) -> tuple[np.ndarray, dict[int, int]]:
    """Give every 26-connected component holding several lesion ids the lowest one; returns (labels, id -> host)."""
    components, _ = label_lesions(labels)
    merged: dict[int, int] = {}
    result = labels.copy()
    for component in np.unique(components[components > 0]):
        inside = components == component
        ids = np.unique(labels[inside])
        ids = ids[ids > 0]
        if len(ids) > 1:
            host = int(ids.min())
            result[inside] = host
            merged.update({int(i): host for i in ids if i != host})
    merged = {i: h for i, h in merged.items() if not (result == i).any()}
    return result, merged


def apply_merges(labels: np.ndarray, merged: dict[int, int]) -> np.ndarray:
    """Relabel merged lesion ids to the id that absorbed them (in place; returns the array)."""
    for lesion_id, host in merged.items():
        labels[labels == lesion_id] = host
    return labels


def measure_timepoint(labels: np.ndarray, affine: np.ndarray) -> pd.DataFrame:
    """Measurements (mm, mL) of each connected component of a truth label map, with the lesion id it carries."""
    components, _ = label_lesions(labels)
    table = measure_components(components, affine)
    ids = []
    for component in table["component"]:
        values = labels[components == component]
        ids.append(int(np.bincount(values).argmax()))
    table.insert(0, "lesion_id", ids)
    return table


def lesion_table(
    patient_id: str, timepoints: list[str], measurements: list[pd.DataFrame], merges: list[dict[int, int]]
) -> pd.DataFrame:
    """The tracked truth lesion table of one patient from per-timepoint measurements and merge maps."""
    rows: list[dict[str, object]] = []
    seen: set[int] = set()
    previous: set[int] = set()
    all_ids = sorted(set().union(*(set(m["lesion_id"]) for m in measurements), *(set(m) for m in merges)))
    for index, (timepoint, table, merged) in enumerate(zip(timepoints, measurements, merges, strict=True)):
        present = set(table["lesion_id"])
        where = {"patient_id": patient_id, "timepoint": timepoint}
        for lesion_id in all_ids:
            if lesion_id in present:
                parts = table[table["lesion_id"] == lesion_id]
                if index == 0:
                    event = "baseline"
                elif lesion_id not in seen:
                    event = "new"
                elif lesion_id not in previous:
                    event = "reappeared"
                elif len(parts) > 1:
                    event = "split"
                else:
                    event = "present"
                for record in parts.to_dict("records"):
                    rows.append({**record, **where, "event": event, "merged_into": None})
            elif lesion_id in seen:
                host = merged.get(lesion_id)
                rows.append({**absent_row(lesion_id, "merged" if host else "resolved", host), **where})
        seen |= present
        previous = present
    table = pd.DataFrame(rows, columns=LESION_TABLE_COLUMNS)
    table["merged_into"] = table["merged_into"].astype("Int64")
    return table.astype(
        {"lesion_id": int, "component": int, "n_axial_slices": int, "ld_slice": int, "measurable": bool}
    )


def expected_response(lesions: pd.DataFrame, clinical: pd.DataFrame | None) -> pd.DataFrame:
    """RANO-BM response per patient and timepoint of the truth lesion table (default thresholds)."""
    from brainmets.rano.rano import assess
    from brainmets.rano.settings import RanoSettings

    return assess(lesions, clinical, RanoSettings())
