# Reports: one self-contained HTML file per experiment.


rule report:
    input:
        per_case="results/evaluation/{experiment}/per_case.tsv",
        summary="results/evaluation/{experiment}/summary.tsv",
        logs=trained_fold_logs,
        plans="results/plans/plans.json",
    output:
        "reports/{experiment}.html",
    params:
        config=CONFIG_JSON,
        pipeline=PIPELINE,
        report=config["report"],
    conda:
        "../../environment.yml"
    log:
        "logs/report/{experiment}.log",
    benchmark:
        "benchmarks/report/{experiment}.tsv"
    shell:
        "{params.pipeline} report --config {params.config:q} --experiment {wildcards.experiment:q} "
        "--per-case {input.per_case:q} --summary {input.summary:q} --logs {input.logs:q} "
        "--plan {input.plans:q} --output {output:q} 2> {log:q}"
