"""The parts of preprocess_scan, each on its own and on small volumes: brain, patient space, network input, files."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from brainmets.errors import BrainmetsError
from brainmets.io import save_nifti
from brainmets.preprocess import pipeline
from brainmets.preprocess.pipeline import (
    BRAIN,
    BRAIN_MASK,
    IMAGE,
    PATIENT_TO_SCAN,
    QC_PICTURE,
    SCAN_TO_PATIENT,
    TRUTH,
    ZSCORE,
    NetworkInput,
    PatientSpace,
    extract_brain,
    network_input,
    scan_record,
    to_patient_space,
    write_scan_files,
)
from brainmets.preprocess.registration import affine_matrix_ras, identity_transform, read_transform
from brainmets.preprocess.settings import PreprocessSettings
from brainmets.preprocess.space import Scan, from_ants, load_scan, resample_to_spacing, to_ants

SPACING = (2.0, 2.0, 2.0)


def _ball(shape: tuple[int, int, int], radius_vox: float, centre: tuple[float, ...] | None = None) -> np.ndarray:
    """A boolean ball of `radius_vox` voxels around `centre` (default: the middle)."""
    middle = np.array(centre if centre is not None else [(n - 1) / 2 for n in shape])
    grid = np.indices(shape).transpose(1, 2, 3, 0)
    return np.linalg.norm(grid - middle, axis=-1) <= radius_vox


def _stripped_scan(tmp_path: Path, radius_mm: float) -> tuple[Scan, np.ndarray]:
    """A skull-stripped 2 mm scan (textured brain ball, background 0) loaded as preprocessing loads it."""
    brain = _ball((48, 48, 48), radius_mm / 2.0)
    texture = np.random.default_rng(0).normal(100.0, 5.0, brain.shape)
    data = np.where(brain, texture, 0.0).astype(np.float32)
    path = save_nifti(data, np.diag([*SPACING, 1.0]), tmp_path / "stripped.nii.gz")
    return load_scan(path), brain


def _grid(scan: Scan, settings: PreprocessSettings) -> tuple[np.ndarray, np.ndarray]:
    """The scan resampled to the configured spacing, as preprocess_scan hands it on."""
    return from_ants(resample_to_spacing(to_ants(scan.data, scan.affine), settings.spacing_mm))


def test_extract_brain_keeps_a_declared_skull_stripped_brain_and_refuses_a_small_one(tmp_path: Path) -> None:
    settings = PreprocessSettings(spacing_mm=SPACING, skull_stripped=True)
    scan, brain = _stripped_scan(tmp_path, radius_mm=40.0)  # 268 mL
    inside, extraction = extract_brain(scan, *_grid(scan, settings), settings)
    assert extraction == "given: skull-stripped input, declared"
    assert inside.dtype == bool and inside.shape == brain.shape
    assert (inside & brain).sum() / brain.sum() > 0.99 and (inside & ~brain).sum() / brain.sum() < 0.05

    small, _ = _stripped_scan(tmp_path, radius_mm=25.0)  # 65 mL
    with pytest.raises(BrainmetsError, match=r"stripped\.nii\.gz: brain extraction \(given: .*under 100 mL"):
        extract_brain(small, *_grid(small, settings), settings)


def test_extract_brain_runs_the_configured_stripper_on_a_head(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = PreprocessSettings(spacing_mm=SPACING, skull_stripped=False)
    scan, brain = _stripped_scan(tmp_path, radius_mm=40.0)
    calls = []

    def stripper(data: np.ndarray, affine: np.ndarray, strip: object) -> np.ndarray:
        calls.append((data.shape, affine[0, 0], strip))
        return brain

    monkeypatch.setattr(pipeline, "brain_mask", stripper)
    inside, extraction = extract_brain(scan, *_grid(scan, settings), settings)
    assert extraction == settings.skullstrip.method and inside is brain
    assert calls == [((48, 48, 48), 2.0, settings.skullstrip)]


def _space_inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 2 mm image (a smooth ramp), its brain ball and their affine."""
    affine = np.diag([*SPACING, 1.0])
    affine[:3, 3] = [-30.0, -20.0, -10.0]
    image = (np.indices((32, 32, 32)).sum(axis=0) + 10.0).astype(np.float32)
    return image, _ball((32, 32, 32), 10.0), affine


def test_to_patient_space_of_a_baseline_is_its_own_grid(tmp_path: Path) -> None:
    image, brain, affine = _space_inputs()
    labels = np.zeros(brain.shape, np.float32)
    labels[10:13, 10:13, 10:13], labels[20:22, 15:18, 16:19] = 1, 2
    truth_path = save_nifti(labels, affine, tmp_path / "truth.nii.gz")
    truth = load_scan(truth_path, allow_constant=True)
    timings: dict[str, float] = {}
    space = to_patient_space(
        to_ants(image, affine), to_ants(brain.astype(np.float32), affine), truth, None, PreprocessSettings(), timings
    )
    np.testing.assert_allclose(space.affine, affine, atol=1e-5)
    np.testing.assert_allclose(space.image, image, atol=1e-3)
    np.testing.assert_array_equal(space.brain, brain)
    np.testing.assert_array_equal(space.truth, labels)
    np.testing.assert_allclose(affine_matrix_ras(space.transform), np.eye(4), atol=1e-9)
    assert list(timings) == ["register", "to_patient"] and all(v >= 0 for v in timings.values())


