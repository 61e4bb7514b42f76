# Preprocessing of each scan into patient space (the baseline's grid): RAS, resampling, skull stripping,
# N4, registration of follow-ups to the baseline, z-score, crop.
# preprocessing.json is written last by `brainmets preprocess` and marks a complete scan directory.


rule preprocess:
    input:
        unpack(get_preprocess_input),
        config="results/config/preprocess.yaml",
    output:
        # the record is written last and names the scan's other files (t1ce.nii.gz, brain.nii.gz,
        # brain_mask.nii.gz, t1ce_zscore.nii.gz, to_patient_space.mat, from_patient_space.mat): the one
        # file later rules depend on, so that large cohorts have fewer files to plan
        record="results/{patient}/{timepoint}/preprocessing.json",
        qc=report(
            "results/{patient}/{timepoint}/preprocessing_qc.png",
            caption="../workflow/report/preprocessing_qc.rst",
            category="Scans",
            subcategory="{patient}",
            labels={"patient": "{patient}", "timepoint": "{timepoint}", "figure": "preprocessing QC"},
        ),
    log:
        "logs/preprocess/{patient}/{timepoint}.log",
    benchmark:
        "benchmarks/out/preprocess/{patient}/{timepoint}.tsv"
    conda:
        "../envs/preprocessing.yaml"
    # one core per scan: most steps run on one thread (2 cores gave 1.2x), so parallel scans use cores best
    threads: 1
    resources:
        mem_mb=6000,
        runtime=30,
    params:
        options=get_preprocess_options,
    shell:
        "brainmets preprocess --image {input.image} {params.options} --config {input.config}"
        " --threads {threads}"
        " --out-dir $(dirname {output.record}) > {log} 2>&1"


rule preprocess_training:
    input:
        image=get_training_image,
        mask=get_training_mask,
        config="results/config/preprocess.yaml",
    output:
        zscore="results/training/{case}/t1ce_zscore.nii.gz",
        label="results/training/{case}/lesions.nii.gz",
        record="results/training/{case}/preprocessing.json",
    log:
        "logs/preprocess_training/{case}.log",
    benchmark:
        "benchmarks/out/preprocess_training/{case}.tsv"
    # the training chain first (see rule train)
    priority: 1
    conda:
        "../envs/preprocessing.yaml"
    threads: 1
    resources:
        mem_mb=6000,
        runtime=30,
    params:
        skull_stripped=get_training_skull_stripped_option,
    shell:
        "brainmets preprocess --image {input.image} --mask {input.mask} {params.skull_stripped} --config {input.config}"
        " --threads {threads}"
        " --out-dir $(dirname {output.record}) > {log} 2>&1"


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
