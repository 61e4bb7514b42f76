"""RANO-BM response assessment from tracked lesion tables (Lin et al., Lancet Oncol 2015).

The rules, and the project's decisions where the paper leaves a choice open, are those of
`docs/rano-bm.md`; every threshold is a field of `RanoSettings` (config section `rano`).
Decisions made here:
- Rows a reviewer rejected (lesion-table column `review`, brainmets.track.corrections) count for nothing:
  the lesion is absent at that visit.
- Measurability is recomputed from each lesion's diameters and slice count with the settings in use.
  A lesion split into fragments at one timepoint has LD = sum of the fragments' LDs, volume = sum,
  PD and slice count = the largest fragment value.
- A target merged into a non-target lesion inherits that lesion's LD (the lowest such target id
  does; others count 0), so a target never drops to 0 mm only because it touched a non-target.
- A new lesion is a track first seen after baseline. One with LD >= `new_lesion_min_ld_mm` is
  unequivocal progression at that visit; a smaller one that is still present at the next visit is
  confirmed there, with the progression date back-dated to the visit that first showed it. Any
  new lesion still present prevents an overall CR or PR.
- CR/PR are confirmed by a later assessment >= `confirmation_days` later with the same or a better
  response and no progression in between; `confirmed` is true only on such CR/PR rows.
- After the first progression (`after_progression`): `stop` keeps the later rows' measurements but
  leaves their response columns empty (assessment "after progression"); `rebaseline` makes the PD scan
  the baseline of a new assessment period (column `period`) with its own targets, sums and new lesions.
  The PD row itself belongs to the period it ends; `days_from_baseline` counts from the first baseline.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from brainmets.errors import BrainmetsError
from brainmets.io import read_tsv, table_records
from brainmets.rano.settings import RanoSettings

#: columns of the response table, in order: period numbers the assessment periods (1, then one more
#: after each progression under `after_progression: rebaseline`); n_lesions counts lesion ids present
#: (fragments of a split lesion count once); total_volume_ml sums every lesion; target_ids are
#: ";"-joined ids (empty without targets); sum_ld_mm is the sum of target LDs (empty without targets);
#: nadir_mm the smallest earlier sum (empty on the baseline row); changes are in percent (empty when
#: the reference is 0); new_lesions counts lesions first seen at that visit; progression_date is set
#: on PD rows only; the response columns are empty after progression under `after_progression: stop`;
#: review lists what a reviewer's decisions changed at that visit (empty without a review)
RESPONSE_COLUMNS: list[str] = [
    "patient_id",
    "period",
    "timepoint",
    "days_from_baseline",
    "n_lesions",
    "total_volume_ml",
    "target_ids",
    "sum_ld_mm",
    "nadir_mm",
    "change_from_baseline_pct",
    "change_from_nadir_pct",
    "target_response",
    "nontarget_response",
    "new_lesions",
    "overall_response",
    "confirmed",
    "progression_date",
    "assessment",
    "review",
]

#: the `review` mark of a lesion-table row a reviewer rejected (brainmets.track.corrections): it counts for nothing
REJECTED = "rejected"

#: columns of the best-overall-response table, in order
BEST_RESPONSE_COLUMNS: list[str] = [
    "patient_id",
    "period",
    "best_overall_response",
    "best_response_timepoint",
    "progression_timepoint",
    "progression_date",
    "n_followups",
]

#: lesion-table columns that `assess` reads
LESION_COLUMNS: list[str] = [
    "timepoint",
    "lesion_id",
    "component",
    "merged_into",
    "volume_ml",
    "longest_diameter_mm",
    "perpendicular_diameter_mm",
    "n_axial_slices",
]

#: accepted values of the clinical_status column
CLINICAL_STATUSES = ("improved", "stable", "worse")

#: rank of an overall response when comparing "same or better" (higher is better)
_RANK = {"CR": 3, "PR": 2, "SD": 1, "non-CR/non-PD": 1, "PD": 0}

_EPS = 1e-9

#: the assessment column of rows after the progression that ended the assessment (rule `stop`)
AFTER_PROGRESSION_ASSESSMENT = "after progression"
#: response columns left empty after progression under the rule `stop`
_RESPONSE_ONLY = (
    "nadir_mm",
    "change_from_baseline_pct",
    "change_from_nadir_pct",
    "target_response",
    "nontarget_response",
    "overall_response",
    "progression_date",
)


def is_measurable(
    longest_mm: Sequence[float] | pd.Series | np.ndarray,
    perpendicular_mm: Sequence[float] | pd.Series | np.ndarray,
    n_axial_slices: Sequence[int] | pd.Series | np.ndarray,
    settings: RanoSettings | None = None,
) -> np.ndarray:
    """RANO-BM measurability (LD >= 10 mm, PD >= 5 mm, >= 2 axial slices by default), element-wise."""
    s = settings or RanoSettings()
    return (
        (np.asarray(longest_mm, dtype=float) >= s.measurable_min_ld_mm - _EPS)
        & (np.asarray(perpendicular_mm, dtype=float) >= s.measurable_min_pd_mm - _EPS)
        & (np.asarray(n_axial_slices) >= s.measurable_min_slices)
    )


def is_rejected(review: pd.Series) -> pd.Series:
    """Whether each lesion-table row's `review` marks ("; "-joined) say a reviewer rejected it."""
    return review.fillna("").astype(str).str.split("; ").map(lambda marks: REJECTED in marks)


