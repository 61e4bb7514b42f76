"""Synthetic metastases: irregular solid or ring-enhancing blobs defined analytically in millimetres.

A lesion is a union of ellipsoidal blobs whose radius is modulated by a few low-frequency harmonics of
the direction (an irregular but star-shaped, hence connected, border). Because the shape is a function
of physical position, it is rasterised exactly on any grid (the patient's common grid or a scan's own
oblique grid) without resampling a label map. Each blob has its own size factor per timepoint, which
is how growth, shrinkage, splitting, merging and disappearance are expressed (see `scenarios`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: relative amplitude of the border irregularity (sum of harmonic amplitudes)
IRREGULARITY = 0.18
#: largest axis ratio of a blob's ellipsoid
MAX_AXIS_RATIO = 1.15
#: extent of the perilesional oedema (T1-hypointense) as a multiple of the lesion radius
OEDEMA_EXTENT = 1.6
#: necrotic core radius of ring-enhancing lesions, relative to the lesion radius
NECROTIC_CORE = 0.55


@dataclass(frozen=True)
class Blob:
    """One ellipsoid of a lesion: centre offset from the lesion centre (mm) and nominal radius (mm)."""

    offset_mm: np.ndarray
    radius_mm: float


@dataclass(frozen=True)
class Lesion:
    """A metastasis in a patient's common frame with its per-timepoint size factor for each blob."""

    lesion_id: int
    centre_mm: np.ndarray
    blobs: tuple[Blob, ...]
    #: size factor of each blob at each timepoint (blobs x timepoints); 0 = absent
    factors: np.ndarray
    ring: bool
    rotation: np.ndarray  # 3x3, lesion axes -> world
    axes: np.ndarray  # 3 axis ratios
    wave_vectors: np.ndarray  # K x 3, border harmonics
    wave_amplitudes: np.ndarray  # K
    wave_phases: np.ndarray  # K
    contrast: float = 1.35  # enhancing rim/solid intensity relative to white matter

    def extent_mm(self, timepoint: int | None = None) -> float:
        """Radius (mm) of a sphere about the centre that holds the lesion at a timepoint (or at any)."""
        factors = self.factors if timepoint is None else self.factors[:, [timepoint]]
        reach = [
            np.linalg.norm(b.offset_mm) + b.radius_mm * f.max() * MAX_AXIS_RATIO * (1 + IRREGULARITY)
            for b, f in zip(self.blobs, factors, strict=True)
        ]
        return float(max(reach))

    def present(self, timepoint: int) -> bool:
        """Whether any blob of the lesion exists at a timepoint."""
        return bool((self.factors[:, timepoint] > 0).any())

    def rho(self, points_mm: np.ndarray, timepoint: int) -> np.ndarray:
        """Normalised radius of points (N x 3, mm): <= 1 inside the lesion at a timepoint, inf where absent."""
        best = np.full(len(points_mm), np.inf, dtype=np.float32)
        for blob, factor in zip(self.blobs, self.factors[:, timepoint], strict=True):
            if factor <= 0:
                continue
            local = (points_mm - (self.centre_mm + blob.offset_mm)) @ self.rotation / self.axes
            distance = np.linalg.norm(local, axis=1)
            direction = local / np.maximum(distance, 1e-6)[:, None]
            modulation = 1.0 + np.sin(direction @ self.wave_vectors.T + self.wave_phases) @ self.wave_amplitudes
            best = np.minimum(best, (distance / (blob.radius_mm * factor * modulation)).astype(np.float32))
        return best


def random_rotation(rng: np.random.Generator, max_deg: float = 180.0, min_deg: float = 0.0) -> np.ndarray:
    """A random 3x3 rotation matrix by `min_deg` to `max_deg` degrees about a random axis."""
    from scipy.spatial.transform import Rotation

    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = np.deg2rad(rng.uniform(min_deg, max_deg))
    return Rotation.from_rotvec(axis * angle).as_matrix()


