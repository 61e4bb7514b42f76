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


# A sample-sheet row that names an archive study (study_uid) is fetched once into
# {dicomweb.cache}/series/{patient}/{timepoint} (QIDO-RS, WADO-RS; resumable through the instance cache
# beside it) and then goes through the chain like any DICOM series folder. Credentials come from the
# environment of the run (README, "Working with a PACS"), never from the configuration; the stage
# configuration is `ancient`, so changing a transport setting (timeouts, retries) refetches nothing.
rule dicomweb_fetch:
    input:
        config=ancient("results/config/dicomweb.yaml"),
    output:
        series=directory(f"{DICOMWEB_CACHE}/series/{{patient}}/{{timepoint}}"),
    log:
        "logs/dicomweb_fetch/{patient}/{timepoint}.log",
    benchmark:
        "benchmarks/out/dicomweb_fetch/{patient}/{timepoint}.tsv"
    conda:
        "../envs/dicomweb.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=60,
    params:
        study_uid=get_study_uid,
        series_uid=get_archive_series_option,
    shell:
        # the instance cache is the configuration's dicomweb.cache, beside the series folders
        "brainmets dicomweb-fetch --study-uid {params.study_uid} {params.series_uid} --out {output.series}"
        " --config {input.config} > {log} 2>&1"
