# brainmets: brain-metastasis segmentation, uncertainty, tracking and RANO-BM response on T1-CE MRI.
# Run it with `snakemake --cores all`; Snakemake applies profiles/default, which limits GPU jobs (README).
import gc

from snakemake.utils import min_version

min_version("9.0")

# Planning a large cohort allocates millions of small objects that stay alive until the jobs run, and
# Python's cyclic collector would walk them all again and again: a fifth of a 2,431-scan dry run
# (benchmarks/dag.py). It is off while Snakemake parses the workflow and builds the DAG, and on again
# when the jobs start. Dry runs and the one-job processes that Snakemake starts itself (--no-hooks) never
# call onstart; they are short-lived.
gc.disable()


onstart:
    gc.enable()


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "rules/common.smk"
include: "rules/config.smk"
include: "rules/demo.smk"
include: "rules/preprocess.smk"
include: "rules/train.smk"
include: "rules/inference.smk"
include: "rules/track.smk"
include: "rules/rano.smk"
include: "rules/review.smk"
include: "rules/export.smk"
include: "rules/evaluation.smk"


rule all:
    input:
        get_final_output(),