def make_lesion(
    rng: np.random.Generator,
    lesion_id: int,
    centre_mm: np.ndarray,
    blobs: tuple[Blob, ...],
    factors: np.ndarray,
    ring: bool | None = None,
) -> Lesion:
    """A lesion with a random orientation, axis ratios, irregular border, contrast and (optional) necrosis."""
    n_waves = 6
    directions = rng.normal(size=(n_waves, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    wave_vectors = directions * rng.uniform(1.5, 4.0, size=(n_waves, 1))
    amplitudes = rng.dirichlet(np.ones(n_waves)) * IRREGULARITY
    axes = rng.uniform(1.0 / MAX_AXIS_RATIO, MAX_AXIS_RATIO, size=3)
    largest = max(b.radius_mm for b in blobs)
    if ring is None:
        ring = bool(largest >= 5.0 and rng.random() < 0.5)
    return Lesion(
        lesion_id=lesion_id,
        centre_mm=np.asarray(centre_mm, dtype=float),
        blobs=blobs,
        factors=np.asarray(factors, dtype=float).reshape(len(blobs), -1),
        ring=ring,
        rotation=random_rotation(rng),
        axes=axes,
        wave_vectors=wave_vectors,
        wave_amplitudes=amplitudes,
        wave_phases=rng.uniform(0, 2 * np.pi, size=n_waves),
        contrast=float(rng.uniform(1.25, 1.6)),
    )


def _box(
    lesion: Lesion, timepoint: int, affine: np.ndarray, shape: tuple[int, ...], reach: float
) -> tuple[slice, ...] | None:
    """Voxel box of a grid (affine, shape) that holds the sphere of `reach` x the lesion's extent."""
    radius = lesion.extent_mm(timepoint) * reach + 1.0
    corners = np.array(np.meshgrid(*[[-radius, radius]] * 3, indexing="ij")).reshape(3, -1).T + lesion.centre_mm
    inverse = np.linalg.inv(affine)
    voxels = corners @ inverse[:3, :3].T + inverse[:3, 3]
    low = np.maximum(np.floor(voxels.min(axis=0)).astype(int), 0)
    high = np.minimum(np.ceil(voxels.max(axis=0)).astype(int) + 1, shape)
    if (high <= low).any():
        return None
    return tuple(slice(a, b) for a, b in zip(low, high, strict=True))


def _box_points(box: tuple[slice, ...], affine: np.ndarray) -> np.ndarray:
    """World coordinates (N x 3, mm) of the voxel centres in a box of a grid."""
    index = np.stack(np.meshgrid(*(np.arange(s.start, s.stop) for s in box), indexing="ij"), axis=-1).reshape(-1, 3)
    return index @ affine[:3, :3].T + affine[:3, 3]


def rasterise(lesions: list[Lesion], timepoint: int, affine: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Label map (uint16, values = lesion ids) of the lesions at a timepoint on a grid; voxel-centre sampling.

    `affine` maps the grid's voxels into the lesions' frame (mm).
    """
    labels = np.zeros(shape, dtype=np.uint16)
    for lesion in lesions:
        if not lesion.present(timepoint):
            continue
        box = _box(lesion, timepoint, affine, shape, 1.0)
        if box is None:
            continue
        inside = (lesion.rho(_box_points(box, affine), timepoint) <= 1.0).reshape(labels[box].shape)
        labels[box][inside] = lesion.lesion_id
    return labels


def paint(
    image: np.ndarray, lesions: list[Lesion], timepoint: int, affine: np.ndarray, rng: np.random.Generator
) -> None:
    """Add the lesions' T1-CE appearance (enhancing rim or solid, necrotic core, oedema) to an image in place."""
    voxel_mm = float(np.cbrt(abs(np.linalg.det(affine[:3, :3]))))
    for lesion in lesions:
        if not lesion.present(timepoint):
            continue
        box = _box(lesion, timepoint, affine, image.shape, OEDEMA_EXTENT)
        if box is None:
            continue
        rho = lesion.rho(_box_points(box, affine), timepoint).reshape(image[box].shape)
        radius = lesion.extent_mm(timepoint) / (MAX_AXIS_RATIO * (1 + IRREGULARITY))
        # partial-volume weight of the lesion: 1 inside, 0 outside, a one-voxel ramp across the border
        inside = np.clip((1.0 - rho) * radius / voxel_mm + 0.5, 0.0, 1.0)
        oedema = np.clip((OEDEMA_EXTENT - rho) / (OEDEMA_EXTENT - 1.0), 0.0, 1.0) * (1.0 - inside)
        texture = 1.0 + 0.06 * rng.standard_normal(rho.shape).astype(np.float32)
        value = np.full(rho.shape, lesion.contrast, dtype=np.float32) * texture
        if lesion.ring:
            core = np.clip((NECROTIC_CORE - rho) * radius / voxel_mm + 0.5, 0.0, 1.0)
            value = value * (1.0 - core) + 0.3 * core
        region = image[box]
        region *= 1.0 - 0.2 * oedema
        image[box] = region * (1.0 - inside) + value * inside
