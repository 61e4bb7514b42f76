"""The training data pipeline on NVIDIA DALI: foreground-biased patch crop and nnU-Net augmentation.

Every sample is read from a case's data.npy (image, label, weight channels), then, in this order
(probabilities and ranges from the preset's `augmentation` section, reference.md "Training"):

1. crop a patch; with probability foreground_crop_p the patch is centred on a lesion chosen uniformly
   among ALL connected lesions of the case (DALI's random_object_bbox without k_largest), so small
   metastases are sampled as often as large ones; otherwise at a random position;
2. scaling (p scale_p, factor U(scale_range)) and rotation (p rotation_p, U(+-rotation_max_deg) about
   each axis), as one affine warp about the patch centre: image linear, label and weights nearest;
3. Gaussian noise (p noise_p, sigma U(0, noise_max_sigma));
4. Gaussian blur (p blur_p, sigma U(blur_sigma_range) voxels);
5. brightness (p brightness_p, multiply by U(brightness_range));
6. contrast (p contrast_p, scale about the patch mean by U(contrast_range), clipped to the previous range);
7. low-resolution simulation (p low_resolution_p, nearest downsampling to zoom U(low_resolution_zoom_range)
   then cubic upsampling);
8. inverted gamma (p inverted_gamma_p) then gamma (p gamma_p), gamma U(gamma_range), on the patch rescaled
   to [0, 1], keeping the patch's mean and standard deviation;
9. flips, p flip_p per axis, of image, label and weights together.

On the CPU every operator runs in a CPU pipeline (`device_id=None`); on a GPU the reading and the
choice of the crop stay on the CPU and everything after the crop runs on the GPU.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from nvidia.dali import fn, pipeline_def, types
from nvidia.dali import math as dmath

from brainmets.train.cases import Case


def _coin(probability: float) -> Any:
    """A per-sample 0/1 float draw that is 1 with the given probability."""
    return fn.cast(fn.random.coin_flip(probability=float(probability)), dtype=types.FLOAT)


def _mix(coin: Any, augmented: Any, original: Any) -> Any:
    """`augmented` where the coin is 1, `original` where it is 0."""
    return coin * augmented + (1.0 - coin) * original


def _uniform(low: float, high: float) -> Any:
    """A per-sample draw from U(low, high) (the constant itself when low == high)."""
    if float(low) == float(high):
        return float(low)
    return fn.random.uniform(range=[float(low), float(high)])


def _centre_xyz(patch: Sequence[int]) -> list[float]:
    """The patch centre in DALI's (x, y, z) = (innermost ... outermost) coordinates."""
    return [float(p) / 2.0 for p in reversed(patch)]


def _spatial_matrix(aug: dict[str, Any], patch: Sequence[int]) -> Any:
    """The per-sample source-to-destination affine of scaling and rotation (identity when not drawn)."""
    centre = _centre_xyz(patch)
    scale = 1.0 + _coin(aug["scale_p"]) * (_uniform(*aug["scale_range"]) - 1.0)
    matrix = fn.transforms.scale(scale=fn.stack(scale, scale, scale), center=centre)
    rotate = _coin(aug["rotation_p"])
    limit = float(aug["rotation_max_deg"])
    for axis in ([1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]):
        matrix = fn.transforms.rotation(matrix, angle=rotate * _uniform(-limit, limit), axis=axis, center=centre)
    return matrix


def _intensity(image: Any, aug: dict[str, Any], patch: Sequence[int]) -> Any:
    """Noise, blur, brightness, contrast, low resolution and gamma, each drawn with its probability."""
    image = fn.noise.gaussian(image, stddev=_coin(aug["noise_p"]) * _uniform(0.0, aug["noise_max_sigma"]))
    image = _mix(_coin(aug["blur_p"]), fn.gaussian_blur(image, sigma=_uniform(*aug["blur_sigma_range"])), image)
    image = image * (1.0 + _coin(aug["brightness_p"]) * (_uniform(*aug["brightness_range"]) - 1.0))

    low, high = fn.reductions.min(image), fn.reductions.max(image)
    mean = fn.reductions.mean(image)
    factor = 1.0 + _coin(aug["contrast_p"]) * (_uniform(*aug["contrast_range"]) - 1.0)
    image = dmath.clamp((image - mean) * factor + mean, low, high)

    zoom = 1.0 - _coin(aug["low_resolution_p"]) * (1.0 - _uniform(*aug["low_resolution_zoom_range"]))
    size = types.Constant(np.asarray(patch, dtype=np.float32))
    small = fn.resize(image, size=zoom * size, interp_type=types.INTERP_NN, antialias=False)
    image = fn.resize(small, size=size, interp_type=types.INTERP_CUBIC, antialias=False)

    for invert, probability in ((True, aug["inverted_gamma_p"]), (False, aug["gamma_p"])):
        image = _mix(_coin(probability), _gamma(image, aug["gamma_range"], invert), image)
    return image