def test_to_patient_space_of_a_follow_up_lands_on_the_baseline_grid() -> None:
    image, brain, affine = _space_inputs()
    baseline_affine = np.diag([3.0, 3.0, 3.0, 1.0])
    baseline_affine[:3, 3] = affine[:3, 3]
    baseline = resample_to_spacing(to_ants(image * brain, affine), (3.0, 3.0, 3.0))
    settings = PreprocessSettings(registration=("QuickRigid",), registration_grid_mm=None)
    space = to_patient_space(
        to_ants(image, affine), to_ants(brain.astype(np.float32), affine), None, baseline, settings, {}
    )
    assert space.image.shape == baseline.shape and space.truth is None
    np.testing.assert_allclose(space.affine, baseline_affine, atol=1e-4)
    assert abs(space.brain.sum() * 27.0 - brain.sum() * 8.0) / (brain.sum() * 8.0) < 0.1  # same brain volume (mm3)


def _space(truth: np.ndarray | None = None) -> PatientSpace:
    """A patient-space scan: a ramp image with a box-shaped brain on a 2 mm grid."""
    image, _, affine = _space_inputs()
    brain = np.zeros(image.shape, bool)
    brain[8:20, 10:22, 12:24] = True
    return PatientSpace(image, brain, truth, affine, identity_transform())


def test_network_input_zscores_over_the_brain_and_crops_it_with_its_margin_and_the_labels() -> None:
    net = network_input(_space(), margin_vox=2)
    assert (net.start, net.stop) == ([6, 8, 10], [22, 24, 26])
    assert net.zscore.shape == (16, 16, 16)
    np.testing.assert_allclose(net.affine[:3, 3], _space().affine[:3, 3] + 2.0 * np.array([6, 8, 10]))
    brain = net.zscore[2:14, 2:14, 2:14]
    assert abs(brain.mean()) < 1e-4 and abs(brain.std() - 1.0) < 1e-3
    image = _space().image[8:20, 10:22, 12:24]
    assert net.mean == pytest.approx(image.mean(), rel=1e-5) and net.std == pytest.approx(image.std(), rel=1e-3)

    truth = np.zeros((32, 32, 32), np.int16)
    truth[25, 15, 15] = 3  # a labelled voxel outside the brain widens the crop
    assert network_input(_space(truth), margin_vox=0).stop == [26, 22, 24]


def _net(space: PatientSpace) -> NetworkInput:
    return network_input(space, margin_vox=1)


def test_write_scan_files_writes_every_file_on_its_grid(tmp_path: Path) -> None:
    truth = np.zeros((32, 32, 32), np.int16)
    truth[12:15, 12:15, 14:17] = 1
    space = _space(truth)
    net = _net(space)
    write_scan_files(tmp_path, space, net, "scan: brain mask (test)")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [IMAGE, BRAIN, BRAIN_MASK, ZSCORE, TRUTH, SCAN_TO_PATIENT, PATIENT_TO_SCAN, QC_PICTURE]
    )
    mask = nib.load(tmp_path / BRAIN_MASK)
    assert mask.get_data_dtype() == np.uint8 and np.array_equal(np.asarray(mask.dataobj) > 0, space.brain)
    np.testing.assert_allclose(mask.affine, space.affine)
    brain = np.asarray(nib.load(tmp_path / BRAIN).dataobj)
    assert brain[~space.brain].max() == 0 and np.allclose(brain[space.brain], space.image[space.brain])
    zscore = nib.load(tmp_path / ZSCORE)
    np.testing.assert_allclose(np.asarray(zscore.dataobj), net.zscore)
    np.testing.assert_allclose(zscore.affine, net.affine)
    labels = nib.load(tmp_path / TRUTH)
    assert labels.get_data_dtype() == np.uint8 and labels.shape == net.zscore.shape
    assert np.asarray(labels.dataobj).sum() == truth.sum()
    np.testing.assert_allclose(affine_matrix_ras(read_transform(tmp_path / PATIENT_TO_SCAN)), np.eye(4), atol=1e-9)


def test_scan_record_describes_grids_crop_files_and_brain(tmp_path: Path) -> None:
    scan, _ = _stripped_scan(tmp_path, radius_mm=40.0)
    space = _space()
    net = _net(space)
    settings = PreprocessSettings(spacing_mm=SPACING)
    record = scan_record(
        scan, space, net, mask=None, baseline_dir="base", extraction="x", settings=settings, timings={"load": 1.0}
    )
    assert record["image"] == str(scan.path) and record["mask"] is None and record["baseline"] == "base"
    assert record["native"]["shape"] == [48, 48, 48] and record["native"]["spacing_mm"] == [2.0, 2.0, 2.0]
    assert record["patient_space"]["shape"] == [32, 32, 32]
    assert record["crop"] == {"start": net.start, "stop": net.stop}
    assert record["files"]["truth"] is None and record["files"]["zscore"] == ZSCORE
    assert record["brain_volume_ml"] == pytest.approx(12 * 12 * 12 * 8 / 1000)
    assert record["zscore"] == {"brain_mean": net.mean, "brain_std": net.std}
    assert record["settings"] == dataclasses.asdict(settings) and record["timings_s"] == {"load": 1.0}
