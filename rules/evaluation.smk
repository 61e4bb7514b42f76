# Evaluation against ground truth (scans whose sheet row names a `mask`), on the native grid.


rule evaluate:
    input:
        truth=get_truth,
        pred="results/{patient}/{timepoint}/native/segmentation.nii.gz",
    output:
        metrics="results/{patient}/{timepoint}/evaluation.tsv",
        lesions="results/{patient}/{timepoint}/evaluation_lesions.tsv",
    log:
        "logs/evaluate/{patient}/{timepoint}.log",
    benchmark:
        "benchmarks/out/evaluate/{patient}/{timepoint}.tsv"
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        definition=config["evaluation"]["definition"],
    shell:
        "brainmets evaluate --truth {input.truth} --pred {input.pred} --out {output.metrics}"
        " --lesions {output.lesions} --patient {wildcards.patient} --timepoint {wildcards.timepoint}"
        " --definition {params.definition} > {log} 2>&1"


rule evaluate_cohort:
    input:
        get_evaluation_tables,
    output:
        table="results/cohort/evaluation.tsv",
        summary=report(
            "results/cohort/evaluation_summary.tsv",
            caption="../workflow/report/evaluation.rst",
            category="Cohort",
            labels={"table": "evaluation summary"},
        ),
        figure=report(
            "results/cohort/sensitivity_by_size.png",
            caption="../workflow/report/sensitivity.rst",
            category="Cohort",
            labels={"figure": "lesion sensitivity by size"},
        ),
    log:
        "logs/evaluate_cohort.log",
    benchmark:
        "benchmarks/out/evaluate_cohort.tsv"
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        definition=config["evaluation"]["definition"],
    shell:
        "brainmets evaluate-cohort {input} --out {output.table} --summary {output.summary}"
        " --figure {output.figure} --definition {params.definition} > {log} 2>&1"
