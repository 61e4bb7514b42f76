"""Persistent lesion ids across the timepoints of one patient (all masks on the patient-space grid).

At each follow-up the lesions (26-connected components) are matched against every lesion seen at
any earlier timepoint, each represented by its footprint and centroid when it was last seen:
1. optimal one-to-one assignment (Hungarian) maximising the number of voxels shared with the
   current lesion grown by `dilation_mm` (ties: the lesion seen more recently); a lesion that was
   absent at the previous timepoint and returns keeps its id (event "reappeared");
2. any remaining current lesion that overlaps an earlier one is a fragment of it (event "split" on
   every fragment, all with the parent id);
3. an earlier lesion left without a component that overlaps a current one has merged into it: the
   merged lesion carries the lowest id involved, the others get event "merged" and `merged_into`
   (and keep it while they stay inside their host);
4. a remaining current lesion takes the id of the nearest earlier lesion still without a component
   whose last centroid lies within `centroid_radius_mm` (small lesions that moved without overlap);
5. everything left is a new lesion with the next free id (in component order).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

from brainmets.components import label_lesions
from brainmets.errors import BrainmetsError
from brainmets.io import check_same_grid, load_mask, read_tsv, save_nifti, table_records, voxel_spacing_mm, write_tsv
from brainmets.rano.measure import MEASUREMENT_COLUMNS, measure_components
from brainmets.rano.rano import iso_dates
from brainmets.rano.settings import RanoSettings
from brainmets.track.settings import TrackSettings

#: columns of the tracked lesion table, in order (a `patient_id` column may precede them). Events:
#: baseline, present, new, reappeared, split, merged, resolved, and "none" on the placeholder row
#: (lesion_id 0) of a timepoint before any lesion was seen; `review` says what a reviewer's decision
#: changed in the row (empty without one: see brainmets.track.corrections)
TRACK_COLUMNS: list[str] = (
    ["timepoint", "lesion_id", "component", "event", "merged_into"]
    + [c for c in MEASUREMENT_COLUMNS if c != "component"]
    + ["review"]
)


@dataclass
class _Track:
    """What is known of one lesion id: where and when it was last seen."""

    footprint: np.ndarray  # sorted flat voxel indices when last seen
    centroid_mm: np.ndarray
    last_seen: int
    merged_into: int | None = None  # host id while the lesion stays merged


def _ball(radius_mm: float, spacing: np.ndarray) -> np.ndarray:
    """Boolean structuring element: voxel offsets within `radius_mm` in physical units."""
    reach = np.floor(radius_mm / spacing + 1e-9).astype(int)
    grids = np.meshgrid(*[np.arange(-r, r + 1) * s for r, s in zip(reach, spacing, strict=True)], indexing="ij")
    return sum(g**2 for g in grids) <= radius_mm**2 + 1e-9


def _footprints(components: np.ndarray, ball: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Sorted flat voxel indices of every component, as it is and grown by the structuring element."""
    reach = np.array(ball.shape) // 2
    voxels: list[np.ndarray] = []
    grown: list[np.ndarray] = []
    for label, box in enumerate(ndimage.find_objects(components), start=1):
        start = np.maximum([s.start for s in box] - reach, 0)
        stop = np.minimum([s.stop for s in box] + reach, components.shape)
        crop = tuple(slice(a, b) for a, b in zip(start, stop, strict=True))
        inside = components[crop] == label
        for target, region in ((voxels, inside), (grown, ndimage.binary_dilation(inside, structure=ball))):
            # argwhere lists the crop in C order, which is also the order of the full volume's flat index
            target.append(np.ravel_multi_index(tuple((np.argwhere(region) + start).T), components.shape))
    return voxels, grown


def _overlaps(grown: list[np.ndarray], tracks: dict[int, _Track], ids: list[int]) -> np.ndarray:
    """Voxels shared by each grown current component (rows) and each earlier lesion footprint (columns)."""
    matrix = np.zeros((len(grown), len(ids)), dtype=np.int64)
    for row, footprint in enumerate(grown):
        for column, lesion_id in enumerate(ids):
            earlier = tracks[lesion_id].footprint
            if len(earlier) and len(footprint) and footprint[0] <= earlier[-1] and earlier[0] <= footprint[-1]:
                matrix[row, column] = len(np.intersect1d(footprint, earlier, assume_unique=True))
    return matrix


def _assign(score: np.ndarray, rows: list[int], columns: list[int], maximise: bool) -> list[tuple[int, int]]:
    """Optimal one-to-one (row, column) pairs of a score sub-matrix; pairs scoring 0 / inf are dropped."""
    if not rows or not columns:
        return []
    sub = score[np.ix_(rows, columns)]
    feasible = sub > 0 if maximise else np.isfinite(sub)
    cost = np.where(feasible, -sub if maximise else sub, 1e12)
    pairs = zip(*linear_sum_assignment(cost), strict=True)
    return [(rows[r], columns[c]) for r, c in pairs if feasible[r, c]]


