# Training of the U-Net ensemble: one prepared case per training scan, one job per fold (one GPU each),
# then model.json. Left out when config model.dir names a model trained elsewhere (see common.smk).

if not MODEL_GIVEN:

    rule weight_map:
        input:
            label="results/training/{case}/lesions.nii.gz",
            config="results/config/train.yaml",
        output:
            "results/training/{case}/weights.nii.gz",
        log:
            "logs/weight_map/{case}.log",
        benchmark:
            "benchmarks/out/weight_map/{case}.tsv"
        # the training chain first (see rule train)
        priority: 1
        conda:
            "../envs/network.yaml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=10,
        shell:
            "brainmets weight-map --label {input.label} --out {output} --config {input.config} > {log} 2>&1"

    rule prepare_case:
        input:
            image="results/training/{case}/t1ce_zscore.nii.gz",
            label="results/training/{case}/lesions.nii.gz",
            weights="results/training/{case}/weights.nii.gz",
        output:
            data="results/training/{case}/data.npy",
            meta="results/training/{case}/case.json",
        log:
            "logs/prepare_case/{case}.log",
        benchmark:
            "benchmarks/out/prepare_case/{case}.tsv"
        priority: 1
        conda:
            "../envs/network.yaml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=10,
        params:
            patient=lambda wildcards: get_training_row(wildcards)["patient_id"],
        shell:
            "brainmets prepare-case --image {input.image} --label {input.label} --weights {input.weights}"
            " --patient {params.patient} --out-dir results/training/{wildcards.case} > {log} 2>&1"

    rule train:
        input:
            cases=get_training_case_files,
            config="results/config/train.yaml",
        output:
            # update(): kept when the job is rerun, so that a killed training resumes from its
            # latest checkpoint (latest.weights.h5 and state.json are left to the training loop)
            best=update(f"{MODEL_DIR}/fold_{{fold}}/best.weights.h5"),
            log=update(f"{MODEL_DIR}/fold_{{fold}}/log.csv"),
        log:
            "logs/train/fold_{fold}.log",
        benchmark:
            "benchmarks/out/train/fold_{fold}.tsv"
        # The training chain (preprocess_training, weight_map, prepare_case, train) goes before the other scans'
        # preprocessing: those then fill the cores that the folds leave free (the last fold of five on two
        # cores ran alone, one core idle for 2.5 minutes of the demo) instead of delaying the first fold.
        priority: 1
        conda:
            "../envs/network.yaml"
        # On a GPU: two threads and the GPU. On the CPU: one thread and no GPU claim, so that folds run side by
        # side: a fold's single-threaded parts (imports, tracing, validation set-up) left the second core idle,
        # and one step on two threads was only 1.6x faster than on one (demo preset, AVX2 EPYC).
        threads: lambda wildcards: 2 if gpu_job(config["train"]["device"]) else 1
        resources:
            mem_mb=12000,
            runtime=1440,
            gpu=lambda wildcards: int(gpu_job(config["train"]["device"])),
        params:
            model_dir=lambda wildcards, output: Path(output.best).parent.parent,
        shell:
            "brainmets train --cases results/training --fold {wildcards.fold} --model-dir {params.model_dir}"
            " --config {input.config} --threads {threads} > {log} 2>&1"

    rule finalise_model:
        input:
            weights=expand(f"{MODEL_DIR}/fold_{{fold}}/best.weights.h5", fold=FOLDS),
            config="results/config/train.yaml",
        output:
            f"{MODEL_DIR}/model.json",
        log:
            "logs/finalise_model.log",
        benchmark:
            "benchmarks/out/finalise_model.tsv"
        conda:
            "../envs/network.yaml"
        threads: 1
        resources:
            mem_mb=1000,
            runtime=5,
        params:
            model_dir=lambda wildcards, output: Path(output[0]).parent,
        shell:
            "brainmets finalise-model --model-dir {params.model_dir} --config {input.config} > {log} 2>&1"
