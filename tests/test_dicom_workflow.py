"""The workflow on a sheet whose scans are DICOM folders: one conversion job per DICOM scan, preprocessing reads it."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from brainmets.dicom.series import find_series
from brainmets.dicom.series_writer import write_mr_series

from slurm.project import dry_run_jobs, make_project, snakemake

pytestmark = pytest.mark.workflow

STUDY = dict(
    patient_id="P1",
    patient_name="P1",
    study_instance_uid="1.2.826.0.1.3680043.8.498.20",
    study_date="20240115",
    frame_of_reference_uid="1.2.826.0.1.3680043.8.498.21",
)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated project whose P1 first visit is a DICOM folder with a post- and a pre-contrast series."""
    root = make_project(tmp_path_factory.mktemp("project"), patients=2, timepoints=2, training=2, folds=2)
    nifti = root / "data" / "P1" / "2024-01-15.nii.gz"
    folder = root / "dicom" / "P1" / "20240115"
    image = nib.load(nifti)
    image = nib.Nifti1Image(np.rint(np.asarray(image.dataobj) * 10).astype(np.int16), image.affine)
    write_mr_series(image, folder / "7", series_number=7, series_description="T1 POST", contrast_agent="Gd", **STUDY)
    write_mr_series(image, folder / "5", series_number=5, series_description="T1", contrast_agent=None, **STUDY)
    uid = find_series(folder / "7").uid
    sheet = root / "config" / "samples.tsv"
    lines = sheet.read_text().splitlines()
    out = [lines[0] + "\tseries_uid"]
    for line in lines[1:]:
        cells = line.split("\t")
        if cells[0] == "P1" and cells[1] == "2024-01-15":
            cells[2], cells[3] = str(folder), ""  # no ground truth for the DICOM scan
            out.append("\t".join(cells) + f"\t{uid}")
        else:
            out.append(line + "\t")
    sheet.write_text("\n".join(out) + "\n")
    return root


def test_only_the_dicom_scan_gets_a_conversion_job_and_preprocessing_reads_it(project: Path) -> None:
    """One dicom_to_nifti job (for P1/2024-01-15); that scan's preprocessing input is the converted image."""
    jobs = dry_run_jobs(project)
    conversions = [w for rule, w in jobs if rule == "dicom_to_nifti"]
    assert conversions == [{"patient": "P1", "timepoint": "2024-01-15"}]
    assert Counter(rule for rule, _ in jobs)["preprocess"] == 4
    shown = snakemake(project, "results/P1/2024-01-15/preprocessing.json", "-n", "-p")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert re.search(r"brainmets preprocess --image results/P1/2024-01-15/source/t1ce\.nii\.gz", shown.stdout)
    assert "--series-uid" in shown.stdout


def test_the_conversion_job_writes_the_image_and_its_sidecar(project: Path) -> None:
    """The rule converts the chosen series: the pre-contrast one beside it is left alone."""
    result = snakemake(project, "results/P1/2024-01-15/source/t1ce.nii.gz", "--cores", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    source = project / "results" / "P1" / "2024-01-15" / "source"
    assert sorted(p.name for p in source.iterdir()) == ["t1ce.json", "t1ce.nii.gz"]
    assert '"SeriesNumber": 7' in (source / "t1ce.json").read_text()
    original = nib.load(project / "data" / "P1" / "2024-01-15.nii.gz")
    converted = nib.as_closest_canonical(nib.load(source / "t1ce.nii.gz"))
    np.testing.assert_allclose(converted.affine, nib.as_closest_canonical(original).affine, atol=1e-4)
