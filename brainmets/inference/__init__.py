"""Inference: sliding-window prediction, test-time mirroring, fold ensembling and voxel-wise uncertainty.

`sliding` tiles a volume into overlapping patches and blends them with a Gaussian importance map,
`ensemble` runs every member (fold x mirror) of a trained model over a scan and keeps running sums,
`uncertainty` turns those sums into probability and entropy maps and a per-lesion table, and
`pipeline` wires it to files (`brainmets predict`, `brainmets segment`).
"""
