# The synthetic demo cohort (images, ground truth, its own copy of the sample sheet). The shipped
# config/samples.tsv is the sheet this rule writes for the default `demo` settings, so the whole DAG is
# known before the cohort exists; with other settings, copy DEMO_OUT/samples.tsv over it after a first run.

if DEMO:

    rule demo_cohort:
        output:
            get_demo_files(),
            sheet=f"{config['demo']['out']}/samples.tsv",
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
        params:
            out=lambda wildcards, output: Path(output.sheet).parent,
            patients=config["demo"]["patients"],
            timepoints=config["demo"]["timepoints"],
            train=config["demo"]["train"],
            seed=config["demo"]["seed"],
            scale=config["demo"]["scale"],
        shell:
            "brainmets demo-cohort --out {params.out} --patients {params.patients} --timepoints {params.timepoints}"
            " --train {params.train} --seed {params.seed} --scale {params.scale} --workers {threads} > {log} 2>&1"