def iso_dates(values: pd.Series, source: str) -> pd.Series:
    """Parse ISO dates (YYYY-MM-DD) into normalised Timestamps, naming the row of the first bad one."""
    parsed = pd.to_datetime(values.astype(str), format="%Y-%m-%d", errors="coerce")
    bad = parsed.isna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise BrainmetsError(
            f"{source}: row {row + 2}, column timepoint: {values.iloc[row]!r} is not an ISO date; "
            "write it as YYYY-MM-DD"
        )
    return parsed


def check_lesion_table(lesions: pd.DataFrame, source: str) -> pd.DataFrame:
    """A checked copy of a lesion table with a patient_id column and Timestamp timepoints."""
    missing = [c for c in LESION_COLUMNS if c not in lesions.columns]
    if missing:
        raise BrainmetsError(f"{source}: missing column(s) {', '.join(missing)}; write it with `brainmets track`")
    table = lesions.copy()
    if "patient_id" not in table.columns:
        table["patient_id"] = ""
    table["patient_id"] = table["patient_id"].astype(str)
    table["timepoint"] = iso_dates(table["timepoint"], source)
    for column in LESION_COLUMNS[1:]:
        if column == "merged_into":
            continue
        numbers = pd.to_numeric(table[column], errors="coerce")
        if numbers.isna().any() or (numbers < 0).any():
            row = int(np.flatnonzero((numbers.isna() | (numbers < 0)).to_numpy())[0])
            raise BrainmetsError(
                f"{source}: row {row + 2}, column {column}: {table[column].iloc[row]!r} is not a non-negative number"
            )
        table[column] = numbers
    table["merged_into"] = pd.to_numeric(table["merged_into"], errors="coerce")
    # the mark of a reviewer's decision (`brainmets track --review`); rows marked rejected count for nothing
    review = table["review"] if "review" in table.columns else pd.Series("", index=table.index)
    table["review"] = review.fillna("").astype(str)
    return table