def _gamma(image: Any, gamma_range: Sequence[float], invert: bool) -> Any:
    """Gamma on the patch rescaled to [0, 1] (on 1 - x when inverted), keeping mean and standard deviation."""
    low, high = fn.reductions.min(image), fn.reductions.max(image)
    span = high - low + 1e-7
    unit = (image - low) / span
    gamma = _uniform(*gamma_range)
    unit = 1.0 - dmath.pow(1.0 - unit, gamma) if invert else dmath.pow(unit, gamma)
    out = unit * span + low
    mean, out_mean = fn.reductions.mean(image), fn.reductions.mean(out)
    std = fn.reductions.std_dev(image, mean)
    out_std = fn.reductions.std_dev(out, out_mean)
    return (out - out_mean) / (out_std + 1e-7) * std + mean


def augmented_patches(data: Any, patch: Sequence[int], aug: dict[str, Any], device: str) -> tuple[Any, Any, Any]:
    """The graph from a (axis0, axis1, axis2, 3) volume to augmented (image, label, weights) patches."""
    data = fn.reshape(data, layout="DHWC")
    label = fn.cast(data[:, :, :, 1], dtype=types.UINT8)
    # with format="start_end" the operator returns two nodes, which DALI's stub does not express
    roi_start, roi_end = fn.segmentation.random_object_bbox(  # type: ignore[misc]
        label, format="start_end", foreground_prob=_coin(aug["foreground_crop_p"]), cache_objects=True
    )
    anchor = fn.roi_random_crop(label, roi_start=roi_start, roi_end=roi_end, crop_shape=[int(p) for p in patch])
    crop = fn.slice(
        data,
        fn.cast(anchor, dtype=types.INT32),
        types.Constant(np.asarray(patch, dtype=np.int32)),
        axis_names="DHW",
        out_of_bounds_policy="pad",
        fill_values=[0.0, 0.0, 1.0],
    )
    if device == "gpu":
        crop = crop.gpu()
    image, targets = crop[:, :, :, 0:1], crop[:, :, :, 1:3]

    matrix = _spatial_matrix(aug, patch)
    image = fn.warp_affine(image, matrix=matrix, inverse_map=False, fill_value=0.0, interp_type=types.INTERP_LINEAR)
    targets = fn.warp_affine(targets, matrix=matrix, inverse_map=False, fill_value=0.0, interp_type=types.INTERP_NN)

    image = _intensity(image, aug, patch)

    axes = ("depthwise", "vertical", "horizontal")
    flips = {name: fn.random.coin_flip(probability=float(aug["flip_p"])) for name in axes}
    image, targets = fn.flip(image, **flips), fn.flip(targets, **flips)
    label, weights = targets[:, :, :, 0:1], dmath.max(targets[:, :, :, 1:2], 1.0)  # weights outside the volume: 1
    return image, label, weights


def build_pipeline(
    cases: Sequence[Case],
    patch: Sequence[int],
    batch_size: int,
    aug: dict[str, Any],
    seed: int,
    device: str = "cpu",
    num_threads: int = 2,
) -> Any:
    """A built DALI pipeline that yields (image, label, weights) batches of shape (batch, *patch, 1)."""

    @pipeline_def(
        batch_size=batch_size,
        num_threads=num_threads,
        device_id=0 if device == "gpu" else None,
        seed=seed,
        prefetch_queue_depth=2,
        exec_dynamic=True,
    )
    def training_pipeline() -> tuple[Any, Any, Any]:
        data = fn.readers.numpy(
            files=[str(c.data_path) for c in cases],
            shuffle_after_epoch=True,
            seed=seed,
            name="reader",
            pad_last_batch=False,
        )
        return augmented_patches(data, patch, aug, device)

    pipe = training_pipeline()
    pipe.build()
    return pipe


def numpy_batches(pipe: Any) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Run the pipeline forever, yielding (image, label, weights) float32 numpy batches."""
    while True:
        outputs = pipe.run()
        host = [o.as_cpu() if hasattr(o, "as_cpu") else o for o in outputs]
        image, label, weights = (np.asarray(o.as_array(), dtype=np.float32) for o in host)
        yield image, label, weights
