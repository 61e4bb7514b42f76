# The review page of each patient (every visit in NiiVue, lesion tables with flags, the RANO-BM timeline),
# a self-contained HTML file. A reviewer's decisions come back as results/{patient}/review.tsv, an optional
# input of that patient's tracking (get_review): the workflow then redoes its tracking, RANO-BM tables,
# the cohort tables and this page, nothing else.


rule review_page:
    input:
        lesions="results/{patient}/lesions.tsv",
        response="results/{patient}/rano_response.tsv",
        # each visit's brain.nii.gz and uncertainty_total_entropy.nii.gz are written with its segmentation
        segmentations=get_patient_segmentations,
        review=get_review,
        clinical=config["samples"],
        config="results/config/review.yaml",
    output:
        page=report(
            "results/{patient}/review.html",
            caption="../workflow/report/review.rst",
            category="Patients",
            subcategory="{patient}",
            labels={"patient": "{patient}", "figure": "review page"},
        ),
    log:
        "logs/review_page/{patient}.log",
    benchmark:
        "benchmarks/out/review_page/{patient}.tsv"
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "brainmets review-page $(dirname {input.lesions}) --out {output.page} --patient {wildcards.patient}"
        " --clinical {input.clinical} --config {input.config} > {log} 2>&1"
