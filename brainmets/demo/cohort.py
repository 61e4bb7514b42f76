"""Generate the demo cohort: longitudinal patients, a training set, the sample sheet and the ground truth.

Each subject (longitudinal patient or training subject) has its own random stream derived from the
seed, its kind and its number, so a subject is the same whatever the size of the cohort.
"""

from __future__ import annotations

import datetime as dt
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from brainmets.demo import acquisition, head, lesions, scenarios, truth
from brainmets.demo.settings import DemoSettings
from brainmets.errors import BrainmetsError
from brainmets.io import save_nifti, write_tsv

#: first possible baseline date of a demo patient
FIRST_DATE = dt.date(2024, 1, 1)
#: follow-up interval range (days)
INTERVAL_DAYS = (42, 84)
#: columns of the sample sheet the generator writes
SAMPLE_COLUMNS = [
    "patient_id",
    "timepoint",
    "image",
    "mask",
    "training",
    "baseline",
    "steroid_dose_mg",
    "clinical_status",
]


@dataclass(frozen=True)
class Subject:
    """One demo subject: its id, kind ("longitudinal" or "training"), number and number of scans."""

    subject_id: str
    kind: str
    number: int
    n_timepoints: int

    @property
    def scenario(self) -> scenarios.Scenario | None:
        """The subject's longitudinal scenario (None for training subjects)."""
        return scenarios.scenario_for(self.number) if self.kind == "longitudinal" else None


def subjects(patients: int, timepoints: int, train: int) -> list[Subject]:
    """The cohort's subjects: `patients` longitudinal ones (patient01...) then `train` training ones (train01...)."""
    width = max(2, len(str(max(patients, train, 1))))
    longitudinal = [Subject(f"patient{i + 1:0{width}d}", "longitudinal", i, timepoints) for i in range(patients)]
    training = [Subject(f"train{i + 1:0{width}d}", "training", i, 1) for i in range(train)]
    return longitudinal + training


def visit_dates(rng: np.random.Generator, n: int) -> list[str]:
    """ISO dates of `n` visits: a baseline in 2024, then follow-ups 6-12 weeks apart."""
    day = FIRST_DATE + dt.timedelta(days=int(rng.integers(0, 366)))
    dates = [day]
    for _ in range(n - 1):
        dates.append(dates[-1] + dt.timedelta(days=int(rng.integers(INTERVAL_DAYS[0], INTERVAL_DAYS[1] + 1))))
    return [d.isoformat() for d in dates]


def subject_dates(subject: Subject, seed: int) -> list[str]:
    """The ISO visit dates of a subject: drawn from their own stream, so the sheet needs no image simulation."""
    kind_code = 0 if subject.kind == "longitudinal" else 1
    return visit_dates(np.random.default_rng([seed, kind_code, subject.number, 1]), subject.n_timepoints)


def sample_sheet(out: str | os.PathLike[str], patients: int, timepoints: int, train: int, seed: int) -> pd.DataFrame:
    """The sample sheet `generate_cohort` writes for these settings (paths prefixed with `out` as given)."""
    prefix = _prefix(out)
    rows = []
    for subject in subjects(patients, timepoints, train):
        for t, date in enumerate(subject_dates(subject, seed)):
            dose, status = clinical_values(subject, t)
            folder = prefix / subject.subject_id / date
            rows.append(
                {
                    "patient_id": subject.subject_id,
                    "timepoint": date,
                    "image": str(folder / "t1ce.nii.gz"),
                    "mask": str(folder / "lesions.nii.gz"),
                    "training": "true" if subject.kind == "training" else "false",
                    "baseline": "true" if (t == 0 and subject.kind == "longitudinal") else "false",
                    "steroid_dose_mg": "" if dose is None else f"{dose:g}",
                    "clinical_status": status or "",
                }
            )
    return pd.DataFrame(rows, columns=SAMPLE_COLUMNS)


def _prefix(out: str | os.PathLike[str]) -> PurePosixPath:
    """The path prefix of the sheet's files: `out` as given, normalised, with forward slashes."""
    return PurePosixPath(Path(os.path.normpath(out)).as_posix())


