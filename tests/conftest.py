"""Shared test fixtures, and the guard that keeps the suite from changing the machine (tests/guard.py)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import brainmets  # noqa: F401  (first: sets TensorFlow's CPU kernels before a test module imports TensorFlow)
import numpy as np
import pytest

import guard

#: the guard of this session; None when BRAINMETS_SYSTEM_TESTS=1 asked for the system tests
GUARD: guard.MachineGuard | None = None


def pytest_configure(config: pytest.Config) -> None:
    """Install the guard unless the system tests were asked for."""
    global GUARD
    if not guard.system_tests_enabled() and GUARD is None:
        GUARD = guard.install(Path(tempfile.mkdtemp(prefix="brainmets-test-guard-")))
        GUARD.active = True


#: fixtures that cost tens of seconds: a test that uses one is `slow` (left out of `make test-fast`)
SLOW_FIXTURES = {
    "tiny_cohort": "generates the demo cohort",
    "every_scenario": "generates a demo cohort of every scenario",
    "segmented": "segments the real scans",
    "imported_model": "predicts 128^3 windows with the published recipe",
    "official": "runs the official scorer's environment",
}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the users of SLOW_FIXTURES `slow`; skip the tests marked `system`, with the reason, unless asked for."""
    for item in items:
        if SLOW_FIXTURES.keys() & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
    if guard.system_tests_enabled():
        return
    skip = pytest.mark.skip(
        reason="system test: installs Debian packages, writes /etc or starts daemons; "
        f"runs only with {guard.SYSTEM_TESTS_VARIABLE}=1 (set by .ci/run)"
    )
    for item in items:
        if "system" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def leave_the_machine_alone() -> Iterator[guard.MachineGuard | None]:
    """Fail a test that installs packages, starts a daemon or writes /etc, even when it caught the refusal."""
    if GUARD is None:
        yield None
        return
    GUARD.violations.clear()
    GUARD.child_violations()
    yield GUARD
    found = GUARD.violations + GUARD.child_violations()
    if found:
        pytest.fail(f"the test changes the machine: {'; '.join(found)} (system tests need the marker `system`)")


#: settings of the tiny demo cohort shared by the test suite
TINY_COHORT = {"patients": 2, "timepoints": 3, "train": 2, "seed": 0, "scale": 2.0}


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A very small demo cohort, generated once per test session; returns its directory (absolute).

    `brainmets.demo.cohort.generate_cohort(DIR, DemoSettings(patients=2, timepoints=3, train=2, seed=0, scale=2))`,
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
    from brainmets.demo.settings import DemoSettings

    out = tmp_path_factory.mktemp("tiny_cohort")
    generate_cohort(out, DemoSettings(**TINY_COHORT))
    return out


#: the defects of a NIfTI header that every reader must refuse: pixdim (voxel spacing, mm) values or a
#: 3x4 sform written over a valid file, with the words the refusal must contain
BAD_HEADERS = {
    "zero-spacing-qform": ({"pixdim": {1: 0.0}, "codes": (1, 0)}, "spacing (0, 1, 1) mm"),
    "zero-spacing-sform": ({"pixdim": {2: 0.0}}, "spacing (1, 0, 1) mm"),
    "negative-spacing": ({"pixdim": {3: -1.0}}, "spacing (1, 1, -1) mm"),
    "nan-spacing": ({"pixdim": {1: float("nan")}}, "spacing (nan, 1, 1) mm"),
    "infinite-spacing": ({"pixdim": {2: float("inf")}}, "spacing (1, inf, 1) mm"),
    "singular-affine": ({"sform": [[1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0]]}, "affine (sform) is singular"),
    "flat-affine": ({"sform": [[0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]]}, "affine (sform) is singular"),
}


@pytest.fixture
def write_bad_header():
    """A function (good NIfTI path, defect name, out path) -> out path: the file with that header defect.

    The header is patched byte-wise (pixdim at offset 76, qform/sform codes at 252, srow_x/y/z at 280),
    because nibabel itself refuses or silently repairs such headers when it writes them.
    """
    import gzip
    import struct

    import nibabel as nib

    def write(good: Path, defect: str, out: Path) -> Path:
        change, _ = BAD_HEADERS[defect]
        raw = bytearray(nib.openers.Opener(str(good)).read())
        for index, value in change.get("pixdim", {}).items():
            struct.pack_into("<f", raw, 76 + 4 * index, value)
        if "codes" in change:
            struct.pack_into("<hh", raw, 252, *change["codes"])
        for row, values in enumerate(change.get("sform", [])):
            struct.pack_into("<4f", raw, 280 + 16 * row, *values)
        out.write_bytes(gzip.compress(bytes(raw)) if out.name.endswith(".gz") else bytes(raw))
        return out

    return write


#: the tiny U-Net of the inference tests: 2 levels, no deep supervision, 16^3 patch, 2 mm patient space
TINY_NETWORK = {"filters": [4, 8], "deep_supervision_heads": 0}
TINY_PATCH = [16, 16, 16]
TINY_SPACING_MM = [2.0, 2.0, 2.0]  # the tiny demo cohort's patient-space spacing


def randomised_unet(seed: int):
    """The tiny U-Net with seeded random weights, its normalisation scales and offsets randomised too."""
    import keras
    from brainmets.network.model import build_unet

    keras.utils.set_random_seed(seed)
    model = build_unet(**TINY_NETWORK)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.GroupNormalization):  # non-trivial affine parameters
            layer.set_weights([rng.uniform(0.5, 1.5, layer.gamma.shape), rng.normal(0, 0.5, layer.beta.shape)])
    return model


def write_tiny_model(root: Path, folds: tuple[int, ...] = (0, 1)) -> Path:
    """A model directory at `root` holding one randomised tiny U-Net per fold (seeded by the fold); returns `root`."""
    from brainmets.network.modeldir import model_metadata, write_json

    for fold in folds:
        (root / f"fold_{fold}").mkdir(parents=True)
        randomised_unet(fold).save_weights(str(root / f"fold_{fold}" / "best.weights.h5"))
    write_json(model_metadata("tiny", TINY_NETWORK, TINY_PATCH, TINY_SPACING_MM, list(folds)), root / "model.json")
    return root


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-fold model directory of randomised tiny U-Nets (`write_tiny_model`), built once per test session."""
    return write_tiny_model(tmp_path_factory.mktemp("tiny_model"))


#: channels per level of the small networks written in the published checkpoint layout
PUBLISHED_TEST_FILTERS = (4, 8, 8, 16)


@pytest.fixture(scope="session")
def imported_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-fold model imported by `brainmets import-model` from a published-layout checkpoint (random weights)."""
    from brainmets.cli import main

    from published_checkpoint import (
        published_variable_shapes,
        random_published_weights,
        write_published_checkpoint,
    )

    root = tmp_path_factory.mktemp("imported_model")
    weights = random_published_weights(published_variable_shapes(PUBLISHED_TEST_FILTERS), seed=3)
    write_published_checkpoint(root / "trained_models" / "Model_0", weights, epoch=7)
    out = root / "model"
    assert main(["import-model", str(root / "trained_models"), "--format", "brain-mets-seg", "--out", str(out)]) == 0
    return out
