# RANO-BM per patient from its tracked lesion table: the response at each visit and its pictures;
# then the cohort tables.


rule rano:
    input:
        lesions="results/{patient}/lesions.tsv",
        clinical=config["samples"],
        config="results/config/rano.yaml",
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
        config="results/config/rano.yaml",
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