def clinical_values(subject: Subject, timepoint: int) -> tuple[float | None, str | None]:
    """(steroid dose mg, clinical status) of a scan; given for every second longitudinal patient, else (None, None).

    Values agree with the scenario's intended response (no steroids at an intended CR, a dose not
    above baseline at PR, status "worse" only at intended progression).
    """
    scenario = subject.scenario
    if scenario is None or subject.number % 2 == 0:
        return None, None
    intended = scenario.intended_response(timepoint)
    dose = 4.0 if timepoint == 0 else (0.0 if intended == "CR" else 2.0)
    status = {"BL": "stable", "CR": "improved", "PR": "improved", "SD": "stable", "PD": "worse"}[intended]
    return dose, status


def _head_corners(template: head.Head) -> np.ndarray:
    """The 8 corners (mm) of the bounding box of the head (non-background voxels) of a template."""
    index = np.argwhere(template.intensity > 0.02)
    low, high = index.min(axis=0), index.max(axis=0)
    corners = np.array(np.meshgrid(*zip(low, high, strict=True), indexing="ij")).reshape(3, -1).T
    return corners @ template.affine[:3, :3].T + template.affine[:3, 3]


def generate_subject(
    subject: Subject, out: Path, prefix: PurePosixPath, seed: int, scale: float, dicom: bool = False
) -> dict[str, pd.DataFrame]:
    """Simulate and write every scan of one subject; returns its rows of the sample sheet and truth tables.

    With `dicom`, a longitudinal patient's visits are also written as DICOM studies (`brainmets.demo.dicom`);
    their extra images draw from their own random stream, so the NIfTI cohort is the same either way.
    """
    kind_code = 0 if subject.kind == "longitudinal" else 1
    rng = np.random.default_rng([seed, kind_code, subject.number])
    template = head.template_head(scale)
    anatomy = head.warp_head(template, rng)
    scenario = subject.scenario
    designed = scenarios.design_lesions(scenario, subject.n_timepoints, anatomy, rng, min_diameter_mm=3.0 * scale)
    if not designed:
        raise BrainmetsError(f"demo subject {subject.subject_id}: no lesion fits inside the brain; try another --seed")
    dates = subject_dates(subject, seed)
    corners = _head_corners(anatomy)
    truth_dir = out / "truth" / subject.subject_id
    save_nifti(anatomy.brain, anatomy.affine, truth_dir / "brain_mask.nii.gz")

    poses, measurements, merges = [], [], []
    for t, date in enumerate(dates):
        common_labels, merged = truth.merge_touching(
            lesions.rasterise(designed, t, anatomy.affine, anatomy.brain.shape)
        )
        measurements.append(truth.measure_timepoint(common_labels, anatomy.affine))
        merges.append(merged)
        save_nifti(common_labels, anatomy.affine, truth_dir / f"{date}_lesions.nii.gz")

        image = anatomy.intensity.copy()
        lesions.paint(image, designed, t, anatomy.affine, rng)
        scan = acquisition.plan_scan(rng, corners, spacing_scale=scale)
        scan_dir = out / subject.subject_id / date
        post = acquisition.acquire(image, anatomy.affine, scan, rng)
        save_nifti(post, scan.affine, scan_dir / "t1ce.nii.gz")
        if dicom and subject.kind == "longitudinal":
            from brainmets.demo.dicom import write_demo_study

            extra = np.random.default_rng([seed, kind_code, subject.number, t, 1])
            pre = acquisition.acquire(anatomy.intensity, anatomy.affine, scan, extra)
            write_demo_study(out, subject.subject_id, date, t, post, pre, scan.affine, scan.protocol)
        native = truth.apply_merges(lesions.rasterise(designed, t, scan.voxel_to_common, scan.shape), merged)
        save_nifti(native, scan.affine, scan_dir / "lesions.nii.gz")
        brain = acquisition.resample_to_scan(anatomy.brain.astype(np.uint8), anatomy.affine, scan, order=0)
        save_nifti(brain, scan.affine, scan_dir / "brain_mask.nii.gz")

        poses.append(
            {
                "patient_id": subject.subject_id,
                "timepoint": date,
                "protocol": scan.protocol,
                "orientation": scan.orientation,
                "spacing_mm": " ".join(f"{s:.6g}" for s in scan.spacing_mm),
                "shape": " ".join(str(n) for n in scan.shape),
                "rotation_deg": round(scan.rotation_deg, 4),
                "shift_mm": round(scan.shift_mm, 4),
                "common_to_scanner": " ".join(f"{v:.10g}" for v in scan.pose.ravel()),
                "common_grid": str(prefix / "truth" / subject.subject_id / f"{date}_lesions.nii.gz"),
            }
        )
    table = truth.lesion_table(subject.subject_id, dates, measurements, merges)
    result = {"poses": pd.DataFrame(poses), "lesions": table}
    if scenario is not None:
        result["scenarios"] = pd.DataFrame(
            [
                {
                    "patient_id": subject.subject_id,
                    "scenario": scenario.name,
                    "description": scenario.description,
                    "n_baseline_lesions": int((table["timepoint"] == dates[0]).sum()),
                    "timepoints": ",".join(dates),
                    "intended_response": ",".join(scenario.expected_response(t) for t in range(len(dates))),
                }
            ]
        )
    return result


