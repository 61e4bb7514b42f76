"""The Snakemake workflow: lint, dry runs on the default config and on a generated sheet, target selection."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from slurm.project import REPO, SNAKEMAKE, dry_run_jobs, env, make_project, snakemake

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated project: 3 patients x 2 visits with ground truth, 4 training cases, 2 folds."""
    return make_project(tmp_path_factory.mktemp("project"))


def test_lint_passes_on_default_config() -> None:
    """`snakemake --lint` reports nothing (it exits 1 on any finding)."""
    result = subprocess.run([*SNAKEMAKE, "--lint"], cwd=REPO, env=env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dry_run_on_default_config_plans_the_whole_demo(tmp_path: Path) -> None:
    """Shipped config and sheet: the demo cohort, then every stage for its 12 scans, 12 training cases and each fold."""
    shutil.copytree(REPO / "config", tmp_path / "config")
    jobs = Counter(rule for rule, _ in dry_run_jobs(tmp_path))
    assert jobs["demo_cohort"] == 1
    assert jobs["preprocess"] == jobs["predict"] == jobs["evaluate"] == 12
    assert jobs["preprocess_training"] == jobs["prepare_case"] == 12
    folds = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["train"]["folds"]
    assert jobs["train"] == folds and jobs["finalise_model"] == 1
    assert jobs["track"] == jobs["rano"] == 4
    assert jobs["rano_cohort"] == jobs["evaluate_cohort"] == 1


def test_plain_command_applies_the_default_profile_and_its_gpu_limit(tmp_path: Path) -> None:
    """`snakemake` without a profile flag applies profiles/default: in the repository and in another folder."""
    profile = yaml.safe_load((REPO / "profiles/default/config.yaml").read_text())
    assert profile["resources"]["gpu"] == 1
    plain = subprocess.run([*SNAKEMAKE, "-n", "-q"], cwd=REPO, env=env(), capture_output=True, text=True, timeout=120)
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert "Using workflow specific profile profiles/default for" in plain.stdout + plain.stderr
    # a real (tiny, local) job shows the limit the scheduler works with: gpu 1, from the profile alone
    shutil.copytree(REPO / "config", tmp_path / "config")
    run = snakemake(tmp_path, "results/config/track.yaml")
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.search(r"^Provided resources: gpu=Resource\(\"gpu\", 1\)$", run.stdout + run.stderr, re.MULTILINE)
    assert (tmp_path / "results/config/track.yaml").is_file()


# Parses the workflow as Snakemake does, then calls the hook Snakemake calls before the first job.
PLANNING_GC = """
import gc, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import OutputSettings, ResourceSettings
with SnakemakeApi(OutputSettings()) as api:
    snakefile, workdir = Path(sys.argv[1]), Path(sys.argv[2])
    workflow = api.workflow(resource_settings=ResourceSettings(cores=1), snakefile=snakefile, workdir=workdir)._workflow
    planning = gc.isenabled()
    workflow._onstart(None)
    print(planning, gc.isenabled())
"""


def test_garbage_collector_is_off_while_planning_and_on_when_jobs_start(project: Path) -> None:
    """Python's cyclic collector is off while the workflow is parsed and planned, on again before the first job."""
    command = [sys.executable, "-c", PLANNING_GC, str(REPO / "Snakefile"), str(project)]
    result = subprocess.run(command, env=env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split()[-2:] == ["False", "True"]


def test_dry_run_schedules_every_stage_for_every_scan(project: Path) -> None:
    """The whole chain: each scan preprocessed and segmented, each patient tracked, each fold trained once."""
    jobs = dry_run_jobs(project)
    count = Counter(rule for rule, _ in jobs)
    scans = {(w["patient"], w["timepoint"]) for rule, w in jobs if rule == "predict"}
    assert scans == {(f"P{p}", f"2024-0{t}-15") for p in (1, 2, 3) for t in (1, 2)}
    assert count["train"] == 2
    assert count["prepare_case"] == 4
    assert count["rano"] == 3
    assert count["evaluate"] == 6


def test_one_predict_job_per_scan_writes_its_maps_native_maps_and_picture(project: Path) -> None:
    """predict declares the segmentation, its native copy and the overlay, which `all` asks for: lost, it is remade."""
    result = snakemake(project, "-n")
    assert result.returncode == 0, result.stdout + result.stderr
    blocks = re.findall(r"^(?:local)?rule (\w+):\n((?:    .*\n)*)", result.stdout, re.MULTILINE)
    outputs = {}
    for rule, block in blocks:
        fields = dict(line.strip().split(": ", 1) for line in block.splitlines() if ": " in line)
        if rule == "predict":
            scan = "results/{patient}/{timepoint}".format(**dict(w.split("=") for w in fields["wildcards"].split(", ")))
            outputs[scan] = set(fields["output"].split(", "))
        elif rule == "all":
            requested = set(fields["input"].split(", "))
    assert len(outputs) == 6
    for scan, files in outputs.items():
        assert files == {f"{scan}/segmentation.nii.gz", f"{scan}/native/segmentation.nii.gz", f"{scan}/overlay.png"}
        assert f"{scan}/overlay.png" in requested
    assert "native_and_overlay" not in {rule for rule, _ in blocks}


def _job_settings(project: Path, rule: str, extra_env: dict[str, str]) -> set[tuple[str, str]]:
    """(threads, gpu) of every planned job of `rule` in a dry run under `extra_env`."""
    result = subprocess.run(
        [*SNAKEMAKE, "-d", str(project), "-n", "--cores", "2"],
        cwd=project,
        env={**env(), **extra_env},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    blocks = re.findall(r"^(?:local)?rule (\w+):\n((?:    .*\n)*)", result.stdout, re.MULTILINE)
    found = set()
    for name, block in blocks:
        if name == rule:
            threads = re.search(r"threads: (\d+)", block)
            found.add((threads.group(1) if threads else "1", re.search(r"gpu=(\d+)", block).group(1)))
    return found


def test_cpu_jobs_claim_no_gpu_and_run_one_thread_per_scan_and_fold(project: Path) -> None:
    """Without a GPU, predict and train run on one thread without the gpu resource (side by side); with one, 2 + gpu."""
    assert _job_settings(project, "predict", {"CUDA_VISIBLE_DEVICES": ""}) == {("1", "0")}
    assert _job_settings(project, "predict", {"CUDA_VISIBLE_DEVICES": "0"}) == {("2", "1")}
    assert _job_settings(project, "train", {"CUDA_VISIBLE_DEVICES": ""}) == {("1", "0")}
    assert _job_settings(project, "train", {"CUDA_VISIBLE_DEVICES": "0"}) == {("2", "1")}


def test_single_patient_target_schedules_only_that_patient_and_the_model(project: Path) -> None:
    """`results/P2/rano_response.tsv` brings in P2's scans and the model, nothing of P1 or P3."""
    jobs = dry_run_jobs(project, "results/P2/rano_response.tsv")
    patients = {w["patient"] for _, w in jobs if "patient" in w}
    assert patients == {"P2"}
    rules = Counter(rule for rule, _ in jobs)
    assert rules["train"] == 2
    assert rules["predict"] == 2
    assert "evaluate_cohort" not in rules and "rano_cohort" not in rules


def test_single_patient_target_uses_an_existing_model(project: Path, tmp_path: Path) -> None:
    """With a trained model directory given in the config, the single-patient target trains nothing."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.json").write_text("{}")
    config = yaml.safe_load((project / "config" / "config.yaml").read_text())
    config["model"]["dir"] = str(model)
    other = project / "config" / "pretrained.yaml"
    other.write_text(yaml.safe_dump(config))
    result = snakemake(project, "results/P2/rano_response.tsv", "-n", "--configfile", str(other))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rule train:" not in result.stdout and "rule prepare_case:" not in result.stdout
    assert "rule predict:" in result.stdout


def test_unknown_patient_target_fails_with_a_clear_message(project: Path) -> None:
    """A target for a patient that is not in the sheet names the patient and the sheet."""
    result = snakemake(project, "results/NOPE/rano_response.tsv", "-n")
    assert result.returncode != 0
    assert "NOPE" in result.stdout + result.stderr and "samples.tsv" in result.stdout + result.stderr


def test_invalid_config_is_refused(project: Path, tmp_path: Path) -> None:
    """A config that breaks the schema stops the workflow before any job, naming the key."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  folds: one\n")
    result = snakemake(project, "-n", "--configfile", str(bad))
    assert result.returncode != 0
    assert "folds" in result.stdout + result.stderr


def test_sheet_skull_stripped_column_reaches_preprocessing(project: Path, tmp_path: Path) -> None:
    """Sheet skull_stripped true / false become --skull-stripped / --no-skull-stripped; empty adds nothing."""
    copy = tmp_path / "project"
    shutil.copytree(project, copy, ignore=shutil.ignore_patterns(".snakemake", "results", "logs"))
    sheet = copy / "config" / "samples.tsv"
    lines = sheet.read_text().splitlines()
    declared = {"P1": "true", "T1": "false"}
    rows = [lines[0] + "\tskull_stripped"] + [
        f"{line}\t{declared.get(line.split(chr(9))[0], '')}" for line in lines[1:]
    ]
    sheet.write_text("\n".join(rows) + "\n")
    targets = [
        "results/P1/2024-01-15/preprocessing.json",
        "results/P2/2024-01-15/preprocessing.json",
        "results/training/T1_2023-01-01/preprocessing.json",
    ]
    result = snakemake(copy, *targets, "-n", "-p")
    assert result.returncode == 0, result.stdout + result.stderr
    commands = {
        line.split("--image ")[1].split()[0]: line
        for line in result.stdout.splitlines()
        if "brainmets preprocess" in line
    }
    options = {
        Path(image).parent.name: next(
            (o for o in ("--skull-stripped", "--no-skull-stripped") if f" {o} " in line), None
        )
        for image, line in commands.items()
    }
    assert options == {"P1": "--skull-stripped", "P2": None, "T1": "--no-skull-stripped"}


@pytest.fixture(scope="module")
def finished_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated project whose every output exists and is recorded by Snakemake as made (`--touch`)."""
    root = make_project(tmp_path_factory.mktemp("finished"))
    summary = snakemake(root, "--summary")
    assert summary.returncode == 0, summary.stdout + summary.stderr
    outputs = [line.split("\t")[0] for line in summary.stdout.splitlines()[1:] if line.startswith("results/")]
    assert len(outputs) > 50
    for name in outputs:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).touch()
    touched = snakemake(root, "--touch", "--forceall", "--cores", "1")  # every job, so each records its params
    assert touched.returncode == 0, touched.stdout + touched.stderr
    assert not dry_run_jobs(root)  # nothing left to do
    return root


#: rules every stage's commands feed, in workflow order (the demo cohort is off in generated projects)
AFTER_PREPROCESSING = {"preprocess", "preprocess_training", "weight_map", "prepare_case", "train", "finalise_model"}
AFTER_INFERENCE = {"predict", "track", "rano", "rano_cohort", "review_page", "evaluate", "evaluate_cohort"}


@pytest.mark.parametrize(
    ("section", "key", "value", "stages", "rules"),
    [
        ("preprocess", "n4_iterations", [10, 10, 5], {"preprocess", "train"}, AFTER_PREPROCESSING | AFTER_INFERENCE),
        (
            "model",
            "preset",
            "paper",
            {"train", "inference"},
            AFTER_PREPROCESSING - {"preprocess", "preprocess_training"} | AFTER_INFERENCE,
        ),
        ("train", "seed", 7, {"train"}, AFTER_PREPROCESSING - {"preprocess", "preprocess_training"} | AFTER_INFERENCE),
        ("inference", "overlap", 0.3, {"inference"}, AFTER_INFERENCE),
        ("track", "dilation_mm", 2.5, {"track"}, {"track", "rano", "rano_cohort", "review_page"}),
        ("rano", "pr_relative", 0.35, {"track", "rano", "review"}, {"track", "rano", "rano_cohort", "review_page"}),
        ("review", "uncertainty_flag_bits", 0.3, {"review"}, {"review_page"}),
        ("evaluation", "definition", "brats2025", set(), {"evaluate", "evaluate_cohort"}),
    ],
)
def test_a_configuration_change_reruns_only_the_stages_that_read_the_section(
    finished_project: Path, tmp_path: Path, section: str, key: str, value: object, stages: set, rules: set
) -> None:
    """README: a configuration change reruns only the stage whose section changed (and what uses its outputs)."""
    config = yaml.safe_load((finished_project / "config" / "config.yaml").read_text())
    config[section][key] = value
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(config, sort_keys=False))
    jobs = dry_run_jobs(finished_project, "--configfile", str(changed))
    assert {w["stage"] for rule, w in jobs if rule == "stage_config"} == stages, jobs
    assert {rule for rule, _ in jobs} - {"all", "stage_config"} == rules


def test_a_new_training_case_retrains_the_model_and_leaves_the_scans_preprocessed(
    finished_project: Path, tmp_path: Path
) -> None:
    """README: the model is retrained when it is out of date (new training cases); patient scans keep their files."""
    from slurm.project import write_scan

    image = tmp_path / "T9" / "2023-02-01.nii.gz"
    mask = write_scan(image, seed=99)
    sheet = (finished_project / "config" / "samples.tsv").read_text()
    (tmp_path / "samples.tsv").write_text(sheet + f"T9\t2023-02-01\t{image}\t{mask}\ttrue\n")
    config = yaml.safe_load((finished_project / "config" / "config.yaml").read_text())
    config["samples"] = str(tmp_path / "samples.tsv")
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(config, sort_keys=False))
    jobs = dry_run_jobs(finished_project, "--configfile", str(changed))
    rules = Counter(rule for rule, _ in jobs)
    assert rules["preprocess_training"] == rules["weight_map"] == rules["prepare_case"] == 1
    assert {w["case"] for rule, w in jobs if rule == "prepare_case"} == {"T9_2023-02-01"}
    assert rules["train"] == 2 and rules["finalise_model"] == 1 and rules["predict"] == 6
    assert "preprocess" not in rules and "stage_config" not in rules


TRAINING_PRIORITY = """
import sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import OutputSettings, ResourceSettings
with SnakemakeApi(OutputSettings()) as api:
    snakefile, workdir = Path(sys.argv[1]), Path(sys.argv[2])
    workflow = api.workflow(resource_settings=ResourceSettings(cores=1), snakefile=snakefile, workdir=workdir)._workflow
    for rule in workflow.rules:
        print(rule.name, rule.priority)
"""


def test_the_training_chain_has_priority_over_the_other_scans(project: Path) -> None:
    """config/README: the training chain (preprocess_training to train) goes before the other scans' jobs."""
    command = [sys.executable, "-c", TRAINING_PRIORITY, str(REPO / "Snakefile"), str(project)]
    result = subprocess.run(command, env=env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    priority = dict(line.split() for line in result.stdout.splitlines() if len(line.split()) == 2)
    first = {name for name, value in priority.items() if int(value) > 0}
    assert first == {"preprocess_training", "weight_map", "prepare_case", "train"}
    assert {"preprocess", "predict", "finalise_model"} <= priority.keys()


def test_a_model_dir_outside_results_is_used_as_it_is(project: Path, tmp_path: Path) -> None:
    """README: model.dir outside results/ holding a model.json is used as it is; no training rule is planned."""
    model = tmp_path / "elsewhere" / "model"
    model.mkdir(parents=True)
    (model / "model.json").write_text("{}")
    config = yaml.safe_load((project / "config" / "config.yaml").read_text())
    config["model"]["dir"] = str(model)
    other = tmp_path / "pretrained.yaml"
    other.write_text(yaml.safe_dump(config, sort_keys=False))
    result = snakemake(project, "-n", "-p", "--configfile", str(other))
    assert result.returncode == 0, result.stdout + result.stderr
    rules = set(re.findall(r"^(?:local)?rule (\w+):", result.stdout, re.MULTILINE))
    assert {"predict", "track", "rano", "evaluate"} <= rules
    assert not rules & {"preprocess_training", "weight_map", "prepare_case", "train", "finalise_model"}
    predicts = [line for line in result.stdout.splitlines() if "brainmets predict" in line]
    assert len(predicts) == 6 and all(f"--model $(dirname {model}/model.json)" in line for line in predicts)
