"""Shared test fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

#: settings of the tiny demo cohort shared by the test suite
TINY_COHORT = {"patients": 2, "timepoints": 3, "train": 2, "seed": 0, "scale": 2.0}


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A very small demo cohort, generated once per test session; returns its directory (absolute).

    `brainmets.demo.cohort.generate_cohort(DIR, patients=2, timepoints=3, train=2, seed=0, scale=2)`,
    about 10 s: patient01 (partial response) and patient02 (new lesion at the 2nd visit, with
    steroid_dose_mg/clinical_status columns), 3 visits each, and training subjects train01, train02.
    Voxels are twice the normal size: the common grid is 2 mm isotropic and scans are 2 mm isotropic,
    1.8 x 1.8 x 3 mm or 1 x 1 x 6 mm, oblique, in various storage orientations. Layout (see
    `brainmets.demo`): DIR/samples.tsv (absolute paths; load it with
    `brainmets.samplesheet.load_samples`), DIR/<subject>/<date>/{t1ce,lesions,brain_mask}.nii.gz,
    DIR/truth/<subject>/<date>_lesions.nii.gz and brain_mask.nii.gz on the common grid, and
    DIR/truth/{poses,lesions,expected_response,scenarios}.tsv. Treat it as read-only.
    """
    from brainmets.demo.cohort import generate_cohort

    out = tmp_path_factory.mktemp("tiny_cohort")
    generate_cohort(out, **TINY_COHORT)
    return out