def read_clinical_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read and check a clinical table (the sample sheet qualifies); returns it as written."""
    table = read_tsv(path, ["timepoint"], text_columns=["patient_id"])
    check_clinical_table(table, str(path))
    return table


def read_lesion_tables(paths: list[Path], patient: str | None = None) -> pd.DataFrame:
    """Concatenate `track` lesion tables, each patient in one file only; checks every file.

    A table without a patient_id column belongs to `patient`, or else to the patient named by the
    folder that holds it (`results/<patient>/lesions.tsv`).
    """
    tables = []
    owners: dict[str, Path] = {}
    for path in paths:
        table = read_tsv(path, text_columns=["patient_id"])
        check_lesion_table(table, str(path))
        if "patient_id" not in table.columns:
            table.insert(0, "patient_id", patient or Path(path).resolve().parent.name)
        table["patient_id"] = table["patient_id"].astype(str)
        for owner in table["patient_id"].unique():
            if owner in owners:
                raise BrainmetsError(f"{path}: patient {owner} is also in {owners[owner]}; give each patient once")
            owners[owner] = Path(path)
        tables.append(table)
    return pd.concat(tables, ignore_index=True)


def check_clinical_table(clinical: pd.DataFrame, source: str) -> pd.DataFrame:
    """A checked clinical table indexed by (patient_id, timepoint) with steroid_dose_mg and clinical_status."""
    if "timepoint" not in clinical.columns:
        raise BrainmetsError(f"{source}: missing column timepoint")
    table = pd.DataFrame({"timepoint": iso_dates(clinical["timepoint"], source)})
    table["patient_id"] = clinical["patient_id"].astype(str) if "patient_id" in clinical.columns else None
    steroid = clinical.get("steroid_dose_mg", pd.Series(np.nan, index=clinical.index))
    table["steroid_dose_mg"] = pd.to_numeric(steroid, errors="coerce")
    bad = table["steroid_dose_mg"].isna() & steroid.notna() & (steroid.astype(str).str.strip() != "")
    bad |= table["steroid_dose_mg"] < 0
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise BrainmetsError(
            f"{source}: row {row + 2}, column steroid_dose_mg: {steroid.iloc[row]!r} is not a non-negative dose in mg"
        )
    status = clinical.get("clinical_status", pd.Series(np.nan, index=clinical.index))
    status = status.where(status.notna(), "").astype(str).str.strip().str.lower()
    bad = ~status.isin(("", *CLINICAL_STATUSES))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise BrainmetsError(
            f"{source}: row {row + 2}, column clinical_status: {status.iloc[row]!r} is not one of "
            f"{', '.join(CLINICAL_STATUSES)} (or empty)"
        )
    table["clinical_status"] = status.replace("", None)
    if "baseline" in clinical.columns:
        table["baseline"] = clinical["baseline"].astype(str).str.strip().str.lower().isin(("true", "1", "yes"))
    else:
        table["baseline"] = False
    return table


@dataclass
class _Visit:
    """Per-lesion aggregates of one patient at one timepoint (keys: lesion id)."""

    ld: dict[int, float]
    pd: dict[int, float]
    slices: dict[int, int]
    volume: dict[int, float]
    merged_into: dict[int, int]
    #: what a reviewer's decisions changed at this visit ("lesion 3: rejected", ...)
    review: list[str] = field(default_factory=list)


def _visits(table: pd.DataFrame) -> dict[str, dict[pd.Timestamp, _Visit]]:
    """Patient -> timepoint -> lesion aggregates (split fragments summed) of a validated lesion table."""
    visits: dict[str, dict[pd.Timestamp, _Visit]] = {}
    keys = table[["patient_id", "timepoint"]].drop_duplicates().sort_values(["patient_id", "timepoint"])
    for patient, timepoint in zip(keys["patient_id"], keys["timepoint"], strict=True):
        visits.setdefault(patient, {})[timepoint] = _Visit({}, {}, {}, {}, {})
    reviewed = table[(table["review"] != "") & (table["lesion_id"] > 0)]
    for patient, timepoint, lesion, mark in zip(
        reviewed["patient_id"], reviewed["timepoint"], reviewed["lesion_id"], reviewed["review"], strict=True
    ):
        note = f"lesion {int(lesion)}: {mark}"
        if note not in visits[patient][timepoint].review:
            visits[patient][timepoint].review.append(note)
    present = table[(table["component"] > 0) & (table["lesion_id"] > 0) & ~is_rejected(table["review"])]
    grouped = present.groupby(["patient_id", "timepoint", "lesion_id"], sort=False).agg(
        ld=("longest_diameter_mm", "sum"),
        pd=("perpendicular_diameter_mm", "max"),
        slices=("n_axial_slices", "max"),
        volume=("volume_ml", "sum"),
    )
    for (patient, timepoint, lesion), ld, pd_, slices, volume in zip(
        grouped.index, grouped["ld"], grouped["pd"], grouped["slices"], grouped["volume"], strict=True
    ):
        visit = visits[patient][timepoint]
        lesion = int(lesion)
        visit.ld[lesion], visit.pd[lesion], visit.slices[lesion], visit.volume[lesion] = ld, pd_, int(slices), volume
    merged = table[(table["component"] == 0) & table["merged_into"].notna()]
    for patient, timepoint, lesion, host in zip(
        merged["patient_id"], merged["timepoint"], merged["lesion_id"], merged["merged_into"], strict=True
    ):
        visits[patient][timepoint].merged_into[int(lesion)] = int(host)
    return visits


def _select_targets(visit: _Visit, settings: RanoSettings) -> list[int]:
    """Target lesion ids at baseline: up to max_targets measurable lesions, largest LD, then volume, then id."""
    ids = sorted(visit.ld)
    measurable = is_measurable(
        [visit.ld[i] for i in ids], [visit.pd[i] for i in ids], [visit.slices[i] for i in ids], settings
    )
    candidates = [i for i, keep in zip(ids, measurable, strict=True) if keep]
    candidates.sort(key=lambda i: (-visit.ld[i], -visit.volume[i], i))
    return sorted(candidates[: settings.max_targets])


def _target_diameters(visit: _Visit, targets: list[int]) -> dict[int, float]:
    """LD (mm) of each target at one visit: fragments summed, absent = 0, merged lesions to the lowest target."""
    ld = {i: visit.ld.get(i, 0.0) for i in targets}
    inherited: dict[int, list[int]] = {}
    for i in targets:
        host = visit.merged_into.get(i)
        if i not in visit.ld and host is not None and host not in targets:
            inherited.setdefault(host, []).append(i)
    for host, merged in inherited.items():
        ld[min(merged)] = visit.ld.get(host, 0.0)
    return ld


def target_diameter_history(lesions: pd.DataFrame, target_ids: list[int]) -> pd.DataFrame:
    """LD (mm) of each target lesion of one patient per timepoint (index: ISO date, columns: lesion ids)."""
    table = check_lesion_table(lesions, "lesion table")
    patients = table["patient_id"].unique()
    if len(patients) != 1:
        raise BrainmetsError(f"lesion table: expected one patient, found {len(patients)}")
    visits = _visits(table)[patients[0]]
    history = pd.DataFrame(
        [_target_diameters(visits[t], target_ids) for t in sorted(visits)], columns=target_ids, dtype=float
    )
    history.index = [t.strftime("%Y-%m-%d") for t in sorted(visits)]
    return history


def _clinical_for(clinical: pd.DataFrame | None, patient: str) -> dict[pd.Timestamp, tuple[float, str | None, bool]]:
    """Timepoint -> (steroid dose mg or NaN, clinical status or None, baseline flag) of one patient."""
    if clinical is None:
        return {}
    rows = clinical if clinical["patient_id"].isna().all() else clinical[clinical["patient_id"] == patient]
    return {
        t: (dose, status, flag)
        for t, dose, status, flag in zip(
            rows["timepoint"], rows["steroid_dose_mg"], rows["clinical_status"], rows["baseline"], strict=True
        )
    }


def _target_response(sld: float, nadir: float, baseline_sld: float, grown: bool, s: RanoSettings) -> str:
    """Target response at a follow-up from the sum of LDs (mm) and whether a target grew by >= 5 mm."""
    if sld >= (1.0 + s.pd_relative) * nadir - _EPS and grown:
        return "PD"
    if sld <= _EPS:
        return "CR"
    if sld <= (1.0 - s.pr_relative) * baseline_sld + _EPS:
        return "PR"
    return "SD"


def _nontarget_response(volume: float, nadir: float, s: RanoSettings) -> str:
    """Non-target response from the total non-target volume (mL) and its nadir (mL)."""
    if volume >= s.nontarget_pd_volume_ratio * nadir - _EPS and volume - nadir >= s.nontarget_pd_min_increase_ml - _EPS:
        return "PD"
    if volume <= _EPS:
        return "CR"
    return "non-CR/non-PD"


def _new_lesion_progression(
    new_ids: list[int],
    first_seen: dict[int, pd.Timestamp],
    visits: dict[pd.Timestamp, _Visit],
    timepoints: list[pd.Timestamp],
    s: RanoSettings,
) -> dict[pd.Timestamp, list[pd.Timestamp]]:
    """Visit at which each new lesion makes progression -> its progression dates.

    A new lesion progresses at the first visit where it is unequivocal (LD >= new_lesion_min_ld_mm)
    or, when equivocal at first, at the next visit if it is still there (confirmed: back-dated to
    the visit that first showed it). An equivocal lesion gone at the next visit is not confirmed; if
    it returns unequivocal later, that visit is the progression date.
    """
    progression: dict[pd.Timestamp, list[pd.Timestamp]] = {}
    for lesion in new_ids:
        start = timepoints.index(first_seen[lesion])
        for index in range(start, len(timepoints)):
            t = timepoints[index]
            if lesion not in visits[t].ld:
                continue
            confirmed = index == start + 1
            if confirmed or visits[t].ld[lesion] >= s.new_lesion_min_ld_mm - _EPS:
                progression.setdefault(t, []).append(timepoints[start] if index <= start + 1 else t)
                break
    return progression


def _assess_patient(
    patient: str,
    visits: dict[pd.Timestamp, _Visit],
    clinical: dict[pd.Timestamp, tuple[float, str | None, bool]],
    s: RanoSettings,
) -> list[dict[str, Any]]:
    """Response rows (one per timepoint from the baseline on) of one patient, period after period."""
    timepoints = sorted(visits)
    flagged = [t for t in timepoints if t in clinical and clinical[t][2]]
    baseline = flagged[0] if flagged else timepoints[0]
    first_seen: dict[int, pd.Timestamp] = {}
    for t in timepoints:
        for lesion in visits[t].ld:
            first_seen.setdefault(lesion, t)
    timepoints = [t for t in timepoints if t >= baseline]
    rows: list[dict[str, Any]] = []
    period = 1
    while True:
        period_rows = _assess_period(patient, visits, first_seen, timepoints, clinical, s)
        if period > 1:  # its baseline is the PD row that closed the previous period
            period_rows = period_rows[1:]
        for row in period_rows:
            row["period"] = period
            row["days_from_baseline"] = int((row["timepoint"] - baseline).days)
        progression = next((i for i, row in enumerate(period_rows) if row["overall_response"] == "PD"), None)
        if progression is None or progression == len(period_rows) - 1:
            return rows + period_rows
        rows += period_rows[: progression + 1]
        if s.after_progression == "stop":
            return rows + [_after_progression(row) for row in period_rows[progression + 1 :]]
        timepoints = timepoints[timepoints.index(period_rows[progression]["timepoint"]) :]
        period += 1


def _after_progression(row: dict[str, Any]) -> dict[str, Any]:
    """A row after the progression that ended the assessment: measurements kept, responses empty."""
    row.update(dict.fromkeys(_RESPONSE_ONLY), confirmed=False, assessment=AFTER_PROGRESSION_ASSESSMENT)
    return row


def overall_response(
    target: str, nontarget: str, progressed: bool, new_present: bool, dose_mg: float, baseline_dose_mg: float
) -> str:
    """RANO-BM overall response of a follow-up from its target and non-target responses, new lesions and steroids.

    `progressed`: any reason for PD at this visit (target, non-target, new lesion or clinical status).
    Doses are mg (NaN: unknown): CR needs none, PR no more than at the period's baseline.
    """
    if progressed:
        return "PD"
    if target in ("CR", "NA") and nontarget in ("CR", "NA") and not new_present and (np.isnan(dose_mg) or dose_mg == 0):
        return "CR"
    steroids_ok = np.isnan(dose_mg) or np.isnan(baseline_dose_mg) or dose_mg <= baseline_dose_mg
    if target in ("CR", "PR") and steroids_ok and not new_present:
        return "PR"
    return "non-CR/non-PD" if target == "NA" else "SD"


def _target_follow_up(
    ld: dict[int, float], history_ld: dict[int, list[float]], history_sld: list[float], s: RanoSettings
) -> tuple[str, dict[str, float]]:
    """Target response at a follow-up, with its nadir (mm) and its changes (%) from the baseline and the nadir.

    `ld`: this visit's LD (mm) per target; `history_ld` and `history_sld`: the period's earlier visits.
    """
    sld = float(sum(ld.values()))
    baseline_sld, nadir = history_sld[0], min(history_sld)
    grown = any(ld[i] - min(history_ld[i]) >= s.pd_absolute_mm - _EPS for i in history_ld)
    measures = {"nadir_mm": nadir}
    if baseline_sld > 0:
        measures["change_from_baseline_pct"] = 100.0 * (sld - baseline_sld) / baseline_sld
    if nadir > 0:
        measures["change_from_nadir_pct"] = 100.0 * (sld - nadir) / nadir
    return _target_response(sld, nadir, baseline_sld, grown, s), measures


def _visit_row(
    patient: str,
    t: pd.Timestamp,
    visit: _Visit,
    targets: list[int],
    sum_ld_mm: float,
    new_lesions: int,
    dose_mg: float,
    status: str | None,
) -> dict[str, Any]:
    """A response row with one visit's measurements (sum of target LDs in mm, lesion counts); responses unset."""
    return {
        "patient_id": patient,
        "timepoint": t,
        "n_lesions": len(visit.ld),
        "total_volume_ml": float(sum(visit.volume.values())),
        "target_ids": ";".join(str(i) for i in targets),
        "sum_ld_mm": sum_ld_mm if targets else np.nan,
        "nadir_mm": np.nan,
        "change_from_baseline_pct": np.nan,
        "change_from_nadir_pct": np.nan,
        "new_lesions": new_lesions,
        "confirmed": False,
        "progression_date": None,
        "assessment": "radiographic" if np.isnan(dose_mg) and status is None else "radiographic+clinical",
        "review": "; ".join(visit.review),
    }


