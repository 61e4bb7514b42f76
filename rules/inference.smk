# Inference: the fold ensemble with test-time mirroring on each preprocessed scan (one GPU per job),
# voxel-wise uncertainty and a lesion table in patient space; then the maps on the native grid.
# One scan per job: jobs of different scans run in parallel (one per GPU) and a failed scan costs
# only itself; loading the model takes seconds against minutes of sliding-window inference.


rule predict:
    input:
        image="results/{patient}/{timepoint}/t1ce_zscore.nii.gz",
        brain_mask="results/{patient}/{timepoint}/brain_mask.nii.gz",
        model=MODEL_JSON,
        config="results/config/inference.yaml",
    output:
        probability="results/{patient}/{timepoint}/probability.nii.gz",
        segmentation="results/{patient}/{timepoint}/segmentation.nii.gz",
        total_entropy="results/{patient}/{timepoint}/uncertainty_total_entropy.nii.gz",
        # also uncertainty_expected_entropy.nii.gz, uncertainty_mutual_information.nii.gz and lesions.tsv:
        # written with these, left undeclared so that large cohorts have fewer files to plan
    log:
        "logs/predict/{patient}/{timepoint}.log",
    benchmark:
        "benchmarks/out/predict/{patient}/{timepoint}.tsv"
    conda:
        "../envs/network.yaml"
    threads: 2
    resources:
        mem_mb=6000,
        runtime=60,
        gpu=1,
    shell:
        "brainmets predict --image {input.image} --brain-mask {input.brain_mask} --model $(dirname {input.model})"
        " --config {input.config} --threads {threads} --out-dir results/{wildcards.patient}/{wildcards.timepoint}"
        " > {log} 2>&1"
