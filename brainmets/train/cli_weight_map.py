"""`brainmets weight-map`: the boundary-weight map of a lesion mask, as NIfTI on the mask's grid."""

from __future__ import annotations

import argparse

HELP = "Write the cross-entropy boundary-weight map of a lesion mask (formula in brainmets.train.weightmap)"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the command's arguments."""
    parser.add_argument("--label", required=True, help="lesion mask (NIfTI; voxels > 0 are lesion)")
    parser.add_argument("--out", required=True, help="weight map to write (NIfTI, float32, >= 1)")
    parser.add_argument("--config", help="configuration whose train.weight_map sets the parameters (default: built-in)")


def run(args: argparse.Namespace) -> None:
    """Compute and write the weight map."""
    import numpy as np

    from brainmets.io import load_nifti, save_nifti, voxel_spacing_mm
    from brainmets.train.settings import load_settings
    from brainmets.train.weightmap import boundary_weight_map

    params = load_settings(args.config).weight_map if args.config else None
    img = load_nifti(args.label, allow_constant=True)
    weights = boundary_weight_map(np.asarray(img.dataobj), voxel_spacing_mm(img.affine), params)
    save_nifti(weights, img.affine, args.out)
