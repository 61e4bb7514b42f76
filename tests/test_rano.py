"""RANO-BM rules, one test per rule, with expectations worked out by hand from rano-bm.md."""

from __future__ import annotations

import pandas as pd
import pytest
from brainmets.cli import main
from brainmets.errors import BrainmetsError
from brainmets.io import read_tsv, write_tsv
from brainmets.rano.rano import BEST_RESPONSE_COLUMNS, RESPONSE_COLUMNS, assess, best_overall_response
from brainmets.rano.settings import RanoSettings, settings_from_config

DATES = ["2024-01-01", "2024-03-01", "2024-05-01", "2024-07-01", "2024-09-01"]


def lesion(t: int | str, lesion_id: int, ld: float, **extra: object) -> dict[str, object]:
    """One lesion-table row: visit index (or ISO date), id, LD in mm; PD = 0.8 LD, 3 slices, 1 mL by default."""
    row: dict[str, object] = {
        "timepoint": DATES[t] if isinstance(t, int) else t,
        "lesion_id": lesion_id,
        "component": 1,
        "event": "present",
        "merged_into": None,
        "volume_ml": 1.0,
        "longest_diameter_mm": ld,
        "perpendicular_diameter_mm": 0.8 * ld,
        "n_axial_slices": 3,
    }
    row.update(extra)
    return row


def absent(t: int, lesion_id: int, merged_into: int | None = None) -> dict[str, object]:
    """A row for a lesion that is not seen at visit t (resolved, or merged into another id)."""
    event = "resolved" if merged_into is None else "merged"
    return lesion(t, lesion_id, 0.0, component=0, event=event, merged_into=merged_into, volume_ml=0.0, n_axial_slices=0)


def responses(rows: list[dict[str, object]], clinical: pd.DataFrame | None = None, **settings: float) -> pd.DataFrame:
    """The response table of a one-patient lesion table, indexed by timepoint."""
    return assess(pd.DataFrame(rows), clinical, RanoSettings(**settings)).set_index("timepoint")


def overall(table: pd.DataFrame) -> list[str]:
    return table["overall_response"].tolist()


# --- baseline and target selection ---------------------------------------------------------------


def test_targets_are_the_five_largest_measurable_lesions_chosen_once_at_baseline():
    rows = [lesion(0, i, ld) for i, ld in [(1, 12), (2, 30), (3, 25), (4, 11), (5, 40), (6, 20), (7, 10.5)]]
    rows += [lesion(0, 8, 50, n_axial_slices=1), lesion(0, 9, 50, perpendicular_diameter_mm=4.0), lesion(0, 10, 9.9)]
    rows += [lesion(1, i, ld) for i, ld in [(1, 12), (2, 30), (3, 25), (4, 11), (5, 40), (6, 20), (7, 10.5)]]
    rows += [lesion(1, 11, 60)]  # a large new lesion is never made a target
    table = responses(rows)
    # measurable: 1 (12), 2 (30), 3 (25), 4 (11), 5 (40), 6 (20), 7 (10.5); 8 one slice, 9 PD 4 mm, 10 LD 9.9
    # the five largest are 5 (40), 2 (30), 3 (25), 6 (20), 1 (12)
    assert table["target_ids"].tolist() == ["1;2;3;5;6", "1;2;3;5;6"]
    assert table.loc[DATES[0], "sum_ld_mm"] == pytest.approx(12 + 30 + 25 + 40 + 20)
    assert table.loc[DATES[1], "sum_ld_mm"] == pytest.approx(127)  # lesion 11 is not added


def test_target_ties_prefer_larger_volume_then_lower_id():
    rows = [lesion(0, 1, 20, volume_ml=1.0), lesion(0, 2, 20, volume_ml=2.0), lesion(0, 3, 20, volume_ml=2.0)]
    table = responses(rows, max_targets=2)
    assert table.loc[DATES[0], "target_ids"] == "2;3"
    table = responses([lesion(0, 1, 20, volume_ml=2.0), lesion(0, 2, 20), lesion(0, 3, 20)], max_targets=2)
    assert table.loc[DATES[0], "target_ids"] == "1;2"


def test_targets_are_never_reselected_when_they_disappear():
    rows = [lesion(0, 1, 20), lesion(0, 2, 8), absent(1, 1), lesion(1, 2, 15), lesion(1, 3, 25)]
    table = responses(rows)
    assert table["target_ids"].tolist() == ["1", "1"]
    assert table.loc[DATES[1], "sum_ld_mm"] == 0
    assert table.loc[DATES[1], "target_response"] == "CR"


