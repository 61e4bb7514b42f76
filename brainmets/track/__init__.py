"""Lesion tracking: persistent lesion ids across the visits of one patient (`brainmets track`).

Each tracked lesion is measured by `brainmets.rano.measure`, so the lesion table carries RANO-BM diameters.
"""
