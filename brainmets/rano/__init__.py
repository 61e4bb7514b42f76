"""Lesion measurement, longitudinal tracking and RANO-BM response assessment.

- `measure`: per-lesion volume, longest/perpendicular axial diameters and measurability.
- `track`: persistent lesion ids across the timepoints of one patient.
- `rano`: RANO-BM target, non-target, new-lesion and overall response per visit.
- `pictures`: the per-patient trajectory and lesion-timeline figures.
"""