def test_no_measurable_lesion_at_baseline_gives_target_na():
    rows = [lesion(0, 1, 8, volume_ml=0.2), lesion(1, 1, 7, volume_ml=0.2)]
    table = responses(rows)
    assert table["target_response"].tolist() == ["NA", "NA"]
    assert table["nontarget_response"].tolist() == ["BL", "non-CR/non-PD"]
    assert overall(table) == ["BL", "non-CR/non-PD"]
    assert table["target_ids"].tolist() == ["", ""]
    assert table["sum_ld_mm"].isna().all()


# --- target response ------------------------------------------------------------------------------


def test_partial_response_at_thirty_percent_and_stable_just_above():
    # baseline 20 + 20 = 40; PR needs SLD <= 28
    table = responses([lesion(0, 1, 20), lesion(0, 2, 20), lesion(1, 1, 14), lesion(1, 2, 14)])
    assert table.loc[DATES[1], "target_response"] == "PR"
    assert table.loc[DATES[1], "change_from_baseline_pct"] == pytest.approx(-30.0)
    table = responses([lesion(0, 1, 20), lesion(0, 2, 20), lesion(1, 1, 14.5), lesion(1, 2, 14)])
    assert table.loc[DATES[1], "target_response"] == "SD"


def test_progression_needs_twenty_percent_over_nadir_and_five_mm_growth():
    # SLD 40 -> 20 (nadir) -> 24: +20 % but each lesion grew only 2 mm: no PD (24 <= 28: PR)
    rows = [lesion(0, 1, 20), lesion(0, 2, 20), lesion(1, 1, 10), lesion(1, 2, 10), lesion(2, 1, 12), lesion(2, 2, 12)]
    # then 10 + 16 = 26 >= 1.2 x 20 and lesion 2 grew 6 mm over its smallest (10): PD
    rows += [lesion(3, 1, 10), lesion(3, 2, 16)]
    table = responses(rows)
    assert table["target_response"].tolist() == ["BL", "PR", "PR", "PD"]
    assert table["nadir_mm"].tolist()[1:] == [40, 20, 20]
    assert table.loc[DATES[3], "change_from_nadir_pct"] == pytest.approx(30.0)


def test_five_mm_growth_is_over_the_lesions_own_smallest_earlier_ld():
    # lesion 1: 30 -> 33 -> 36 (+6 over its minimum 30); SLD 40 -> 43 -> 46 >= 1.2 x 40 = 48? no: SD
    rows = [lesion(0, 1, 30), lesion(0, 2, 10), lesion(1, 1, 33), lesion(1, 2, 10), lesion(2, 1, 36), lesion(2, 2, 10)]
    assert responses(rows)["target_response"].tolist() == ["BL", "SD", "SD"]
    # now SLD 48 = 1.2 x 40 with lesion 1 at +8: PD
    rows[-2] = lesion(2, 1, 38)
    assert responses(rows)["target_response"].tolist() == ["BL", "SD", "PD"]


def test_complete_response_is_reachable():
    rows = [lesion(0, 1, 20), lesion(0, 2, 15), absent(1, 1), absent(1, 2), absent(2, 1), absent(2, 2)]
    table = responses(rows)
    assert table["target_response"].tolist() == ["BL", "CR", "CR"]
    assert overall(table) == ["BL", "CR", "CR"]
    assert table.loc[DATES[1], "nadir_mm"] == 35
    assert table.loc[DATES[2], "nadir_mm"] == 0


def test_target_returning_after_a_nadir_of_zero():
    base = [lesion(0, 1, 20), absent(1, 1)]
    assert responses(base + [lesion(2, 1, 5.0)])["target_response"].tolist() == ["BL", "CR", "PD"]
    # 4 mm back: not progression (needs 5 mm); 4 <= 0.7 x 20 so PR
    assert responses(base + [lesion(2, 1, 4.0)])["target_response"].tolist() == ["BL", "CR", "PR"]


def test_missing_rows_count_as_zero_like_resolved_rows():
    with_rows = responses([lesion(0, 1, 20), lesion(0, 2, 12), lesion(1, 2, 12), absent(1, 1)])
    without = responses([lesion(0, 1, 20), lesion(0, 2, 12), lesion(1, 2, 12)])
    assert with_rows.loc[DATES[1], "sum_ld_mm"] == without.loc[DATES[1], "sum_ld_mm"] == 12


def test_split_target_counts_the_sum_of_its_fragments():
    rows = [
        lesion(0, 1, 30),
        lesion(1, 1, 12, component=1, event="split"),
        lesion(1, 1, 10, component=2, event="split"),
    ]
    table = responses(rows)
    assert table.loc[DATES[1], "sum_ld_mm"] == 22
    assert table.loc[DATES[1], "target_response"] == "SD"  # 22 > 0.7 x 30 = 21