def _match(
    grown: list[np.ndarray], centroids: np.ndarray, tracks: dict[int, _Track], t: int, settings: TrackSettings
) -> tuple[list[int], dict[int, int]]:
    """Lesion id of every current component (0 = new) and the ids that merged at t (id -> host id)."""
    ids = sorted(tracks)
    overlap = _overlaps(grown, tracks, ids)
    owner = [0] * len(grown)
    # maximise shared voxels; between equal overlaps prefer the lesion seen more recently
    recency = np.array([tracks[i].last_seen for i in ids], dtype=float) / (t + 1)
    score = np.where(overlap > 0, overlap + recency[None, :], 0.0)
    for r, c in _assign(score, list(range(len(grown))), list(range(len(ids))), maximise=True):
        owner[r] = ids[c]
    for r in range(len(grown)):
        if not owner[r] and overlap[r].max(initial=0) > 0:
            owner[r] = ids[int(np.argmax(score[r]))]

    # merges: lesions that were present (or already merged) at t-1, have no component now, overlap one
    merged: dict[int, int] = {}
    matched = set(owner)
    for c, lesion_id in enumerate(ids):
        track = tracks[lesion_id]
        if lesion_id in matched or not overlap[:, c].any():
            continue
        if track.last_seen == t - 1 or track.merged_into is not None:
            merged[lesion_id] = int(np.argmax(overlap[:, c]))  # host component for now
    for r in range(len(grown)):
        newly = [i for i, host in merged.items() if host == r and tracks[i].last_seen == t - 1]
        if owner[r] and newly and min(newly) < owner[r] and owner.count(owner[r]) == 1:
            merged[owner[r]] = r
            del merged[min(newly)]
            owner[r] = min(newly)
    merged = {i: owner[r] for i, r in merged.items() if owner[r]}

    # centroid fallback for lesions that moved without overlapping
    free = [r for r in range(len(grown)) if not owner[r]]
    unused = [c for c, i in enumerate(ids) if i not in owner and i not in merged]
    if settings.centroid_radius_mm > 0 and free and unused:
        earlier_centroids = np.array([tracks[i].centroid_mm for i in ids])
        distance = np.linalg.norm(centroids[:, None, :] - earlier_centroids[None, :, :], axis=2)
        distance[distance > settings.centroid_radius_mm] = np.inf
        for r, c in _assign(distance, free, unused, maximise=False):
            owner[r] = ids[c]
    return owner, merged


def _event(lesion_id: int, track: _Track | None, t: int, n_fragments: int) -> str:
    """Event of a lesion with components at timepoint t, given its history before t."""
    if t == 0:
        return "baseline"
    if track is None:
        return "new"
    if track.last_seen < t - 1:
        return "reappeared"
    return "split" if n_fragments > 1 else "present"


def absent_row(lesion_id: int, event: str, host: int | None) -> dict[str, Any]:
    """The lesion-table row (component 0, zero measurements) of a lesion not seen at a timepoint."""
    row: dict[str, Any] = {c: 0.0 for c in MEASUREMENT_COLUMNS}
    row.update(
        lesion_id=lesion_id,
        component=0,
        event=event,
        merged_into=host,
        n_axial_slices=0,
        ld_slice=-1,
        measurable=False,
        centroid_x_mm=np.nan,
        centroid_y_mm=np.nan,
        centroid_z_mm=np.nan,
    )
    return row


