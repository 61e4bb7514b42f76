import functools
import os
from pathlib import Path

import pandas as pd
from snakemake.exceptions import WorkflowError

from brainmets.config import check_config
from brainmets.errors import BrainmetsError

# workflow/schemas/config.schema.yaml, the schema the commands check their --config with: every key, its
# range and default. Checked here rather than by snakemake.utils.validate, so that an unknown key is one
# line naming its section and the closest known key, and so that remote jobs get the defaults too.
try:
    check_config(config, "config")
except BrainmetsError as error:
    raise WorkflowError(str(error)) from None


DEMO = config["demo"]["enabled"]
MODEL_DIR = config["model"]["dir"].rstrip("/")
# A model directory outside results/ that holds a model.json was trained elsewhere: it is used as it
# is (`ancient`, so its age never triggers reruns) and the training rules are left out. A model under
# results/ is the workflow's own: trained when missing or out of date like any other output.
MODEL_GIVEN = Path(MODEL_DIR, "model.json").is_file() and not Path(MODEL_DIR).resolve().is_relative_to(
    Path("results").resolve()
)
MODEL_JSON = ancient(f"{MODEL_DIR}/model.json") if MODEL_GIVEN else f"{MODEL_DIR}/model.json"
FOLDS = list(range(config["train"]["folds"]))
# the image headers of a sheet with more files than this are left to `brainmets check-samples` and to
# the jobs that read them: reading 5,000 headers would add seconds to every start of the workflow
HEADER_LIMIT = 1000
# configuration sections each stage's commands read from their --config file
STAGE_SECTIONS = {
    "preprocess": ["preprocess"],
    "train": ["preprocess", "model", "train"],
    "inference": ["model", "inference"],
    "track": ["track", "rano"],
    "rano": ["rano"],
    "review": ["review", "rano"],
    "dicomweb": ["dicomweb"],
}


# where archive studies are fetched to (series folders, and the instance cache beside them)
DICOMWEB_CACHE = config["dicomweb"]["cache"].rstrip("/")


# Ids can never match a path separator or a dot-dot; dates are ISO days.
wildcard_constraints:
    patient="[A-Za-z0-9][A-Za-z0-9_-]*",
    timepoint=r"\d{4}-\d{2}-\d{2}",
    case="[A-Za-z0-9][A-Za-z0-9_-]*",
    fold=r"\d+",
    stage="|".join(STAGE_SECTIONS),


@functools.cache
def gpu_visible():
    """Whether the machine that runs the jobs shows a GPU (CUDA_VISIBLE_DEVICES, else nvidia-smi); asked once."""
    from brainmets.gpu import uses_gpu

    return uses_gpu("auto")


def gpu_job(device):
    """Whether jobs whose device setting is `device` (auto | cpu | gpu) run on a GPU; auto on a cluster counts as one."""
    return device == "gpu" or (device == "auto" and (workflow.non_local_exec or gpu_visible()))


def get_sample_sheet(wildcards=None):
    """Path of the sample sheet (config `samples`)."""
    return config["samples"]


@functools.cache
def _index(path):
    """The validated sheet as lookup tables, built once so that input functions stay O(1) per job."""
    from brainmets.errors import BrainmetsError
    from brainmets.samplesheet import load_samples

    # the demo cohort's files are written by the demo rule: they need not exist yet
    produced = [config["demo"]["out"]] if DEMO else []
    try:
        sheet = load_samples(path, produced_dirs=produced, header_limit=HEADER_LIMIT).reset_index()
    except BrainmetsError as error:
        raise WorkflowError(str(error)) from None
    analysis = sheet[~sheet["training"]]
    rows = {(r["patient_id"], r["timepoint"]): r for r in analysis.to_dict("records")}
    timepoints = {p: sorted(g["timepoint"]) for p, g in analysis.groupby("patient_id", sort=True)}
    marked = analysis[analysis["baseline"]]
    baselines = dict(zip(marked["patient_id"], marked["timepoint"]))
    training = sheet[sheet["training"]]
    if DEMO:
        check_demo_sheet(path, timepoints, len(training))
    cases = {f"{r['patient_id']}_{r['timepoint']}": r for r in training.to_dict("records")}
    demo_files = [f for f in pd.concat([sheet["image"], sheet["mask"]]).dropna() if f.startswith(config["demo"]["out"])]
    scans = {(r["patient_id"], r["timepoint"]): r for r in sheet.to_dict("records")}
    return rows, timepoints, baselines, cases, demo_files, scans


