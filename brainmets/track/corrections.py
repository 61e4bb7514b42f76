"""A reviewer's decisions (`review.tsv`) applied to a patient's tracked lesions.

The file has one row per decision, columns `lesion_id`, `timepoint`, `decision` and `into`:
- `reject`: the lesion is a false positive at that visit (every visit where it is present when the
  timepoint is empty); its rows stay in the lesion table, marked, and count for nothing in RANO-BM;
- `accept`: the reviewer confirmed the lesion at that visit (every visit when empty); nothing changes
  but the mark, which clears the lesion's flags on the review page;
- `merge`: the lesion and lesion `into` are one lesion at every visit (timepoint left empty): its
  rows and voxels take the id `into`, and fragments at one visit are summed as a split lesion's.

Lesion ids are those of tracking without the review, so that the decisions stay valid when tracking
runs again; the tables say which rows a decision changed (column `review`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from brainmets.errors import BrainmetsError
from brainmets.io import read_tsv
from brainmets.rano.rano import REJECTED

#: columns of review.tsv, in order
REVIEW_COLUMNS: list[str] = ["lesion_id", "timepoint", "decision", "into"]
#: what a reviewer can decide about a lesion
DECISIONS = ("reject", "accept", "merge")


def read_review(path: str | os.PathLike[str], lesions: pd.DataFrame) -> pd.DataFrame:
    """The checked decisions of a review.tsv against one patient's tracked lesion table (ids, ISO timepoints)."""
    source = Path(path)
    table = read_tsv(source, required=["lesion_id", "decision"], text_columns=REVIEW_COLUMNS)
    for column in REVIEW_COLUMNS:
        if column not in table.columns:
            table[column] = ""
    table = table[REVIEW_COLUMNS].apply(lambda column: column.str.strip())
    present = lesions[(lesions["component"] > 0) & (lesions["lesion_id"] > 0)]
    known_ids = set(lesions.loc[lesions["lesion_id"] > 0, "lesion_id"].astype(int))
    visits = set(lesions["timepoint"].astype(str))
    seen = {(int(i), str(t)) for i, t in zip(present["lesion_id"], present["timepoint"], strict=True)}
    rows = []
    for index, row in enumerate(table.to_dict("records")):
        where = f"{source}: row {index + 2}"
        lesion = _lesion_id(row["lesion_id"], known_ids, where, "lesion_id")
        decision = row["decision"].lower()
        if decision not in DECISIONS:
            raise BrainmetsError(f"{where}: decision {row['decision']!r} is not one of {', '.join(DECISIONS)}")
        timepoint = row["timepoint"]
        if timepoint and timepoint not in visits:
            raise BrainmetsError(
                f"{where}: timepoint {timepoint!r} is not a visit of this patient ({', '.join(sorted(visits))})"
            )
        into = 0
        if decision == "merge":
            if timepoint:
                raise BrainmetsError(f"{where}: a merge joins two lesions at every visit; leave timepoint empty")
            into = _lesion_id(row["into"], known_ids, where, "into")
            if into == lesion:
                raise BrainmetsError(f"{where}: lesion {lesion} cannot be merged into itself")
        elif timepoint and (lesion, timepoint) not in seen:
            raise BrainmetsError(f"{where}: lesion {lesion} is not present at {timepoint}; check the lesion table")
        rows.append({"lesion_id": lesion, "timepoint": timepoint, "decision": decision, "into": into})
    decisions = pd.DataFrame(rows, columns=REVIEW_COLUMNS).astype({"lesion_id": int, "into": int})
    _check_consistent(decisions, source, seen)
    return decisions


def _lesion_id(text: str, known: set[int], where: str, column: str) -> int:
    """A lesion id cell as an int, refused unless tracking gave that id."""
    try:
        value = int(text)
    except ValueError:
        raise BrainmetsError(f"{where}, column {column}: {text!r} is not a lesion id") from None
    if value not in known:
        raise BrainmetsError(
            f"{where}, column {column}: lesion {value} is not in this patient's lesion table "
            f"(ids {', '.join(str(i) for i in sorted(known)) or 'none'})"
        )
    return value


