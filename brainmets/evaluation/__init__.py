"""Segmentation evaluation: voxel-wise and BraTS-METS lesion-wise metrics per scan, summaries per cohort.

`metrics` holds the pure functions over boolean arrays and voxel spacing, `cohort` pools per-scan
tables into the cohort summary and figure, `cli` and `cli_cohort` are the two commands.
"""
