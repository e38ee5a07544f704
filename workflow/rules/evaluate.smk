# Evaluation, for every task: per-case metrics of each test prediction against the files
# the task's evaluation reads (TASKS[task].evaluation_reference), then the experiment's tables.


rule evaluate_case:
    input:
        prediction=lambda wildcards: W.prediction(wildcards.experiment, wildcards.case),
        references=lambda wildcards: W.evaluation_references(wildcards.experiment, wildcards.case),
    output:
        "results/evaluation/{experiment}/cases/{case}.tsv",
    log:
        "logs/evaluate_case/{experiment}/{case}.log",
    benchmark:
        "benchmarks/evaluate_case/{experiment}/{case}.tsv"
    group:
        "predict_cases"
    conda:
        "../../environment.yml"
    params:
        config=CONFIG_JSON,
        pipeline=PIPELINE,
        settings=lambda wildcards: triggers.evaluation(config, W.task(wildcards.experiment)),
    shell:
        "{params.pipeline} evaluate-case --config {params.config:q} --experiment {wildcards.experiment:q} "
        "--case {wildcards.case:q} --prediction {input.prediction:q} --output {output:q} 2> {log:q}"


rule aggregate:
    input:
        lambda wildcards: W.case_tables(wildcards.experiment, passed_test_cases()),
    output:
        per_case=report(
            "results/evaluation/{experiment}/per_case.tsv",
            caption="../report/per_case.rst",
            category="Experiments",
            subcategory="{experiment}",
            labels={"experiment": "{experiment}", "content": "per-case metrics"},
        ),
        summary=report(
            "results/evaluation/{experiment}/summary.tsv",
            caption="../report/summary.rst",
            category="Experiments",
            subcategory="{experiment}",
            labels={"experiment": "{experiment}", "content": "per-class summary"},
        ),
    log:
        "logs/aggregate/{experiment}.log",
    benchmark:
        "benchmarks/aggregate/{experiment}.tsv"
    conda:
        "../../environment.yml"
    params:
        config=CONFIG_JSON,
        pipeline=PIPELINE,
        settings=lambda wildcards: triggers.evaluation(config, W.task(wildcards.experiment)),
    shell:
        "{params.pipeline} aggregate --config {params.config:q} --experiment {wildcards.experiment:q} --tables {input:q} "
        "--per-case {output.per_case:q} --summary {output.summary:q} 2> {log:q}"