def test_merged_targets_give_the_merged_ld_to_the_lower_id():
    rows = [lesion(0, 1, 20), lesion(0, 2, 15), lesion(1, 1, 30), absent(1, 2, merged_into=1)]
    table = responses(rows)
    assert table.loc[DATES[1], "sum_ld_mm"] == 30  # 30 + 0, not 30 + 15
    assert table.loc[DATES[1], "target_response"] == "SD"


def test_target_merged_into_a_non_target_inherits_its_ld():
    # lesion 1 (8 mm) is a non-target; target 2 merges into it: the merged lesion's 22 mm goes to target 2
    rows = [lesion(0, 1, 8), lesion(0, 2, 20), lesion(1, 1, 22), absent(1, 2, merged_into=1)]
    table = responses(rows)
    assert table.loc[DATES[1], "target_ids"] == "2"
    assert table.loc[DATES[1], "sum_ld_mm"] == 22
    assert table.loc[DATES[1], "target_response"] == "SD"  # 22 < 1.2 x 20, and not <= 0.7 x 20


# --- new lesions ------------------------------------------------------------------------------------


def test_unequivocal_new_lesion_is_progression_at_once():
    rows = [lesion(0, 1, 20), lesion(1, 1, 10), lesion(1, 2, 5.0, event="new")]
    table = responses(rows)
    assert table.loc[DATES[1], "target_response"] == "PR"
    assert table.loc[DATES[1], "new_lesions"] == 1
    assert table.loc[DATES[1], "overall_response"] == "PD"
    assert table.loc[DATES[1], "progression_date"] == DATES[1]


def test_equivocal_new_lesion_confirmed_at_the_next_visit_backdates_progression():
    rows = [lesion(0, 1, 20), lesion(1, 1, 20), lesion(1, 2, 3.0, event="new"), lesion(2, 1, 20), lesion(2, 2, 3.5)]
    table = responses(rows)
    assert overall(table) == ["BL", "SD", "PD"]
    assert table["new_lesions"].tolist() == [0, 1, 0]
    assert pd.isna(table.loc[DATES[1], "progression_date"])
    assert table.loc[DATES[2], "progression_date"] == DATES[1]


def test_equivocal_new_lesion_that_vanishes_is_not_progression():
    rows = [lesion(0, 1, 20), lesion(1, 1, 20), lesion(1, 2, 3.0, event="new"), lesion(2, 1, 20), absent(2, 2)]
    assert overall(responses(rows)) == ["BL", "SD", "SD"]


def test_unconfirmed_equivocal_lesion_returning_unequivocal_progresses_then():
    rows = [lesion(0, 1, 20), lesion(1, 1, 20), lesion(1, 2, 3.0, event="new"), lesion(2, 1, 20), absent(2, 2)]
    rows += [lesion(3, 1, 20), lesion(3, 2, 4.0, event="reappeared"), lesion(4, 1, 20), absent(4, 2)]
    rows += [lesion(4, 2, 7.0, event="reappeared")]
    rows = [r for r in rows if not (r["timepoint"] == DATES[4] and r["component"] == 0)]
    table = responses(rows)
    # 3 mm (equivocal), gone, 4 mm (still equivocal, not the visit after the first), 7 mm: PD at that visit
    assert overall(table) == ["BL", "SD", "SD", "SD", "PD"]
    assert table.loc[DATES[4], "progression_date"] == DATES[4]
    assert table["new_lesions"].tolist() == [0, 1, 0, 0, 0]


def test_new_lesion_threshold_is_configurable():
    rows = [lesion(0, 1, 20), lesion(1, 1, 20), lesion(1, 2, 6.0, event="new")]
    assert overall(responses(rows)) == ["BL", "PD"]
    assert overall(responses(rows, new_lesion_min_ld_mm=7.0)) == ["BL", "SD"]


def test_reappearing_baseline_lesion_is_not_new():
    # non-target 2 (0.2 mL) resolves, then comes back at 0.25 mL: no new lesion, non-target PD needs +0.1 mL
    rows = [lesion(0, 1, 20), lesion(0, 2, 6, volume_ml=0.2), lesion(1, 1, 20), absent(1, 2)]
    rows += [lesion(2, 1, 20), lesion(2, 2, 6, volume_ml=0.05, event="reappeared")]
    table = responses(rows)
    assert table["new_lesions"].tolist() == [0, 0, 0]
    assert table["nontarget_response"].tolist() == ["BL", "CR", "non-CR/non-PD"]
    assert overall(table) == ["BL", "SD", "SD"]


# --- non-target lesions -------------------------------------------------------------------------------


