# Lesion tracking per patient on the segmentations in patient space: persistent lesion ids with
# RANO-BM measurements (the rano rules read the lesion tables it writes).


rule track:
    input:
        masks=get_patient_segmentations,
        # a reviewer's decisions, when results/{patient}/review.tsv exists (brainmets.track.corrections)
        review=get_review,
        config="results/config/track.yaml",
    output:
        # the visits tracked (timepoint, mask), the manifest `brainmets track` reads
        manifest="results/{patient}/segmentations.tsv",
        # also writes results/{patient}/tracked/<timepoint>.nii.gz (label maps of lesion ids)
        lesions="results/{patient}/lesions.tsv",
    log:
        "logs/track/{patient}.log",
    benchmark:
        "benchmarks/out/track/{patient}.tsv"
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        manifest=get_track_manifest,
        review=lambda wildcards, input: f"--review {input.review}" if input.review else "",
    shell:
        "printf '{params.manifest}' > {output.manifest} &&"
        " brainmets track {output.manifest} --out $(dirname {output.lesions}) --config {input.config}"
        " --patient {wildcards.patient} {params.review} > {log} 2>&1"
