# Pictures for the HTML report (`snakemake --report results/report.html`): one overlay per scan. The
# report also collects the preprocessing QC pictures, each patient's trajectory and lesion timeline,
# the cohort tables and, from Snakemake's own records, when each job ran and for how long.


rule overlay:
    input:
        image="results/{patient}/{timepoint}/t1ce.nii.gz",
        segmentation="results/{patient}/{timepoint}/segmentation.nii.gz",
        entropy="results/{patient}/{timepoint}/uncertainty_total_entropy.nii.gz",
    output:
        report(
            "results/{patient}/{timepoint}/overlay.png",
            caption="../workflow/report/overlay.rst",
            category="Scans",
            subcategory="{patient}",
            labels={"patient": "{patient}", "timepoint": "{timepoint}", "figure": "lesions and uncertainty"},
        ),
    log:
        "logs/overlay/{patient}/{timepoint}.log",
    benchmark:
        "benchmarks/out/overlay/{patient}/{timepoint}.tsv"
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=5,
    script:
        "../scripts/overlay.py"
