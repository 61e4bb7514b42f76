# Preprocessing of each scan into patient space (the baseline's grid): RAS, resampling, N4, skull
# stripping, registration of follow-ups to the baseline, z-score; and the way back to the native grid.


rule preprocess:
    input:
        image=get_image,
        reference=get_registration_reference,
        config="results/config/preprocess.yaml",
    output:
        image="results/{patient}/{timepoint}/t1ce.nii.gz",
        brain_mask="results/{patient}/{timepoint}/brain_mask.nii.gz",
        transform="results/{patient}/{timepoint}/to_patient_space.mat",
        qc=report(
            "results/{patient}/{timepoint}/preprocessing_qc.png",
            caption="../workflow/report/preprocessing_qc.rst",
            category="Scans",
            subcategory="{patient}",
            labels={"patient": "{patient}", "timepoint": "{timepoint}", "figure": "preprocessing QC"},
        ),
    params:
        reference=lambda wildcards, input: f"--reference {input.reference}" if input.reference else "",
    log:
        "logs/preprocess/{patient}/{timepoint}.log",
    benchmark:
        "benchmarks/out/preprocess/{patient}/{timepoint}.tsv"
    conda:
        "../envs/preprocessing.yaml"
    threads: 2
    resources:
        mem_mb=6000,
        runtime=30,
    shell:
        "brainmets preprocess --image {input.image} {params.reference} --config {input.config}"
        " --out-dir results/{wildcards.patient}/{wildcards.timepoint} > {log} 2>&1"


rule preprocess_training:
    input:
        image=lambda wildcards: get_training_row(wildcards)["image"],
        mask=lambda wildcards: get_training_row(wildcards)["mask"],
        config="results/config/preprocess.yaml",
    output:
        image="results/training/{case}/t1ce.nii.gz",
        label="results/training/{case}/lesions.nii.gz",
    log:
        "logs/preprocess_training/{case}.log",
    benchmark:
        "benchmarks/out/preprocess_training/{case}.tsv"
    conda:
        "../envs/preprocessing.yaml"
    threads: 2
    resources:
        mem_mb=6000,
        runtime=30,
    shell:
        "brainmets preprocess --image {input.image} --mask {input.mask} --config {input.config}"
        " --out-dir results/training/{wildcards.case} > {log} 2>&1"


rule to_native:
    input:
        image=get_image,
        segmentation="results/{patient}/{timepoint}/segmentation.nii.gz",
        probability="results/{patient}/{timepoint}/probability.nii.gz",
        entropy="results/{patient}/{timepoint}/uncertainty_total_entropy.nii.gz",
        transform="results/{patient}/{timepoint}/to_patient_space.mat",
    output:
        segmentation="results/{patient}/{timepoint}/native/segmentation.nii.gz",
        probability="results/{patient}/{timepoint}/native/probability.nii.gz",
        entropy="results/{patient}/{timepoint}/native/uncertainty_total_entropy.nii.gz",
    log:
        "logs/to_native/{patient}/{timepoint}.log",
    benchmark:
        "benchmarks/out/to_native/{patient}/{timepoint}.tsv"
    conda:
        "../envs/preprocessing.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=10,
    shell:
        "brainmets to-native --native {input.image} --transform {input.transform}"
        " --labels {input.segmentation} --maps {input.probability} {input.entropy}"
        " --out-dir results/{wildcards.patient}/{wildcards.timepoint}/native > {log} 2>&1"
