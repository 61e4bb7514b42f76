"""DICOM checks shared by the tests: dcm2niix conversion and the dciodvfy validator (Debian dicom3tools)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import nibabel as nib
from brainmets.dicom.series import dcm2niix_command


def ensure_dciodvfy() -> str:
    """Install dicom3tools (Debian) if `dciodvfy` is missing; returns its path. System tests only."""
    found = shutil.which("dciodvfy")
    if found:
        return found
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "install", "-y", "-q", "dicom3tools"], check=True, env=env, capture_output=True)
    found = shutil.which("dciodvfy")
    assert found, "dicom3tools installed but dciodvfy is not on PATH"
    return found


def dciodvfy_errors(path: Path) -> list[str]:
    """The lines dciodvfy reports as errors for one DICOM file (warnings left out)."""
    result = subprocess.run([ensure_dciodvfy(), str(path)], capture_output=True, text=True)
    lines = (result.stdout + result.stderr).splitlines()
    return [line for line in lines if line.startswith("Error")]


def dcm2niix_image(series_dir: Path, out_dir: Path) -> nib.Nifti1Image:
    """The one NIfTI image dcm2niix makes of a series folder (converted into `out_dir`, loaded in memory)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [dcm2niix_command(), "-z", "n", "-b", "n", "-f", "image", "-o", str(out_dir), str(series_dir)],
        check=True,
        capture_output=True,
    )
    made = sorted(out_dir.glob("*.nii"))
    assert len(made) == 1, f"dcm2niix made {len(made)} images of {series_dir}: {made}"
    image = nib.load(made[0])
    return nib.Nifti1Image(image.get_fdata(), image.affine)
