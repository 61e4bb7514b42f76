"""RANO-BM: lesion measurement, response assessment per visit and the per-patient pictures.

- `measure`: per-lesion volume, longest/perpendicular axial diameters and measurability (`brainmets measure`).
- `rano`: RANO-BM target, non-target, new-lesion and overall response per visit (`brainmets rano`).
- `pictures`: the per-patient trajectory and lesion-timeline figures `brainmets rano` draws.
"""
