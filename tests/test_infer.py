"""Inference from a model directory: compiled graph, `brainmets predict` outputs, cropped input and bad input."""

import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from brainmets.cli import main
from brainmets.errors import BrainmetsError
from brainmets.inference.pipeline import MAP_FILES, load_segmenter, predict_scan, windows_per_call
from brainmets.inference.settings import InferenceSettings, settings_from_config
from brainmets.io import save_nifti

from conftest import TINY_PATCH as PATCH
from conftest import TINY_SPACING_MM as SPACING_MM
from conftest import randomised_unet, write_tiny_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def scan(tmp_path_factory) -> tuple[Path, Path, np.ndarray]:
    """A z-scored 'brain' (ellipsoid) with a bright blob on a 1 mm grid with a non-trivial affine."""
    root = tmp_path_factory.mktemp("scan")
    shape = (27, 22, 19)
    grid = np.indices(shape).astype(float)
    centre = (np.array(shape) - 1) / 2
    brain = (((grid - centre[:, None, None, None]) / (np.array(shape)[:, None, None, None] * 0.45)) ** 2).sum(0) < 1
    rng = np.random.default_rng(0)
    image = rng.normal(size=shape).astype(np.float32)
    image[9:13, 8:12, 7:11] += 3.0
    image[brain] = (image[brain] - image[brain].mean()) / image[brain].std()
    image[~brain] = 0.0
    affine = np.array([[2.0, 0, 0, -26], [0, 2.0, 0, -22], [0, 0, 2.0, -18], [0, 0, 0, 1]])
    save_nifti(image, affine, root / "image.nii.gz")
    save_nifti(brain.astype(np.uint8), affine, root / "brain_mask.nii.gz")
    return root / "image.nii.gz", root / "brain_mask.nii.gz", affine


def test_compiled_predictor_matches_the_keras_model():
    from brainmets.inference.runtime import compile_predictor
    from brainmets.network.model import full_resolution_model

    model = full_resolution_model(randomised_unet(3))
    batch = np.random.default_rng(1).normal(size=(2, 16, 16, 16, 1)).astype(np.float32)
    expected = np.asarray(model(batch, training=False))
    compiled = compile_predictor(model, PATCH)
    np.testing.assert_allclose(compiled(batch), expected, atol=1e-5)
    np.testing.assert_allclose(compiled(batch[:1]), expected[:1], atol=1e-5)  # a last, smaller batch
    # the XLA path that `jit_compile: auto` takes on a GPU computes the same network
    np.testing.assert_allclose(compile_predictor(model, PATCH, jit_compile=True)(batch), expected, atol=1e-4)
    assert np.abs(expected).max() > 0.1  # the comparison is not between two zero maps


def test_predict_writes_consistent_maps_on_the_input_grid(model_dir, scan, tmp_path):
    image_path, mask_path, affine = scan
    out = tmp_path / "out"
    assert (
        main(
            [
                "predict",
                "--image",
                str(image_path),
                "--brain-mask",
                str(mask_path),
                "--model",
                str(model_dir),
                "--out-dir",
                str(out),
                "--mirror-axes",
                "0",
                "2",
                "--overlap",
                "0.5",
                "--threads",
                "2",
            ]
        )
        == 0
    )
    maps = {name: nib.load(out / f) for name, f in MAP_FILES.items()}
    for img in maps.values():
        assert img.shape == (27, 22, 19)
        np.testing.assert_allclose(img.affine, affine)
    data = {name: np.asarray(img.dataobj) for name, img in maps.items()}
    brain = np.asarray(nib.load(mask_path).dataobj) > 0
    p = data["probability"]
    assert (p >= 0).all() and (p <= 1).all() and (p[~brain] == 0).all()
    assert 0 < p[brain].min() < p[brain].max() < 1
    np.testing.assert_array_equal(data["segmentation"], (p > 0.5).astype(np.uint8))
    np.testing.assert_allclose(data["total_entropy"], data["expected_entropy"] + data["mutual_information"], atol=1e-6)
    assert all((data[k] >= 0).all() for k in ("total_entropy", "expected_entropy", "mutual_information"))
    assert data["mutual_information"][brain].max() > 0  # 2 folds x 4 mirrorings disagree somewhere
    table = pd.read_csv(out / "lesions.tsv", sep="\t")
    from scipy import ndimage

    assert len(table) == ndimage.label(data["segmentation"], structure=np.ones((3, 3, 3)))[1]
    assert table["voxels"].sum() == data["segmentation"].sum()


