"""The parts of a patient's RANO-BM assessment, each on its own, with values worked out by hand."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from brainmets.rano.rano import (
    RanoSettings,
    _assess_patient,
    _assess_period,
    _target_follow_up,
    _Visit,
    _visit_row,
    overall_response,
)

NAN = float("nan")
T = [pd.Timestamp(d) for d in ("2024-01-01", "2024-03-01", "2024-05-01", "2024-07-01")]


def visit(lds: dict[int, float], volume_ml: float = 1.0) -> _Visit:
    """Lesion aggregates of one visit: LD (mm) per id, PD = 0.8 LD, 3 slices, `volume_ml` each."""
    return _Visit(
        ld=dict(lds),
        pd={i: 0.8 * v for i, v in lds.items()},
        slices={i: 3 for i in lds},
        volume={i: volume_ml for i in lds},
        merged_into={},
    )


@pytest.mark.parametrize(
    ("target", "nontarget", "progressed", "new_present", "dose", "baseline_dose", "expected"),
    [
        ("CR", "CR", True, False, NAN, NAN, "PD"),  # any reason for progression wins
        ("CR", "NA", False, False, NAN, NAN, "CR"),
        ("CR", "CR", False, False, 0.0, 4.0, "CR"),
        ("CR", "CR", False, False, 2.0, 4.0, "PR"),  # steroids at all: no CR, but less than at baseline is a PR
        ("CR", "CR", False, True, NAN, NAN, "SD"),  # a new lesion still present (not yet progression)
        ("PR", "non-CR/non-PD", False, False, 4.0, 4.0, "PR"),
        ("PR", "non-CR/non-PD", False, False, 8.0, 4.0, "SD"),  # more steroids than at baseline: no PR
        ("PR", "CR", False, False, 8.0, NAN, "PR"),  # baseline dose unknown: the dose does not count
        ("SD", "CR", False, False, NAN, NAN, "SD"),
        ("NA", "non-CR/non-PD", False, False, NAN, NAN, "non-CR/non-PD"),
        ("NA", "CR", False, False, NAN, NAN, "CR"),
    ],
)
def test_overall_response_combines_the_parts_as_the_rano_bm_table(
    target: str, nontarget: str, progressed: bool, new_present: bool, dose: float, baseline_dose: float, expected: str
) -> None:
    assert overall_response(target, nontarget, progressed, new_present, dose, baseline_dose) == expected


def test_target_follow_up_measures_against_baseline_and_nadir() -> None:
    s = RanoSettings()
    history_ld = {1: [20.0, 10.0], 2: [20.0, 10.0]}
    response, measures = _target_follow_up({1: 13.0, 2: 11.0}, history_ld, [40.0, 20.0], s)
    # sum 24 mm: +20 % over the nadir (20) and lesion 1 grew 3 mm only: no PD; -40 % from 40 mm: PR
    assert response == "PR"
    assert measures == pytest.approx(
        {"nadir_mm": 20.0, "change_from_baseline_pct": -40.0, "change_from_nadir_pct": 20.0}
    )
    response, _ = _target_follow_up({1: 15.0, 2: 9.0}, history_ld, [40.0, 20.0], s)
    assert response == "PD"  # the same 24 mm, with lesion 1 grown 5 mm over its own smallest LD
    response, measures = _target_follow_up({1: 0.0, 2: 0.0}, {1: [0.0], 2: [0.0]}, [0.0], s)
    assert response == "CR" and measures == {"nadir_mm": 0.0}  # no change in % from 0 mm


def test_visit_row_holds_the_measurements_and_leaves_responses_unset() -> None:
    row = _visit_row("p", T[1], visit({1: 12.0, 4: 3.0}, volume_ml=0.5), [1, 3], 12.0, 1, NAN, None)
    assert row["n_lesions"] == 2 and row["total_volume_ml"] == 1.0
    assert row["target_ids"] == "1;3" and row["sum_ld_mm"] == 12.0 and row["new_lesions"] == 1
    assert row["assessment"] == "radiographic" and row["confirmed"] is False and row["progression_date"] is None
    assert "overall_response" not in row and math.isnan(row["nadir_mm"])
    without_targets = _visit_row("p", T[1], visit({4: 3.0}), [], 0.0, 0, 2.0, None)
    assert math.isnan(without_targets["sum_ld_mm"]) and without_targets["assessment"] == "radiographic+clinical"


def test_assess_period_scores_follow_ups_against_its_own_baseline() -> None:
    visits = {T[0]: visit({1: 20.0, 2: 4.0}), T[1]: visit({1: 12.0, 2: 4.0}), T[2]: visit({1: 12.0, 2: 4.0, 3: 8.0})}
    first_seen = {1: T[0], 2: T[0], 3: T[2]}
    rows = _assess_period("p", visits, first_seen, T[:3], {}, RanoSettings())
    assert [r["target_ids"] for r in rows] == ["1"] * 3  # lesion 2 (4 mm) is not measurable: non-target
    assert [r["overall_response"] for r in rows] == ["BL", "PR", "PD"]  # an unequivocal new lesion at T2
    assert [r["nontarget_response"] for r in rows] == ["BL", "non-CR/non-PD", "non-CR/non-PD"]
    assert rows[1]["change_from_baseline_pct"] == pytest.approx(-40.0)
    assert rows[2]["progression_date"] == T[2] and rows[2]["new_lesions"] == 1
    assert rows[1]["confirmed"] is False  # PR at T1 is followed by PD, never confirmed


def test_assess_patient_starts_at_the_flagged_baseline_and_stops_after_progression() -> None:
    visits = {
        T[0]: visit({1: 30.0}),
        T[1]: visit({1: 20.0}),
        T[2]: visit({1: 20.0, 2: 9.0}),
        T[3]: visit({1: 20.0, 2: 9.0}),
    }
    clinical = {T[1]: (NAN, None, True)}  # the clinical table marks the second visit as baseline
    rows = _assess_patient("p", visits, clinical, RanoSettings())
    assert [r["timepoint"] for r in rows] == T[1:]
    assert [r["days_from_baseline"] for r in rows] == [0, 61, 122]
    assert [r["overall_response"] for r in rows] == ["BL", "PD", None]  # stop: nothing scored after the PD
    assert [r["period"] for r in rows] == [1, 1, 1]

    rebaselined = _assess_patient("p", visits, clinical, RanoSettings(after_progression="rebaseline"))
    assert [r["overall_response"] for r in rebaselined] == ["BL", "PD", "SD"]
    assert [r["period"] for r in rebaselined] == [1, 1, 2]
    assert rebaselined[2]["target_ids"] == "1"  # lesion 2 (9 mm) is not measurable at the new baseline
