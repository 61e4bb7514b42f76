# The configuration each stage's commands read (--config): only that stage's sections, so that a
# change to one section reruns that stage and what depends on it, nothing else.


rule stage_config:
    output:
        "results/config/{stage}.yaml",
    log:
        "logs/stage_config/{stage}.log",
    benchmark:
        "benchmarks/out/stage_config/{stage}.tsv"
    localrule: True
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=1,
    params:
        sections=lambda wildcards: {key: config.get(key) for key in STAGE_SECTIONS[wildcards.stage]},
    script:
        "../scripts/stage_config.py"
