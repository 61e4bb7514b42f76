"""Cross-validation folds split by patient, so no patient's scans are both trained on and validated on."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.model_selection import GroupKFold

from brainmets.errors import BrainmetsError
from brainmets.train.cases import Case


def patient_folds(cases: Sequence[Case], folds: int, seed: int) -> list[list[Case]]:
    """The validation cases of each fold; every patient's cases fall into exactly one fold."""
    patients = np.array([c.patient for c in cases])
    n_patients = len(set(patients))
    if n_patients < folds:
        raise BrainmetsError(
            f"{n_patients} training patient(s) cannot fill {folds} cross-validation folds; "
            "add patients or lower train.folds"
        )
    splitter = GroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    return [[cases[i] for i in val] for _, val in splitter.split(np.zeros(len(cases)), groups=patients)]


def fold_cases(cases: Sequence[Case], fold: int, folds: int, seed: int) -> tuple[list[Case], list[Case]]:
    """(training cases, validation cases) of fold `fold` (0-based)."""
    if not 0 <= fold < folds:
        raise BrainmetsError(f"fold {fold} does not exist; train.folds is {folds}, so use 0 to {folds - 1}")
    validation = patient_folds(cases, folds, seed)[fold]
    names = {c.name for c in validation}
    return [c for c in cases if c.name not in names], validation