def track_lesions(
    masks: Sequence[np.ndarray],
    affine: np.ndarray,
    timepoints: Sequence[str],
    settings: TrackSettings | None = None,
    rano_settings: RanoSettings | None = None,
) -> tuple[pd.DataFrame, list[np.ndarray]]:
    """Track lesions over time-ordered binary masks on one grid: (lesion table, label maps of lesion ids).

    The table has one row per (timepoint, lesion_id, component) with the columns of `TRACK_COLUMNS`;
    every lesion seen before a timepoint where it is absent has a component-0 row ("resolved" or
    "merged"); a timepoint without any lesion so far has one placeholder row (lesion_id 0, "none").
    """
    settings = settings or TrackSettings()
    ball = _ball(settings.dilation_mm, voxel_spacing_mm(affine))
    tracks: dict[int, _Track] = {}
    rows: list[dict[str, Any]] = []
    label_maps: list[np.ndarray] = []
    for t, (mask, timepoint) in enumerate(zip(masks, timepoints, strict=True)):
        components, n = label_lesions(mask)
        measured = measure_components(components, affine, rano_settings)
        centroids = measured[["centroid_x_mm", "centroid_y_mm", "centroid_z_mm"]].to_numpy(dtype=float)
        voxels, grown = _footprints(components, ball)
        merged: dict[int, int]
        if t == 0:
            owner, merged = list(range(1, n + 1)), {}
        else:
            owner, merged = _match(grown, centroids, tracks, t, settings)
        next_id = max(tracks, default=0) + 1
        for r in range(n):
            if not owner[r]:
                owner[r], next_id = next_id, next_id + 1
        fragments: dict[int, list[int]] = {}
        for r, lesion_id in enumerate(owner):
            fragments.setdefault(lesion_id, []).append(r)

        records = table_records(measured)
        for lesion_id in sorted(set(tracks) | set(fragments)):
            track = tracks.get(lesion_id)
            if lesion_id in fragments:
                event = _event(lesion_id, track, t, len(fragments[lesion_id]))
                rows.extend(
                    {**records[r], "lesion_id": lesion_id, "event": event, "merged_into": None, "timepoint": timepoint}
                    for r in fragments[lesion_id]
                )
            else:
                host = merged.get(lesion_id)
                rows.append({**absent_row(lesion_id, "merged" if host else "resolved", host), "timepoint": timepoint})
        if not tracks and not fragments:
            rows.append({**absent_row(0, "none", None), "timepoint": timepoint})

        lookup = np.zeros(n + 1, dtype=np.int32)
        lookup[1:] = owner
        label_map = lookup[components]
        label_maps.append(label_map)
        volumes = measured["volume_ml"].to_numpy()
        for lesion_id, members in fragments.items():
            footprint = np.sort(np.concatenate([voxels[r] for r in members]))
            weights = volumes[members] / volumes[members].sum()
            tracks[lesion_id] = _Track(footprint, weights @ centroids[members], t)
        for lesion_id, track in tracks.items():
            if lesion_id not in fragments:
                track.merged_into = merged.get(lesion_id)

    table = pd.DataFrame(rows, columns=TRACK_COLUMNS)
    table["review"] = ""
    table["merged_into"] = table["merged_into"].astype("Int64")
    table = table.astype(
        {"lesion_id": int, "component": int, "n_axial_slices": int, "ld_slice": int, "measurable": bool}
    )
    return table, label_maps


def read_manifest(path: str | os.PathLike[str]) -> pd.DataFrame:
    """The manifest's (timepoint, mask path) rows, sorted by date, mask paths resolved against its folder."""
    manifest_path = Path(path)
    manifest = read_tsv(manifest_path, required=["timepoint", "mask"])
    if manifest.empty:
        raise BrainmetsError(f"{manifest_path}: no timepoints; list one row per scan (timepoint, mask)")
    dates = iso_dates(manifest["timepoint"], str(manifest_path))
    duplicated = dates.duplicated()
    if duplicated.any():
        row = int(np.flatnonzero(duplicated.to_numpy())[0])
        raise BrainmetsError(
            f"{manifest_path}: row {row + 2}: timepoint {manifest['timepoint'].iloc[row]} appears twice"
        )
    masks = [Path(str(m)) for m in manifest["mask"]]
    masks = [m if m.is_absolute() else manifest_path.parent / m for m in masks]
    table = pd.DataFrame({"timepoint": dates.dt.strftime("%Y-%m-%d"), "mask": masks, "date": dates})
    return table.sort_values("date", kind="stable").drop(columns="date").reset_index(drop=True)


def load_masks_on_one_grid(paths: Sequence[Path]) -> tuple[list[np.ndarray], np.ndarray]:
    """Load binary masks that must share one grid (shape and affine); returns (masks, affine)."""
    masks: list[np.ndarray] = []
    images: list[nib.Nifti1Image] = []
    for path in paths:
        mask, img = load_mask(path)
        if images:
            check_same_grid(
                images[0], img, paths[0], path, "register and resample every timepoint into the patient space first"
            )
        masks.append(mask)
        images.append(img)
    return masks, np.asarray(images[0].affine, dtype=float) if images else np.eye(4)


def track_manifest(
    manifest: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    settings: TrackSettings | None = None,
    rano_settings: RanoSettings | None = None,
    patient_id: str | None = None,
    review: str | os.PathLike[str] | None = None,
) -> pd.DataFrame:
    """Track the masks a manifest lists; writes OUT/lesions.tsv and OUT/tracked/<timepoint>.nii.gz.

    `review`: a reviewer's review.tsv, applied to the tracked lesions (brainmets.track.corrections).
    """
    rows = read_manifest(manifest)
    masks, affine = load_masks_on_one_grid(list(rows["mask"]))
    table, label_maps = track_lesions(masks, affine, list(rows["timepoint"]), settings, rano_settings)
    if review is not None:
        from brainmets.track.corrections import apply_review, read_review

        table, label_maps = apply_review(table, label_maps, list(rows["timepoint"]), read_review(review, table))
    if patient_id is not None:
        table.insert(0, "patient_id", patient_id)
    out = Path(out_dir)
    largest = max((int(m.max()) for m in label_maps), default=0)
    dtype = np.uint8 if largest < 2**8 else np.int16 if largest < 2**15 else np.int32
    for timepoint, label_map in zip(rows["timepoint"], label_maps, strict=True):
        save_nifti(label_map.astype(dtype), affine, out / "tracked" / f"{timepoint}.nii.gz")
    write_tsv(table, out / "lesions.tsv")
    return table
