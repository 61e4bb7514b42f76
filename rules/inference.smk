# Inference: the fold ensemble with test-time mirroring on each preprocessed scan (one GPU per job),
# voxel-wise uncertainty and a lesion table in patient space, then the maps on the native grid and the
# report picture. One scan per job: jobs of different scans run in parallel (one per GPU) and a failed
# scan costs only itself; loading the model takes seconds against minutes of sliding-window inference,
# and the native maps and the picture add seconds, so they share the job, and its process (no second
# start of Python and the package), rather than add one per scan.


rule predict:
    input:
        # the preprocessing record, written last: the scan folder's t1ce_zscore.nii.gz, brain_mask.nii.gz
        # and t1ce.nii.gz are complete, and its transforms lead back to the native grid
        record="results/{patient}/{timepoint}/preprocessing.json",
        model=MODEL_JSON,
        config="results/config/inference.yaml",
    output:
        segmentation="results/{patient}/{timepoint}/segmentation.nii.gz",
        native="results/{patient}/{timepoint}/native/segmentation.nii.gz",
        overlay=report(
            "results/{patient}/{timepoint}/overlay.png",
            caption="../workflow/report/overlay.rst",
            category="Scans",
            subcategory="{patient}",
            labels={"patient": "{patient}", "timepoint": "{timepoint}", "figure": "lesions and uncertainty"},
        ),
        # also probability.nii.gz, uncertainty_{total_entropy,expected_entropy,mutual_information}.nii.gz,
        # lesions.tsv and native/{probability,uncertainty_total_entropy}.nii.gz: written with these, left
        # undeclared so that large cohorts have fewer files to plan
    log:
        "logs/predict/{patient}/{timepoint}.log",
    benchmark:
        "benchmarks/out/predict/{patient}/{timepoint}.tsv"
    conda:
        "../envs/network.yaml"
    # On a GPU: two threads and the GPU. On the CPU: one thread and no GPU claim, so that scans run side by
    # side; a job's single-threaded parts (TensorFlow import, model loading, tracing, writing, native maps,
    # picture) took half its time, with the second core idle while it ran alone.
    threads: lambda wildcards: 2 if gpu_job(config["inference"]["device"]) else 1
    resources:
        mem_mb=6000,
        runtime=70,
        gpu=lambda wildcards: int(gpu_job(config["inference"]["device"])),
    shell:
        "scan=$(dirname {input.record});"
        " brainmets predict --image $scan/t1ce_zscore.nii.gz --brain-mask $scan/brain_mask.nii.gz"
        " --model $(dirname {input.model}) --config {input.config} --threads {threads} --out-dir $scan"
        " --native-dir $(dirname {output.native}) --overlay {output.overlay}"
        " --title '{wildcards.patient} {wildcards.timepoint}' > {log} 2>&1"
