# DICOM outputs of every scan that came from a DICOM series: its tracked lesions as a segmentation (SEG),
# their RANO-BM measurements as a report (SR TID 1500) and the probability and total-entropy maps as
# parametric maps, all on the grid of the source series and referencing it. NIfTI scans need no job here.


rule dicom_outputs:
    input:
        series=get_dicom_folder,
        # the native maps of `predict` (probability and total entropy beside it) and the scan's record
        native="results/{patient}/{timepoint}/native/segmentation.nii.gz",
        record="results/{patient}/{timepoint}/preprocessing.json",
        # written with results/{patient}/tracked/{timepoint}.nii.gz, the lesion ids in patient space
        lesions="results/{patient}/lesions.tsv",
        response="results/{patient}/rano_response.tsv",
    output:
        segmentation="results/{patient}/{timepoint}/dicom/segmentation.dcm",
        measurements="results/{patient}/{timepoint}/dicom/measurements.dcm",
        probability="results/{patient}/{timepoint}/dicom/probability.dcm",
        total_entropy="results/{patient}/{timepoint}/dicom/total_entropy.dcm",
    log:
        "logs/dicom_outputs/{patient}/{timepoint}.log",
    benchmark:
        "benchmarks/out/dicom_outputs/{patient}/{timepoint}.tsv"
    conda:
        "../envs/dicom-outputs.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        series_uid=get_series_uid_option,
    shell:
        "brainmets dicom-export --source {input.series:q} {params.series_uid}"
        " --scan-dir $(dirname {input.record}) --tracked results/{wildcards.patient}/tracked/{wildcards.timepoint}.nii.gz"
        " --lesions {input.lesions} --response {input.response} --patient {wildcards.patient}"
        " --timepoint {wildcards.timepoint} --out-dir $(dirname {output.segmentation}) > {log} 2>&1"


# With dicomweb.send, each DICOM-derived scan's SEG, SR and parametric maps are stored in the archive
# (STOW-RS) and the receipt records what it holds; UIDs are deterministic, so sending again adds nothing.
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
