# brainmets: brain-metastasis segmentation, uncertainty, tracking and RANO-BM response on T1-CE MRI.
# Run it with `snakemake --cores all`; Snakemake applies profiles/default, which limits GPU jobs (README).
from snakemake.utils import min_version

min_version("9.0")


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
include: "rules/evaluation.smk"


rule all:
    input:
        get_final_output(),