def test_non_target_progression_needs_the_volume_ratio_and_the_absolute_increase():
    # non-target volume 0.5 mL (nadir); 0.864 mL = 1.728 x 0.5 and +0.364 mL: PD
    base = [lesion(0, 1, 20), lesion(0, 2, 6, volume_ml=0.5), lesion(1, 1, 20)]
    assert responses(base + [lesion(1, 2, 6, volume_ml=0.864)])["nontarget_response"].tolist() == ["BL", "PD"]
    assert responses(base + [lesion(1, 2, 6, volume_ml=0.86)])["nontarget_response"].tolist() == ["BL", "non-CR/non-PD"]
    # from 0.05 mL: x 3 but only +0.1 mL - 1e-3: not PD
    small = [lesion(0, 1, 20), lesion(0, 2, 3, volume_ml=0.05), lesion(1, 1, 20), lesion(1, 2, 3, volume_ml=0.149)]
    assert responses(small)["nontarget_response"].tolist() == ["BL", "non-CR/non-PD"]
    assert overall(responses(base + [lesion(1, 2, 6, volume_ml=0.864)])) == ["BL", "PD"]


def test_non_target_nadir_is_the_smallest_earlier_volume():
    rows = [lesion(0, 1, 20), lesion(0, 2, 6, volume_ml=1.0), lesion(1, 1, 20), lesion(1, 2, 6, volume_ml=0.3)]
    rows += [lesion(2, 1, 20), lesion(2, 2, 6, volume_ml=0.52)]  # 0.52 >= 1.728 x 0.3 = 0.518, +0.22 mL
    assert responses(rows)["nontarget_response"].tolist() == ["BL", "non-CR/non-PD", "PD"]


def test_target_cr_with_remaining_non_targets_is_overall_pr():
    rows = [lesion(0, 1, 20), lesion(0, 2, 6, volume_ml=0.2), absent(1, 1), lesion(1, 2, 6, volume_ml=0.2)]
    table = responses(rows)
    assert table.loc[DATES[1], "target_response"] == "CR"
    assert table.loc[DATES[1], "nontarget_response"] == "non-CR/non-PD"
    assert table.loc[DATES[1], "overall_response"] == "PR"


def test_patient_without_targets_reaches_cr_when_every_lesion_is_gone():
    rows = [lesion(0, 1, 6, volume_ml=0.2), absent(1, 1)]
    table = responses(rows)
    assert table["nontarget_response"].tolist() == ["BL", "CR"]
    assert overall(table) == ["BL", "CR"]


# --- clinical information -------------------------------------------------------------------------


def clinical(doses: list[float | None], statuses: list[str | None]) -> pd.DataFrame:
    return pd.DataFrame({"timepoint": DATES[: len(doses)], "steroid_dose_mg": doses, "clinical_status": statuses})


def test_clinical_worsening_is_progression():
    rows = [lesion(0, 1, 20), lesion(1, 1, 10)]
    table = responses(rows, clinical([0, 0], ["stable", "worse"]))
    assert overall(table) == ["BL", "PD"]
    assert table.loc[DATES[1], "progression_date"] == DATES[1]
    assert table["assessment"].tolist() == ["radiographic+clinical"] * 2


def test_corticosteroids_prevent_cr_and_a_dose_above_baseline_prevents_pr():
    rows = [lesion(0, 1, 20), lesion(1, 1, 10), absent(2, 1)]
    table = responses(rows, clinical([4, 2, 2], ["stable", "improved", "stable"]))
    assert table["target_response"].tolist() == ["BL", "PR", "CR"]
    assert overall(table) == ["BL", "PR", "PR"]  # steroids at target CR: only PR
    table = responses(rows, clinical([4, 8, 0], ["stable", "stable", "stable"]))
    assert overall(table) == ["BL", "SD", "CR"]  # 8 mg > 4 mg at baseline: no PR


def test_without_clinical_data_the_assessment_is_radiographic():
    table = responses([lesion(0, 1, 20), lesion(1, 1, 10)])
    assert table["assessment"].tolist() == ["radiographic", "radiographic"]
    table = responses([lesion(0, 1, 20), lesion(1, 1, 10)], clinical([None, 5], [None, None]))
    assert table["assessment"].tolist() == ["radiographic", "radiographic+clinical"]


def test_baseline_flag_in_the_clinical_table_moves_the_baseline():
    rows = [lesion(0, 1, 10), lesion(1, 1, 30), lesion(1, 2, 20), lesion(2, 1, 30), lesion(2, 2, 20)]
    flags = pd.DataFrame({"timepoint": DATES[:3], "baseline": ["false", "true", "false"]})
    table = responses(rows, flags)
    assert table.index.tolist() == DATES[1:3]
    assert table["overall_response"].tolist() == ["BL", "SD"]
    assert table.loc[DATES[1], "target_ids"] == "1;2"
    assert table.loc[DATES[2], "days_from_baseline"] == 61


# --- confirmation and best overall response -----------------------------------------------------------


