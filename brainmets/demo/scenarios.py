"""Longitudinal scenarios: how each demo patient's metastases evolve, and the response that is intended.

Every longitudinal patient follows one scenario; patients cycle through `SCENARIOS` in order. Sizes
are designed with wide margins from every RANO-BM threshold (e.g. partial response shrinks the sum
of diameters to ~50 %, stable disease stays within +-3 %, progression grows it by >= 50 % with a
target growing by >= 7 mm), so that the intended category survives rasterisation on any grid.
Lesions are placed inside brain tissue with a clearance of `CLEARANCE_MM` at their largest size over
the whole follow-up, so none touch unless the scenario merges them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from brainmets.demo.head import Head
from brainmets.demo.lesions import Blob, Lesion, make_lesion
from brainmets.errors import BrainmetsError

#: smallest gap (mm) between two lesions at their largest, unless a scenario merges them
CLEARANCE_MM = 3.0
#: grid step (voxels) of the distance maps used for placement
_PLACEMENT_STEP = 2


@dataclass(frozen=True)
class Scenario:
    """A longitudinal course: size factors of ordinary lesions per timepoint and the intended responses."""

    name: str
    description: str
    #: size factor of ordinary lesions at timepoints 0, 1, 2, ... (the last value repeats)
    factors: tuple[float, ...]
    #: nominal diameter range (mm) of lesion 1, the leading target
    leading_diameter_mm: tuple[float, float]
    #: largest nominal diameter (mm) of the other lesions
    other_max_diameter_mm: float
    #: intended overall response at follow-up 1, 2, ... (the last value repeats), as the lesions behave
    #: and the clinical columns follow; the assessment leaves visits after the first PD empty
    #: (`expected_response`)
    intended: tuple[str, ...]

    def factor(self, timepoint: int) -> float:
        """Size factor of ordinary lesions at a timepoint index (0 = baseline)."""
        return self.factors[min(timepoint, len(self.factors) - 1)]

    def intended_response(self, timepoint: int) -> str:
        """Intended overall RANO-BM response at a timepoint index (0 = baseline, "BL")."""
        if timepoint == 0:
            return "BL"
        return self.intended[min(timepoint - 1, len(self.intended) - 1)]

    def expected_response(self, timepoint: int) -> str:
        """The intended response under the default `rano.after_progression: stop`: "" after the first PD."""
        earlier = [self.intended_response(t) for t in range(timepoint)]
        return "" if "PD" in earlier else self.intended_response(timepoint)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "partial-response",
        "every lesion shrinks to ~50 % of its diameter",
        (1.0, 0.5, 0.45, 0.42),
        (14, 24),
        20,
        ("PR",),
    ),
    Scenario(
        "progression-new-lesion",
        "lesions stable; a new >= 10 mm lesion appears at the first follow-up",
        (1.0, 1.02, 0.99, 1.0),
        (12, 24),
        20,
        ("PD", "SD"),
    ),
    Scenario(
        "split",
        "the leading lesion (two lobes joined by a bridge) splits into two fragments while every lesion shrinks",
        (1.0, 0.55, 0.5, 0.5),
        (13, 13),
        14,
        ("PR",),
    ),
    Scenario(
        "vanish-and-return",
        "the leading lesion disappears at the first follow-up and returns at the second; the others shrink by 20 %",
        (1.0, 0.8, 0.8, 0.8),
        (16, 22),
        7,
        ("PR", "PD"),
    ),
    Scenario(
        "merge",
        "two lesions 22 mm apart grow by 50 % and merge into one; the merged lesion keeps the lower id",
        (1.0, 1.5, 1.6, 1.7),
        (12, 12),
        7,
        ("PD",),
    ),
    Scenario(
        "complete-response", "every lesion disappears from the first follow-up on", (1.0, 0.0), (12, 24), 20, ("CR",)
    ),
    Scenario(
        "stable", "every lesion stays within +-3 % of its diameter", (1.0, 1.03, 0.98, 1.02), (12, 24), 20, ("SD",)
    ),
    Scenario(
        "progression-growth", "every lesion grows by 50-80 % in diameter", (1.0, 1.5, 1.7, 1.8), (14, 16), 10, ("PD",)
    ),
)


def scenario_for(index: int) -> Scenario:
    """The scenario of the `index`-th longitudinal patient (0-based); scenarios repeat cyclically."""
    return SCENARIOS[index % len(SCENARIOS)]


class Placer:
    """Draws lesion centres (mm) deep enough inside brain tissue and clear of lesions already placed."""

    def __init__(self, head: Head, rng: np.random.Generator) -> None:
        """Distance maps (mm) to the brain surface and to non-parenchyma, on a coarse grid of the head."""
        step = _PLACEMENT_STEP
        spacing = head.spacing_mm * step
        self._rng = rng
        self._brain_depth = ndimage.distance_transform_edt(head.brain[::step, ::step, ::step], sampling=spacing)
        self._tissue_depth = ndimage.distance_transform_edt(head.tissue[::step, ::step, ::step] > 0.5, sampling=spacing)
        self._to_mm = head.affine @ np.diag([step, step, step, 1.0])
        self._placed: list[tuple[np.ndarray, float]] = []

    def fits(self, centre_mm: np.ndarray, extent_mm: float, exempt: tuple[int, ...] = ()) -> bool:
        """Whether a lesion of this extent at this centre keeps the clearance from every placed lesion."""
        return all(
            np.linalg.norm(centre_mm - c) >= extent_mm + e + CLEARANCE_MM
            for i, (c, e) in enumerate(self._placed)
            if i not in exempt
        )

    def inside(self, centre_mm: np.ndarray, extent_mm: float) -> bool:
        """Whether a sphere of this extent at this centre lies inside the brain (with a 1.5 mm margin)."""
        inverse = np.linalg.inv(self._to_mm)
        index = np.round(inverse[:3, :3] @ centre_mm + inverse[:3, 3]).astype(int)
        if (index < 0).any() or (index >= self._brain_depth.shape).any():
            return False
        return bool(self._brain_depth[tuple(index)] >= extent_mm + 1.5)

    def draw(self, extent_mm: float, tries: int = 400) -> np.ndarray | None:
        """A random centre (mm) for a lesion of this extent, or None when none fits."""
        ok = (self._brain_depth >= extent_mm + 1.5) & (self._tissue_depth >= 0.5 * extent_mm)
        candidates = np.argwhere(ok)
        if len(candidates) == 0:
            return None
        for _ in range(tries):
            index = candidates[self._rng.integers(len(candidates))] + self._rng.uniform(-0.5, 0.5, size=3)
            centre = self._to_mm[:3, :3] @ index + self._to_mm[:3, 3]
            if self.fits(centre, extent_mm):
                return centre
        return None

    def add(self, centre_mm: np.ndarray, extent_mm: float) -> None:
        """Record a placed lesion."""
        self._placed.append((np.asarray(centre_mm, dtype=float), float(extent_mm)))


def _diameters(rng: np.random.Generator, n: int, low: float, high: float) -> np.ndarray:
    """`n` nominal diameters (mm), log-uniform in [low, high]."""
    if high <= low:
        return np.full(n, low)
    return np.exp(rng.uniform(np.log(low), np.log(high), size=n))


def _place(
    placer: Placer, rng: np.random.Generator, lesion_id: int, blobs: tuple[Blob, ...], factors: np.ndarray
) -> Lesion | None:
    """Create a lesion at a random valid centre, shrinking it up to three times if it does not fit."""
    for _ in range(4):
        candidate = make_lesion(rng, lesion_id, np.zeros(3), blobs, factors)
        centre = placer.draw(candidate.extent_mm())
        if centre is not None:
            placer.add(centre, candidate.extent_mm())
            return make_lesion(rng, lesion_id, centre, blobs, factors, ring=candidate.ring)
        blobs = tuple(Blob(b.offset_mm * 0.8, b.radius_mm * 0.8) for b in blobs)
    return None


def _axial_unit(rng: np.random.Generator) -> np.ndarray:
    """A random unit vector in the axial plane (so the axial longest diameter spans both ends)."""
    angle = rng.uniform(0, 2 * np.pi)
    return np.array([np.cos(angle), np.sin(angle), 0.0])


def design_lesions(
    scenario: Scenario | None,
    n_timepoints: int,
    head: Head,
    rng: np.random.Generator,
    min_diameter_mm: float = 3.0,
) -> list[Lesion]:
    """Lesions (ids 1..n) of one patient following a scenario; None = a single training scan, 3-24 mm lesions."""
    placer = Placer(head, rng)
    times = np.arange(n_timepoints)
    ordinary = np.array([scenario.factor(t) if scenario else 1.0 for t in range(n_timepoints)])
    name = scenario.name if scenario else "training"
    leading = scenario.leading_diameter_mm if scenario else (10.0, 24.0)
    other_max = scenario.other_max_diameter_mm if scenario else 24.0
    n_baseline = int(rng.integers(1, 9))
    if name in ("merge", "vanish-and-return"):
        n_baseline = max(n_baseline, 2)
    if name == "progression-new-lesion":
        n_baseline = min(n_baseline, 7)
    lesions: list[Lesion] = []

    d1 = max(float(rng.uniform(*leading)), min_diameter_mm)
    if name == "split":
        # two lobes 14 mm apart in the axial plane, joined by a bridge that exists at baseline only
        axis = _axial_unit(rng) * 7.0
        lobes = ordinary * 0.57 / 0.55
        lobes[0] = 1.0
        factors = np.stack([lobes, lobes, (times == 0).astype(float)])
        first = _place(placer, rng, 1, (Blob(axis, 6.5), Blob(-axis, 6.5), Blob(np.zeros(3), 5.0)), factors)
    elif name == "vanish-and-return":
        factors = np.array([[1.0, 0.0, 0.6, 0.65][min(t, 3)] for t in range(n_timepoints)])
        first = _place(placer, rng, 1, (Blob(np.zeros(3), d1 / 2),), factors)
    elif name == "merge":
        # lesion 1 gains a bridge towards lesion 2 (22 mm away in the axial plane) from the first follow-up on
        first = None
        for _ in range(50):
            direction = _axial_unit(rng)
            factors = np.stack([ordinary, (times > 0).astype(float)])
            probe = make_lesion(rng, 1, np.zeros(3), (Blob(np.zeros(3), d1 / 2), Blob(direction * 11.0, 6.0)), factors)
            centre = placer.draw(probe.extent_mm())
            if centre is None:
                continue
            partner = make_lesion(rng, 2, centre + direction * 22.0, (Blob(np.zeros(3), d1 / 2),), ordinary[None])
            if placer.inside(partner.centre_mm, partner.extent_mm()):
                first = make_lesion(rng, 1, centre, probe.blobs, factors, ring=probe.ring)
                placer.add(centre, probe.extent_mm())
                placer.add(partner.centre_mm, partner.extent_mm())
                lesions.append(partner)
                break
    else:
        first = _place(placer, rng, 1, (Blob(np.zeros(3), d1 / 2),), ordinary[None])
    if first is None:
        raise BrainmetsError(
            f"demo: the leading lesion of scenario {name} does not fit in this brain; try another seed"
        )
    lesions.insert(0, first)

    sizes = _diameters(rng, max(n_baseline - len(lesions), 0), min_diameter_mm, max(other_max, min_diameter_mm))
    for diameter in sizes:
        lesion = _place(placer, rng, 0, (Blob(np.zeros(3), diameter / 2),), ordinary[None])
        if lesion is not None:
            lesions.append(lesion)
    if name == "progression-new-lesion" and n_timepoints > 1:
        diameter = max(float(rng.uniform(10.0, 12.0)), min_diameter_mm)
        lesion = _place(placer, rng, 0, (Blob(np.zeros(3), diameter / 2),), (times >= 1).astype(float)[None])
        if lesion is None:
            raise BrainmetsError(
                "demo: the new lesion of scenario progression-new-lesion does not fit; try another seed"
            )
        lesions.append(lesion)
    return [_renumber(lesion, i + 1) for i, lesion in enumerate(lesions)]


def _renumber(lesion: Lesion, lesion_id: int) -> Lesion:
    """The same lesion with another id."""
    return replace(lesion, lesion_id=lesion_id)