def test_segmenter_averages_over_folds(model_dir, scan, tmp_path):
    image_path, mask_path, _ = scan
    settings = InferenceSettings(mirror_axes=(), device="cpu")
    both = load_segmenter(model_dir, settings)
    image = np.asarray(nib.load(image_path).dataobj, dtype=np.float32)
    brain = np.asarray(nib.load(mask_path).dataobj) > 0
    from brainmets.inference.ensemble import predict_ensemble

    members = [
        predict_ensemble(image, [p], both.patch_size, brain_mask=brain, overlap=0.5, mirror_axes=()).probability
        for p in both.predictors
    ]
    together = both.predict(image, brain).probability
    np.testing.assert_allclose(together, (members[0] + members[1]) / 2, atol=1e-6)
    assert np.abs(members[0] - members[1]).max() > 0.01


def test_unnormalised_or_mismatched_inputs_are_refused(model_dir, scan, tmp_path):
    image_path, mask_path, affine = scan
    segmenter = load_segmenter(model_dir, InferenceSettings(mirror_axes=()))
    raw = tmp_path / "raw.nii.gz"
    save_nifti(np.asarray(nib.load(image_path).dataobj) * 50 + 300, affine, raw)
    with pytest.raises(BrainmetsError, match="raw.nii.gz.*z-scored"):
        predict_scan(segmenter, raw, mask_path, tmp_path / "out")
    coarse = tmp_path / "coarse.nii.gz"
    save_nifti(np.asarray(nib.load(image_path).dataobj), np.diag([3.0, 3.0, 3.0, 1.0]), coarse)
    with pytest.raises(BrainmetsError, match="coarse.nii.gz.*brain mask grid"):
        predict_scan(segmenter, image_path, coarse, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("spacing", [(1.5, 1.5, 1.5), (2.0, 2.0, 2.5)])
def test_a_scan_at_another_spacing_than_the_models_is_refused_in_one_line(model_dir, scan, tmp_path, capsys, spacing):
    """README: `predict` refuses spacings other than the model's (here 2 mm): nothing is predicted or written."""
    image_path, mask_path, _ = scan
    affine = np.diag([*spacing, 1.0])
    image, mask = tmp_path / "other_spacing.nii.gz", tmp_path / "other_mask.nii.gz"
    save_nifti(np.asarray(nib.load(image_path).dataobj), affine, image)
    save_nifti(np.asarray(nib.load(mask_path).dataobj), affine, mask)
    segmenter = load_segmenter(model_dir, InferenceSettings(mirror_axes=()))
    with pytest.raises(BrainmetsError, match=r"other_spacing.nii.gz: voxel spacing .* differs from the model's"):
        predict_scan(segmenter, image, mask, tmp_path / "out")
    args = ["predict", "--image", str(image), "--brain-mask", str(mask), "--model", str(model_dir)]
    assert main([*args, "--out-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"voxel spacing {spacing} mm differs from the model's (2.0, 2.0, 2.0) mm" in err
    assert not (tmp_path / "out").exists()
    # within the 1 % tolerance the scan is the model's spacing
    save_nifti(np.asarray(nib.load(image_path).dataobj), np.diag([2.01, 2.0, 2.0, 1.0]), image)
    save_nifti(np.asarray(nib.load(mask_path).dataobj), np.diag([2.01, 2.0, 2.0, 1.0]), mask)
    assert predict_scan(segmenter, image, mask, tmp_path / "near")["probability"].is_file()


def test_bad_model_directory_and_settings_end_in_one_line(scan, tmp_path, capsys):
    image_path, mask_path, _ = scan
    code = main(
        [
            "predict",
            "--image",
            str(image_path),
            "--brain-mask",
            str(mask_path),
            "--model",
            str(tmp_path / "nomodel"),
            "--out-dir",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert "nomodel" in err and len(err.splitlines()) == 1
    with pytest.raises(BrainmetsError, match="cfg.yaml: unknown key 'overlapp' in section 'inference'"):
        settings_from_config({"inference": {"overlapp": 0.5}}, "cfg.yaml")
    with pytest.raises(
        BrainmetsError, match="cfg.yaml: inference.overlap: 1.5 is greater than or equal to the maximum"
    ):
        settings_from_config({"inference": {"overlap": 1.5}}, "cfg.yaml")
    with pytest.raises(BrainmetsError, match="inference.batch_size: 'many' is not allowed; use auto or"):
        settings_from_config({"inference": {"batch_size": "many"}}, "cfg.yaml")


def test_automatic_batch_fills_one_paper_window():
    assert settings_from_config({}).batch_size == "auto"
    assert windows_per_call("auto", (128, 128, 128)) == 1  # the paper preset: one window per call
    assert windows_per_call("auto", (64, 64, 64)) == 8
    assert windows_per_call("auto", (48, 48, 48)) == 8  # capped
    assert windows_per_call("auto", (160, 160, 160)) == 1
    assert windows_per_call(3, (48, 48, 48)) == 3


def test_a_bad_batch_size_on_the_command_line_is_one_clear_line(capsys):
    with pytest.raises(SystemExit):
        main(["predict", "--image", "a", "--brain-mask", "b", "--model", "m", "--out-dir", "o", "--batch-size", "many"])
    assert "'many' is neither auto nor a whole number of windows" in capsys.readouterr().err


def test_a_cropped_network_input_gives_maps_on_the_brain_mask_grid(model_dir, scan, tmp_path):
    """The preprocessing stage's network input is cropped to the brain; outputs go on the full patient grid."""
    image_path, mask_path, affine = scan
    full = np.asarray(nib.load(image_path).dataobj)
    start = (3, 2, 1)
    box = tuple(slice(b, n - 1) for b, n in zip(start, full.shape, strict=True))
    cropped_affine = affine.copy()
    cropped_affine[:3, 3] += affine[:3, :3] @ np.array(start, float)
    save_nifti(full[box], cropped_affine, tmp_path / "crop.nii.gz")
    segmenter = load_segmenter(model_dir, InferenceSettings(mirror_axes=()))
    predict_scan(segmenter, tmp_path / "crop.nii.gz", mask_path, tmp_path / "from_crop")
    predict_scan(segmenter, image_path, mask_path, tmp_path / "from_full")
    crop_p = nib.load(tmp_path / "from_crop" / "probability.nii.gz")
    full_p = np.asarray(nib.load(tmp_path / "from_full" / "probability.nii.gz").dataobj)
    assert crop_p.shape == full.shape
    np.testing.assert_allclose(crop_p.affine, affine)
    brain = np.asarray(nib.load(mask_path).dataobj) > 0
    outside = np.ones(full.shape, bool)
    outside[box] = False
    assert (np.asarray(crop_p.dataobj)[outside] == 0).all()
    assert np.abs(np.asarray(crop_p.dataobj)[box] - full_p[box]).max() < 0.5  # same network, other windows
    assert np.asarray(crop_p.dataobj)[box][brain[box]].min() > 0


def write_tiny_demo_config(path: Path) -> Path:
    """A configuration for the tiny demo cohort: its 2 mm grid, deepbet, overlap 0.25 without mirroring."""
    import yaml

    preprocess = {"spacing_mm": SPACING_MM, "skullstrip": {"method": "deepbet"}}
    path.write_text(yaml.safe_dump({"preprocess": preprocess, "inference": {"mirror_axes": [], "overlap": 0.25}}))
    return path


@pytest.mark.slow
def test_segment_raw_scans_gives_native_maps_on_the_exact_input_grid(model_dir, tiny_cohort, tmp_path, capsys):
    """Two oblique demo scans through preprocessing (deepbet, 2 mm), the 2-fold model and back."""
    from brainmets.preprocess.pipeline import RECORD

    sheet = pd.read_csv(tiny_cohort / "samples.tsv", sep="\t")
    images = [Path(sheet[sheet["patient_id"] == p]["image"].iloc[0]) for p in ("patient01", "patient02")]
    config = write_tiny_demo_config(tmp_path / "config.yaml")
    out = tmp_path / "segmented"
    argv = ["segment", *map(str, images), "--model", str(model_dir), "--out-dir", str(out), "--config", str(config)]
    assert main(argv) == 0
    for image in images:
        scan_dir = out / f"{image.parent.name}_t1ce"  # same file names: the date folder tells them apart
        assert (scan_dir / RECORD).is_file() and (scan_dir / "lesions.tsv").is_file()
        native = nib.load(image)
        for name, filename in MAP_FILES.items():
            mapped = nib.load(scan_dir / "native" / filename)
            assert mapped.shape == native.shape, name
            np.testing.assert_array_equal(mapped.affine, native.affine)
        probability = np.asarray(nib.load(scan_dir / "native" / "probability.nii.gz").dataobj)
        assert probability.max() > 0 and (probability >= 0).all() and (probability <= 1).all()
        patient = nib.load(scan_dir / "probability.nii.gz")
        assert patient.shape == nib.load(scan_dir / "brain_mask.nii.gz").shape


@pytest.mark.slow
def test_predict_also_writes_the_native_maps_of_to_native_and_the_picture(model_dir, tiny_cohort, tmp_path):
    """`predict --native-dir --overlay` on a preprocessed demo scan: the files `to-native` writes, and a picture."""
    sheet = pd.read_csv(tiny_cohort / "samples.tsv", sep="\t")
    image = sheet[sheet["patient_id"] == "patient01"]["image"].iloc[0]
    config = write_tiny_demo_config(tmp_path / "config.yaml")
    scan = tmp_path / "scan"
    assert main(["preprocess", "--image", image, "--config", str(config), "--out-dir", str(scan)]) == 0
    predict = ["predict", "--image", str(scan / "t1ce_zscore.nii.gz"), "--brain-mask", str(scan / "brain_mask.nii.gz")]
    predict += ["--model", str(model_dir), "--config", str(config), "--out-dir", str(scan)]
    extra = ["--native-dir", str(scan / "native"), "--overlay", str(scan / "overlay.png"), "--title", "patient01"]
    assert main(predict + extra) == 0
    maps = [str(scan / f) for f in ("probability.nii.gz", "uncertainty_total_entropy.nii.gz")]
    reference = ["to-native", "--scan-dir", str(scan), "--labels", str(scan / "segmentation.nii.gz"), "--maps", *maps]
    assert main([*reference, "--out-dir", str(tmp_path / "reference")]) == 0
    names = ("segmentation.nii.gz", "probability.nii.gz", "uncertainty_total_entropy.nii.gz")
    assert sorted(p.name for p in (scan / "native").iterdir()) == sorted(names)
    for name in names:
        written, expected = nib.load(scan / "native" / name), nib.load(tmp_path / "reference" / name)
        np.testing.assert_array_equal(np.asarray(written.dataobj), np.asarray(expected.dataobj))
        np.testing.assert_array_equal(written.affine, expected.affine)
        assert written.get_data_dtype() == expected.get_data_dtype()
    assert np.asarray(nib.load(scan / "native" / "probability.nii.gz").dataobj).max() > 0  # not two empty maps
    assert (scan / "overlay.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_native_maps_without_a_preprocessed_scan_folder_are_refused_before_predicting(
    model_dir, scan, tmp_path, capsys
):
    image, mask, _ = scan
    out = tmp_path / "out"
    argv = ["predict", "--image", str(image), "--brain-mask", str(mask), "--model", str(model_dir)]
    assert main([*argv, "--out-dir", str(out), "--native-dir", str(out / "native")]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "preprocessing.json" in error
    assert not out.exists() or not any(out.iterdir())


def test_result_folders_are_named_after_the_inputs_and_stay_apart(tmp_path):
    from brainmets.inference.segment import scan_names

    assert scan_names(["/d/P01/2024-01-15/t1ce.nii.gz", "/d/P01/2024-03-01/t1ce.nii"]) == [
        "2024-01-15_t1ce",
        "2024-03-01_t1ce",
    ]
    assert scan_names(["/d/a/x/t1.nii.gz", "/d/b/x/t1.nii.gz"]) == ["a_x_t1", "b_x_t1"]
    assert scan_names(["/d/one.nii.gz", "/e/two.nii.gz"]) == ["one", "two"]
    with pytest.raises(BrainmetsError, match="given twice"):
        scan_names(["/d/one.nii.gz", "/d/../d/one.nii.gz"])
    with pytest.raises(BrainmetsError, match="scan.mgz: not a NIfTI"):
        scan_names(["/d/scan.mgz"])


def test_segment_reports_a_missing_scan_in_one_line(model_dir, tmp_path, capsys):
    missing = tmp_path / "nothere.nii.gz"
    assert main(["segment", str(missing), "--model", str(model_dir), "--out-dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "nothere.nii.gz: file not found" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_segment_refuses_a_zero_spacing_before_writing_anything(
    model_dir, tiny_cohort, tmp_path, capsys, write_bad_header
):
    # the good scan comes first: it must not be segmented when a later input is refused
    good = tiny_cohort / "patient01" / sorted(p.name for p in (tiny_cohort / "patient01").iterdir())[0] / "t1ce.nii.gz"
    bad = write_bad_header(good, "zero-spacing-qform", tmp_path / "bad.nii.gz")
    out = tmp_path / "o"
    assert main(["segment", str(good), str(bad), "--model", str(model_dir), "--out-dir", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"{bad}: voxel spacing (0," in err and "mm in the header (pixdim) is not positive and finite" in err
    assert not out.exists()


def test_asking_for_a_gpu_without_one_is_a_clear_error(model_dir, monkeypatch):
    import tensorflow as tf
    from brainmets.inference.runtime import resolve_device

    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])  # a machine without GPUs
    assert resolve_device("auto") == "/CPU:0"
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: ["GPU:0"] if kind == "GPU" else [])
    assert resolve_device("auto") == "/GPU:0" and resolve_device("cpu") == "/CPU:0"
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])
    with pytest.raises(BrainmetsError, match="inference.device is gpu but TensorFlow sees no GPU"):
        load_segmenter(model_dir, InferenceSettings(device="gpu"))


def test_predict_claims_a_gpu_that_no_other_job_holds(model_dir, scan, tmp_path, monkeypatch):
    """With GPUs 0 and 1 visible and 0 held by another job, a prediction runs on GPU 1."""
    from brainmets.gpu import claim_gpu

    locks = tmp_path / "locks"
    other_job = claim_gpu(locks, env={"CUDA_VISIBLE_DEVICES": "0,1"})
    assert other_job.device == "0"
    monkeypatch.setenv("BRAINMETS_GPU_LOCK_DIR", str(locks))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    image_path, mask_path, _ = scan
    assert (
        main(
            [
                "predict",
                "--image",
                str(image_path),
                "--brain-mask",
                str(mask_path),
                "--model",
                str(model_dir),
                "--out-dir",
                str(tmp_path / "out"),
                "--mirror-axes",
            ]
        )
        == 0
    )
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "1"
    del other_job


@pytest.mark.slow  # bfloat16 is emulated, slowly, on CPUs without it
def test_bfloat16_labels_agree_with_float32_on_a_small_case(model_dir, scan):
    """bfloat16 arithmetic moves probabilities a little and labels hardly at all."""
    image_path, mask_path, _ = scan
    image = np.asarray(nib.load(image_path).dataobj, dtype=np.float32)
    brain = np.asarray(nib.load(mask_path).dataobj) > 0
    maps = {
        precision: load_segmenter(model_dir, InferenceSettings(mirror_axes=(0,), precision=precision)).predict(
            image, brain
        )
        for precision in ("float32", "bfloat16")
    }
    p32, p16 = maps["float32"].probability, maps["bfloat16"].probability
    difference = np.abs(p32 - p16)[brain]
    assert 0 < difference.max() < 0.05  # bfloat16 was used, and it stays close
    labels32, labels16 = p32 > 0.5, p16 > 0.5
    assert labels32.sum() > 50
    dice = 2 * (labels32 & labels16).sum() / (labels32.sum() + labels16.sum())
    assert dice > 0.97


def test_auto_precision_is_bfloat16_only_where_the_cpu_computes_it(monkeypatch, caplog):
    from brainmets.inference import runtime

    monkeypatch.setattr(runtime, "cpu_flags", lambda: frozenset({"avx2", "fma"}))
    with caplog.at_level("INFO", logger="brainmets.inference.runtime"):
        assert runtime.resolve_precision("auto", "/CPU:0") == "float32"
    assert "precision float32 (auto: no native bfloat16" in caplog.text
    assert runtime.resolve_precision("bfloat16", "/CPU:0") == "bfloat16"  # asked for: emulated but honoured
    for flag in ("avx512_bf16", "amx_bf16"):
        monkeypatch.setattr(runtime, "cpu_flags", lambda flag=flag: frozenset({"avx2", flag}))
        assert runtime.resolve_precision("auto", "/CPU:0") == "bfloat16"
        assert runtime.resolve_precision("float32", "/CPU:0") == "float32"
        assert runtime.resolve_precision("auto", "/CPU:0", "published") == "float32"  # reproduces the published maps
        assert runtime.resolve_precision("bfloat16", "/CPU:0", "published") == "bfloat16"
    with pytest.raises(BrainmetsError, match="inference.precision is 'half'"):
        runtime.resolve_precision("half", "/CPU:0")


@pytest.mark.parametrize(
    ("details", "chosen"),
    [
        ({"compute_capability": (8, 0), "device_name": "A100"}, "bfloat16"),
        ({"compute_capability": (9, 0), "device_name": "H100"}, "bfloat16"),
        ({"compute_capability": (7, 5), "device_name": "T4"}, "float32"),
        ({"compute_capability": (7, 0), "device_name": "V100"}, "float32"),
        ({}, "float32"),  # a GPU that reports no compute capability
    ],
)
def test_auto_precision_on_a_gpu_follows_its_compute_capability(monkeypatch, caplog, details, chosen):
    """README: bfloat16 on an Ampere or later GPU (compute capability >= 8.0), float32 on older ones."""
    import tensorflow as tf
    from brainmets.inference import runtime

    gpu = tf.config.PhysicalDevice(name="/physical_device:GPU:0", device_type="GPU")
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [gpu] if kind in (None, "GPU") else [])
    asked = []

    def device_details(device):
        asked.append(device)
        return details

    monkeypatch.setattr(tf.config.experimental, "get_device_details", device_details)
    monkeypatch.setattr(runtime, "cpu_flags", lambda: frozenset({"avx512_bf16", "amx_bf16"}))  # the CPU must not count
    assert runtime.resolve_device("auto") == "/GPU:0"
    with caplog.at_level("INFO", logger="brainmets.inference.runtime"):
        assert runtime.resolve_precision("auto", "/GPU:0") == chosen
    assert asked == [gpu]
    assert f"precision {chosen} (auto: {'native' if chosen == 'bfloat16' else 'no native'} bfloat16" in caplog.text
    assert "on /GPU:0" in caplog.text
    assert runtime.resolve_precision("auto", "/GPU:0", "published") == "float32"
    assert runtime.resolve_precision("float32", "/GPU:0") == "float32"


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    from brainmets.inference.runtime import cpu_flags

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: X\nflags\t\t: fpu avx2 amx_bf16 avx512_bf16\n\nflags\t: other\n")
    assert cpu_flags(cpuinfo) == {"fpu", "avx2", "amx_bf16", "avx512_bf16"}
    assert cpu_flags(tmp_path / "missing") == frozenset()


def test_precision_comes_from_the_config_and_the_command_line(tmp_path, capsys):
    import argparse

    from brainmets.inference.cli_predict import add_inference_arguments, settings_from_args

    assert settings_from_config({}).precision == "auto"
    assert settings_from_config({"inference": {"precision": "bfloat16"}}).precision == "bfloat16"
    with pytest.raises(BrainmetsError, match="cfg.yaml: inference.precision: 'float16' is not one of"):
        settings_from_config({"inference": {"precision": "float16"}}, "cfg.yaml")
    config = tmp_path / "config.yaml"
    config.write_text("inference:\n  precision: float32\n")
    parser = argparse.ArgumentParser()
    add_inference_arguments(parser)
    assert settings_from_args(parser.parse_args(["--model", "m", "--config", str(config)])).precision == "float32"
    args = parser.parse_args(["--model", "m", "--config", str(config), "--precision", "bfloat16"])
    assert settings_from_args(args).precision == "bfloat16"
    with pytest.raises(SystemExit):
        main(["predict", "--image", "a", "--brain-mask", "b", "--model", "m", "--out-dir", "o", "--precision", "fp8"])
    assert "invalid choice: 'fp8'" in capsys.readouterr().err


def test_fold_predictors_share_one_graph_and_give_each_folds_own_logits():
    """Each shared-graph fold predictor equals its own compiled network, bit for bit, in any call order."""
    from brainmets.inference.runtime import compile_fold_predictors, compile_predictor
    from brainmets.network.model import build_unet, full_resolution_model

    models = [full_resolution_model(randomised_unet(seed)) for seed in (3, 4, 5)]
    batch = np.random.default_rng(2).normal(size=(2, 16, 16, 16, 1)).astype(np.float32)
    expected = [compile_predictor(m, PATCH)(batch) for m in models]
    runner = full_resolution_model(randomised_unet(9))
    shared = compile_fold_predictors(runner, [m.get_weights() for m in models], PATCH)
    for fold in (0, 1, 2, 1, 0, 2, 2):
        np.testing.assert_array_equal(shared[fold](batch), expected[fold])
    assert min(np.abs(a - b).max() for a, b in ((expected[0], expected[1]), (expected[1], expected[2]))) > 0.01
    other = full_resolution_model(build_unet(filters=(4, 16), deep_supervision_heads=0))
    with pytest.raises(BrainmetsError, match="the weights of fold 1 do not fit the network"):
        compile_fold_predictors(runner, [models[0].get_weights(), other.get_weights()], PATCH)


def test_fold_weights_of_a_model_directory_are_each_folds_own(tmp_path):
    """load_fold_weights builds one network and returns the full-resolution weights load_model_dir's folds hold."""
    import keras
    from brainmets.network.model import build_unet
    from brainmets.network.modeldir import load_fold_weights, load_model_dir, model_metadata, write_json

    network = {"filters": [4, 8, 16], "deep_supervision_heads": 1}  # heads that inference leaves out
    for fold in (0, 1):
        keras.utils.set_random_seed(fold)
        (tmp_path / f"fold_{fold}").mkdir()
        build_unet(**network).save_weights(str(tmp_path / f"fold_{fold}" / "best.weights.h5"))
    write_json(model_metadata("tiny", network, PATCH, SPACING_MM, [0, 1]), tmp_path / "model.json")

    meta, full, fold_weights = load_fold_weights(tmp_path)
    meta_each, models = load_model_dir(tmp_path)
    assert meta == meta_each and len(fold_weights) == len(models) == 2
    assert len(full.outputs) == 1
    for weights, model in zip(fold_weights, models, strict=True):
        assert len(weights) == len(model.get_weights()) == len(full.weights)
        for ours, theirs in zip(weights, model.get_weights(), strict=True):
            np.testing.assert_array_equal(ours, theirs)
    assert any(not np.array_equal(a, b) for a, b in zip(fold_weights[0], fold_weights[1], strict=True))


def test_weights_latest_reads_each_folds_latest_checkpoint(tmp_path):
    """inference.weights: best (default) reads fold_<k>/best.weights.h5, latest reads latest.weights.h5."""
    from brainmets.network.modeldir import load_fold_weights

    root = write_tiny_model(tmp_path / "model", folds=(0,))
    randomised_unet(7).save_weights(str(root / "fold_0" / "latest.weights.h5"))
    expected = {name: randomised_unet(seed) for name, seed in (("best", 0), ("latest", 7))}
    for name, model in expected.items():
        _, network, (fold,) = load_fold_weights(root, weights=name)
        stored = {w.path: v for w, v in zip(network.weights, fold, strict=True)}
        reference = {w.path: w.numpy() for w in model.weights if w.path in stored}
        assert reference.keys() == stored.keys()
        assert all(np.array_equal(reference[k], stored[k]) for k in stored), name
    with pytest.raises(BrainmetsError, match="latest.weights.h5"):
        (root / "fold_0" / "latest.weights.h5").unlink()
        load_fold_weights(root, weights="latest")


@pytest.mark.parametrize(
    ("device", "setting", "jit"),
    [("/GPU:0", "auto", True), ("/CPU:0", "auto", False), ("/CPU:0", True, True), ("/GPU:0", False, False)],
)
def test_xla_is_on_by_default_on_a_gpu_only(model_dir, monkeypatch, device, setting, jit):
    """config/README: inference.jit_compile auto compiles the network with XLA on a GPU, not on the CPU."""
    from brainmets.inference import runtime

    seen = {}

    def compile_folds(network, fold_weights, patch_size, *, device, jit_compile):
        seen.update(device=device, jit=jit_compile)
        return [lambda batch: batch for _ in fold_weights]

    monkeypatch.setattr(runtime, "resolve_device", lambda setting: device)
    monkeypatch.setattr(runtime, "compile_fold_predictors", compile_folds)
    load_segmenter(model_dir, InferenceSettings(jit_compile=setting, precision="float32"))
    assert seen == {"device": device, "jit": jit}