def check_demo_sheet(path, timepoints, n_training):
    """Refuse a sheet that cannot be the demo cohort of the `demo` settings (counts of patients, visits, training)."""
    demo = config["demo"]
    visits = {len(t) for t in timepoints.values()}
    if len(timepoints) != demo["patients"] or visits - {demo["timepoints"]} or n_training != demo["train"]:
        raise WorkflowError(
            f"{path}: lists {len(timepoints)} patients with {sorted(visits)} visits and {n_training} training scans, "
            f"but config demo asks for {demo['patients']} x {demo['timepoints']} and {demo['train']}; run "
            f"`brainmets demo-cohort --out {demo['out']} ...` with those settings and copy its samples.tsv to {path}"
        )


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
        raise WorkflowError(f"patient {patient!r} is not in the sample sheet {get_sample_sheet()}")
    return timepoints[patient]


def _row(patient, timepoint):
    """The sample-sheet row of one analysis scan, as a dict."""
    rows = _lookup()[0]
    if (patient, timepoint) not in rows:
        raise WorkflowError(f"no scan {patient}/{timepoint} in the sample sheet {get_sample_sheet()}")
    return rows[(patient, timepoint)]


def get_demo_files():
    """Images and masks of the sample sheet that the demo rule writes."""
    return _lookup()[4]


def is_archive_scan(row):
    """Whether a sheet row names a study in the DICOMweb archive (study_uid) instead of an image."""
    return isinstance(row.get("study_uid"), str) and row["study_uid"] != ""


def is_dicom_scan(row):
    """Whether a sheet row's scan is a DICOM series, a folder or an archive study (converted by dicom_to_nifti)."""
    return is_archive_scan(row) or os.path.isdir(str(row["image"]))


def get_scan_image(row):
    """The NIfTI image of a sheet row: the file it names, or for a DICOM folder its conversion under results/."""
    if is_dicom_scan(row):
        return f"results/{row['patient_id']}/{row['timepoint']}/source/t1ce.nii.gz"
    return str(row["image"])


def _dicom_row(wildcards):
    """The sheet row (analysis or training) of scan {patient}/{timepoint}, refused unless its image is a DICOM folder."""
    row = _lookup()[5].get((wildcards.patient, wildcards.timepoint))
    if row is None or not is_dicom_scan(row):
        raise WorkflowError(
            f"{wildcards.patient}/{wildcards.timepoint}: no sample-sheet row whose image is a DICOM folder "
            f"in {get_sample_sheet()}"
        )
    return row


def get_dicom_folder(wildcards):
    """The DICOM series folder of scan {patient}/{timepoint}: sheet column image, or the series fetched from the archive."""
    row = _dicom_row(wildcards)
    if is_archive_scan(row):
        return get_fetched_series(wildcards)
    return str(row["image"])


def get_series_uid_option(wildcards):
    """`brainmets convert-dicom --series-uid` of scan {patient}/{timepoint} when the sheet names one; else empty."""
    uid = _dicom_row(wildcards).get("series_uid")
    return f"--series-uid {uid}" if isinstance(uid, str) and uid else ""


def get_preprocess_input(wildcards):
    """T1-CE image of the scan {patient}/{timepoint} (converted if DICOM) and, for a follow-up, its baseline's record."""
    return {
        "image": get_scan_image(_row(wildcards.patient, wildcards.timepoint)),
        "baseline": get_registration_baseline(wildcards),
    }


def skull_stripped_option(row):
    """`brainmets preprocess` option for a sheet row's skull_stripped cell; empty when the configuration decides."""
    declared = row.get("skull_stripped")
    return "" if declared is None else "--skull-stripped" if declared else "--no-skull-stripped"


def get_preprocess_options(wildcards):
    """`brainmets preprocess` options of the scan {patient}/{timepoint}: --baseline of a follow-up, skull_stripped."""
    baseline = get_registration_baseline(wildcards)
    option = skull_stripped_option(_row(wildcards.patient, wildcards.timepoint))
    return f"--baseline {baseline} {option}" if baseline else option


def get_training_skull_stripped_option(wildcards):
    """--skull-stripped / --no-skull-stripped as the sheet says for training case {case}."""
    return skull_stripped_option(get_training_row(wildcards))


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
        raise WorkflowError(f"no training case {wildcards.case} in the sample sheet {get_sample_sheet()}")
    return cases[wildcards.case]


def get_training_case_files(wildcards):
    """Prepared arrays of every training case (what `brainmets train --cases results/training` reads)."""
    return [f"results/training/{case}/{name}" for case in get_training_cases() for name in ("data.npy", "case.json")]


def get_training_image(wildcards):
    """T1-CE image of training case {case} (converted if DICOM)."""
    return get_scan_image(get_training_row(wildcards))


def get_training_mask(wildcards):
    """Ground-truth mask (native grid) of training case {case}."""
    return get_training_row(wildcards)["mask"]


