# The synthetic demo cohort (images, ground truth, sample sheet). A checkpoint: the sheet it writes
# decides which scans the rest of the workflow analyses.


checkpoint demo_cohort:
    output:
        directory(config["demo"]["out"]),
    params:
        patients=config["demo"]["patients"],
        timepoints=config["demo"]["timepoints"],
        train=config["demo"]["train"],
        seed=config["demo"]["seed"],
        scale=config["demo"].get("scale", 1.0),
    log:
        "logs/demo_cohort.log",
    benchmark:
        "benchmarks/out/demo_cohort.tsv"
    conda:
        "../envs/demo.yaml"
    threads: 2
    resources:
        mem_mb=6000,
        runtime=30,
    shell:
        "brainmets demo-cohort --out {output} --patients {params.patients} --timepoints {params.timepoints}"
        " --train {params.train} --seed {params.seed} --scale {params.scale} --workers {threads} > {log} 2>&1"
