# Inference on the case's original grid: one job per experiment and test case, or, for an
# experiment with inference.cases_per_job > 1, one job per chunk of test cases that loads
# the models once (worth it on a GPU, where starting a process costs seconds).


rule predict_case:
    wildcard_constraints:
        experiment=UNBATCHED_PATTERN,
    input:
        checkpoints=fold_checkpoints,
        properties="results/preprocessed/{case}/properties.json",
    output:
        "results/predictions/{experiment}/{case}.nii.gz",
    params:
        config=CONFIG_JSON,
        pipeline=PIPELINE,
        inference=lambda wildcards: inference_settings(wildcards.experiment),
    conda:
        "../../environment.yml"
    log:
        "logs/predict_case/{experiment}/{case}.log",
    benchmark:
        "benchmarks/predict_case/{experiment}/{case}.tsv"
    group:
        "predict_cases"
    threads: 1
    resources:
        gpu=1,
        mem_mb=4000,
    shell:
        "{params.pipeline} predict-case --config {params.config:q} --threads {threads} --experiment {wildcards.experiment:q} "
        "--checkpoints {input.checkpoints:q} --case-dir results/preprocessed/{wildcards.case:q} "
        "--output {output:q} 2> {log:q}"


for _index, (_experiment, _chunk) in enumerate(PREDICTION_CHUNKS):

    rule:
        name:
            f"predict_cases_{_index}"
        input:
            checkpoints=fold_checkpoints(SimpleNamespace(experiment=_experiment)),
            properties=[f"results/preprocessed/{c}/properties.json" for c in _chunk],
        output:
            [f"results/predictions/{_experiment}/{c}.nii.gz" for c in _chunk],
        params:
            config=CONFIG_JSON,
            pipeline=PIPELINE,
            experiment=_experiment,
            case_dirs=[f"results/preprocessed/{c}" for c in _chunk],
            inference=inference_settings(_experiment),
        conda:
            "../../environment.yml"
        log:
            f"logs/predict_cases/{_experiment}/chunk_{_index}.log",
        benchmark:
            f"benchmarks/predict_cases/{_experiment}/chunk_{_index}.tsv"
        group:
            "predict_cases"
        threads: 1
        resources:
            gpu=1,
            mem_mb=4000,
        shell:
            "{params.pipeline} predict-case --config {params.config:q} --threads {threads} --experiment {params.experiment:q} "
            "--checkpoints {input.checkpoints:q} --case-dir {params.case_dirs:q} --output {output:q} 2> {log:q}"


rule predict_new_case:
    input:
        checkpoints=fold_checkpoints,
        images=lambda wildcards: PREDICT_INPUTS[wildcards.case],
    output:
        f"results/predict/{{experiment}}/{{case}}{PREDICT_ENDING}",
    params:
        config=CONFIG_JSON,
        pipeline=PIPELINE,
        folds=lambda wildcards, input: " ".join(
            Path(c).parent.name.split("_")[1] for c in input.checkpoints
        ),
    conda:
        "../../environment.yml"
    log:
        "logs/predict_new_case/{experiment}/{case}.log",
    benchmark:
        "benchmarks/predict_new_case/{experiment}/{case}.tsv"
    threads: 1
    resources:
        gpu=1,
        mem_mb=4000,
    shell:
        "{params.pipeline} predict --threads {threads} --model results/models/{wildcards.experiment:q} "
        "--input {input.images:q} --folds {params.folds} "
        "--output results/predict/{wildcards.experiment:q} 2> {log:q}"


rule predict:
    input:
        predict_targets,
