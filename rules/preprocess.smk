# Preprocessing of each scan into patient space (the baseline's grid): RAS, resampling, skull stripping,
# N4, registration of follow-ups to the baseline, z-score, crop; and the way back to the native grid.
# preprocessing.json is written last by `brainmets preprocess` and marks a complete scan directory.


rule preprocess:
    input:
        image=get_image,
        baseline=get_registration_baseline,
        config="results/config/preprocess.yaml",
    output:
        image="results/{patient}/{timepoint}/t1ce.nii.gz",
        zscore="results/{patient}/{timepoint}/t1ce_zscore.nii.gz",
        brain_mask="results/{patient}/{timepoint}/brain_mask.nii.gz",
        # also to_patient_space.mat and from_patient_space.mat, named in the record, which is written last
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
        baseline=lambda wildcards, input: f"--baseline {input.baseline}" if input.baseline else "",
        skull_stripped=get_skull_stripped_option,
    shell:
        "brainmets preprocess --image {input.image} {params.baseline} {params.skull_stripped} --config {input.config}"
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


rule native_and_overlay:
    # one job per scan for both (the maps on the native grid, and the report picture in patient space):
    # one job fewer per scan keeps the DAG of large cohorts quick to build
    input:
        image="results/{patient}/{timepoint}/t1ce.nii.gz",
        segmentation="results/{patient}/{timepoint}/segmentation.nii.gz",
        probability="results/{patient}/{timepoint}/probability.nii.gz",
        entropy="results/{patient}/{timepoint}/uncertainty_total_entropy.nii.gz",
        record="results/{patient}/{timepoint}/preprocessing.json",
        script=workflow.source_path("../scripts/overlay.py"),
    output:
        segmentation="results/{patient}/{timepoint}/native/segmentation.nii.gz",
        probability="results/{patient}/{timepoint}/native/probability.nii.gz",
        entropy="results/{patient}/{timepoint}/native/uncertainty_total_entropy.nii.gz",
        overlay=report(
            "results/{patient}/{timepoint}/overlay.png",
            caption="../workflow/report/overlay.rst",
            category="Scans",
            subcategory="{patient}",
            labels={"patient": "{patient}", "timepoint": "{timepoint}", "figure": "lesions and uncertainty"},
        ),
    log:
        "logs/native_and_overlay/{patient}/{timepoint}.log",
    benchmark:
        "benchmarks/out/native_and_overlay/{patient}/{timepoint}.tsv"
    conda:
        "../envs/preprocessing.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=10,
    shell:
        "(brainmets to-native --scan-dir $(dirname {input.record}) --labels {input.segmentation}"
        " --maps {input.probability} {input.entropy} --out-dir $(dirname {output.segmentation})"
        " && python {input.script} {input.image} {input.segmentation} {input.entropy} {output.overlay}"
        " --title '{wildcards.patient} {wildcards.timepoint}') > {log} 2>&1"
