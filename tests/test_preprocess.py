"""Preprocessing: validated loading, RAS, resampling, N4, z-score and crop, brain extraction with both
methods, registration to the baseline against known poses, and the way back to the native grid."""

from __future__ import annotations

import dataclasses
import gzip
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import yaml
from brainmets.cli import main
from brainmets.errors import BrainmetsError
from brainmets.preprocess import load_scan, load_settings, read_record, settings_from_config, to_native, to_patient
from brainmets.preprocess.intensity import n4_correct, zscore_over_brain
from brainmets.preprocess.pipeline import (
    BRAIN,
    BRAIN_MASK,
    IMAGE,
    PATIENT_TO_SCAN,
    QC_PICTURE,
    RECORD,
    RECORD_FORMAT,
    RECORD_VERSION,
    SCAN_TO_PATIENT,
    TRUTH,
    ZSCORE,
)
from brainmets.preprocess.registration import (
    affine_matrix_ras,
    affine_transform_ras,
    identity_transform,
    read_transform,
    write_transform,
)
from brainmets.preprocess.settings import PreprocessSettings
from brainmets.preprocess.skullstrip import hdbet_mask
from brainmets.preprocess.space import (
    bounding_box,
    crop,
    from_ants,
    grid_image,
    resample_labels,
    resample_to_spacing,
    to_ants,
    uncrop,
)
from scipy import ndimage
from scipy.spatial.transform import Rotation

from measures import mean_displacement_mm

