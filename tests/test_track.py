"""Lesion tracking: persistent ids, reappearance, new lesions, splits, merges, centroid fallback, files."""

from __future__ import annotations

import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from brainmets.cli import main
from brainmets.errors import BrainmetsError
from brainmets.io import read_tsv, save_nifti
from brainmets.track.settings import TrackSettings, settings_from_config
from brainmets.track.track import TRACK_COLUMNS, track_lesions

SHAPE = (48, 48, 24)
DATES = ["2024-01-01", "2024-02-15", "2024-04-01", "2024-06-01", "2024-08-01"]


def ball(centre: tuple[float, float, float], radius: float, shape: tuple[int, int, int] = SHAPE) -> np.ndarray:
    """Voxels within `radius` voxels of `centre`."""
    grid = np.indices(shape)
    return ((grid - np.array(centre)[:, None, None, None]) ** 2).sum(axis=0) <= radius**2


def track(masks: list[np.ndarray], **settings: float) -> tuple[pd.DataFrame, list[np.ndarray]]:
    return track_lesions(masks, np.eye(4), DATES[: len(masks)], TrackSettings(**settings))


def at(table: pd.DataFrame, t: int) -> pd.DataFrame:
    """Rows of visit t, as (lesion_id, component, event, merged_into) tuples."""
    rows = table[table["timepoint"] == DATES[t]]
    merged = [None if pd.isna(m) else int(m) for m in rows["merged_into"]]
    return list(zip(rows["lesion_id"], rows["component"], rows["event"], merged, strict=True))


def test_ids_persist_when_lesions_shrink_and_components_are_renumbered():
    # ids follow the baseline's scan order: (8, 10) is 1, (30, 30) is 2, (30, 8) is 3
    baseline = ball((8, 10, 10), 4) | ball((30, 30, 10), 5) | ball((30, 8, 16), 3)
    follow_up = ball((30, 30, 10), 3) | ball((31, 8, 16), 3)
    table, maps = track([baseline, follow_up])
    assert at(table, 0) == [(1, 1, "baseline", None), (2, 2, "baseline", None), (3, 3, "baseline", None)]
    # lesion 1 is gone: the follow-up's components 1 and 2 are lesions 2 and 3
    assert at(table, 1) == [(1, 0, "resolved", None), (2, 1, "present", None), (3, 2, "present", None)]
    assert set(np.unique(maps[1])) == {0, 2, 3}
    assert maps[1][30, 30, 10] == 2 and maps[1][31, 8, 16] == 3
    assert list(table.columns) == TRACK_COLUMNS


def test_vanished_lesion_keeps_its_id_when_it_returns_visits_later():
    a, b = ball((10, 10, 10), 4), ball((34, 34, 12), 4)
    table, maps = track([a | b, a, a, a | b])
    assert at(table, 1)[1] == (2, 0, "resolved", None)
    assert at(table, 2)[1] == (2, 0, "resolved", None)
    assert at(table, 3)[1] == (2, 2, "reappeared", None)
    assert maps[3][34, 34, 12] == 2


def test_new_lesion_gets_the_next_free_id_and_resolved_rows_have_zero_measurements():
    a = ball((10, 10, 10), 4)
    table, maps = track([a | ball((30, 30, 10), 3), a | ball((36, 8, 16), 3)])
    assert at(table, 1) == [(1, 1, "present", None), (2, 0, "resolved", None), (3, 2, "new", None)]
    resolved = table[(table["timepoint"] == DATES[1]) & (table["lesion_id"] == 2)].iloc[0]
    assert resolved["longest_diameter_mm"] == 0 and resolved["volume_ml"] == 0 and not resolved["measurable"]
    assert maps[1][36, 8, 16] == 3


def test_split_lesion_keeps_the_parent_id_on_every_fragment():
    dumbbell = ball((14, 20, 10), 4) | ball((26, 20, 10), 4)
    dumbbell[14:27, 19:22, 9:12] = True  # bridge
    other = ball((36, 40, 16), 3)
    table, maps = track([dumbbell | other, ball((14, 20, 10), 3) | ball((26, 20, 10), 3) | other])
    assert at(table, 1) == [(1, 1, "split", None), (1, 2, "split", None), (2, 3, "present", None)]
    assert maps[1][14, 20, 10] == maps[1][26, 20, 10] == 1


def test_merged_lesions_keep_the_lowest_id_even_when_the_higher_overlaps_more():
    small, large = ball((12, 20, 10), 3), ball((26, 20, 10), 6)
    merged = ball((12, 20, 10), 3) | ball((26, 20, 10), 7)
    merged[12:27, 19:22, 9:12] = True
    table, maps = track([small | large, merged, merged])
    assert at(table, 0) == [(1, 1, "baseline", None), (2, 2, "baseline", None)]
    assert at(table, 1) == [(1, 1, "present", None), (2, 0, "merged", 1)]
    assert at(table, 2) == [(1, 1, "present", None), (2, 0, "merged", 1)]
    assert set(np.unique(maps[1])) == {0, 1}