def _assess_period(
    patient: str,
    visits: dict[pd.Timestamp, _Visit],
    first_seen: dict[int, pd.Timestamp],
    timepoints: list[pd.Timestamp],
    clinical: dict[pd.Timestamp, tuple[float, str | None, bool]],
    s: RanoSettings,
) -> list[dict[str, Any]]:
    """Response rows of one assessment period: `timepoints[0]` is its baseline, every later visit a follow-up."""
    baseline = timepoints[0]
    targets = _select_targets(visits[baseline], s)
    nontargets = sorted(i for i, t in first_seen.items() if t <= baseline and i not in targets)
    new_ids = sorted(i for i, t in first_seen.items() if t > baseline)
    baseline_dose = clinical.get(baseline, (np.nan, None, False))[0]
    new_lesion_progression = _new_lesion_progression(new_ids, first_seen, visits, timepoints, s)
    rows: list[dict[str, Any]] = []
    history_sld: list[float] = []
    history_ld: dict[int, list[float]] = {i: [] for i in targets}
    history_volume: list[float] = []
    for t in timepoints:
        visit = visits[t]
        ld = _target_diameters(visit, targets)
        sld = float(sum(ld.values()))
        volume = float(sum(visit.volume.get(i, 0.0) for i in nontargets))
        dose, status, _ = clinical.get(t, (np.nan, None, False))
        new_lesions = sum(1 for i in new_ids if first_seen[i] == t)
        row = _visit_row(patient, t, visit, targets, sld, new_lesions, dose, status)
        if t == baseline:
            row.update(target_response="BL" if targets else "NA", nontarget_response="BL" if nontargets else "NA")
            row["overall_response"] = "BL"
        else:
            target = "NA"
            if targets:
                target, measures = _target_follow_up(ld, history_ld, history_sld, s)
                row.update(measures)
            nontarget = _nontarget_response(volume, min(history_volume), s) if nontargets else "NA"
            progression_dates = [t] if "PD" in (target, nontarget) or status == "worse" else []
            progression_dates += new_lesion_progression.get(t, [])
            if progression_dates:
                row["progression_date"] = min(progression_dates)
            new_present = any(i in visit.ld for i in new_ids)
            overall = overall_response(target, nontarget, bool(progression_dates), new_present, dose, baseline_dose)
            row.update(target_response=target, nontarget_response=nontarget, overall_response=overall)
        rows.append(row)
        history_sld.append(sld)
        history_volume.append(volume)
        for i in targets:
            history_ld[i].append(ld[i])
    _confirm(rows, s)
    return rows


