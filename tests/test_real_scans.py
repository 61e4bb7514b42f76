"""Real T1-CE scans from other sites (`../shared/data/real/`): input that is already skull-stripped is
recognised and its brain kept as given, heads are not mistaken for it, the raw clinical head's brain
mask matches its reference on the native grid, and `segment` writes every map on each input's grid.

Add a fixture name to MODEL_FIXTURES to run `segment` on the real scans with another model directory.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import yaml
from brainmets.cli import main
from brainmets.inference.pipeline import MAP_FILES
from brainmets.preprocess.native import to_patient
from brainmets.preprocess.pipeline import BRAIN_MASK, QC_PICTURE, RECORD
from brainmets.preprocess.skullstrip import detected_brain
from brainmets.preprocess.space import load_scan

REAL = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real"
STRIPPED = REAL / "BraTS-MET-00110-000-t1c.nii.gz"  # BraTS-METS: skull-stripped, SRI24 space, zero background
HEAD = REAL / "TCGA-FG-6692_raw_t1c.nii.gz"  # TCGA-LGG: raw head, 0.898 x 0.898 x 5.5 mm, LAS, oblique
HEAD_BRAIN = REAL / "TCGA-FG-6692_raw_t1c_brainmask.nii.gz"  # reference brain mask on the head's grid
#: model directories `segment` runs with on the real scans: names of fixtures that return one
MODEL_FIXTURES = ["tiny_model_dir", "imported_model_dir"]


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two boolean masks."""
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))


def test_the_real_scans_are_there() -> None:
    missing = [p.name for p in (STRIPPED, HEAD, HEAD_BRAIN) if not p.is_file()]
    assert not missing, f"{REAL}: missing {missing}; the real scans live in ../shared/data/real beside the project"


def test_skull_stripped_input_is_recognised_and_heads_are_not(tiny_cohort: Path) -> None:
    stripped = load_scan(STRIPPED)
    brain = detected_brain(stripped.data, stripped.affine)
    assert brain is not None
    assert brain.sum() == (stripped.data > 0).sum()  # every nonzero voxel is the given brain, nothing more
    head = load_scan(HEAD)
    assert detected_brain(head.data, head.affine) is None  # 10 % zero background, but a 6 L head touching its faces
    for image in pd.read_csv(tiny_cohort / "samples.tsv", sep="\t")["image"]:
        scan = load_scan(image)
        assert detected_brain(scan.data, scan.affine) is None, image


def ellipsoid(shape: tuple[int, int, int], radii_vox: tuple[float, float, float]) -> np.ndarray:
    """A centred ellipsoid (bool) of the given radii in voxels."""
    grid = np.indices(shape, dtype=np.float32)
    centre = (np.array(shape, np.float32) - 1) / 2
    return sum(((grid[a] - centre[a]) / radii_vox[a]) ** 2 for a in range(3)) <= 1


@pytest.mark.parametrize(
    ("case", "stripped"),
    [
        ("brain", True),
        ("brain with specks of noise", False),
        ("head with zeroed background", False),
        ("head slab with zeroed background", False),
    ],
)
def test_skull_stripped_detection_tells_brains_from_heads_with_a_zero_background(case: str, stripped: bool) -> None:
    """2 mm grids: a 1.5 L brain on zero is skull-stripped; a 4 L head or a brain-sized head slab on zero is not."""
    rng = np.random.default_rng(0)
    shape = (100, 120, 100)
    if case.startswith("brain"):
        tissue = ellipsoid(shape, (35, 42, 30))  # 70 x 84 x 60 mm half-axes: 1.48 L
    else:
        tissue = ellipsoid(shape, (45, 55, 48))  # 90 x 110 x 96 mm half-axes: 4 L
    if case.startswith("head slab"):
        tissue = tissue[
            :, :, 38:62
        ]  # 48 mm of slices through the middle of the head: 1.46 L, 37 % background, 42 % of the faces
    data = np.where(tissue, rng.uniform(100, 200, tissue.shape), 0).astype(np.float32)
    if "specks" in case:
        data[rng.random(data.shape) < 0.02] = 5.0  # noise outside the brain: 2 % of the voxels
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    assert (detected_brain(data, affine) is not None) == stripped


