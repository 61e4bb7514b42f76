"""Segmentation evaluation: per-scan scores by the official BraTS definitions, summaries per cohort.

`metrics` holds the BraTS-2023 lesion-wise scores (`brats2023`), `brats2025` those of the BraTS-evaluation
package, `surface` the surface distances both use; `cohort` pools per-scan tables into the cohort summary
and figure, `cli_evaluate` and `cli_evaluate_cohort` are the two commands.
"""