def _confirm(rows: list[dict[str, Any]], s: RanoSettings) -> None:
    """Mark CR/PR rows confirmed by a same-or-better response >= confirmation_days later, before any PD."""
    for index, row in enumerate(rows):
        response = row["overall_response"]
        if response not in ("CR", "PR"):
            continue
        for later in rows[index + 1 :]:
            if later["overall_response"] == "PD":
                break
            if (later["timepoint"] - row["timepoint"]).days >= s.confirmation_days and _RANK[
                later["overall_response"]
            ] >= _RANK[response]:
                row["confirmed"] = True
                break


def assess(
    lesions: pd.DataFrame, clinical: pd.DataFrame | None = None, settings: RanoSettings | None = None
) -> pd.DataFrame:
    """RANO-BM response per patient and timepoint from a `track` lesion table (+ optional clinical table).

    `lesions` may hold a `patient_id` column to cover a cohort; `clinical` has `timepoint` and
    optionally `patient_id`, `steroid_dose_mg`, `clinical_status` (improved/stable/worse) and
    `baseline` (true marks the baseline visit instead of the earliest one).
    """
    settings = settings or RanoSettings()
    table = check_lesion_table(lesions, "lesion table")
    checked_clinical = None if clinical is None else check_clinical_table(clinical, "clinical table")
    rows: list[dict[str, Any]] = []
    for patient, visits in _visits(table).items():
        rows.extend(_assess_patient(patient, visits, _clinical_for(checked_clinical, patient), settings))
    response = pd.DataFrame(rows, columns=RESPONSE_COLUMNS)
    response["timepoint"] = pd.to_datetime(response["timepoint"]).dt.strftime("%Y-%m-%d")
    response["progression_date"] = pd.to_datetime(response["progression_date"]).dt.strftime("%Y-%m-%d")
    return response.astype(
        {"period": int, "confirmed": bool, "n_lesions": int, "new_lesions": int, "days_from_baseline": int}
    )


