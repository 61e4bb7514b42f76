"""Inference: sliding-window prediction, test-time mirroring, fold ensembling and voxel-wise uncertainty.

`ensemble` runs every member (fold x mirroring) of a trained model over a scan with the sliding window
of `brainmets.network.sliding` and keeps running sums, `uncertainty` turns those sums into probability
and entropy maps and a per-lesion table, `runtime` compiles each fold's network for the configured
device, `published` is the published system's recipe, `pipeline` wires one preprocessed scan to its
files (`brainmets predict`) and `segment` runs raw scans end to end (`brainmets segment`).
"""
