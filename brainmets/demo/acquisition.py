"""Simulated acquisition: head pose, scanner protocol, oblique grid, bias field and Rician noise.

A scan sees the patient's head (defined in the patient's common frame, mm) moved by a random rigid
pose (rotation <= 10 deg about the head centre, shift <= 15 mm) into scanner coordinates, sampled on
the grid of a realistic protocol (1 mm isotropic 3-D, 0.9 x 0.9 x 1.5 mm 3-D, 0.5 x 0.5 x 3 mm 2-D axial)
in one of several storage orientations and tilted obliquely by 3-12 deg. The field of view covers
the posed head with a margin. Intensities get a smooth multiplicative bias field, Rician noise and a
scanner gain, and are stored as int16.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from brainmets.demo.lesions import random_rotation
from brainmets.io import int_triple

#: largest head rotation (deg) and shift (mm) between the common frame and a scan
MAX_ROTATION_DEG = 10.0
MAX_SHIFT_MM = 15.0
#: range of the oblique tilt (deg) of the slice frame
OBLIQUE_DEG = (3.0, 12.0)
#: margin (mm) of the field of view around the head
FOV_MARGIN_MM = 6.0


@dataclass(frozen=True)
class Protocol:
    """A scanner protocol: voxel spacing (mm) and the storage orientations it is written in."""

    name: str
    spacing_mm: tuple[float, float, float]
    orientations: tuple[str, ...]


PROTOCOLS: tuple[Protocol, ...] = (
    Protocol("3d-1mm", (1.0, 1.0, 1.0), ("RAS", "LAS", "PIR")),
    Protocol("3d-0.9x0.9x1.5mm", (0.9, 0.9, 1.5), ("LPS", "RAS")),
    Protocol("2d-0.5x0.5x3mm", (0.5, 0.5, 3.0), ("LPS", "LAS")),
)

_DIRECTIONS = {"R": (1, 0, 0), "L": (-1, 0, 0), "A": (0, 1, 0), "P": (0, -1, 0), "S": (0, 0, 1), "I": (0, 0, -1)}


@dataclass(frozen=True)
class Scan:
    """One acquisition: the common-frame -> scanner pose (4x4), the voxel -> scanner affine and grid shape."""

    protocol: str
    orientation: str
    pose: np.ndarray
    affine: np.ndarray
    shape: tuple[int, int, int]
    rotation_deg: float
    shift_mm: float

    @property
    def spacing_mm(self) -> np.ndarray:
        """Voxel edge lengths (mm) along the scan's array axes."""
        return np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0))

    @property
    def voxel_to_common(self) -> np.ndarray:
        """4x4 map from this scan's voxel indices to the patient's common frame (mm)."""
        return np.linalg.inv(self.pose) @ self.affine


def orientation_matrix(code: str) -> np.ndarray:
    """3x3 matrix whose columns are the RAS world directions of array axes named by a code such as 'LPS'."""
    return np.array([_DIRECTIONS[c] for c in code], dtype=float).T


def random_pose(rng: np.random.Generator, centre_mm: np.ndarray) -> tuple[np.ndarray, float, float]:
    """A rigid 4x4 map (mm -> mm) rotating about `centre_mm` and shifting; returns (pose, angle deg, shift mm)."""
    rotation = random_rotation(rng, MAX_ROTATION_DEG)
    angle = float(np.rad2deg(np.arccos(np.clip((np.trace(rotation) - 1) / 2, -1, 1))))
    direction = rng.normal(size=3)
    shift = direction / np.linalg.norm(direction) * rng.uniform(0, MAX_SHIFT_MM)
    pose = np.eye(4)
    pose[:3, :3] = rotation
    pose[:3, 3] = centre_mm - rotation @ centre_mm + shift
    return pose, angle, float(np.linalg.norm(shift))


def plan_scan(
    rng: np.random.Generator, head_corners_mm: np.ndarray, spacing_scale: float = 1.0, protocol: Protocol | None = None
) -> Scan:
    """A random pose, protocol, orientation and oblique grid whose field of view covers the posed head."""
    protocol = protocol or PROTOCOLS[int(rng.integers(len(PROTOCOLS)))]
    orientation = protocol.orientations[int(rng.integers(len(protocol.orientations)))]
    centre = head_corners_mm.mean(axis=0)
    pose, angle, shift = random_pose(rng, centre)
    posed = head_corners_mm @ pose[:3, :3].T + pose[:3, 3]
    spacing = np.asarray(protocol.spacing_mm) * spacing_scale
    directions = random_rotation(rng, OBLIQUE_DEG[1], OBLIQUE_DEG[0]) @ orientation_matrix(orientation)
    # extent of the posed head along the grid's axes
    along = posed @ directions
    low = along.min(axis=0) - FOV_MARGIN_MM
    high = along.max(axis=0) + FOV_MARGIN_MM
    shape = int_triple(np.ceil((high - low) / spacing) + 1)
    affine = np.eye(4)
    affine[:3, :3] = directions * spacing
    affine[:3, 3] = directions @ (low + rng.uniform(0, 1, size=3) * spacing)
    return Scan(protocol.name, orientation, pose, affine, shape, angle, shift)


def resample_to_scan(volume: np.ndarray, volume_affine: np.ndarray, scan: Scan, order: int) -> np.ndarray:
    """Sample a common-frame volume (with its voxel -> mm affine) on a scan's grid (spline `order`)."""
    to_volume = np.linalg.inv(volume_affine) @ scan.voxel_to_common
    return ndimage.affine_transform(
        volume, to_volume[:3, :3], to_volume[:3, 3], output_shape=scan.shape, order=order, mode="constant", cval=0.0
    )


def bias_field(rng: np.random.Generator, shape: tuple[int, ...], strength: float = 0.2) -> np.ndarray:
    """A smooth multiplicative field (float32, mean ~1, about +-`strength`) over a grid: low-order polynomial."""
    axes = [np.linspace(-1.0, 1.0, n, dtype=np.float32) for n in shape]
    x, y, z = axes[0][:, None, None], axes[1][None, :, None], axes[2][None, None, :]
    c = rng.uniform(-1, 1, size=7).astype(np.float32)
    log_field = c[0] * x + c[1] * y + c[2] * z + c[3] * x * y + c[4] * y * z + c[5] * x * x + c[6] * z * z
    log_field *= strength / 2.0
    return np.exp(log_field).astype(np.float32)


def rician(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Magnitude of an image with complex Gaussian noise of standard deviation `sigma` (Rician noise)."""
    real = image + sigma * rng.standard_normal(image.shape, dtype=np.float32)
    imaginary = sigma * rng.standard_normal(image.shape, dtype=np.float32)
    return np.hypot(real, imaginary)


def acquire(image: np.ndarray, image_affine: np.ndarray, scan: Scan, rng: np.random.Generator) -> np.ndarray:
    """The int16 T1-CE scan of a common-frame image (white matter ~1): resampling, bias, noise and gain."""
    sampled = resample_to_scan(image, image_affine, scan, order=1).astype(np.float32)
    sampled *= bias_field(rng, scan.shape)
    noisy = rician(sampled, float(rng.uniform(0.02, 0.045)), rng)
    gain = float(rng.uniform(400.0, 1200.0))
    return np.clip(np.rint(noisy * gain), 0, np.iinfo(np.int16).max).astype(np.int16)
