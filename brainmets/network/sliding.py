"""Gaussian-weighted sliding-window prediction of a whole volume with a patch-sized network.

The volume is tiled into overlapping windows of the network's patch size (nnU-Net's placement: evenly
spaced, first window at 0, last window flush with the far edge). Each window's output is weighted by a
Gaussian importance map (sigma = patch / 8 per axis) so that the centre of a window, where the network
sees the most context, dominates; overlapping outputs are blended as a weighted mean. Accumulation is in
float64, so an identity network reproduces its input exactly.

With a brain mask, no window is wasted: the windows tile only the brain's bounding box (widened to
one patch where it is smaller), and of those only the windows that hold a brain voxel are computed.
On a volume already cropped to the brain this is the same placement as without the mask.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence

import numpy as np
from scipy.signal.windows import gaussian

from brainmets.errors import BrainmetsError

#: a network applied to a batch of windows: (B, D, H, W, 1) float32 in, (B, D, H, W, 1) out
BatchPredictor = Callable[[np.ndarray], np.ndarray]

#: the Gaussian's standard deviation as a fraction of the patch edge (nnU-Net and the published system)
SIGMA_SCALE = 1.0 / 8.0


def gaussian_importance_map(patch_size: Sequence[int], sigma_scale: float = SIGMA_SCALE) -> np.ndarray:
    """Per-voxel window weight (float64, 1 at the centre) of a Gaussian with sigma = sigma_scale * patch edge."""
    axes = [gaussian(int(n), std=max(sigma_scale * int(n), 1e-3), sym=True) for n in patch_size]
    weights = axes[0][:, None, None] * axes[1][None, :, None] * axes[2][None, None, :]
    # far corners of large patches underflow towards 0; keep every voxel's weight positive
    return np.maximum(weights / weights.max(), np.finfo(np.float64).tiny)


def window_starts(size: int, patch: int, overlap: float) -> list[int]:
    """Start indices (voxels) of the windows along one axis of `size` voxels; windows overlap by >= `overlap`."""
    if not 0.0 <= overlap < 1.0:
        raise BrainmetsError(
            f"inference overlap {overlap} must be in [0, 1); nnU-Net uses 0.5, the published system 0.75"
        )
    if size <= patch:
        return [0]
    target_step = max(patch * (1.0 - overlap), 1.0)
    n_windows = math.ceil((size - patch) / target_step) + 1
    step = (size - patch) / (n_windows - 1)
    return [int(round(step * i)) for i in range(n_windows)]


def window_slices(shape: Sequence[int], patch_size: Sequence[int], overlap: float) -> list[tuple[slice, slice, slice]]:
    """Every window of a volume of `shape` (already at least the patch size), as index slices."""
    starts = [window_starts(int(s), int(p), overlap) for s, p in zip(shape, patch_size, strict=True)]
    return [
        (slice(i, i + patch_size[0]), slice(j, j + patch_size[1]), slice(k, k + patch_size[2]))
        for i in starts[0]
        for j in starts[1]
        for k in starts[2]
    ]


def brain_region(mask: np.ndarray, patch_size: Sequence[int]) -> tuple[slice, slice, slice] | None:
    """The part of a volume the windows must tile: the mask's bounding box, widened to at least one patch per axis.

    A box narrower than the patch grows evenly on both sides and is shifted back inside the volume
    (which is at least one patch wide). None when the mask holds no voxel.
    """
    nonzero = [np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis))) for axis in range(3)]
    if any(found.size == 0 for found in nonzero):
        return None
    region = []
    for found, patch, size in zip(nonzero, patch_size, mask.shape, strict=True):
        first, stop = int(found[0]), int(found[-1]) + 1
        width = max(int(patch), stop - first)
        first = min(max(first - (width - (stop - first)) // 2, 0), int(size) - width)
        region.append(slice(first, first + width))
    return region[0], region[1], region[2]


def brain_windows(mask: np.ndarray, patch_size: Sequence[int], overlap: float) -> list[tuple[slice, slice, slice]]:
    """The windows worth computing on a volume with this brain mask: those tiling its brain region that hold brain."""
    region = brain_region(mask, patch_size)
    if region is None:
        return []
    tiles = window_slices([r.stop - r.start for r in region], patch_size, overlap)
    i, j, k = (r.start for r in region)
    shifted = [
        (slice(i + a.start, i + a.stop), slice(j + b.start, j + b.stop), slice(k + c.start, k + c.stop))
        for a, b, c in tiles
    ]
    return [w for w in shifted if mask[w].any()]


def _padding(shape: Sequence[int], patch_size: Sequence[int]) -> list[tuple[int, int]]:
    """Before/after padding (voxels) that brings each axis up to the patch size, split evenly."""
    pads = []
    for size, patch in zip(shape, patch_size, strict=True):
        missing = max(int(patch) - int(size), 0)
        pads.append((missing // 2, missing - missing // 2))
    return pads


def _batches(items: list, batch_size: int) -> Iterator[list]:
    """Consecutive chunks of at most `batch_size` items."""
    for start in range(0, len(items), batch_size):
        yield items[start : start + batch_size]


def sliding_window_predict(
    image: np.ndarray,
    predict_batch: BatchPredictor,
    patch_size: Sequence[int],
    *,
    overlap: float,
    batch_size: int = 1,
    brain_mask: np.ndarray | None = None,
    fill_value: float = 0.0,
) -> np.ndarray:
    """Network output over a whole 3-D volume (float32, same shape), blended from Gaussian-weighted windows.

    Volumes smaller than the patch are zero-padded (the background value of a z-scored image) and
    cropped back. With a `brain_mask`, windows tile only the brain's bounding box (see brain_region),
    windows holding no brain voxel are skipped, and voxels that no evaluated window covers get `fill_value`.
    """
    if image.ndim != 3:
        raise BrainmetsError(f"sliding-window prediction needs a 3-D volume, got shape {image.shape}")
    if len(patch_size) != 3 or min(patch_size) < 1:
        raise BrainmetsError(f"patch size {tuple(patch_size)} must be three positive integers")
    if batch_size < 1:
        raise BrainmetsError(f"inference batch size {batch_size} must be at least 1")
    if brain_mask is not None and brain_mask.shape != image.shape:
        raise BrainmetsError(f"brain mask shape {brain_mask.shape} differs from the image shape {image.shape}")
    patch = tuple(int(p) for p in patch_size)
    pads = _padding(image.shape, patch)
    volume = np.pad(np.asarray(image, dtype=np.float32), pads, mode="constant")
    mask = None if brain_mask is None else np.pad(np.asarray(brain_mask, dtype=bool), pads, mode="constant")

    windows = window_slices(volume.shape, patch, overlap) if mask is None else brain_windows(mask, patch, overlap)
    importance = gaussian_importance_map(patch)
    total = np.zeros(volume.shape, dtype=np.float64)
    weight = np.zeros(volume.shape, dtype=np.float64)
    for batch in _batches(windows, batch_size):
        inputs = np.stack([volume[w] for w in batch])[..., None]
        outputs = np.asarray(predict_batch(inputs))
        if outputs.shape != inputs.shape:
            raise BrainmetsError(
                f"the network returned shape {outputs.shape} for input {inputs.shape}; it must keep the patch shape"
            )
        for w, out in zip(batch, outputs[..., 0], strict=True):
            total[w] += importance * out
            weight[w] += importance

    covered = weight > 0
    result = np.full(volume.shape, fill_value, dtype=np.float64)
    np.divide(total, weight, out=result, where=covered)
    crop = tuple(slice(before, size - after) for (before, after), size in zip(pads, volume.shape, strict=True))
    return result[crop].astype(np.float32)