def has_truth(patient, timepoint):
    """Whether the scan has a ground-truth mask in the sheet."""
    mask = _row(patient, timepoint).get("mask")
    return isinstance(mask, str) and mask != ""


def get_final_output():
    """Every final target: per-patient responses, cohort tables and the report's inputs."""
    outputs = [f"results/{patient}/rano_response.tsv" for patient in get_patients()]
    # Snakemake remakes a missing output only where a target or a later job asks for it: tracking asks
    # for each scan's segmentation, nothing asks for its picture
    outputs += [f"results/{patient}/{t}/overlay.png" for patient in get_patients() for t in get_timepoints(patient)]
    outputs += [f"results/{patient}/review.html" for patient in get_patients()]
    outputs += ["results/cohort/rano_response.tsv", "results/cohort/best_response.tsv"]
    outputs += get_dicom_outputs()
    outputs += get_dicomweb_receipts()
    if get_evaluation_tables(None):
        outputs += ["results/cohort/evaluation_summary.tsv"]
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


def get_patient_segmentations(wildcards):
    """Segmentations (patient space) of every visit of {patient}, oldest first."""
    return [f"results/{wildcards.patient}/{t}/segmentation.nii.gz" for t in get_timepoints(wildcards.patient)]


def get_patient_lesion_tables(wildcards):
    """Tracked lesion tables of every patient."""
    return [f"results/{patient}/lesions.tsv" for patient in get_patients()]


def get_review(wildcards):
    """The reviewer's decisions on {patient} (results/{patient}/review.tsv) when there are any, else nothing."""
    path = Path("results", wildcards.patient, "review.tsv")
    return [str(path)] if path.is_file() else []


def get_track_manifest(wildcards):
    """The tracking manifest of {patient} as printf text: timepoint and mask relative to the patient folder."""
    rows = "".join(f"{t}\\t{t}/segmentation.nii.gz\\n" for t in get_timepoints(wildcards.patient))
    return f"timepoint\\tmask\\n{rows}"


def get_registration_baseline(wildcards):
    """Preprocessing record of {patient}'s baseline, which a follow-up is registered to; none for the baseline."""
    baseline = get_baseline(wildcards)
    if wildcards.timepoint == baseline:
        return []
    return f"results/{wildcards.patient}/{baseline}/preprocessing.json"


def get_dicom_outputs():
    """The DICOM objects (SEG, SR, parametric maps) of every analysis scan whose image is a DICOM folder."""
    if not config["export"]["dicom"]:
        return []
    names = ("segmentation", "measurements", "probability", "total_entropy")
    return [
        f"results/{patient}/{t}/dicom/{name}.dcm"
        for patient in get_patients()
        for t in get_timepoints(patient)
        if is_dicom_scan(_row(patient, t))
        for name in names
    ]


def get_fetched_series(wildcards):
    """The folder rule dicomweb_fetch makes of scan {patient}/{timepoint}'s series in the archive."""
    if not config["dicomweb"]["url"]:
        raise WorkflowError(
            f"{get_sample_sheet()}: scan {wildcards.patient}/{wildcards.timepoint} names a study_uid, but "
            "dicomweb.url is empty; set the archive's DICOMweb URL in the configuration"
        )
    return f"{config['dicomweb']['cache'].rstrip('/')}/series/{wildcards.patient}/{wildcards.timepoint}"


def _archive_row(wildcards):
    """The sheet row of scan {patient}/{timepoint}, refused unless it names an archive study."""
    row = _lookup()[5].get((wildcards.patient, wildcards.timepoint))
    if row is None or not is_archive_scan(row):
        raise WorkflowError(f"{wildcards.patient}/{wildcards.timepoint}: no sample-sheet row with a study_uid")
    return row


def get_study_uid(wildcards):
    """StudyInstanceUID of scan {patient}/{timepoint} (sheet column study_uid)."""
    return _archive_row(wildcards)["study_uid"]


def get_archive_series_option(wildcards):
    """`brainmets dicomweb-fetch --series-uid` when the sheet names the series; else empty (the fetch picks it)."""
    uid = _archive_row(wildcards).get("series_uid")
    return f"--series-uid {uid}" if isinstance(uid, str) and uid else ""


def get_dicomweb_receipts():
    """With dicomweb.send, the archive's receipt of every analysis scan whose outputs are DICOM."""
    if not config["dicomweb"]["send"]:
        return []
    if not config["dicomweb"]["url"]:
        raise WorkflowError("dicomweb.send is true but dicomweb.url is empty; set the archive's DICOMweb URL")
    return [
        f"results/{patient}/{t}/dicom/sent.json"
        for patient in get_patients()
        for t in get_timepoints(patient)
        if is_dicom_scan(_row(patient, t))
    ]
