"""The whole workflow after training, run for real by Snakemake on a small demo cohort, checked by its values.

Rules covered (every rule of rules/*.smk that runs once a model exists; `test_every_rule_after_training_ran`
fails when a rule is added that this run does not cover): stage_config, preprocess (deepbet, N4, registration
of the follow-ups), predict (ensemble inference, uncertainty, lesion table, native maps, overlay picture),
track, rano, rano_cohort, review_page, evaluate, evaluate_cohort, and `snakemake --report`. Left out: the training chain
(preprocess_training, weight_map, prepare_case, train, finalise_model), which the workflow leaves out when
`model.dir` names a model outside results/ (train and finalise_model run for real in test_workflow_run.py,
the others only in test_workflow.py's dry runs), and demo_cohort (the test generates the cohort itself).

How the values can be checked: a network with random weights segments noise, whose responses no truth can
confirm. The model here is instead a real model folder whose network is a hand-set detector of enhancing
tissue: a two-level U-Net of the project's own architecture (`build_unet`, one channel per level, loaded
and run by the product's unchanged inference) whose weights smooth the z-scored image once (3x3x3), take
off the window's mean (instance normalisation with a large epsilon keeps the scale) and threshold it at
`DETECTOR_THRESHOLD_Z` brain standard deviations (logit slope `DETECTOR_SLOPE`). It knows nothing of the
truth: it marks what enhances. In a numpy replica on this cohort's preprocessed scans, 1.8 leaves specks of
noise on one scan and 2.2 splits one lesion in two; 2.0 finds every lesion that decides a response and no
other.
The demo generator draws each lesion's contrast at random (1.25-1.6 x white matter, half of the larger ones
ring-enhancing), and in the shared tiny cohort (seed 0) the new lesion of patient02 enhances no more than
the vessels, so no threshold finds it. Seed 5 (the same two scenarios: partial response, progression by a
new lesion) has every measurable lesion at a median of at least 2.4 brain standard deviations on its scan, so
the detector finds every lesion that decides a response, and the responses can be compared with the
generator's `truth/expected_response.tsv`, which is derived from the scenario design, not from brainmets'
code under test. Non-target responses are not compared: the non-target lesion of patient01 shrinks to 3-4
voxels of 2 mm, which a threshold misses. The segmentation scores are recomputed here with numpy from
the native segmentation and the truth mask.

About 1.5 minutes on two idle cores (the cohort, the detector, 29 jobs and the report), 4 under a load of 8.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import yaml

from slurm.project import REPO, SNAKEMAKE, env

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

#: the demo cohort of this test (see the module docstring for the seed)
COHORT = {"patients": 2, "timepoints": 3, "train": 0, "seed": 5, "scale": 2.0}
#: patient-space spacing (mm) of the scale-2 cohort, and the detector model's
SPACING_MM = 2.0
#: the detector: smoothed z-score minus the window's mean above this marks a lesion voxel
DETECTOR_THRESHOLD_Z = 2.0
#: share of the first convolution's weight spread over the 6 face neighbours (the rest on the centre voxel)
DETECTOR_SMOOTHING = 0.5
#: logit per standard deviation above the threshold
DETECTOR_SLOPE = 8.0
#: instance normalisation epsilon of the detector: var / epsilon is negligible, so scale is kept
DETECTOR_EPSILON = 1e8
#: constant added after each normalisation so that the LeakyReLU stays in its linear part
DETECTOR_OFFSET = 100.0
#: the training chain and the demo generator: not part of this run (module docstring)
NOT_COVERED = {"preprocess_training", "weight_map", "prepare_case", "train", "finalise_model", "demo_cohort"}
#: the rules of scans that came from DICOM (this cohort is NIfTI): their real workflow runs are in
#: tests/test_dicom_outputs.py (dicom_to_nifti, dicom_outputs) and tests/test_dicomweb.py (dicomweb_fetch,
#: dicomweb_send, against a real archive; system tests)
DICOM_RULES = {"dicom_to_nifti", "dicom_outputs", "dicomweb_fetch", "dicomweb_send"}
#: the jobs each rule runs for 2 patients x 3 visits, all with a truth mask
JOBS = {
    "stage_config": 5,  # preprocess, inference, track, rano, review
    "preprocess": 6,
    "predict": 6,
    "track": 2,
    "rano": 2,
    "rano_cohort": 1,
    "review_page": 2,
    "evaluate": 6,
    "evaluate_cohort": 1,
    "all": 1,
}
#: response columns compared exactly with the generator's expected response
RESPONSE_COLUMNS = [
    "patient_id",
    "period",
    "timepoint",
    "days_from_baseline",
    "target_response",
    "overall_response",
    "confirmed",
    "progression_date",
    "assessment",
]
#: intended best overall response of each scenario (confirmed PR at both follow-ups; PD at the first follow-up)
BEST = {"partial-response": "PR", "progression-new-lesion": "PD"}


def _smoothing_kernel() -> np.ndarray:
    """3x3x3 kernel of weight 1: `DETECTOR_SMOOTHING` spread over the 6 face neighbours, the rest at the centre."""
    kernel = np.zeros((3, 3, 3), np.float32)
    kernel[1, 1, 1] = 1.0 - DETECTOR_SMOOTHING
    for axis in range(3):
        for side in (0, 2):
            index = [1, 1, 1]
            index[axis] = side
            kernel[tuple(index)] = DETECTOR_SMOOTHING / 6
    return kernel


def write_enhancement_detector(root: Path, patch: int = 32) -> Path:
    """A one-fold model folder whose U-Net thresholds the smoothed z-score less its window mean (module docstring)."""
    from brainmets.network.model import build_unet
    from brainmets.network.modeldir import model_metadata, write_json

    network = {"filters": [1, 1], "deep_supervision_heads": 0, "norm_epsilon": DETECTOR_EPSILON}
    model = build_unet(**network)
    identity = np.zeros((3, 3, 3), np.float32)
    identity[1, 1, 1] = 1.0
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        new = [np.zeros_like(w) for w in weights]  # level 1 and the upsampling carry nothing
        if layer.name.endswith("_norm") and layer.name.startswith(("enc0", "dec0")):
            new = [np.full_like(weights[0], np.sqrt(DETECTOR_EPSILON)), np.full_like(weights[1], DETECTOR_OFFSET)]
        elif layer.name == "enc0_a_conv":  # smoothing only here: the input's padding is 0, the brain's mean
            new[0][..., 0, 0] = _smoothing_kernel()
        elif layer.name == "enc0_b_conv":
            new[0][..., 0, 0] = identity
        elif layer.name == "dec0_a_conv":
            new[0][..., 1, 0] = identity  # the skip connection (channel 1 of the concatenation)
        elif layer.name == "dec0_b_conv":
            new[0][..., 0, 0] = identity
        elif layer.name == "logits_0":
            new = [
                np.full_like(weights[0], DETECTOR_SLOPE),
                np.full_like(weights[1], -DETECTOR_SLOPE * (DETECTOR_OFFSET + DETECTOR_THRESHOLD_Z)),
            ]
        layer.set_weights(new)
    (root / "fold_0").mkdir(parents=True)
    model.save_weights(str(root / "fold_0" / "best.weights.h5"))
    write_json(model_metadata("detector", network, [patch] * 3, [SPACING_MM] * 3, [0]), root / "model.json")
    return root


def read_table(path: Path) -> pd.DataFrame:
    """A TSV with "NA" kept as the response category it is, empty cells as missing."""
    return pd.read_csv(path, sep="\t", keep_default_na=False, na_values=[""])


def run_snakemake(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The repository's workflow in `project` on two cores; never raises on failure."""
    return subprocess.run(
        [*SNAKEMAKE, "-d", str(project), "--cores", "2", *args],
        cwd=project,
        env=env(),
        capture_output=True,
        text=True,
        timeout=1200,
    )


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The cohort, the detector model and a project run through every rule after training and the report."""
    from brainmets.demo.cohort import generate_cohort
    from brainmets.demo.settings import DemoSettings

    root = tmp_path_factory.mktemp("chain")
    cohort = root / "cohort"
    generate_cohort(cohort, DemoSettings(**COHORT))
    model = write_enhancement_detector(root / "model")
    project = root / "project"
    (project / "config").mkdir(parents=True)
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["samples"] = str(cohort / "samples.tsv")
    config["demo"]["enabled"] = False
    config["preprocess"]["spacing_mm"] = [SPACING_MM] * 3
    config["preprocess"]["skullstrip"]["method"] = "deepbet"
    config["model"]["dir"] = str(model)
    config["inference"].update(mirror_axes=[], device="cpu", precision="float32")
    (project / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))

    run = run_snakemake(project)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-5000:]
    report = run_snakemake(project, "--report", "results/report.html")
    assert report.returncode == 0, report.stdout[-3000:] + report.stderr[-3000:]
    sheet = pd.read_csv(cohort / "samples.tsv", sep="\t", dtype=str)
    return {"project": project, "results": project / "results", "cohort": cohort, "sheet": sheet, "log": run.stderr}


def rules_of_the_workflow() -> set[str]:
    """Names of every rule declared in rules/*.smk."""
    return {
        name
        for path in (REPO / "rules").glob("*.smk")
        for name in re.findall(r"^\s*rule (\w+):", path.read_text(), re.M)
    }


def test_every_rule_after_training_ran(chain):
    """Snakemake's job counts: each rule after training ran once per scan, patient or cohort, and no other."""
    table = chain["log"].split("Job stats:", 1)[1].split("total", 1)[0]
    counts = {name: int(count) for name, count in re.findall(r"^(\w+)\s+(\d+)$", table, re.M)}
    assert counts == JOBS
    assert rules_of_the_workflow() - NOT_COVERED - DICOM_RULES == set(JOBS) - {"all"}, "a rule is not covered"


def test_responses_match_the_cohorts_expected_response(chain):
    """Each patient's rano_response.tsv gives the responses the cohort was designed to show, visit by visit."""
    results, expected = chain["results"], read_table(chain["cohort"] / "truth" / "expected_response.tsv")
    for patient, truth in expected.groupby("patient_id"):
        response = read_table(results / patient / "rano_response.tsv")
        truth = truth.reset_index(drop=True)
        pd.testing.assert_frame_equal(response[RESPONSE_COLUMNS], truth[RESPONSE_COLUMNS], check_dtype=False)
        # new lesions where RANO-BM assesses them: not after the first progression, where the detector may
        # find a fragment of the new lesion that the truth does not list
        assessed = truth["assessment"] != "after progression"
        assert response.loc[assessed, "new_lesions"].tolist() == truth.loc[assessed, "new_lesions"].tolist()
        # the same number of targets, their sum of longest diameters within one 2 mm voxel per target
        n_targets = truth["target_ids"].astype(str).str.count(";") + 1
        assert (response["target_ids"].astype(str).str.count(";") + 1).tolist() == n_targets.tolist()
        sums = response["sum_ld_mm"].to_numpy(float)
        assert np.all(np.abs(sums - truth["sum_ld_mm"].to_numpy(float)) <= SPACING_MM * n_targets.to_numpy()), patient


def test_cohort_tables_gather_the_patients_and_give_the_best_response(chain):
    """results/cohort/rano_response.tsv is the patients' tables one after the other; best_response.tsv follows them."""
    results, cohort = chain["results"], chain["cohort"]
    patients = sorted(chain["sheet"]["patient_id"].unique())
    text = {"sep": "\t", "dtype": str, "keep_default_na": False}  # cell by cell, as written
    gathered = pd.concat([pd.read_csv(results / p / "rano_response.tsv", **text) for p in patients], ignore_index=True)
    pd.testing.assert_frame_equal(pd.read_csv(results / "cohort" / "rano_response.tsv", **text), gathered)
    best = read_table(results / "cohort" / "best_response.tsv").set_index("patient_id")
    assert sorted(best.index) == patients
    scenarios = pd.read_csv(cohort / "truth" / "scenarios.tsv", sep="\t")
    expected = read_table(cohort / "truth" / "expected_response.tsv")
    for scenario in scenarios.itertuples():
        row = best.loc[scenario.patient_id]
        assert row["best_overall_response"] == BEST[scenario.scenario], scenario.scenario
        visits = expected[expected["patient_id"] == scenario.patient_id]
        first = visits.loc[visits["overall_response"] == BEST[scenario.scenario], "timepoint"].iloc[0]
        assert row["best_response_timepoint"] == first
        progression = [] if pd.isna(row["progression_date"]) else [row["progression_date"]]
        assert progression == visits["progression_date"].dropna().tolist()[:1]


def _scans(chain) -> list[dict[str, str]]:
    """The analysis rows of the cohort's sample sheet."""
    sheet = chain["sheet"]
    return sheet[sheet["training"] == "false"].to_dict("records")


def test_native_maps_lie_on_the_input_grid(chain):
    """Segmentation, probability and total entropy on each scan's own grid: the sheet image's shape and affine."""
    for scan in _scans(chain):
        image = nib.load(scan["image"])
        native = chain["results"] / scan["patient_id"] / scan["timepoint"] / "native"
        for name in ("segmentation", "probability", "uncertainty_total_entropy"):
            written = nib.load(native / f"{name}.nii.gz")
            assert written.shape == image.shape, (scan["timepoint"], name)
            np.testing.assert_allclose(written.affine, image.affine, atol=1e-4)
        probability = np.asarray(nib.load(native / "probability.nii.gz").dataobj)
        assert probability.min() >= 0 and probability.max() <= 1


def test_evaluation_scores_the_native_segmentation_against_the_truth(chain):
    """evaluation.tsv's voxel Dice and volumes equal numpy's on the native segmentation and the truth mask."""
    results, rows = chain["results"], []
    for scan in _scans(chain):
        scan_dir = results / scan["patient_id"] / scan["timepoint"]
        truth_image = nib.load(scan["mask"])
        truth = np.asarray(truth_image.dataobj) > 0
        pred = np.asarray(nib.load(scan_dir / "native" / "segmentation.nii.gz").dataobj) > 0
        voxel_ml = abs(np.linalg.det(truth_image.affine[:3, :3])) / 1000
        dice = 2 * (truth & pred).sum() / (truth.sum() + pred.sum())
        row = read_table(scan_dir / "evaluation.tsv")
        assert len(row) == 1 and row.loc[0, "patient_id"] == scan["patient_id"]
        assert row.loc[0, "dice"] == pytest.approx(dice, abs=1e-9)
        assert row.loc[0, "truth_volume_ml"] == pytest.approx(truth.sum() * voxel_ml, rel=1e-6)
        assert row.loc[0, "pred_volume_ml"] == pytest.approx(pred.sum() * voxel_ml, rel=1e-6)
        # the premise of the response comparison: the detector finds the lesions
        assert dice > 0.5, (scan["patient_id"], scan["timepoint"], dice)
        rows.append(row)
    gathered = pd.concat(rows, ignore_index=True)
    cohort = read_table(results / "cohort" / "evaluation.tsv")
    pd.testing.assert_frame_equal(cohort[gathered.columns], gathered, check_dtype=False)
    summary = read_table(results / "cohort" / "evaluation_summary.tsv").set_index("metric")
    assert summary.loc["dice", "n_scans"] == len(rows)
    assert summary.loc["dice", "mean"] == pytest.approx(gathered["dice"].mean())


def declared_report_files(sheet: pd.DataFrame) -> set[tuple[str, str]]:
    """(category, file) of every output the rules declare with report(...), expanded over the cohort."""
    declared = set()
    for path in (REPO / "rules").glob("*.smk"):
        for pattern, category in re.findall(r'report\(\s*"([^"]+)",.*?category="([^"]+)"', path.read_text(), re.S):
            for scan in sheet[sheet["training"] == "false"].itertuples():
                declared.add((category, pattern.format(patient=scan.patient_id, timepoint=scan.timepoint)))
    return declared


def test_report_holds_every_declared_output_of_every_category(chain):
    """report.html lists each report(...) output under its category and embeds the file's exact bytes."""
    html = (chain["results"] / "report.html").read_text()
    categories = json.loads(re.search(r"var categories = (\{.*?\});", html).group(1))
    listed = {(c, f) for c, subcategories in categories.items() for files in subcategories.values() for f in files}
    declared = declared_report_files(chain["sheet"])
    assert {c for c, _ in declared} == {"Scans", "Patients", "Cohort"}
    assert listed == declared
    embedded = json.loads(re.search(r"var results = (\{.*?\});\n", html).group(1))
    for _, name in declared:
        data = base64.b64decode(embedded[name]["data_uri"].split("base64,", 1)[1])
        assert data == (chain["project"] / name).read_bytes(), name