def test_merged_lesion_that_separates_again_gets_its_id_back():
    a, b = ball((12, 20, 10), 4), ball((28, 20, 10), 4)
    joined = a | b
    joined[12:29, 19:22, 9:12] = True
    table, _ = track([a | b, joined, a | b])
    assert at(table, 1) == [(1, 1, "present", None), (2, 0, "merged", 1)]
    assert at(table, 2) == [(1, 1, "present", None), (2, 2, "reappeared", None)]


def test_dilation_matches_a_lesion_shifted_without_overlap():
    # a 3-voxel-wide slab moved by 3 voxels shares no voxel with its earlier self: matched after 1.5 mm
    # dilation, which reaches the next voxel (1 mm away), not after 0.5 mm
    first = np.zeros(SHAPE, dtype=bool)
    first[10:13, 10:30, 5:15] = True
    second = np.zeros(SHAPE, dtype=bool)
    second[13:16, 10:30, 5:15] = True
    table, _ = track([first, second], centroid_radius_mm=0)
    assert at(table, 1) == [(1, 1, "present", None)]
    table, _ = track([first, second], dilation_mm=0.5, centroid_radius_mm=0)
    assert at(table, 1) == [(1, 0, "resolved", None), (2, 1, "new", None)]


def test_small_lesion_that_moved_is_matched_by_its_centroid_within_the_radius():
    anchor = ball((36, 36, 12), 4)
    first, second = anchor | ball((10, 10, 10), 1.5), anchor | ball((10, 16, 10), 1.5)  # moved 6 mm
    table, _ = track([first, second])
    assert at(table, 1) == [(1, 1, "present", None), (2, 2, "present", None)]
    table, _ = track([first, second], centroid_radius_mm=5.0)
    assert at(table, 1) == [(1, 0, "resolved", None), (2, 2, "present", None), (3, 1, "new", None)]


def test_assignment_is_optimal_not_greedy():
    # two lesions side by side drift right; the current left component overlaps both earlier ones
    first = ball((14, 20, 10), 4) | ball((24, 20, 10), 4)
    second = ball((18, 20, 10), 4) | ball((28, 20, 10), 4)
    table, maps = track([first, second])
    assert at(table, 1) == [(1, 1, "present", None), (2, 2, "present", None)]
    assert maps[1][28, 20, 10] == 2


def test_each_lesion_takes_the_id_it_shares_most_voxels_with_when_both_overlap_both():
    # the follow-up's lower slab covers lesion 1 and a rim of lesion 2, its upper slab the reverse:
    # 605 + 484 shared voxels one way, 110 + 88 the other, before tracking grows them (the slabs do not touch)
    a, b = np.zeros(SHAPE, bool), np.zeros(SHAPE, bool)
    a[2:13, 2:13, 2:13] = True
    b[16:27, 2:13, 2:13] = True
    lower, upper = np.zeros(SHAPE, bool), np.zeros(SHAPE, bool)
    lower[2:18, 2:13, 2:7] = True
    upper[11:27, 2:13, 9:13] = True
    table, maps = track([a | b, lower | upper])
    assert at(table, 1) == [(1, 1, "present", None), (2, 2, "present", None)]
    assert maps[1][5, 5, 4] == 1 and maps[1][20, 5, 10] == 2


def test_empty_masks_are_valid():
    empty = np.zeros(SHAPE, dtype=bool)
    a = ball((10, 10, 10), 4)
    table, maps = track([empty, a, empty])
    assert at(table, 0) == [(0, 0, "none", None)]
    assert at(table, 1) == [(1, 1, "new", None)]
    assert at(table, 2) == [(1, 0, "resolved", None)]
    assert not maps[2].any()


def test_settings_reject_unknown_and_negative_values():
    assert settings_from_config({"track": {"dilation_mm": 2}}).dilation_mm == 2.0
    with pytest.raises(BrainmetsError, match="unknown key 'radius_mm' in section 'track'"):
        settings_from_config({"track": {"radius_mm": 3}})
    with pytest.raises(BrainmetsError, match=r"track.dilation_mm: -1 is less than the minimum of 0"):
        settings_from_config({"track": {"dilation_mm": -1}})


# --- the command ---------------------------------------------------------------------------------------


