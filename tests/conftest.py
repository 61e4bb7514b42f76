"""Shared test fixtures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
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


#: the tiny U-Net of the inference tests: 2 levels, no deep supervision, 16^3 patch, 2 mm patient space
TINY_NETWORK = {"filters": [4, 8], "deep_supervision_heads": 0}
TINY_PATCH = [16, 16, 16]
TINY_SPACING_MM = [2.0, 2.0, 2.0]  # the tiny demo cohort's patient-space spacing


def randomised_unet(seed: int):
    """The tiny U-Net with seeded random weights, its normalisation scales and offsets randomised too."""
    import keras

    from brainmets.training.model import build_unet

    keras.utils.set_random_seed(seed)
    model = build_unet(**TINY_NETWORK)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.GroupNormalization):  # non-trivial affine parameters
            layer.set_weights([rng.uniform(0.5, 1.5, layer.gamma.shape), rng.normal(0, 0.5, layer.beta.shape)])
    return model


def write_tiny_model(root: Path, folds: tuple[int, ...] = (0, 1)) -> Path:
    """A model directory at `root` holding one randomised tiny U-Net per fold (seeded by the fold); returns `root`."""
    from brainmets.training.modeldir import model_metadata, write_json

    for fold in folds:
        (root / f"fold_{fold}").mkdir(parents=True)
        randomised_unet(fold).save_weights(str(root / f"fold_{fold}" / "best.weights.h5"))
    write_json(model_metadata("tiny", TINY_NETWORK, TINY_PATCH, TINY_SPACING_MM, list(folds)), root / "model.json")
    return root


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-fold model directory of randomised tiny U-Nets (`write_tiny_model`), built once per test session."""
    return write_tiny_model(tmp_path_factory.mktemp("tiny_model"))
