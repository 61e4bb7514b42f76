import functools
from pathlib import Path

import pandas as pd
import yaml
from snakemake.utils import validate


validate(config, "../workflow/schemas/config.schema.yaml")


DEMO = config["demo"]["enabled"]
MODEL_DIR = config["model"]["dir"].rstrip("/")
FOLDS = list(range(config["train"]["folds"]))
# configuration sections each stage's commands read from their --config file
STAGE_SECTIONS = {
    "preprocess": ["preprocess"],
    "train": ["preprocess", "model", "train"],
    "inference": ["model", "inference"],
    "longitudinal": ["track", "rano"],
}


# Ids can never match a path separator or a dot-dot; dates are ISO days.
wildcard_constraints:
    patient="[A-Za-z0-9][A-Za-z0-9_-]*",
    timepoint=r"\d{4}-\d{2}-\d{2}",
    case="[A-Za-z0-9][A-Za-z0-9_-]*",
    fold=r"\d+",
    stage="|".join(STAGE_SECTIONS),


def get_sample_sheet(wildcards=None):
    """Path of the sample sheet: the demo cohort's (built by a checkpoint) or config `samples`."""
    if DEMO:
        return f"{checkpoints.demo_cohort.get().output[0]}/samples.tsv"
    return config["samples"]


@functools.cache
def _index(path):
    """The validated sheet as lookup tables, built once so that input functions stay O(1) per job."""
    from brainmets.samplesheet import load_samples

    sheet = load_samples(path).reset_index()
    analysis = sheet[~sheet["training"]]
    rows = {(r["patient_id"], r["timepoint"]): r for r in analysis.to_dict("records")}
    timepoints = {p: sorted(g["timepoint"]) for p, g in analysis.groupby("patient_id", sort=True)}
    marked = analysis[analysis["baseline"]]
    baselines = dict(zip(marked["patient_id"], marked["timepoint"]))
    training = sheet[sheet["training"]]
    cases = {f"{r['patient_id']}_{r['timepoint']}": r for r in training.to_dict("records")}
    return rows, timepoints, baselines, cases


def _lookup():
    """Lookup tables of the current sample sheet."""
    return _index(get_sample_sheet())


def get_patients():
    """Patient ids of the analysis scans (training rows excluded), sorted."""
    return list(_lookup()[1])


def get_timepoints(patient):
    """ISO dates of one patient's analysis scans, oldest first."""
    timepoints = _lookup()[1]
    if patient not in timepoints:
        raise ValueError(f"patient {patient!r} is not in the sample sheet {get_sample_sheet()}")
    return timepoints[patient]


def _row(patient, timepoint):
    """The sample-sheet row of one analysis scan, as a dict."""
    rows = _lookup()[0]
    if (patient, timepoint) not in rows:
        raise ValueError(f"no scan {patient}/{timepoint} in the sample sheet {get_sample_sheet()}")
    return rows[(patient, timepoint)]


def get_image(wildcards):
    """Raw T1-CE image of the scan {patient}/{timepoint}."""
    return str(_row(wildcards.patient, wildcards.timepoint)["image"])


def get_baseline(wildcards):
    """Baseline timepoint of {patient}: the row marked `baseline`, else the earliest scan."""
    return _lookup()[2].get(wildcards.patient) or get_timepoints(wildcards.patient)[0]


def get_training_cases():
    """Ids of the training cases (`training` rows), as '<patient>_<timepoint>'."""
    return list(_lookup()[3])


def get_training_row(wildcards):
    """Sample-sheet row of training case {case}, as a dict."""
    cases = _lookup()[3]
    if wildcards.case not in cases:
        raise ValueError(f"no training case {wildcards.case} in the sample sheet {get_sample_sheet()}")
    return cases[wildcards.case]


def has_truth(patient, timepoint):
    """Whether the scan has a ground-truth mask in the sheet."""
    mask = _row(patient, timepoint).get("mask")
    return isinstance(mask, str) and mask != ""


def get_final_output(wildcards):
    """Every final target: per-patient responses, cohort tables and the report's inputs."""
    outputs = [f"results/{patient}/rano_response.tsv" for patient in get_patients()]
    outputs += ["results/cohort/rano_response.tsv"]
    return outputs


def get_truth(wildcards):
    """Ground-truth mask (native grid) of the scan {patient}/{timepoint}."""
    return str(_row(wildcards.patient, wildcards.timepoint)["mask"])


def get_evaluation_tables(wildcards):
    """Per-scan evaluation tables of every analysis scan that has a ground-truth mask."""
    return [
        f"results/{patient}/{timepoint}/evaluation.tsv"
        for patient in get_patients()
        for timepoint in get_timepoints(patient)
        if has_truth(patient, timepoint)
    ]



def write_stage_config(sections, path):
    """Write the configuration sections a stage reads as YAML, atomically."""
    from brainmets.io import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(dict(sections), sort_keys=False))
