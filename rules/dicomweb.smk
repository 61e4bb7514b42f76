# A DICOMweb archive (PACS) as source and destination. A sample-sheet row that names a study (study_uid)
# is fetched once into {dicomweb.cache}/series/{patient}/{timepoint} (QIDO-RS, WADO-RS; resumable through
# the instance cache beside it) and then goes through the chain like any DICOM series folder. With
# dicomweb.send, each DICOM-derived scan's SEG, SR and parametric maps are stored in the archive
# (STOW-RS) and the receipt records what it holds. Credentials come from the environment of the run
# (README, "Working with a PACS"), never from the configuration; the stage configuration is `ancient`, so
# changing a transport setting (timeouts, retries) or turning send on refetches nothing.

DICOMWEB_CACHE = config["dicomweb"]["cache"].rstrip("/")


rule dicomweb_fetch:
    input:
        config=ancient("results/config/dicomweb.yaml"),
    output:
        series=directory(f"{DICOMWEB_CACHE}/series/{{patient}}/{{timepoint}}"),
    log:
        "logs/dicomweb_fetch/{patient}/{timepoint}.log",
    benchmark:
        "benchmarks/out/dicomweb_fetch/{patient}/{timepoint}.tsv"
    conda:
        "../envs/dicomweb.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=60,
    params:
        study_uid=get_study_uid,
        series_uid=get_archive_series_option,
    shell:
        # the instance cache is the configuration's dicomweb.cache, beside the series folders
        "brainmets dicomweb-fetch --study-uid {params.study_uid} {params.series_uid} --out {output.series}"
        " --config {input.config} > {log} 2>&1"


rule dicomweb_send:
    input:
        objects=rules.dicom_outputs.output,
        config=ancient("results/config/dicomweb.yaml"),
    output:
        receipt="results/{patient}/{timepoint}/dicom/sent.json",
    log:
        "logs/dicomweb_send/{patient}/{timepoint}.log",
    benchmark:
        "benchmarks/out/dicomweb_send/{patient}/{timepoint}.tsv"
    conda:
        "../envs/dicomweb.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=30,
    shell:
        "brainmets send $(dirname {output.receipt}) --receipt {output.receipt} --config {input.config} > {log} 2>&1"
