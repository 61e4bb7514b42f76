"""Per-scan report picture: predicted lesions (outline) and total entropy (colour) over the T1-CE.

Run by rule `predict` (rules/infer.smk) after the native maps:
    python scripts/overlay.py IMAGE SEGMENTATION ENTROPY OUT --title TEXT
All inputs are the scan's patient-space files; drawing is brainmets.figures.three_plane_figure.
"""

import argparse

import numpy as np
from brainmets.figures import three_plane_figure
from brainmets.io import load_nifti, voxel_spacing_mm

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
for name in ("image", "segmentation", "entropy", "out"):
    parser.add_argument(name)
parser.add_argument("--title", default="")
args = parser.parse_args()
image = load_nifti(args.image)
three_plane_figure(
    np.asarray(image.dataobj, dtype=np.float32),
    args.out,
    spacing_mm=voxel_spacing_mm(image.affine),
    outline=np.asarray(load_nifti(args.segmentation, allow_constant=True).dataobj),
    overlay=np.asarray(load_nifti(args.entropy, allow_constant=True).dataobj, dtype=np.float32),
    overlay_range=(0.0, 1.0),
    overlay_label="total entropy (bits)",
    title=args.title,
)