def test_response_is_confirmed_by_a_same_or_better_one_at_least_28_days_later():
    dates = ["2024-01-01", "2024-02-01", "2024-02-20", "2024-03-05"]
    rows = [lesion(dates[0], 1, 20), lesion(dates[1], 1, 12), lesion(dates[2], 1, 12), absent(3, 1)]
    rows[-1]["timepoint"] = dates[3]
    table = responses(rows)
    assert overall(table) == ["BL", "PR", "PR", "CR"]
    # PR on 02-01 is confirmed by CR on 03-05 (33 days); PR on 02-20 has only 14 days; last CR has nothing after
    assert table["confirmed"].tolist() == [False, True, False, False]


def test_progression_in_between_breaks_confirmation():
    rows = [lesion(0, 1, 20), lesion(1, 1, 12), lesion(2, 1, 18), lesion(3, 1, 12)]
    table = responses(rows, after_progression="rebaseline")
    assert overall(table) == ["BL", "PR", "PD", "PR"]
    assert table["confirmed"].tolist() == [False, False, False, False]


def test_best_overall_response_is_the_best_confirmed_before_progression():
    cohort = []
    # A: PR, PR (confirmed), then PD -> PR
    cohort += [lesion(0, 1, 20, patient_id="A"), lesion(1, 1, 12, patient_id="A"), lesion(2, 1, 12, patient_id="A")]
    cohort += [lesion(3, 1, 20, patient_id="A")]
    # B: PR once, then progression -> SD (unconfirmed PR counts as stable)
    cohort += [lesion(0, 1, 20, patient_id="B"), lesion(1, 1, 12, patient_id="B"), lesion(2, 1, 18, patient_id="B")]
    # C: progression at the first follow-up -> PD
    cohort += [lesion(0, 1, 20, patient_id="C"), lesion(1, 1, 30, patient_id="C")]
    # D: CR confirmed
    cohort += [lesion(0, 1, 20, patient_id="D"), absent(1, 1) | {"patient_id": "D"}, absent(2, 1) | {"patient_id": "D"}]
    # E: baseline only
    cohort += [lesion(0, 1, 20, patient_id="E")]
    response = assess(pd.DataFrame(cohort))
    best = best_overall_response(response).set_index("patient_id")
    assert list(best.reset_index().columns) == BEST_RESPONSE_COLUMNS
    assert best["best_overall_response"].to_dict() == {"A": "PR", "B": "SD", "C": "PD", "D": "CR", "E": "NA"}
    assert best.loc["A", "best_response_timepoint"] == DATES[1]
    assert best.loc["A", "progression_timepoint"] == DATES[3]
    assert best.loc["B", "progression_date"] == DATES[2]
    assert best["n_followups"].to_dict() == {"A": 3, "B": 2, "C": 1, "D": 2, "E": 0}


# --- after progression: stop, or a new assessment period (rebaseline) -------------------------------------


