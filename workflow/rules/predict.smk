# Inference on the case's original grid, for every task (the file ending is the task's):
# one job per experiment and test case (without test cases: per held-out training case,
# predicted by the fold that held it out), or, for an experiment with inference.cases_per_job
# > 1, one job per chunk of test cases that loads the models once (worth it on a GPU, where
# starting a process costs seconds).


rule predict_case:
    input:
        checkpoints=lambda wildcards: W.prediction_checkpoints(wildcards.experiment, wildcards.suffix, wildcards.case),
        properties="results/preprocessed/{case}/properties.json",
        image="results/preprocessed/{case}/image.npy",
    output:
        "results/predictions/{experiment}/{case}{suffix}",
    log:
        "logs/predict_case/{experiment}/{case}{suffix}.log",
    benchmark:
        "benchmarks/predict_case/{experiment}/{case}{suffix}.tsv"
    wildcard_constraints:
        experiment=W.unbatched_pattern(),
        suffix=W.suffix_pattern(),
    group:
        "predict_cases"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        gpu=1,
        mem_mb=4000,
    params:
        config=CONFIG_JSON,
        pipeline=PIPELINE,
        settings=lambda wildcards: triggers.prediction(config, wildcards.experiment, W.task(wildcards.experiment)),
    shell:
        "{params.pipeline} predict-case --config {params.config:q} --threads {threads} --experiment {wildcards.experiment:q} "
        "--checkpoints {input.checkpoints:q} --case-dir results/preprocessed/{wildcards.case:q} "
        "--output {output:q} 2> {log:q}"


# Chunks take predict_case's threads and resources as the profile set them, the runtime
# times the chunk's cases (pipeline/workflow/resources.py); a chunk is already one job of
# several cases, so it is not grouped further.
for _index, (_experiment, _chunk) in enumerate(W.chunks):

    rule:
        name:
            f"predict_cases_{_index}"
        input:
            checkpoints=W.prediction_checkpoints(_experiment, W.task(_experiment).prediction_suffix, _chunk[0]),
            preprocessed=W.preprocessed(_chunk, labels=False),
        output:
            [W.prediction(_experiment, c) for c in _chunk],
        log:
            f"logs/predict_cases/{_experiment}/chunk_{_index}.log",
        benchmark:
            f"benchmarks/predict_cases/{_experiment}/chunk_{_index}.tsv"
        conda:
            "../../environment.yml"
        threads: rules.predict_case.rule.resources["_cores"]
        resources:
            **chunk_resources(rules.predict_case.rule.resources, len(_chunk)),
        params:
            config=CONFIG_JSON,
            pipeline=PIPELINE,
            experiment=_experiment,
            case_dirs=[f"results/preprocessed/{c}" for c in _chunk],
            settings=triggers.prediction(config, _experiment, W.task(_experiment)),
        shell:
            "{params.pipeline} predict-case --config {params.config:q} --threads {threads} --experiment {params.experiment:q} "
            "--checkpoints {input.checkpoints:q} --case-dir {params.case_dirs:q} --output {output:q} 2> {log:q}"


# The `predict` target: new images (predict.input) with a trained experiment (predict.experiment).
rule predict_new_case:
    input:
        checkpoints=lambda wildcards: W.fold_checkpoints(wildcards.experiment),
        images=lambda wildcards: W.predict_inputs[wildcards.case],
    output:
        f"results/predict/{{experiment}}/{{case}}{W.predict_ending}",
    log:
        "logs/predict_new_case/{experiment}/{case}.log",
    benchmark:
        "benchmarks/predict_new_case/{experiment}/{case}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        gpu=1,
        mem_mb=4000,
    params:
        config=CONFIG_JSON,
        pipeline=PIPELINE,
        folds=lambda wildcards: W.inference_folds(wildcards.experiment),
    shell:
        "{params.pipeline} predict --threads {threads} --model results/models/{wildcards.experiment:q} "
        "--input {input.images:q} --folds {params.folds} "
        "--output results/predict/{wildcards.experiment:q} 2> {log:q}"


rule predict:
    input:
        predict_targets,