def write_masks(folder, masks, affine=None, names=None):
    """Save masks as NIfTI in folder; returns the file names."""
    names = names or [f"mask{t}.nii.gz" for t in range(len(masks))]
    for mask, name in zip(masks, names, strict=True):
        save_nifti(mask.astype(np.uint8), np.diag([1.0, 1.0, 2.0, 1.0]) if affine is None else affine, folder / name)
    return names


def write_manifest(folder, dates, masks):
    pd.DataFrame({"timepoint": dates, "mask": masks}).to_csv(folder / "manifest.tsv", sep="\t", index=False)
    return folder / "manifest.tsv"


def test_track_command_writes_the_table_and_tracked_label_maps(tmp_path):
    (tmp_path / "masks").mkdir()
    a, b = ball((10, 10, 10), 4), ball((34, 34, 12), 4)
    names = write_masks(tmp_path / "masks", [a | b, a, a | b])
    # rows out of date order, relative paths
    manifest = write_manifest(
        tmp_path, [DATES[2], DATES[0], DATES[1]], [f"masks/{names[2]}", f"masks/{names[0]}", f"masks/{names[1]}"]
    )
    out = tmp_path / "P1"
    assert main(["track", str(manifest), "--out", str(out), "--patient", "P1"]) == 0
    table = read_tsv(out / "lesions.tsv")
    assert list(table.columns) == ["patient_id", *TRACK_COLUMNS]
    assert table["timepoint"].unique().tolist() == DATES[:3]
    assert table[table["lesion_id"] == 2]["event"].tolist() == ["baseline", "resolved", "reappeared"]
    # volumes in mL on the 1 x 1 x 2 mm grid
    assert table.loc[0, "volume_ml"] == pytest.approx(a.sum() * 2 / 1000)
    tracked = nib.load(out / "tracked" / f"{DATES[2]}.nii.gz")
    assert np.allclose(tracked.affine, np.diag([1.0, 1.0, 2.0, 1.0]))
    data = np.asarray(tracked.dataobj)
    assert data[34, 34, 12] == 2 and data[10, 10, 10] == 1
    assert sorted(p.name for p in (out / "tracked").iterdir()) == [f"{d}.nii.gz" for d in DATES[:3]]


@pytest.mark.parametrize(
    ("problem", "message"),
    [
        ("grid", "grid .* differs from that of .*mask0.nii.gz.*register and resample"),
        ("values", "mask1.nii.gz: not a binary mask"),
        ("missing", "mask1.nii.gz: file not found"),
        ("date", r"manifest.tsv: row 3, column timepoint: '2024-02-30' is not an ISO date"),
    ],
)
def test_track_command_refuses_bad_input_in_one_line(tmp_path, capsys, problem, message):
    a = ball((10, 10, 10), 4)
    names = write_masks(tmp_path, [a])
    dates = DATES[:2]
    if problem == "grid":
        save_nifti(a[:, :, :20].astype(np.uint8), np.diag([1.0, 1.0, 2.0, 1.0]), tmp_path / "mask1.nii.gz")
    elif problem == "values":
        data = a.astype(np.float32) * 2
        nib.save(nib.Nifti1Image(data, np.diag([1.0, 1.0, 2.0, 1.0])), tmp_path / "mask1.nii.gz")
    elif problem == "date":
        write_masks(tmp_path, [a], names=["mask1.nii.gz"])
        dates = [DATES[0], "2024-02-30"]
    manifest = write_manifest(tmp_path, dates, [names[0], "mask1.nii.gz"])
    assert main(["track", str(manifest), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert re.search(message, error), error
    assert not (tmp_path / "out" / "lesions.tsv").exists()


def test_track_command_reads_the_track_section_of_the_config(tmp_path):
    first = np.zeros(SHAPE, dtype=bool)
    first[10:13, 10:30, 5:15] = True
    second = np.zeros(SHAPE, dtype=bool)
    second[13:16, 10:30, 5:15] = True  # adjacent, no shared voxel: matched only with dilation >= 1 mm
    names = write_masks(tmp_path, [first, second])
    manifest = write_manifest(tmp_path, DATES[:2], names)
    (tmp_path / "config.yaml").write_text("track:\n  dilation_mm: 0.5\n  centroid_radius_mm: 0\n")
    assert (
        main(["track", str(manifest), "--out", str(tmp_path / "out"), "--config", str(tmp_path / "config.yaml")]) == 0
    )
    assert read_tsv(tmp_path / "out" / "lesions.tsv")["event"].tolist() == ["baseline", "resolved", "new"]


def test_config_yaml_names_every_track_setting():
    import yaml

    config = yaml.safe_load((Path(__file__).parents[1] / "config" / "config.yaml").read_text())
    assert set(config["track"]) == {"dilation_mm", "centroid_radius_mm"}
    assert settings_from_config(config) == TrackSettings(dilation_mm=1.5, centroid_radius_mm=10.0)
