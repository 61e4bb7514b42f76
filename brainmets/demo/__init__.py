"""The synthetic demo cohort: realistic T1-CE heads with metastases, scanned over time, with exact truth.

`brainmets demo-cohort --out DIR [--patients N --timepoints T --train N --seed S --scale F --workers W]`
writes (dates are ISO visit dates; longitudinal patients are patient01..., training subjects train01...):

    DIR/samples.tsv                                   the sample sheet (paths prefixed with DIR as given)
    DIR/<subject>/<date>/t1ce.nii.gz                  the scan (int16, the scan's own oblique grid)
    DIR/<subject>/<date>/lesions.nii.gz               truth label map on the scan's grid (values = lesion ids)
    DIR/<subject>/<date>/brain_mask.nii.gz            truth brain mask on the scan's grid
    DIR/truth/<subject>/<date>_lesions.nii.gz         truth label map on the subject's common grid
    DIR/truth/<subject>/brain_mask.nii.gz             truth brain mask on the common grid
    DIR/truth/poses.tsv                               per scan: protocol, orientation, spacing_mm, shape,
                                                      rotation_deg, shift_mm, common_to_scanner (4x4 row-major,
                                                      16 numbers) and common_grid (path of the common-grid map)
    DIR/truth/lesions.tsv                             tracked truth lesion table (the `track` format), measured
                                                      on the common grid: patient_id, timepoint, lesion_id,
                                                      component, event, merged_into, volume_ml,
                                                      longest_diameter_mm, perpendicular_diameter_mm,
                                                      n_axial_slices, ld_slice, measurable, centroid_{x,y,z}_mm
    DIR/truth/expected_response.tsv                   RANO-BM response of the truth table (default thresholds)
    DIR/truth/scenarios.tsv                           per patient: scenario, description, n_baseline_lesions,
                                                      timepoints, intended_response (BL,PR,... per visit,
                                                      empty after the first PD)
    DIR/dicom/<patient>/<YYYYMMDD>/<series>/IM*.dcm   only with --dicom: each visit of the longitudinal
                                                      patients as a DICOM study (localiser, non-contrast T1,
                                                      post-contrast T1 = t1ce.nii.gz); see brainmets.demo.dicom

The common grid of a subject is 1 mm (x `--scale`) isotropic in the subject's anatomical frame before
any scan pose; all its timepoints share it. `common_to_scanner` maps that frame's mm coordinates to
the scan's scanner (world) mm coordinates, so a scan's voxel -> common-frame map is
inv(common_to_scanner) @ scan affine. Lesion ids persist over time; a lesion absorbed by another
carries the absorber's (lower) id in the label maps.
"""
