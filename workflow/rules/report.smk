# Reports: one self-contained HTML file per experiment, and reports/index.html comparing them.

if "index" in EXPERIMENTS:
    raise WorkflowError(
        "an experiment may not be called 'index': reports/index.html compares the experiments"
    )


# The test cases' images and labels are read through the dataset table, not declared as
# inputs: a missing user file then fails its own check_case job (with --keep-going the
# rest still runs) instead of stopping the whole DAG from being built.
rule report:
    wildcard_constraints:
        experiment="|".join(EXPERIMENTS),
    input:
        per_case="results/evaluation/{experiment}/per_case.tsv",
        summary="results/evaluation/{experiment}/summary.tsv",
        logs=trained_fold_logs,
        plans="results/plans/plans.json",
        predictions=expand(
            "results/predictions/{{experiment}}/{case}.nii.gz", case=TEST_CASES
        ),
    output:
        report(
            "reports/{experiment}.html",
            caption="../report/experiment.rst",
            category="Experiments",
            subcategory="{experiment}",
            labels={"experiment": "{experiment}", "content": "HTML report"},
        ),
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
        "--plan {input.plans:q} --output {output:q} --predictions {input.predictions:q} "
        "2> {log:q}"


rule compare:
    input:
        per_case=expand(
            "results/evaluation/{experiment}/per_case.tsv",
            experiment=SEGMENTATION_EXPERIMENTS,
        ),
        summaries=expand(
            "results/evaluation/{experiment}/summary.tsv",
            experiment=SEGMENTATION_EXPERIMENTS,
        ),
    output:
        report(
            "reports/index.html",
            caption="../report/index.rst",
            category="Comparison",
            labels={"content": "experiments compared"},
        ),
    params:
        config=CONFIG_JSON,
        pipeline=PIPELINE,
        experiments=SEGMENTATION_EXPERIMENTS,
    conda:
        "../../environment.yml"
    log:
        "logs/compare.log",
    benchmark:
        "benchmarks/compare.tsv"
    shell:
        "{params.pipeline} compare --config {params.config:q} --experiments {params.experiments:q} "
        "--per-case {input.per_case:q} --summaries {input.summaries:q} --output {output:q} 2> {log:q}"