REPO = Path(__file__).resolve().parents[1]


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two boolean arrays."""
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))


def save(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    """Write a NIfTI test input."""
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


def noise(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """A non-constant float32 volume."""
    return np.random.default_rng(seed).uniform(0, 100, shape).astype(np.float32)


# --- bad input: one line naming the file, nothing written ---------------------------------------------


def _corrupt(path: Path) -> None:
    save(path, noise((24, 24, 24)), np.eye(4))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated gzip stream


def _not_nifti(path: Path) -> None:
    path.write_bytes(gzip.compress(b"patient_id\ttimepoint\n"))


def _zero_spacing(path: Path) -> None:
    img = nib.Nifti1Image(noise((24, 24, 24)), np.eye(4))
    img.set_qform(None, code=0)
    img.set_sform(np.diag([1.0, 0.0, 1.0, 1.0]), code=1)  # the second array axis has no extent in mm
    nib.save(img, str(path))


def _with(value: float) -> np.ndarray:
    data = noise((24, 24, 24))
    data[3, 4, 5] = value
    return data


BAD_IMAGES = {
    "2-D": lambda p: save(p, noise((32, 32)), np.eye(4)),
    "single slice": lambda p: save(p, noise((32, 32, 1)), np.eye(4)),
    "4-D": lambda p: save(p, noise((16, 16, 16, 3)), np.eye(4)),
    "NaN": lambda p: save(p, _with(np.nan), np.eye(4)),
    "Inf": lambda p: save(p, _with(np.inf), np.eye(4)),
    "constant": lambda p: save(p, np.full((24, 24, 24), 7.0, np.float32), np.eye(4)),
    "zero spacing": _zero_spacing,
    "absurd spacing": lambda p: save(p, noise((24, 24, 24)), np.diag([50.0, 50.0, 50.0, 1.0])),
    "corrupt": _corrupt,
    "not NIfTI": _not_nifti,
}


@pytest.mark.parametrize("problem", BAD_IMAGES)
def test_bad_image_is_a_one_line_error_naming_the_file_and_leaves_outputs_untouched(
    problem: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "scan.nii.gz"
    BAD_IMAGES[problem](image)
    out = tmp_path / "results" / "P" / "T"
    out.mkdir(parents=True)
    (out / RECORD).write_text("earlier run\n")
    assert main(["preprocess", str(image), "--out-dir", str(out), "--skullstrip", "deepbet"]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and str(image) in error, error
    assert sorted(p.name for p in out.iterdir()) == [RECORD]
    assert (out / RECORD).read_text() == "earlier run\n"


def test_a_scan_where_no_brain_is_found_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from brainmets.preprocess import pipeline

    monkeypatch.setattr(pipeline, "brain_mask", lambda data, affine, settings: np.zeros(data.shape, bool))
    image = save(tmp_path / "phantom.nii.gz", noise((40, 40, 40)), np.diag([3.0, 3.0, 3.0, 1.0]))
    out = tmp_path / "out"
    assert main(["preprocess", str(image), "--out-dir", str(out), "--skullstrip", "deepbet"]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "phantom.nii.gz: brain extraction (deepbet) found under 100 mL" in error
    assert not out.exists()


def test_missing_image_and_image_given_twice_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["preprocess", str(tmp_path / "absent.nii.gz"), "--out-dir", str(tmp_path / "o")]) == 2
    assert "absent.nii.gz: file not found" in capsys.readouterr().err
    assert main(["preprocess", "a.nii.gz", "--image", "b.nii.gz", "--out-dir", str(tmp_path / "o")]) == 2
    assert "either as IMAGE or as --image" in capsys.readouterr().err
    assert main(["preprocess", "a.nii.gz", "--out-dir", str(tmp_path / "o"), "--threads", "0"]) == 2
    assert "--threads is 0; use 1 or more" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_mask_on_another_grid_or_with_fractions_is_refused(tmp_path: Path) -> None:
    image = save(tmp_path / "scan.nii.gz", noise((24, 24, 24)), np.eye(4))
    shifted = np.eye(4)
    shifted[0, 3] = 5.0
    other_grid = save(tmp_path / "grid.nii.gz", np.zeros((24, 24, 24), np.uint8), shifted)
    fractions = save(tmp_path / "fractions.nii.gz", np.full((24, 24, 24), 0.5, np.float32), np.eye(4))
    from brainmets.preprocess import preprocess_scan

    with pytest.raises(BrainmetsError, match="grid.nii.gz: grid .* differs from the image"):
        preprocess_scan(image, tmp_path / "out", mask=other_grid)
    with pytest.raises(BrainmetsError, match="fractions.nii.gz: labels must be integers"):
        preprocess_scan(image, tmp_path / "out", mask=fractions)
    with pytest.raises(BrainmetsError, match="preprocessing.json: not found"):
        preprocess_scan(image, tmp_path / "out", baseline_dir=tmp_path / "no_baseline")
    assert not (tmp_path / "out").exists()


def test_configuration_defaults_match_config_yaml_and_bad_values_name_the_key(tmp_path: Path) -> None:
    # the shipped config differs from the package defaults only in the demo's faster skull stripper and coarser grid
    shipped = load_settings(REPO / "config" / "config.yaml")
    assert shipped.skullstrip.method == "deepbet" and PreprocessSettings().skullstrip.method == "hdbet"
    assert shipped.spacing_mm == (1.5, 1.5, 1.5) and PreprocessSettings().spacing_mm == (1.0, 1.0, 1.0)
    demo = dataclasses.replace(
        shipped, skullstrip=dataclasses.replace(shipped.skullstrip, method="hdbet"), spacing_mm=(1.0,) * 3
    )
    assert demo == PreprocessSettings()
    assert load_settings(None) == PreprocessSettings()
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"preprocess": {"skullstrip": {"method": "bet2"}}}))
    with pytest.raises(BrainmetsError, match=r"bad.yaml: preprocess.skullstrip.method: 'bet2' is not one of"):
        load_settings(bad)
    for section, key in (
        ({"spacing_mm": [1, 1]}, "spacing_mm"),
        ({"registration": ["SyN"]}, "registration"),
        ({"n4": "maybe"}, "n4"),
        ({"skullstrip": {"device": "tpu"}}, "skullstrip.device"),
        ({"registration_grid_mm": 0}, "registration_grid_mm"),
    ):
        with pytest.raises(BrainmetsError, match=rf"^config: preprocess\.{key}[.:]"):
            settings_from_config({"preprocess": section})


def test_cuda_device_is_refused_without_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(BrainmetsError, match="device is cuda but no CUDA GPU is visible"):
        hdbet_mask(noise((8, 8, 8)), (1.0, 1.0, 1.0), device="cuda")


# --- grids and intensities ----------------------------------------------------------------------------


def test_load_scan_reorients_to_ras_and_keeps_the_native_grid(tmp_path: Path) -> None:
    data = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    lps = np.array([[-2.0, 0, 0, 10], [0, -2.0, 0, 20], [0, 0, 3.0, 30], [0, 0, 0, 1]])
    scan = load_scan(save(tmp_path / "lps.nii.gz", data, lps))
    assert nib.aff2axcodes(scan.affine) == ("R", "A", "S")
    np.testing.assert_array_equal(scan.data, data[::-1, ::-1, :])
    np.testing.assert_array_equal(scan.native_affine, lps)
    assert scan.native_shape == (4, 5, 6)
    # the same voxel sits at the same place in mm
    np.testing.assert_allclose(
        nib.affines.apply_affine(scan.affine, [0, 0, 2]), nib.affines.apply_affine(lps, [3, 4, 2])
    )
    np.testing.assert_allclose(scan.spacing_mm, [2, 2, 3])


def test_resampling_to_the_configured_spacing_keeps_every_position() -> None:
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = [-20, 10, 5]
    ijk = np.indices((20, 20, 20)).reshape(3, -1).T
    xyz = nib.affines.apply_affine(affine, ijk)
    ramp = (
        (xyz @ [1.0, 2.0, -3.0]).reshape(20, 20, 20).astype(np.float32)
    )  # linear in mm: exact under linear interpolation
    data, out_affine = from_ants(resample_to_spacing(to_ants(ramp, affine), (1.0, 1.0, 1.0)))
    np.testing.assert_allclose(np.sqrt((out_affine[:3, :3] ** 2).sum(0)), [1, 1, 1])
    np.testing.assert_allclose(nib.affines.apply_affine(out_affine, [0, 0, 0]), [-20, 10, 5], atol=1e-4)
    assert data.shape == (40, 40, 40)
    inner = np.indices((37, 37, 37)).reshape(3, -1).T  # voxels with neighbours on the 2 mm grid
    expected = nib.affines.apply_affine(out_affine, inner) @ [1.0, 2.0, -3.0]
    np.testing.assert_allclose(data[tuple(inner.T)], expected, atol=1e-3)


def test_n4_removes_a_smooth_bias_field_inside_the_mask() -> None:
    shape = (48, 48, 48)
    grid = np.indices(shape).astype(np.float32)
    radius = np.sqrt(((grid - 23.5) ** 2).sum(0))
    brain = radius < 20
    tissue = np.where(radius < 10, 100.0, 60.0).astype(np.float32) * brain + 1.0
    bias = np.exp(0.35 * (grid[0] - 23.5) / 23.5 + 0.25 * (grid[2] - 23.5) / 23.5).astype(np.float32)
    corrected = n4_correct(
        to_ants(tissue * bias, np.eye(4)), to_ants(brain.astype(np.float32), np.eye(4)), shrink_factor=2
    )
    before, after = tissue * bias, from_ants(corrected)[0]
    outer = brain & (radius >= 12)  # one tissue class: its spread is the bias
    cv = lambda v: float(v[outer].std() / v[outer].mean())  # noqa: E731
    assert cv(before) > 0.1
    assert cv(after) < cv(before) / 2


def test_zscore_over_brain_and_crop_with_remembered_offsets() -> None:
    rng = np.random.default_rng(1)
    image = rng.normal(50, 7, (30, 32, 34)).astype(np.float32)
    brain = np.zeros(image.shape, bool)
    brain[5:20, 8:25, 10:30] = True
    z, mean, std = zscore_over_brain(image, brain)
    assert abs(z[brain].mean()) < 1e-5 and abs(z[brain].std() - 1) < 1e-5
    assert not z[~brain].any()
    np.testing.assert_allclose([mean, std], [image[brain].mean(), image[brain].std()], rtol=1e-5)
    start, stop = bounding_box(brain, margin_vox=2)
    assert (start, stop) == ([3, 6, 8], [22, 27, 32])
    affine = np.diag([1.0, 1.2, 1.5, 1.0])
    cropped, cropped_affine = crop(z, affine, start, stop)
    np.testing.assert_array_equal(uncrop(cropped, start, z.shape), z)
    np.testing.assert_allclose(
        nib.affines.apply_affine(cropped_affine, [0, 0, 0]), nib.affines.apply_affine(affine, start)
    )
    with pytest.raises(BrainmetsError, match="brain mask is empty"):
        zscore_over_brain(image, np.zeros(image.shape, bool))


# --- the way back: spheres drawn in patient space survive patient -> native -> patient -----------------


def _rigid(angles_deg: tuple[float, float, float], shift_mm: tuple[float, float, float]) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, :3] = Rotation.from_euler("xyz", angles_deg, degrees=True).as_matrix()
    matrix[:3, 3] = shift_mm
    return matrix


def _scan_dir(
    path: Path,
    native_affine: np.ndarray,
    native_shape: tuple[int, ...],
    patient_affine: np.ndarray,
    patient_shape: tuple[int, ...],
    pose: np.ndarray,
) -> Path:
    """A scan directory whose transform is a known pose (patient mm -> scan mm), without running preprocessing."""
    path.mkdir(parents=True)
    transform = affine_transform_ras(pose)
    write_transform(transform, path / SCAN_TO_PATIENT)
    write_transform(transform.invert(), path / PATIENT_TO_SCAN)
    record = {
        "format": RECORD_FORMAT,
        "format_version": RECORD_VERSION,
        "native": {"shape": list(native_shape), "affine": native_affine.tolist()},
        "patient_space": {"shape": list(patient_shape), "affine": patient_affine.tolist()},
    }
    (path / RECORD).write_text(json.dumps(record))
    return path


#: sphere diameters (mm) drawn for the round trip, two of each
ROUND_TRIP_DIAMETERS = (5.0, 6.0, 8.0, 10.0, 15.0)


def _round_trip_case(
    tmp_path: Path, spacing: tuple[float, float, float], storage: np.ndarray
) -> tuple[Path, np.ndarray, np.ndarray, dict[int, float]]:
    """Spheres in a 1 mm patient space and a scan dir whose native grid (spacing, storage axes) is oblique and posed."""
    patient_shape = (64, 64, 64)
    patient_affine = np.eye(4)
    patient_affine[:3, 3] = -32.0
    oblique = _rigid((6, -4, 9), (0, 0, 0))
    native_shape = tuple(int(np.ceil(70 / s)) for s in spacing)
    native_affine = np.eye(4)
    native_affine[:3, :3] = oblique[:3, :3] @ storage @ np.diag(spacing)
    native_affine[:3, 3] = (
        -native_affine[:3, :3] @ (np.asarray(native_shape) - 1) / 2
    )  # grid centred on the patient grid
    pose = _rigid((3, 4, -6), (1.3, -2.2, 0.7))
    scan_dir = _scan_dir(tmp_path / "scan", native_affine, native_shape, patient_affine, patient_shape, pose)
    grid = np.indices(patient_shape).transpose(1, 2, 3, 0)
    labels = np.zeros(patient_shape, np.uint8)
    diameters = dict(enumerate(np.repeat(ROUND_TRIP_DIAMETERS, 2), start=1))
    rng = np.random.default_rng(0)
    taken = np.zeros(patient_shape, bool)  # the spheres so far, widened by 2 voxels
    for label, diameter in diameters.items():
        while True:  # a free spot, 2 voxels clear of the other spheres
            ball = np.linalg.norm(grid - rng.uniform(10, 54, 3), axis=-1) <= diameter / 2
            if not taken[ball].any():
                labels[ball] = label
                taken = ndimage.binary_dilation(labels > 0, iterations=2)
                break
    return scan_dir, labels, patient_affine, diameters


def _round_trip_dice(labels: np.ndarray, patient_affine: np.ndarray, scan_dir: Path, how: str) -> dict[int, float]:
    """Dice per label after patient -> native -> patient with one label interpolation."""
    native, _ = to_native(labels, patient_affine, scan_dir, kind="label", labels=how)
    back, back_affine = to_patient(native, scan_dir, kind="label", labels=how)
    np.testing.assert_allclose(back_affine, patient_affine, atol=1e-4)
    return {label: dice(labels == label, back == label) for label in np.unique(labels[labels > 0])}


def test_patient_native_patient_round_trip_keeps_lesions(tmp_path: Path) -> None:
    # native: 1 mm, stored LPS, oblique by (6, -4, 9) deg; the head moved by a rigid pose
    scan_dir, labels, patient_affine, diameters = _round_trip_case(
        tmp_path, (1.0, 1.0, 1.0), np.diag([-1.0, -1.0, 1.0])
    )
    record = read_record(scan_dir)["native"]
    native, affine = to_native(labels, patient_affine, scan_dir, kind="label")
    assert native.shape == tuple(record["shape"]) and native.dtype == np.uint8
    np.testing.assert_array_equal(affine, np.asarray(record["affine"]))
    # every lesion lands where the pose puts it
    pose = affine_matrix_ras(read_transform(scan_dir / SCAN_TO_PATIENT))
    for label in diameters:
        centre_native = nib.affines.apply_affine(affine, np.argwhere(native == label).mean(0))
        centre_patient = nib.affines.apply_affine(patient_affine, np.argwhere(labels == label).mean(0))
        np.testing.assert_allclose(centre_native, nib.affines.apply_affine(pose, centre_patient), atol=0.3)
    # under this pose every sphere of 5-15 mm keeps 0.95; over many random poses 5 mm ones can drop to
    # about 0.94 (benchmarks/preprocess.py round-trip)
    for label, score in _round_trip_dice(labels, patient_affine, scan_dir, "distance").items():
        assert score >= 0.95, (diameters[label], score)
    # a probability map moves linearly and stays a float map in [0, 1]
    probability, _ = to_native((labels > 0).astype(np.float32) * 0.8, patient_affine, scan_dir, kind="map")
    assert probability.dtype == np.float32 and 0 < probability.max() <= 0.8 + 1e-6
    assert np.unique(probability).size > 3


@pytest.mark.parametrize(
    "spacing, storage, smallest_kept_mm",
    [((0.9, 0.9, 1.5), np.diag([1.0, 1.0, 1.0]), 8.0), ((0.5, 0.5, 3.0), np.diag([-1.0, 1.0, 1.0]), 15.0)],
    ids=["0.9x0.9x1.5mm", "0.5x0.5x3mm"],
)
def test_round_trip_through_thick_slices_follows_the_signed_distance(
    tmp_path: Path, spacing: tuple[float, float, float], storage: np.ndarray, smallest_kept_mm: float
) -> None:
    """Through anisotropic native grids the signed-distance labels lose less than nearest neighbour."""
    scan_dir, labels, patient_affine, diameters = _round_trip_case(tmp_path, spacing, storage)
    distance = _round_trip_dice(labels, patient_affine, scan_dir, "distance")
    nearest = _round_trip_dice(labels, patient_affine, scan_dir, "nearest")
    assert np.mean(list(distance.values())) >= np.mean(list(nearest.values())) + 0.02
    for label, score in distance.items():
        if diameters[label] >= smallest_kept_mm:
            assert score >= 0.95, (diameters[label], score)


def test_resample_labels_keeps_label_values_where_labels_touch() -> None:
    labels = np.zeros((30, 30, 30), np.float32)
    labels[8:16, 8:22, 8:22] = 3
    labels[16:24, 8:22, 8:22] = 7
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    reference = grid_image(np.diag([0.5, 0.5, 0.5, 1.0]), (60, 60, 60))
    moved, moved_affine = resample_labels(labels, affine, identity_transform(), reference)
    np.testing.assert_allclose(moved_affine, np.diag([0.5, 0.5, 0.5, 1.0]))
    assert set(np.unique(moved)) == {0, 3, 7}
    # the boundary between the two labels stays at x = 15.5 mm, the outer faces at 7.5 and 23.5 mm
    profile = moved[:, 30, 30]
    assert (profile[16:31] == 3).all() and (profile[32:47] == 7).all()
    assert profile[14] == 0 and profile[48] == 0
    assert resample_labels(np.zeros((30, 30, 30)), affine, identity_transform(), reference)[0].max() == 0
    with pytest.raises(BrainmetsError, match="label interpolation 'cubic' is unknown"):
        resample_labels(labels, affine, identity_transform(), reference, interpolation="cubic")


def test_to_native_refuses_maps_off_the_patient_grid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    patient_affine = np.eye(4)
    scan_dir = _scan_dir(tmp_path / "scan", np.eye(4), (20, 20, 20), patient_affine, (20, 20, 20), np.eye(4))
    off_grid = save(tmp_path / "off.nii.gz", np.ones((20, 20, 20), np.uint8), np.diag([2.0, 2.0, 2.0, 1.0]))
    out = tmp_path / "native" / "segmentation.nii.gz"
    assert main(["to-native", str(off_grid), "--scan-dir", str(scan_dir), "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "off.nii.gz: not on the patient-space grid" in error
    assert main(["to-native", str(off_grid), "--scan-dir", str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    assert "preprocessing.json: not found" in capsys.readouterr().err
    assert not out.exists()
    # a crop of the patient grid is accepted
    crop_affine = patient_affine.copy()
    crop_affine[:3, 3] = [3, 4, 5]
    cropped = save(tmp_path / "crop.nii.gz", np.ones((5, 5, 5), np.uint8), crop_affine)
    assert main(["to-native", str(cropped), "--scan-dir", str(scan_dir), "--out", str(out)]) == 0
    written = nib.load(out)
    assert written.shape == (20, 20, 20) and np.asarray(written.dataobj)[3:8, 4:9, 5:10].all()
    assert np.asarray(written.dataobj).sum() == 125


def test_to_native_moves_several_maps_at_once_or_none(tmp_path: Path) -> None:
    native_affine = np.diag([-1.0, 1.0, 1.0, 1.0])
    native_affine[0, 3] = 19.0  # stored right-to-left over the same 20 mm as the patient grid
    scan_dir = _scan_dir(tmp_path / "scan", native_affine, (20, 20, 20), np.eye(4), (20, 20, 20), np.eye(4))
    labels = np.zeros((20, 20, 20), np.uint8)
    labels[2:5, 3:6, 4:7] = 3
    segmentation = save(tmp_path / "segmentation.nii.gz", labels, np.eye(4))
    probability = save(tmp_path / "probability.nii.gz", labels.astype(np.float32) / 4, np.eye(4))
    off_grid = save(tmp_path / "entropy.nii.gz", labels.astype(np.float32), np.diag([2.0, 2.0, 2.0, 1.0]))
    out = tmp_path / "native"
    argv = [
        "to-native",
        "--scan-dir",
        str(scan_dir),
        "--labels",
        str(segmentation),
        "--out-dir",
        str(out),
        "--maps",
        str(probability),
    ]
    assert main(argv + [str(off_grid)]) == 2
    assert main(argv + ["--label-interpolation", "cubic"]) == 2
    assert not out.exists()
    assert main(argv) == 0
    native_labels = nib.load(out / "segmentation.nii.gz")
    native_probability = nib.load(out / "probability.nii.gz")
    np.testing.assert_array_equal(native_labels.affine, native_affine)
    # the native grid stores the left-right axis the other way round
    np.testing.assert_array_equal(np.asarray(native_labels.dataobj), labels[::-1])
    assert native_labels.get_data_dtype() == np.uint8 and native_probability.get_data_dtype() == np.float32
    np.testing.assert_allclose(native_probability.get_fdata(), labels[::-1] / 4, atol=1e-6)


# --- the demo cohort: both brain extractors, registration against known poses, native grids ------------


@pytest.fixture(scope="module")
def demo_patient(tiny_cohort: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """patient01 of the tiny cohort preprocessed with deepbet at 2 mm: baseline and one follow-up."""
    visits = pd.read_csv(tiny_cohort / "samples.tsv", sep="\t")
    visits = visits[visits["patient_id"] == "patient01"].sort_values("timepoint").reset_index(drop=True)
    work = tmp_path_factory.mktemp("preprocessed")
    config = work / "config.yaml"
    config.write_text(
        yaml.safe_dump({"preprocess": {"spacing_mm": [2.0, 2.0, 2.0], "skullstrip": {"method": "deepbet"}}})
    )
    dirs = [work / "patient01" / t for t in visits["timepoint"]]
    for k in (0, 1):
        baseline = [] if k == 0 else ["--reference", str(dirs[0] / IMAGE)]
        argv = ["preprocess", "--image", visits["image"][k], "--mask", visits["mask"][k], "--out-dir", str(dirs[k])]
        assert main(argv + baseline + ["--config", str(config)]) == 0
    return {"visits": visits, "dirs": dirs, "cohort": tiny_cohort}


@pytest.mark.slow
def test_outputs_lie_in_patient_space_with_a_complete_record(demo_patient: dict) -> None:
    baseline, follow_up = demo_patient["dirs"][:2]
    grid = nib.load(baseline / IMAGE)
    for scan_dir in (baseline, follow_up):
        record = read_record(scan_dir)
        for name in (IMAGE, BRAIN, BRAIN_MASK):
            img = nib.load(scan_dir / name)
            assert img.shape == grid.shape and np.allclose(img.affine, grid.affine)
        # the training pair: network input and truth on one (cropped) grid
        truth, zscore = nib.load(scan_dir / TRUTH), nib.load(scan_dir / ZSCORE)
        assert truth.shape == zscore.shape and np.allclose(truth.affine, zscore.affine)
        assert np.asarray(truth.dataobj).any()
        assert nib.aff2axcodes(grid.affine) == ("R", "A", "S")
        np.testing.assert_allclose(record["patient_space"]["spacing_mm"], [2, 2, 2])
        start, stop = record["crop"]["start"], record["crop"]["stop"]
        assert list(zscore.shape) == [b - a for a, b in zip(start, stop, strict=True)]
        full = uncrop(np.asarray(zscore.dataobj), start, grid.shape)
        brain = np.asarray(nib.load(scan_dir / BRAIN_MASK).dataobj) > 0
        assert abs(full[brain].mean()) < 1e-3 and abs(full[brain].std() - 1) < 1e-3 and not full[~brain].any()
        truth = nib.load(Path(record["image"]).parent / "brain_mask.nii.gz")
        truth_ml = (np.asarray(truth.dataobj) > 0).sum() * np.prod(truth.header.get_zooms()) / 1000
        assert abs(record["brain_volume_ml"] / truth_ml - 1) < 0.1
        assert (scan_dir / QC_PICTURE).stat().st_size > 10_000
        assert set(record["timings_s"]) >= {"skullstrip", "n4", "register", "total"}
    assert read_record(baseline)["baseline"] is None and read_record(follow_up)["baseline"] == str(baseline)
    np.testing.assert_allclose(affine_matrix_ras(read_transform(baseline / SCAN_TO_PATIENT)), np.eye(4))


@pytest.mark.slow
def test_follow_up_registration_error_against_the_known_pose_is_below_1_mm(demo_patient: dict) -> None:
    poses = pd.read_csv(demo_patient["cohort"] / "truth" / "poses.tsv", sep="\t").set_index(["patient_id", "timepoint"])
    times = demo_patient["visits"]["timepoint"]
    pose = [np.array(poses.loc[("patient01", t), "common_to_scanner"].split(), float).reshape(4, 4) for t in times[:2]]
    baseline, follow_up = demo_patient["dirs"][:2]
    brain = nib.load(baseline / BRAIN_MASK)
    points = nib.affines.apply_affine(brain.affine, np.argwhere(np.asarray(brain.dataobj) > 0))
    estimated = affine_matrix_ras(read_transform(follow_up / SCAN_TO_PATIENT))
    true = pose[1] @ np.linalg.inv(pose[0])  # baseline scanner mm -> follow-up scanner mm
    assert mean_displacement_mm(np.eye(4), true, points) > 3  # the head really moved
    assert mean_displacement_mm(estimated, true, points) <= 1.0


@pytest.mark.slow
def test_deepbet_brain_mask_matches_the_truth_on_the_native_grid(demo_patient: dict) -> None:
    for k, scan_dir in enumerate(demo_patient["dirs"][:2]):
        mask = nib.load(scan_dir / BRAIN_MASK)
        native, affine = to_native(np.asarray(mask.dataobj), mask.affine, scan_dir, kind="label")
        truth = nib.load(Path(demo_patient["visits"]["image"][k]).parent / "brain_mask.nii.gz")
        np.testing.assert_array_equal(affine, truth.affine)
        assert dice(native > 0, np.asarray(truth.dataobj) > 0) >= 0.9


@pytest.mark.slow
def test_to_native_command_restores_the_truth_on_the_exact_input_grid(demo_patient: dict, tmp_path: Path) -> None:
    follow_up = demo_patient["dirs"][1]
    native_truth = nib.load(demo_patient["visits"]["mask"][1])
    out = tmp_path / "native" / "lesions.nii.gz"
    assert (
        main(["to-native", str(follow_up / TRUTH), "--scan-dir", str(follow_up), "--kind", "label", "--out", str(out)])
        == 0
    )
    written = nib.load(out)
    assert written.shape == native_truth.shape
    np.testing.assert_array_equal(written.affine, native_truth.affine)
    # the tiny cohort doubles every size (2 mm voxels): a 5 mm lesion at 1 mm is a 10 mm lesion here
    carried = nib.load(follow_up / TRUTH)
    start = read_record(follow_up)["crop"]["start"]
    labels = uncrop(np.asarray(carried.dataobj), start, nib.load(follow_up / IMAGE).shape)
    voxel_mm3 = float(np.prod(carried.header.get_zooms()))
    large = [k for k in np.unique(labels[labels > 0]) if (6 * (labels == k).sum() * voxel_mm3 / np.pi) ** (1 / 3) >= 10]
    assert large
    truth, back = np.asarray(native_truth.dataobj), np.asarray(written.dataobj)
    for label in large:
        assert dice(truth == label, back == label) >= 0.8, label
    # and patient -> native -> patient keeps each of them
    again, _ = to_patient(back, follow_up, kind="label")
    for label in large:
        assert dice(labels == label, again == label) >= 0.95, label


@pytest.mark.slow
def test_hdbet_brain_mask_matches_the_truth(tiny_cohort: Path, tmp_path: Path) -> None:
    """HD-BET through the command with its shipped weights (fast mode, CPU) on a 2 mm demo scan."""
    visits = pd.read_csv(tiny_cohort / "samples.tsv", sep="\t")
    visit = visits[visits["patient_id"] == "patient01"].sort_values("timepoint").iloc[1]
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"preprocess": {"spacing_mm": [2.0, 2.0, 2.0], "n4": False}}))
    out = tmp_path / "scan"
    assert (
        main(["preprocess", visit["image"], "--out-dir", str(out), "--config", str(config), "--skullstrip", "hdbet"])
        == 0
    )
    assert read_record(out)["settings"]["skullstrip"]["method"] == "hdbet"
    mask = nib.load(out / BRAIN_MASK)
    native, _ = to_native(np.asarray(mask.dataobj), mask.affine, out, kind="label")
    truth = nib.load(Path(visit["image"]).parent / "brain_mask.nii.gz")
    assert dice(native > 0, np.asarray(truth.dataobj) > 0) >= 0.9
