# DICOM series in: a sample-sheet image that is a folder is converted once (dcm2niix) to
# results/{patient}/{timepoint}/source/t1ce.nii.gz with dcm2niix's sidecar t1ce.json beside it; every
# later rule reads the converted image (get_scan_image), on the source series' grid. NIfTI scans need
# no job here.


rule dicom_to_nifti:
    input:
        series=get_dicom_folder,
    output:
        image="results/{patient}/{timepoint}/source/t1ce.nii.gz",
        sidecar="results/{patient}/{timepoint}/source/t1ce.json",
    log:
        "logs/dicom_to_nifti/{patient}/{timepoint}.log",
    benchmark:
        "benchmarks/out/dicom_to_nifti/{patient}/{timepoint}.tsv"
    conda:
        "../envs/dicom-conversion.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        series_uid=get_series_uid_option,
    shell:
        "brainmets convert-dicom {input.series:q} --out {output.image} {params.series_uid} > {log} 2>&1"
