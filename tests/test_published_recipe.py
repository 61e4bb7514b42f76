"""`inference.recipe: published`: the published predict.py's maps, from the same networks and z-scored input."""

from __future__ import annotations

import itertools
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import tensorflow as tf
from brainmets.cli import main
from brainmets.inference.published import predict_published, published_window_starts
from brainmets.inference.runtime import compile_predictor
from brainmets.network.modeldir import load_model_dir
from scipy import signal

from published_checkpoint import published_variable_shapes, random_published_weights, write_published_checkpoint

FILTERS = (4, 8, 8, 16)


def reference_predict(image: np.ndarray, models: list, patch: int, overlap: float = 0.75):
    """predict.py + NNUnet.inference + sliding_window_inference, step by step in TensorFlow ops.

    Returns label, probability and (expected) entropy as predict.py computes them, and the total entropy
    H(mean fold probability) in bits, which predict.py does not write, from the same fold probabilities.
    """
    patch_size = np.array([patch] * 3)
    location = tuple(slice(int(i.min()), int(i.max()) + 1) for i in np.nonzero(image))
    crop = image.astype(np.float64)[location]
    background = np.ones_like(image, dtype=np.float64)
    background[location] = 0
    extra = np.maximum(patch_size - np.array(crop.shape), 0)
    pads = tuple((int(np.floor(i / 2)), int(np.ceil(i / 2))) for i in extra)
    x = tf.cast(tf.constant(np.expand_dims(np.pad(crop, pads), axis=(0, -1))), tf.float32)

    gauss = signal.windows.gaussian(patch, std=0.125 * patch)
    for _ in range(2):
        gauss = np.outer(gauss, signal.windows.gaussian(patch, std=0.125 * patch))
    gauss = np.power(np.reshape(gauss, [patch] * 3), 1 / 3)
    importance = tf.reshape(tf.convert_to_tensor(gauss / gauss.max(), dtype=tf.float32), [1, patch, patch, patch, 1])

    def sliding(inputs, run_model):
        size = tuple(inputs.shape[1:-1])
        starts = []
        for s in size:
            interval = patch if patch == s else int(patch * (1 - overlap))
            axis = list(range(0, s - patch + 1, interval))
            if axis[-1] + patch < s:
                axis.append(s - patch)
            starts.append(axis)
        out_sum = tf.zeros((1, *size, 1), tf.float32)
        weight_sum = tf.ones((1, *size, 1), tf.float32)
        for start in itertools.product(*starts):
            window = tf.slice(inputs, (0, *start, 0), (1, patch, patch, patch, 1))
            pred = tf.cast(run_model(window), tf.float32) * importance
            padding = [[0, 0]] + [[b, s - b - patch] for b, s in zip(start, size, strict=True)] + [[0, 0]]
            out_sum = out_sum + tf.pad(pred, padding)
            weight_sum = weight_sum + tf.pad(importance, padding)
        return out_sum / weight_sum

    logits = np.zeros((len(models), *image.shape))
    for i, model in enumerate(models):
        model = tf.function(lambda window, model=model: model(window, training=False))  # as run_model
        pred = sliding(x, model)
        flips = [[1], [2], [3], [1, 2], [1, 3], [2, 3], [1, 2, 3]]
        for axes in flips:
            pred = pred + tf.reverse(sliding(tf.reverse(x, axis=axes), model), axis=axes)
        y = (pred / (len(flips) + 1))[0, ..., 0].numpy()
        y = y[tuple(slice(b, y.shape[k] - a) for k, (b, a) in enumerate(pads))]
        logits[i] = np.pad(y, [(s.start, image.shape[k] - s.stop) for k, s in enumerate(location)])
    label = (logits.mean(axis=0) > 0).astype(int)
    label[background == 1] = 0
    prob = tf.sigmoid(logits).numpy()
    probability = prob.mean(axis=0)
    probability[background == 1] = 0
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = np.nan_to_num(-(prob * np.log2(prob) + (1 - prob) * np.log2(1 - prob))).mean(axis=0)
    entropy[background == 1] = 0
    mean = prob.mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        total = np.nan_to_num(-(mean * np.log2(mean) + (1 - mean) * np.log2(1 - mean)))
    total[background == 1] = 0
    return label, probability, entropy, total


