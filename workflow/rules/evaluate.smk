# Evaluation: per-case metrics on the original grid, then the experiment's tables.


rule evaluate_case:
    input:
        prediction="results/predictions/{experiment}/{case}.nii.gz",
        check="results/cases/{case}/check.json",
    output:
        "results/evaluation/{experiment}/cases/{case}.tsv",
    params:
        config=CONFIG_JSON,
        pipeline=PIPELINE,
        evaluation=config["evaluation"],
    conda:
        "../../environment.yml"
    log:
        "logs/evaluate_case/{experiment}/{case}.log",
    benchmark:
        "benchmarks/evaluate_case/{experiment}/{case}.tsv"
    group:
        "predict_cases"
    shell:
        "{params.pipeline} evaluate-case --config {params.config:q} --case {wildcards.case:q} "
        "--prediction {input.prediction:q} --output {output:q} 2> {log:q}"


rule aggregate:
    input:
        expand(
            "results/evaluation/{{experiment}}/cases/{case}.tsv",
            case=TEST_CASES,
        ),
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
    params:
        config=CONFIG_JSON,
        pipeline=PIPELINE,
    conda:
        "../../environment.yml"
    log:
        "logs/aggregate/{experiment}.log",
    benchmark:
        "benchmarks/aggregate/{experiment}.tsv"
    shell:
        "{params.pipeline} aggregate --config {params.config:q} --tables {input:q} "
        "--per-case {output.per_case:q} --summary {output.summary:q} 2> {log:q}"