def test_a_head_declared_skull_stripped_is_refused_in_one_line(tiny_cohort: Path, tmp_path: Path, capsys) -> None:
    image = pd.read_csv(tiny_cohort / "samples.tsv", sep="\t")["image"].iloc[0]
    out = tmp_path / "scan"
    assert main(["preprocess", image, "--out-dir", str(out), "--skull-stripped"]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and f"{image}: declared skull-stripped" in error, error
    assert not out.exists()


@pytest.fixture(scope="module", params=MODEL_FIXTURES)
def segmented(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both real scans through `brainmets segment` (deepbet, the model's spacing, no mirroring); the output folder."""
    model = Path(request.getfixturevalue(request.param))
    spacing = json.loads((model / "model.json").read_text())["spacing_mm"]
    root = tmp_path_factory.mktemp("real")
    config = root / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "preprocess": {"spacing_mm": spacing, "skullstrip": {"method": "deepbet"}},
                "inference": {"mirror_axes": [], "overlap": 0.0},
            }
        )
    )
    out = root / "segmented"
    assert (
        main(
            ["segment", str(STRIPPED), str(HEAD), "--model", str(model), "--out-dir", str(out), "--config", str(config)]
        )
        == 0
    )
    return out


@pytest.mark.parametrize("image", [STRIPPED, HEAD], ids=["skull-stripped", "raw-head"])
def test_segment_writes_every_map_on_the_input_grid(segmented: Path, image: Path) -> None:
    scan_dir = segmented / image.name.removesuffix(".nii.gz")
    native = nib.load(image)
    for filename in [*MAP_FILES.values(), BRAIN_MASK]:
        mapped = nib.load(scan_dir / "native" / filename)
        assert mapped.shape == native.shape, filename
        np.testing.assert_array_equal(mapped.affine, native.affine)
    mask = nib.load(scan_dir / BRAIN_MASK)
    for filename in MAP_FILES.values():
        patient = nib.load(scan_dir / filename)
        assert patient.shape == mask.shape, filename
        np.testing.assert_allclose(patient.affine, mask.affine, atol=1e-5)
    probability = np.asarray(nib.load(scan_dir / "native" / "probability.nii.gz").dataobj)
    assert (probability >= 0).all() and (probability <= 1).all() and probability.max() > 0
    assert (scan_dir / QC_PICTURE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_skull_stripped_scan_keeps_its_given_brain(segmented: Path) -> None:
    """Not stripped again: the brain mask holds >= 99 % of the given brain in patient space and matches it natively."""
    scan_dir = segmented / STRIPPED.name.removesuffix(".nii.gz")
    assert json.loads((scan_dir / RECORD).read_text())["brain_extraction"] == "given: skull-stripped input, detected"
    given = np.asarray(nib.load(STRIPPED).dataobj) > 0
    share, _ = to_patient(given.astype(np.float32), scan_dir, kind="map")  # fraction of each voxel that is given brain
    mask = np.asarray(nib.load(scan_dir / BRAIN_MASK).dataobj) > 0
    assert share[mask].sum() >= 0.99 * share.sum()
    native = np.asarray(nib.load(scan_dir / "native" / BRAIN_MASK).dataobj) > 0
    assert dice(native, given) >= 0.98


def test_the_raw_head_brain_mask_matches_its_reference_on_the_native_grid(segmented: Path) -> None:
    scan_dir = segmented / HEAD.name.removesuffix(".nii.gz")
    assert json.loads((scan_dir / RECORD).read_text())["brain_extraction"] == "deepbet"
    reference = np.asarray(nib.load(HEAD_BRAIN).dataobj) > 0
    mask = np.asarray(nib.load(scan_dir / "native" / BRAIN_MASK).dataobj) > 0
    assert dice(mask, reference) >= 0.95
