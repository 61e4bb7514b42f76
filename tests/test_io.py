"""Shared file helpers: text columns of tables, masks, grid checks, voxel volumes, YAML and JSON."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from brainmets.cli import main
from brainmets.components import label_lesions, largest_component
from brainmets.errors import BrainmetsError
from brainmets.io import (
    atomic_path,
    check_same_grid,
    float_triple,
    int_triple,
    load_mask,
    load_nifti,
    read_json,
    read_nifti_header,
    read_tsv,
    read_yaml,
    save_nifti,
    table_records,
    voxel_volume_ml,
    write_json,
    write_tsv,
)

from conftest import BAD_HEADERS


def test_text_columns_keep_ids_as_written(tmp_path: Path) -> None:
    path = tmp_path / "t.tsv"
    path.write_text("patient_id\tsize\n007\t1.5\nNA\t2\n")
    kept = read_tsv(path, ["patient_id"], text_columns=["patient_id"])
    assert kept["patient_id"].tolist() == ["007", "NA"]
    assert kept["size"].tolist() == [1.5, 2.0]
    assert read_tsv(path)["patient_id"].iloc[0] == 7


def test_load_mask_binary_or_labels(tmp_path: Path) -> None:
    labels = np.zeros((8, 8, 8), np.uint8)
    labels[1:3, 1:3, 1:3] = 1
    labels[5:7, 5:7, 5:7] = 2
    save_nifti(labels, np.eye(4), tmp_path / "labels.nii.gz")
    mask, img = load_mask(tmp_path / "labels.nii.gz", labels=True)
    assert mask.sum() == 16 and img.shape == (8, 8, 8)
    with pytest.raises(BrainmetsError, match=r"labels.nii.gz: not a binary mask .*2 besides 0 and 1"):
        load_mask(tmp_path / "labels.nii.gz")
    nib.save(nib.Nifti1Image(labels * np.float32(0.3), np.eye(4)), tmp_path / "prob.nii.gz")
    with pytest.raises(BrainmetsError, match=r"prob.nii.gz: a mask must hold 0 .*found 0.3"):
        load_mask(tmp_path / "prob.nii.gz", labels=True)


def test_check_same_grid_names_both_files(tmp_path: Path) -> None:
    reference = nib.Nifti1Image(np.zeros((10, 10, 10), np.uint8), np.eye(4))
    check_same_grid(reference, nib.Nifti1Image(np.zeros((10, 10, 10), np.uint8), np.eye(4)), "a.nii", "b.nii", "fix")
    with pytest.raises(
        BrainmetsError,
        match=r"b.nii: grid \(10, 10, 9\) does not match: its shape differs from that "
        r"of a.nii \(10, 10, 10\); resample",
    ):
        check_same_grid(
            reference, nib.Nifti1Image(np.zeros((10, 10, 9), np.uint8), np.eye(4)), "a.nii", "b.nii", "resample"
        )
    shifted = np.eye(4)
    shifted[0, 3] = 0.005
    moved = nib.Nifti1Image(np.zeros((10, 10, 10), np.uint8), shifted)
    with pytest.raises(BrainmetsError, match=r"b.nii: .*affine differs from that of a.nii \(voxels up to 0.005 mm"):
        check_same_grid(reference, moved, "a.nii", "b.nii", "fix")
    check_same_grid(reference, moved, "a.nii", "b.nii", "fix", tolerance_mm=0.01)
    with pytest.raises(BrainmetsError, match=r"more than the 0.001 mm allowed"):
        check_same_grid(reference, moved, "a.nii", "b.nii", "fix", tolerance_mm=0.001)


def test_voxel_volume_from_affine_or_spacing() -> None:
    assert voxel_volume_ml([1.0, 2.0, 3.0]) == pytest.approx(0.006)
    assert voxel_volume_ml(np.diag([1.0, 2.0, 3.0, 1.0])) == pytest.approx(0.006)
    sheared = np.eye(4)
    sheared[0, 1] = 1.0  # a sheared voxel keeps the volume of its unsheared box
    assert voxel_volume_ml(sheared) == pytest.approx(0.001)


def test_components_are_26_connected() -> None:
    mask = np.zeros((6, 6, 6), bool)
    mask[1, 1, 1] = mask[2, 2, 2] = True  # corner neighbours: one lesion
    mask[4:6, 4:6, 4:6] = True
    labels, count = label_lesions(mask)
    assert count == 2 and labels[1, 1, 1] == labels[2, 2, 2] != labels[5, 5, 5]
    assert largest_component(mask).sum() == 8 and not largest_component(np.zeros((3, 3, 3), bool)).any()


def test_yaml_and_json_readers_refuse_bad_files_by_name(tmp_path: Path) -> None:
    write_json({"a": [1, 2]}, tmp_path / "d.json")
    assert read_json(tmp_path / "d.json") == {"a": [1, 2]}
    (tmp_path / "list.json").write_text("[1]")
    with pytest.raises(BrainmetsError, match="list.json: expected a JSON object"):
        read_json(tmp_path / "list.json")
    (tmp_path / "c.yaml").write_text("train:\n  epochs: 3\n")
    assert read_yaml(tmp_path / "c.yaml") == {"train": {"epochs": 3}}
    (tmp_path / "bad.yaml").write_text("a: [1\n")
    with pytest.raises(BrainmetsError, match="bad.yaml: not valid YAML"):
        read_yaml(tmp_path / "bad.yaml")
    (tmp_path / "empty.yaml").write_text("")
    assert read_yaml(tmp_path / "empty.yaml", allow_empty=True) == {}
    with pytest.raises(BrainmetsError, match="empty.yaml: expected a mapping"):
        read_yaml(tmp_path / "empty.yaml")


# --- headers every reader refuses ---------------------------------------------------------------------


@pytest.mark.parametrize("defect", sorted(BAD_HEADERS))
def test_every_bad_header_is_refused_naming_the_file(tmp_path: Path, write_bad_header, defect: str) -> None:
    good = save_nifti(np.random.default_rng(0).random((6, 7, 8)).astype(np.float32), np.eye(4), tmp_path / "good.nii")
    load_nifti(good)  # the untouched file loads
    for name in ("scan.nii", "scan.nii.gz"):
        bad = write_bad_header(good, defect, tmp_path / name)
        for read in (load_nifti, read_nifti_header, lambda p: load_mask(p, labels=True)):
            with pytest.raises(BrainmetsError) as caught:
                read(bad)
            message = str(caught.value)
            assert message.startswith(f"{bad}: ") and "\n" not in message
            assert BAD_HEADERS[defect][1] in message


def test_nibabel_alone_would_read_a_zero_spacing_as_1_mm(tmp_path: Path, write_bad_header) -> None:
    # the defect the header check exists for: nibabel repairs pixdim 0 to 1 without a word
    good = save_nifti(np.ones((4, 4, 4), np.float32), np.diag([2.0, 2.0, 2.0, 1.0]), tmp_path / "good.nii.gz")
    bad = write_bad_header(good, "zero-spacing-qform", tmp_path / "bad.nii.gz")
    assert nib.load(str(bad)).header.get_zooms()[:3] == (1.0, 2.0, 2.0)
    with pytest.raises(BrainmetsError, match=r"bad.nii.gz: voxel spacing \(0, 2, 2\) mm in the header"):
        load_nifti(bad)


def test_a_file_that_is_not_nifti_is_refused_by_name(tmp_path: Path) -> None:
    text = tmp_path / "notes.nii.gz"
    text.write_text("not an image")
    with pytest.raises(BrainmetsError, match=r"notes.nii.gz: not a readable NIfTI image"):
        read_nifti_header(text)


@pytest.fixture(params=[(0o022, 0o644), (0o027, 0o640)], ids=["umask022", "umask027"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """Run the test under a umask; yields the file mode it should give (restored afterwards)."""
    mask, expected = request.param
    previous = os.umask(mask)
    try:
        yield expected
    finally:
        os.umask(previous)


def test_outputs_get_the_mode_the_umask_allows(tmp_path: Path, umask: int) -> None:
    """Every atomic writer (NIfTI, TSV, JSON, a raw path) leaves a file of mode 0666 minus the umask."""
    written = [
        save_nifti(np.zeros((4, 4, 4), np.uint8), np.eye(4), tmp_path / "a.nii.gz"),
        write_tsv(pd.DataFrame({"x": [1]}), tmp_path / "a.tsv"),
        write_json({"x": 1}, tmp_path / "a.json"),
    ]
    with atomic_path(tmp_path / "deep" / "a.txt") as tmp:
        tmp.write_text("x")
    written.append(tmp_path / "deep" / "a.txt")
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in written} == {oct(umask)}
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["a.json", "a.nii.gz", "a.tsv", "a.txt"]


def test_a_command_output_follows_the_umask(tmp_path: Path, umask: int) -> None:
    """`brainmets measure` run under the umask writes its table readable as the umask says."""
    labels = np.zeros((8, 8, 8), np.uint8)
    labels[2:5, 2:5, 2:5] = 1
    save_nifti(labels, np.eye(4), tmp_path / "mask.nii.gz")
    out = tmp_path / "lesions.tsv"
    assert main(["measure", str(tmp_path / "mask.nii.gz"), "--out", str(out)]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == umask


def test_a_nifti_pair_is_refused_as_not_a_single_file(tmp_path: Path) -> None:
    """A .hdr/.img pair loads in nibabel as another image type; brainmets asks for .nii or .nii.gz."""
    data = np.random.default_rng(0).random((6, 7, 8)).astype(np.float32)
    nib.save(nib.Nifti1Pair(data, np.eye(4)), tmp_path / "scan.img")
    with pytest.raises(BrainmetsError, match=r"scan\.hdr: not a single-file NIfTI image; convert it to \.nii"):
        load_nifti(tmp_path / "scan.hdr")


def test_triples_are_plain_numbers_and_refuse_another_length() -> None:
    spacing = float_triple(np.array([1.5, 2, 3], dtype=np.float32))
    assert spacing == (1.5, 2.0, 3.0) and all(type(v) is float for v in spacing)
    shape = int_triple(np.array([4, 5, 6]))
    assert shape == (4, 5, 6) and all(type(v) is int for v in shape)
    with pytest.raises(ValueError):
        int_triple((4, 5))
    with pytest.raises(ValueError):
        float_triple((1.0, 1.0, 1.0, 1.0))


def test_table_records_name_columns_by_text() -> None:
    table = pd.DataFrame({"lesion_id": [1, 2], 7: ["a", "b"]})
    assert table_records(table) == [{"lesion_id": 1, "7": "a"}, {"lesion_id": 2, "7": "b"}]


def test_save_nifti_writes_the_voxels_nibabel_writes(tmp_path):
    """save_nifti's Fortran-order copy changes the speed only: the stored voxels equal nibabel's own save."""
    import gzip

    rng = np.random.default_rng(3)
    data = rng.random((13, 11, 7)).astype(np.float32)
    for name, array in (("c", data), ("view", data[::2, :, ::-1]), ("mask", data > 0.5)):
        ours = save_nifti(array, np.eye(4), tmp_path / f"{name}.nii.gz")
        stored = array.astype(np.uint8) if array.dtype == bool else array
        theirs = nib.Nifti1Image(stored, np.eye(4))
        theirs.set_qform(np.eye(4), code=1)
        theirs.set_sform(np.eye(4), code=1)
        nib.save(theirs, tmp_path / f"{name}_nib.nii.gz")
        assert gzip.open(ours).read() == gzip.open(tmp_path / f"{name}_nib.nii.gz").read()
        np.testing.assert_array_equal(np.asarray(nib.load(ours).dataobj), stored)
