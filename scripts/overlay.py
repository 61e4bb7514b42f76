"""Per-scan report picture: predicted lesions (outline) and total entropy (colour) over the T1-CE.

Snakemake `script:` of rule `overlay` (rules/report.smk): reads the scan's patient-space files and
draws them with brainmets.figures.three_plane_figure.
"""

import numpy as np

from brainmets.figures import three_plane_figure
from brainmets.io import load_nifti, voxel_spacing_mm

snakemake = globals()["snakemake"]  # provided by Snakemake's script directive
image = load_nifti(snakemake.input.image)
segmentation = np.asarray(load_nifti(snakemake.input.segmentation, allow_constant=True).dataobj)
entropy = np.asarray(load_nifti(snakemake.input.entropy, allow_constant=True).dataobj, dtype=np.float32)
three_plane_figure(
    np.asarray(image.dataobj, dtype=np.float32),
    snakemake.output[0],
    spacing_mm=voxel_spacing_mm(image.affine),
    outline=segmentation,
    overlay=entropy,
    overlay_range=(0.0, 1.0),
    overlay_label="total entropy (bits)",
    title=f"{snakemake.wildcards.patient} {snakemake.wildcards.timepoint}",
)
