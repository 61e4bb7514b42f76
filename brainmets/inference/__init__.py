"""Inference: sliding-window prediction, test-time mirroring, fold ensembling and voxel-wise uncertainty.

`sliding` tiles a volume into overlapping patches and blends them with a Gaussian importance map,
`ensemble` runs every member (fold x mirroring) of a trained model over a scan and keeps running
sums, `uncertainty` turns those sums into probability and entropy maps and a per-lesion table,
`runtime` compiles each fold's network for the configured device, `pipeline` wires one preprocessed
scan to its files (`brainmets predict`) and `segment` runs raw scans end to end (`brainmets segment`).
"""