def _run(job: tuple[Subject, Path, PurePosixPath, int, float, bool]) -> dict[str, pd.DataFrame]:
    """Process-pool entry point for `generate_subject`."""
    return generate_subject(*job)


def generate_cohort(out: str | os.PathLike[str], settings: DemoSettings, workers: int = 1, dicom: bool = False) -> Path:
    """Write the demo cohort under `out` (layout in `brainmets.demo`); returns the path of its sample sheet.

    With `dicom`, every visit of the longitudinal patients is also written as a DICOM study under
    `out`/dicom (`brainmets.demo.dicom`: localiser, non-contrast and post-contrast T1).

    `settings.scale` multiplies every voxel size (and the smallest lesion diameter, 3 mm): 2 gives a cohort
    8x smaller for fast tests. Paths in the sample sheet are `out` as given joined with the file's place.
    """
    patients, timepoints, train = settings.patients, settings.timepoints, settings.train
    seed, scale = settings.seed, settings.scale
    if patients + train == 0:
        raise BrainmetsError(f"demo-cohort: need at least one subject, got --patients {patients} --train {train}")
    root = Path(out)
    prefix = _prefix(out)
    head.template_head(scale)  # build once before any worker starts, so forked workers share it
    jobs = [(s, root, prefix, seed, scale, dicom) for s in subjects(patients, timepoints, train)]
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("fork")) as pool:
            results = list(pool.map(_run, jobs))
    else:
        results = [_run(job) for job in jobs]

    def gather(key: str) -> pd.DataFrame:
        """One table from every subject's part (records joined, so all-empty parts keep the dtypes)."""
        parts = [r[key] for r in results if key in r]
        records = [record for part in parts for record in part.to_dict("records")]
        return pd.DataFrame(records, columns=parts[0].columns).astype(parts[0].dtypes.to_dict())

    lesion_rows = gather("lesions")
    longitudinal_ids = [s.subject_id for s, *_ in jobs if s.kind == "longitudinal"]
    sheet = sample_sheet(out, patients, timepoints, train, seed)
    write_tsv(gather("poses"), root / "truth" / "poses.tsv")
    write_tsv(lesion_rows, root / "truth" / "lesions.tsv")
    if longitudinal_ids:
        longitudinal = lesion_rows[lesion_rows["patient_id"].isin(longitudinal_ids)]
        clinical = sheet[sheet["clinical_status"] != ""]
        response = truth.expected_response(longitudinal, clinical if len(clinical) else None)
        write_tsv(response, root / "truth" / "expected_response.tsv")
        write_tsv(gather("scenarios"), root / "truth" / "scenarios.tsv")
    return write_tsv(sheet, root / "samples.tsv")