def best_overall_response(response: pd.DataFrame) -> pd.DataFrame:
    """Best confirmed overall response per patient and period before its progression (RANO-BM / RECIST rule).

    CR or PR count only when confirmed; otherwise any follow-up before progression gives SD (or
    non-CR/non-PD for a patient without target lesions); PD when the first follow-up progresses;
    NA without follow-up. Rows after progression (empty overall response) are not follow-ups.
    """
    ordered = response.assign(period=response["period"] if "period" in response else 1)
    ordered = ordered.sort_values(["patient_id", "period", "timepoint"], kind="stable")
    visits_of: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for record in table_records(ordered):
        visits_of.setdefault((str(record["patient_id"]), int(record["period"])), []).append(record)
    rows = []
    for (patient, period), visits in visits_of.items():
        followups = [v for v in visits if v["overall_response"] in _RANK]
        first_pd = next((v for v in followups if v["overall_response"] == "PD"), None)
        before = [v for v in followups if first_pd is None or v["timepoint"] < first_pd["timepoint"]]
        confirmed = [v for v in before if v["overall_response"] in ("CR", "PR") and bool(v["confirmed"])]
        if confirmed:
            first_best = min(confirmed, key=lambda v: (-_RANK[v["overall_response"]], v["timepoint"]))
            best, when = first_best["overall_response"], first_best["timepoint"]
        elif before:
            no_targets = all(v["target_response"] == "NA" for v in followups)
            best, when = ("non-CR/non-PD" if no_targets else "SD"), before[0]["timepoint"]
        elif first_pd is not None:
            best, when = "PD", first_pd["timepoint"]
        else:
            best, when = "NA", None
        rows.append(
            {
                "patient_id": patient,
                "period": period,
                "best_overall_response": best,
                "best_response_timepoint": when,
                "progression_timepoint": None if first_pd is None else first_pd["timepoint"],
                "progression_date": None if first_pd is None else first_pd["progression_date"],
                "n_followups": len(followups),
            }
        )
    return pd.DataFrame(rows, columns=BEST_RESPONSE_COLUMNS)
