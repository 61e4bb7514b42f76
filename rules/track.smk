# Longitudinal analysis per patient on the segmentations in patient space: lesion tracking with
# RANO-BM measurements, the response at each visit and its pictures; then the cohort tables.


rule track:
    input:
        masks=get_patient_segmentations,
        config="results/config/longitudinal.yaml",
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
    shell:
        "printf '{params.manifest}' > {output.manifest} &&"
        " brainmets track {output.manifest} --out $(dirname {output.lesions}) --config {input.config}"
        " --patient {wildcards.patient} > {log} 2>&1"


rule rano:
    input:
        lesions="results/{patient}/lesions.tsv",
        clinical=config["samples"],
        config="results/config/longitudinal.yaml",
    output:
        response=report(
            "results/{patient}/rano_response.tsv",
            caption="../workflow/report/rano_response.rst",
            category="Patients",
            subcategory="{patient}",
            labels={"patient": "{patient}", "figure": "response table"},
        ),
        trajectory=report(
            "results/{patient}/trajectory.png",
            caption="../workflow/report/trajectory.rst",
            category="Patients",
            subcategory="{patient}",
            labels={"patient": "{patient}", "figure": "trajectory"},
        ),
        timeline=report(
            "results/{patient}/lesion_timeline.png",
            caption="../workflow/report/timeline.rst",
            category="Patients",
            subcategory="{patient}",
            labels={"patient": "{patient}", "figure": "lesion timeline"},
        ),
    log:
        "logs/rano/{patient}.log",
    benchmark:
        "benchmarks/out/rano/{patient}.tsv"
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    shell:
        "brainmets rano {input.lesions} --clinical {input.clinical} --config {input.config}"
        " --patient {wildcards.patient} --out {output.response} --trajectory {output.trajectory}"
        " --timeline {output.timeline} > {log} 2>&1"


rule rano_cohort:
    input:
        lesions=get_patient_lesion_tables,
        clinical=config["samples"],
        config="results/config/longitudinal.yaml",
    output:
        response=report(
            "results/cohort/rano_response.tsv",
            caption="../workflow/report/rano_response.rst",
            category="Cohort",
            labels={"table": "response at every visit"},
        ),
        best=report(
            "results/cohort/best_response.tsv",
            caption="../workflow/report/best_response.rst",
            category="Cohort",
            labels={"table": "best overall response"},
        ),
    log:
        "logs/rano_cohort.log",
    benchmark:
        "benchmarks/out/rano_cohort.tsv"
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "brainmets rano {input.lesions} --clinical {input.clinical} --config {input.config}"
        " --out {output.response} --best-out {output.best} > {log} 2>&1"
