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