@pytest.fixture(scope="module")
def imported_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-fold model imported from published-layout checkpoints with random weights."""
    root = tmp_path_factory.mktemp("published")
    for fold in (0, 1):
        weights = random_published_weights(published_variable_shapes(FILTERS), seed=10 + fold)
        write_published_checkpoint(root / "trained_models" / f"Model_{fold}", weights, epoch=50)
    assert (
        main(["import-model", str(root / "trained_models"), "--format", "brain-mets-seg", "--out", str(root / "model")])
        == 0
    )
    return root / "model"


def test_window_starts_are_the_published_ones() -> None:
    assert published_window_starts(128, 128) == [0]
    assert published_window_starts(150, 128) == [0, 22]
    assert published_window_starts(200, 128) == [0, 32, 64, 72]
    assert published_window_starts(192, 128) == [0, 32, 64]


def _brain_image(shape, box, seed=0) -> np.ndarray:
    """Noise with a few bright blobs inside `box`, zero outside it."""
    rng = np.random.default_rng(seed)
    image = np.zeros(shape, dtype=np.float32)
    inner = rng.normal(size=[s.stop - s.start for s in box]).astype(np.float32)
    inner[5:12, 4:10, 6:14] += 3.0
    image[box] = inner
    return image


def test_recipe_reproduces_published_maps_on_a_small_patch(imported_model: Path) -> None:
    _, models = load_model_dir(imported_model)
    # the nonzero box (38 x 27 x 42) needs padding on one axis and two or three windows on the others
    image = _brain_image((44, 40, 50), (slice(3, 41), slice(8, 35), slice(5, 47)))
    label, probability, entropy, total = reference_predict(image, models, patch=32)
    assert 0.05 < label[3:41, 8:35, 5:47].mean() < 0.95  # both classes present: the label comparison means something
    maps = predict_published(image, [compile_predictor(m, (32, 32, 32)) for m in models], (32, 32, 32), batch_size=3)
    np.testing.assert_array_equal(maps.label, label)
    assert np.abs(maps.probability - probability).max() < 1e-5
    assert np.abs(maps.expected_entropy - entropy).max() < 1e-5
    outside = np.ones(image.shape, bool)
    outside[3:41, 8:35, 5:47] = False
    assert not maps.total_entropy[outside].any() and not maps.mutual_information[outside].any()
    # total entropy and mutual information over the folds, from the reference's fold probabilities
    assert (total - entropy).max() > 0.05  # the two folds disagree: the mutual information is not trivially 0
    assert np.abs(maps.total_entropy - total).max() < 1e-5
    assert np.abs(maps.mutual_information - (total - entropy)).max() < 1e-5


def test_predict_with_published_recipe_writes_the_published_maps(imported_model: Path, tmp_path: Path) -> None:
    """`brainmets predict --recipe published` on a 1 mm z-scored brain crop writes the published maps on its grid."""
    _, models = load_model_dir(imported_model)
    shape, box = (70, 120, 60), (slice(4, 66), slice(3, 115), slice(2, 58))
    image = _brain_image(shape, box, seed=1)
    brain = np.zeros(shape, bool)
    brain[box] = True
    image[brain] = (image[brain] - image[brain].mean()) / image[brain].std()
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    full_shape = (80, 124, 64)  # the mask's grid holds the image crop at offset (5, 2, 3)
    affine_crop = affine.copy()
    affine_crop[:3, 3] = [5, 2, 3]
    mask = np.zeros(full_shape, np.uint8)
    mask[5:75, 2:122, 3:63][brain] = 1
    nib.save(nib.Nifti1Image(image, affine_crop), tmp_path / "t1ce_zscore.nii.gz")
    nib.save(nib.Nifti1Image(mask, affine), tmp_path / "brain_mask.nii.gz")
    status = main(
        [
            "predict",
            "--image",
            str(tmp_path / "t1ce_zscore.nii.gz"),
            "--brain-mask",
            str(tmp_path / "brain_mask.nii.gz"),
            "--out-dir",
            str(tmp_path / "out"),
            "--model",
            str(imported_model),
            "--recipe",
            "published",
            "--device",
            "cpu",
        ]
    )
    assert status == 0
    label, probability, entropy, total = reference_predict(image, models, patch=128)
    full = (slice(5, 75), slice(2, 122), slice(3, 63))

    def written(name: str) -> np.ndarray:
        data = np.asarray(nib.load(tmp_path / "out" / name).dataobj)
        assert data.shape == full_shape
        outside = np.ones(full_shape, bool)
        outside[full] = False
        assert not data[outside].any()
        return data[full]

    np.testing.assert_array_equal(written("segmentation.nii.gz"), label)
    assert label.any()
    assert np.abs(written("probability.nii.gz") - probability).max() < 1e-4
    assert np.abs(written("uncertainty_expected_entropy.nii.gz") - entropy).max() < 1e-4
    assert (total - entropy).max() > 0.05
    assert np.abs(written("uncertainty_total_entropy.nii.gz") - total).max() < 1e-4
    assert np.abs(written("uncertainty_mutual_information.nii.gz") - (total - entropy)).max() < 1e-4
    assert (tmp_path / "out" / "lesions.tsv").is_file()


def test_segment_with_published_recipe_writes_the_published_maps(imported_model: Path, tmp_path: Path) -> None:
    """README: `brainmets segment --recipe published` gives the published maps of the z-scored brain it prepared."""
    shape = (48, 44, 40)
    grid = np.indices(shape, dtype=np.float32)
    centre = (np.array(shape, np.float32) - 1) / 2
    brain = sum(((grid[a] - centre[a]) / r) ** 2 for a, r in enumerate((19, 17, 15))) <= 1
    rng = np.random.default_rng(5)
    image = np.where(brain, 300 + 20 * rng.normal(size=shape), 0).astype(np.float32)
    image[20:27, 18:24, 16:22] += 200  # an enhancing blob inside the brain
    image[~brain] = 0
    # 2 mm voxels (a 160 mL brain); segment resamples the scan to the model's 1 mm
    nib.save(nib.Nifti1Image(image, np.diag([2.0, 2.0, 2.0, 1.0])), tmp_path / "scan.nii.gz")
    out = tmp_path / "out"
    args = ["segment", str(tmp_path / "scan.nii.gz"), "--model", str(imported_model), "--out-dir", str(out)]
    assert main([*args, "--recipe", "published", "--skull-stripped", "--device", "cpu"]) == 0
    scan_dir = out / "scan"
    zscore = nib.load(scan_dir / "t1ce_zscore.nii.gz")
    grid_img = nib.load(scan_dir / "brain_mask.nii.gz")
    offset = np.rint(np.linalg.solve(grid_img.affine, zscore.affine)[:3, 3]).astype(int)
    crop = tuple(slice(o, o + n) for o, n in zip(offset, zscore.shape, strict=True))
    _, models = load_model_dir(imported_model)
    label, probability, entropy, total = reference_predict(np.asarray(zscore.dataobj, np.float32), models, patch=128)

    def written(name: str) -> np.ndarray:
        data = np.asarray(nib.load(scan_dir / name).dataobj)
        outside = np.ones(data.shape, bool)
        outside[crop] = False
        assert not data[outside].any()
        return data[crop]

    np.testing.assert_array_equal(written("segmentation.nii.gz"), label)
    assert np.abs(written("probability.nii.gz") - probability).max() < 1e-4
    assert np.abs(written("uncertainty_expected_entropy.nii.gz") - entropy).max() < 1e-4
    assert np.abs(written("uncertainty_total_entropy.nii.gz") - total).max() < 1e-4
    assert (total - entropy).max() > 0.05  # two folds that disagree: the total entropy is not the expected one
    assert (scan_dir / "native" / "probability.nii.gz").is_file()