def _check_consistent(decisions: pd.DataFrame, source: Path, seen: set[tuple[int, str]]) -> None:
    """Refuse a lesion both rejected and accepted at one visit, and a lesion merged into two others."""
    marks: dict[tuple[int, str], str] = {}
    for lesion, timepoint, decision in zip(
        decisions["lesion_id"], decisions["timepoint"], decisions["decision"], strict=True
    ):
        if decision == "merge":
            continue
        visits = [timepoint] if timepoint else sorted(t for i, t in seen if i == lesion)
        for visit in visits:
            if marks.setdefault((lesion, visit), decision) != decision:
                raise BrainmetsError(f"{source}: lesion {lesion} is both rejected and accepted at {visit}")
    merges = decisions[decisions["decision"] == "merge"]
    targets = merges.groupby("lesion_id")["into"].nunique()
    if (targets > 1).any():
        lesion = int(targets[targets > 1].index[0])
        raise BrainmetsError(f"{source}: lesion {lesion} is merged into two different lesions; name one")


def merge_map(decisions: pd.DataFrame) -> dict[int, int]:
    """Lesion id -> the id it becomes after the review's merges (chains followed to their end; a cycle: its lowest)."""
    edges = {
        int(a): int(b)
        for a, b, d in zip(decisions["lesion_id"], decisions["into"], decisions["decision"], strict=True)
        if d == "merge"
    }
    # union-find over the merge pairs; each group takes the id its chain ends at (the lowest id of a cycle)
    parent: dict[int, int] = {}

    def root(i: int) -> int:
        while parent.get(i, i) != i:
            i = parent[i]
        return i

    for a, b in edges.items():
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, list[int]] = {}
    for lesion in set(edges) | set(edges.values()):
        groups.setdefault(root(lesion), []).append(lesion)
    result: dict[int, int] = {}
    for members in groups.values():
        ends = [m for m in members if m not in edges]
        final = min(ends) if ends else min(members)
        result.update({m: final for m in members if m != final})
    return result


def apply_review(
    lesions: pd.DataFrame, label_maps: Sequence[np.ndarray], timepoints: Sequence[str], decisions: pd.DataFrame
) -> tuple[pd.DataFrame, list[np.ndarray]]:
    """The lesion table and label maps with a review applied: merged ids joined, decided rows marked (`review`)."""
    table = lesions.copy()
    table["review"] = ""
    merged = merge_map(decisions)
    maps = [np.asarray(m).copy() for m in label_maps]
    if merged:
        for label_map, source in zip(maps, label_maps, strict=True):
            for old, new in merged.items():
                label_map[np.asarray(source) == old] = new
        old_ids = table["lesion_id"].astype(int)
        moved = old_ids.isin(list(merged)) & (table["component"] > 0)
        table.loc[moved, "review"] = [f"merged {i} into {merged[i]}" for i in old_ids[moved]]
        table["lesion_id"] = old_ids.map(lambda i: merged.get(i, i))
        hosts = pd.to_numeric(table["merged_into"], errors="coerce")
        table["merged_into"] = hosts.map(lambda i: i if pd.isna(i) else merged.get(int(i), int(i))).astype("Int64")
        # a merged lesion absent at a visit where its new id is present (or absent too) needs no row of its own
        shown = table[table["component"] > 0]
        present = set(zip(shown["timepoint"], shown["lesion_id"], strict=True))
        absent = table["component"] == 0
        pairs = zip(table["timepoint"], table["lesion_id"], strict=True)
        redundant = absent & pd.Series([pair in present for pair in pairs], index=table.index)
        redundant |= absent & table.duplicated(["timepoint", "lesion_id", "component"])
        table = table[~redundant]
        table.loc[table["merged_into"] == table["lesion_id"], "merged_into"] = pd.NA
    visits = [str(t) for t in timepoints]
    for lesion, timepoint, decision in zip(
        decisions["lesion_id"], decisions["timepoint"], decisions["decision"], strict=True
    ):
        if decision == "merge":
            continue
        lesion = merged.get(int(lesion), int(lesion))
        rows = (table["lesion_id"] == lesion) & (table["component"] > 0)
        if timepoint:
            rows &= table["timepoint"].astype(str) == timepoint
        mark = REJECTED if decision == "reject" else "accepted"
        table.loc[rows, "review"] = [f"{r}; {mark}" if r else mark for r in table.loc[rows, "review"]]
    order = {t: i for i, t in enumerate(visits)}
    table = table.sort_values(
        ["timepoint", "lesion_id", "component"],
        key=lambda c: c.map(order) if c.name == "timepoint" else c,
        kind="stable",
    )
    return table.reset_index(drop=True), maps
