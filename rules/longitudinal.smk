# Longitudinal analysis per patient on the segmentations in patient space: lesion tracking with
# RANO-BM measurements, the response at each visit and its pictures; then the cohort tables.


rule track_manifest:
    input:
        get_patient_segmentations,
    output:
        "results/{patient}/segmentations.tsv",
    log:
        "logs/track_manifest/{patient}.log",
    benchmark:
        "benchmarks/out/track_manifest/{patient}.tsv"
    conda:
        "../envs/analysis.yaml"
    localrule: True
    threads: 1
    resources:
        mem_mb=500,
        runtime=1,
    run:
        write_manifest(get_timepoints(wildcards.patient), input, output[0])


rule track:
    input:
        manifest="results/{patient}/segmentations.tsv",
        masks=get_patient_segmentations,
        config="results/config/longitudinal.yaml",
    output:
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
    shell:
        "brainmets track {input.manifest} --out results/{wildcards.patient} --config {input.config}"
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