def both_rules(rows: list[dict[str, object]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The response tables of `rows` under after_progression stop and rebaseline."""
    return responses(rows, after_progression="stop"), responses(rows, after_progression="rebaseline")


def test_stop_is_the_default_rule():
    assert RanoSettings().after_progression == "stop"


def test_after_a_new_lesion_stop_keeps_measurements_and_rebaseline_makes_it_a_target():
    rows = [lesion(0, 1, 20), lesion(1, 1, 20), lesion(1, 2, 12, event="new"), lesion(2, 1, 20), lesion(2, 2, 12)]
    stop, rebaseline = both_rules(rows)
    assert overall(stop) == ["BL", "PD", None]
    after = stop.loc[DATES[2]]
    assert after["assessment"] == "after progression"
    assert (after["n_lesions"], after["total_volume_ml"], after["sum_ld_mm"]) == (2, 2.0, 20.0)
    for column in ("target_response", "nontarget_response", "progression_date", "nadir_mm", "change_from_nadir_pct"):
        assert pd.isna(after[column]), column
    assert not after["confirmed"]
    assert stop["period"].tolist() == [1, 1, 1]
    # the new lesion is on the new baseline (visit 1): measurable, so a target of period 2, and no longer new
    assert overall(rebaseline) == ["BL", "PD", "SD"]
    assert rebaseline["period"].tolist() == [1, 1, 2]
    assert rebaseline["target_ids"].tolist() == ["1", "1", "1;2"]
    second = rebaseline.loc[DATES[2]]
    assert (second["sum_ld_mm"], second["nadir_mm"], second["change_from_baseline_pct"]) == (32.0, 32.0, 0.0)
    assert second["new_lesions"] == 0
    assert second["days_from_baseline"] == 121  # still counted from the first baseline
    assert second["assessment"] == "radiographic"


def test_after_target_growth_the_nadir_and_baseline_restart_from_the_progression_scan():
    rows = [lesion(0, 1, 20), lesion(1, 1, 12), lesion(2, 1, 18), lesion(3, 1, 12)]
    stop, rebaseline = both_rules(rows)
    assert overall(stop) == ["BL", "PR", "PD", None]
    assert stop.loc[DATES[3], "sum_ld_mm"] == 12.0
    # period 2: baseline 18 mm, 12 <= 0.7 x 18 = 12.6 is PR (against the first baseline 20 it would be SD)
    assert overall(rebaseline) == ["BL", "PR", "PD", "PR"]
    assert rebaseline.loc[DATES[3], "nadir_mm"] == 18.0
    assert rebaseline.loc[DATES[3], "change_from_baseline_pct"] == pytest.approx(-100 / 3)


def test_after_non_target_growth_the_non_target_nadir_restarts():
    # lesion 2 is non-measurable (PD 4.8 mm): its volume doubles at visit 1 (non-target PD), then stays
    rows = [
        lesion(0, 1, 20),
        lesion(0, 2, 6, volume_ml=0.5),
        lesion(1, 1, 20),
        lesion(1, 2, 6),
        lesion(2, 1, 20),
        lesion(2, 2, 6),
    ]
    stop, rebaseline = both_rules(rows)
    assert stop["nontarget_response"].tolist() == ["BL", "PD", None]
    assert overall(stop) == ["BL", "PD", None]
    # against the first period's nadir (0.5 mL) visit 2 would be PD again; against the new baseline it is not
    assert rebaseline["nontarget_response"].tolist() == ["BL", "PD", "non-CR/non-PD"]
    assert overall(rebaseline) == ["BL", "PD", "SD"]


def test_progression_on_the_last_visit_opens_no_period():
    rows = [lesion(0, 1, 20), lesion(1, 1, 20), lesion(2, 1, 30)]
    for table in both_rules(rows):
        assert overall(table) == ["BL", "SD", "PD"]
        assert table["period"].tolist() == [1, 1, 1]
        assert table["assessment"].tolist() == ["radiographic"] * 3
    best = best_overall_response(assess(pd.DataFrame(rows), settings=RanoSettings(after_progression="rebaseline")))
    assert best["period"].tolist() == [1]
    assert best["best_overall_response"].tolist() == ["SD"]


def test_two_progressions_make_three_periods_and_a_best_response_each():
    ld = [20, 12, 18, 12, 20, 20]
    dates = DATES + ["2024-11-01"]
    rows = [lesion(dates[i], 1, value) for i, value in enumerate(ld)]
    stop, rebaseline = both_rules(rows)
    assert overall(stop) == ["BL", "PR", "PD", None, None, None]
    # period 2 starts at visit 2 (18 mm): PR at 12, PD at 20 (>= 1.2 x 12 and +8 mm); period 3 starts at visit 4
    assert overall(rebaseline) == ["BL", "PR", "PD", "PR", "PD", "SD"]
    assert rebaseline["period"].tolist() == [1, 1, 1, 2, 2, 3]
    assert rebaseline["progression_date"].dropna().to_dict() == {dates[2]: dates[2], dates[4]: dates[4]}
    best = best_overall_response(rebaseline.reset_index())
    assert list(best.columns) == BEST_RESPONSE_COLUMNS
    assert best["period"].tolist() == [1, 2, 3]
    assert best["best_overall_response"].tolist() == ["SD", "SD", "SD"]  # no PR is confirmed before its PD
    assert best["progression_timepoint"].tolist() == [dates[2], dates[4], None]
    assert best["n_followups"].tolist() == [2, 2, 1]
    best = best_overall_response(stop.reset_index())
    assert best["period"].tolist() == [1]
    assert best["n_followups"].tolist() == [2]  # rows after progression are not follow-ups


def test_confirmation_never_crosses_a_progression():
    # PR at visit 1, PD at visit 2, then PR at visits 3 and 4 (61 days apart) against the new baseline
    rows = [lesion(0, 1, 20), lesion(1, 1, 12), lesion(2, 1, 18), lesion(3, 1, 12), lesion(4, 1, 10)]
    stop, rebaseline = both_rules(rows)
    assert stop["confirmed"].tolist() == [False] * 5
    assert overall(rebaseline) == ["BL", "PR", "PD", "PR", "PR"]
    # the PR of period 1 is not confirmed by the PRs of period 2; those confirm each other
    assert rebaseline["confirmed"].tolist() == [False, False, False, True, False]
    best = best_overall_response(rebaseline.reset_index()).set_index("period")
    assert best.loc[1, "best_overall_response"] == "SD"
    assert (best.loc[2, "best_overall_response"], best.loc[2, "best_response_timepoint"]) == ("PR", DATES[3])


def test_an_equivocal_lesion_on_the_progression_scan_is_not_new_in_the_next_period():
    # visit 1: target growth (PD) and a 3 mm lesion; visit 2: the small lesion is still there
    rows = [lesion(0, 1, 20), lesion(1, 1, 30), lesion(1, 2, 3, event="new"), lesion(2, 1, 30), lesion(2, 2, 3)]
    stop, rebaseline = both_rules(rows)
    assert overall(stop) == ["BL", "PD", None]
    assert overall(rebaseline) == ["BL", "PD", "SD"]
    # an equivocal lesion that appears within period 2 is confirmed at the next visit, back-dated within it
    rows = [
        lesion(0, 1, 20),
        lesion(1, 1, 30),
        lesion(2, 1, 30),
        lesion(2, 2, 3, event="new"),
        lesion(3, 1, 30),
        lesion(3, 2, 3),
    ]
    rebaseline = responses(rows, after_progression="rebaseline")
    assert overall(rebaseline) == ["BL", "PD", "SD", "PD"]
    assert rebaseline.loc[DATES[3], "progression_date"] == DATES[2]


def test_after_progression_comes_from_the_config_or_the_command(tmp_path, capsys):
    rows = [lesion(0, 1, 20), lesion(1, 1, 12), lesion(2, 1, 18), lesion(3, 1, 12)]
    write_tsv(pd.DataFrame(rows), tmp_path / "P1" / "lesions.tsv")
    (tmp_path / "config.yaml").write_text("rano:\n  after_progression: rebaseline\n")
    command = ["rano", str(tmp_path / "P1" / "lesions.tsv"), "--out", str(tmp_path / "r.tsv")]
    pictures = ["--trajectory", str(tmp_path / "trajectory.png"), "--timeline", str(tmp_path / "timeline.png")]
    assert (
        main([*command, "--config", str(tmp_path / "config.yaml"), "--best-out", str(tmp_path / "b.tsv"), *pictures])
        == 0
    )
    assert read_tsv(tmp_path / "r.tsv")["period"].tolist() == [1, 1, 1, 2]
    assert read_tsv(tmp_path / "b.tsv")["period"].tolist() == [1, 2]
    (tmp_path / "trajectory.png").unlink()
    assert main([*command, "--config", str(tmp_path / "config.yaml"), "--after-progression", "stop", *pictures]) == 0
    assert (tmp_path / "trajectory.png").read_bytes()[:4] == b"\x89PNG"
    written = read_tsv(tmp_path / "r.tsv")
    assert written["assessment"].tolist()[-1] == "after progression"
    assert pd.isna(written["overall_response"].iloc[-1])
    (tmp_path / "bad.yaml").write_text("rano:\n  after_progression: restart\n")
    assert main([*command, "--config", str(tmp_path / "bad.yaml")]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert f"{tmp_path / 'bad.yaml'}: rano.after_progression: 'restart' is not one of ['stop', 'rebaseline']" in error


# --- settings, input checks and the command -----------------------------------------------------------


def test_settings_come_from_the_checked_rano_section():
    assert settings_from_config({"rano": {"pr_relative": 0.5}, "track": {}}).pr_relative == 0.5
    assert settings_from_config({"rano": {"max_targets": 3}}) == RanoSettings(max_targets=3)
    with pytest.raises(BrainmetsError, match="unknown key 'max_target' in section 'rano'"):
        settings_from_config({"rano": {"max_target": 3}})
    with pytest.raises(BrainmetsError, match="rano.pd_relative: 'twenty' is not of type 'number'"):
        settings_from_config({"rano": {"pd_relative": "twenty"}})
    with pytest.raises(BrainmetsError, match="rano.after_progression: 'restart' is not one of"):
        settings_from_config({"rano": {"after_progression": "restart"}})


def test_pd_and_pr_thresholds_are_configurable():
    rows = [lesion(0, 1, 20), lesion(1, 1, 15)]
    assert responses(rows)["target_response"].tolist() == ["BL", "SD"]
    assert responses(rows, pr_relative=0.25)["target_response"].tolist() == ["BL", "PR"]
    rows = [lesion(0, 1, 20), lesion(1, 1, 23)]
    assert responses(rows, pd_relative=0.1, pd_absolute_mm=3)["target_response"].tolist() == ["BL", "PD"]


def test_unparsable_date_names_the_row():
    rows = [lesion(0, 1, 20), lesion("2024-13-40", 1, 10)]
    with pytest.raises(BrainmetsError, match=r"lesion table: row 3, column timepoint: '2024-13-40' is not an ISO date"):
        assess(pd.DataFrame(rows))


def test_unknown_clinical_status_is_refused():
    with pytest.raises(BrainmetsError, match="row 2, column clinical_status: 'better'"):
        assess(pd.DataFrame([lesion(0, 1, 20)]), pd.DataFrame({"timepoint": [DATES[0]], "clinical_status": ["better"]}))


def test_rano_command_writes_response_and_best_response(tmp_path):
    folder = tmp_path / "P7"
    write_tsv(pd.DataFrame([lesion(0, 1, 20), lesion(1, 1, 12), lesion(2, 1, 12)]), folder / "lesions.tsv")
    write_tsv(clinical([0, 0, 0], ["stable", "stable", "improved"]).assign(patient_id="P7"), tmp_path / "clin.tsv")
    code = main(
        [
            "rano",
            str(folder / "lesions.tsv"),
            "--clinical",
            str(tmp_path / "clin.tsv"),
            "--out",
            str(tmp_path / "response.tsv"),
            "--best-out",
            str(tmp_path / "best.tsv"),
        ]
    )
    assert code == 0
    response = read_tsv(tmp_path / "response.tsv")
    assert list(response.columns) == RESPONSE_COLUMNS
    assert response["patient_id"].tolist() == ["P7"] * 3
    assert response["overall_response"].tolist() == ["BL", "PR", "PR"]
    assert response["assessment"].tolist() == ["radiographic+clinical"] * 3
    best = read_tsv(tmp_path / "best.tsv")
    assert best["best_overall_response"].tolist() == ["PR"]


def test_rano_command_refuses_a_bad_date_in_one_line(tmp_path, capsys):
    write_tsv(pd.DataFrame([lesion(0, 1, 20), lesion("01/03/2024", 1, 12)]), tmp_path / "lesions.tsv")
    assert main(["rano", str(tmp_path / "lesions.tsv"), "--out", str(tmp_path / "r.tsv")]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert "lesions.tsv: row 3, column timepoint: '01/03/2024' is not an ISO date" in error
    assert not (tmp_path / "r.tsv").exists()


def test_rano_command_refuses_the_same_patient_in_two_files(tmp_path, capsys):
    for name in ("a", "b"):
        write_tsv(pd.DataFrame([lesion(0, 1, 20, patient_id="P1")]), tmp_path / f"{name}.tsv")
    assert main(["rano", str(tmp_path / "a.tsv"), str(tmp_path / "b.tsv"), "--out", str(tmp_path / "r.tsv")]) == 2
    assert "patient P1 is also in" in capsys.readouterr().err


def test_config_yaml_defaults_are_the_documented_rules():
    # config/config.yaml must name every rano key with the RANO-BM defaults of rano-bm.md
    from pathlib import Path

    import yaml

    config = yaml.safe_load((Path(__file__).parents[1] / "config" / "config.yaml").read_text())
    assert settings_from_config(config) == RanoSettings(
        measurable_min_ld_mm=10,
        measurable_min_pd_mm=5,
        measurable_min_slices=2,
        max_targets=5,
        pd_relative=0.2,
        pd_absolute_mm=5,
        pr_relative=0.3,
        new_lesion_min_ld_mm=5,
        nontarget_pd_volume_ratio=1.728,
        nontarget_pd_min_increase_ml=0.1,
        confirmation_days=28,
        after_progression="stop",
    )
    assert set(config["rano"]) == set(RanoSettings.__dataclass_fields__)


def test_whole_number_settings_refuse_fractions():
    with pytest.raises(BrainmetsError, match="rano.max_targets: 2.5 is not of type 'integer'"):
        settings_from_config({"rano": {"max_targets": 2.5}})


def test_lesion_tables_take_the_patient_id_from_the_option_or_the_folder(tmp_path):
    from brainmets.rano.rano import read_lesion_tables

    write_tsv(pd.DataFrame([lesion(0, 1, 20)]), tmp_path / "P3" / "lesions.tsv")
    write_tsv(pd.DataFrame([lesion(0, 1, 20, patient_id="P4")]), tmp_path / "other.tsv")
    table = read_lesion_tables([tmp_path / "P3" / "lesions.tsv", tmp_path / "other.tsv"])
    assert table["patient_id"].tolist() == ["P3", "P4"]
    table = read_lesion_tables([tmp_path / "P3" / "lesions.tsv"], patient="case-9")
    assert table["patient_id"].tolist() == ["case-9"]


def test_patient_ids_stay_as_written(tmp_path):
    # "007" must not become 7, or the clinical rows of patient 007 would not be found
    write_tsv(pd.DataFrame([lesion(0, 1, 20), lesion(1, 1, 10)]).assign(patient_id="007"), tmp_path / "l.tsv")
    write_tsv(clinical([0, 0], ["stable", "worse"]).assign(patient_id="007"), tmp_path / "c.tsv")
    assert (
        main(["rano", str(tmp_path / "l.tsv"), "--clinical", str(tmp_path / "c.tsv"), "--out", str(tmp_path / "r.tsv")])
        == 0
    )
    response = pd.read_csv(tmp_path / "r.tsv", sep="\t", dtype=str)
    assert response["patient_id"].tolist() == ["007", "007"]
    assert response["overall_response"].tolist() == ["BL", "PD"]
