# Inference: one job per experiment and test case, on the case's original grid.


rule predict_case:
    input:
        checkpoints=fold_checkpoints,
        properties="results/preprocessed/{case}/properties.json",
    output:
        "results/predictions/{experiment}/{case}.nii.gz",
    params:
        config=CONFIG_JSON,
        pipeline=PIPELINE,
        inference=lambda wildcards: config["experiments"][wildcards.experiment]["inference"],
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
