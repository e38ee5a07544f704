# Reports: one self-contained HTML file per experiment, and per task a page comparing its
# experiments (TASKS[task].compare_output, e.g. reports/index.html for segmentation).


# The test cases' images and references are read through the dataset table, not declared as
# inputs: a missing user file then fails its own check_case job (with --keep-going the
# rest still runs) instead of stopping the whole DAG from being built.
rule report:
    input:
        per_case="results/evaluation/{experiment}/per_case.tsv",
        summary="results/evaluation/{experiment}/summary.tsv",
        logs=lambda wildcards: W.fold_logs(wildcards.experiment),
        plans="results/plans/plans.json",
        predictions=lambda wildcards: W.predictions(wildcards.experiment, passed_test_cases()),
        outcomes=OUTCOMES,
    output:
        report(
            "reports/{experiment}.html",
            caption="../report/experiment.rst",
            category="Experiments",
            subcategory="{experiment}",
            labels={"experiment": "{experiment}", "content": "HTML report"},
        ),
    log:
        "logs/report/{experiment}.log",
    benchmark:
        "benchmarks/report/{experiment}.tsv"
    wildcard_constraints:
        experiment=W.experiment_pattern(),
    conda:
        "../../environment.yml"
    params:
        config=CONFIG_JSON,
        pipeline=PIPELINE,
        settings=lambda wildcards: triggers.report(config, W.task(wildcards.experiment)),
    shell:
        "{params.pipeline} report --config {params.config:q} --experiment {wildcards.experiment:q} "
        "--per-case {input.per_case:q} --summary {input.summary:q} --logs {input.logs:q} "
        "--plan {input.plans:q} --output {output:q} --predictions {input.predictions:q} --outcomes {input.outcomes:q} "
        "2> {log:q}"


for _task, _page, _experiments in W.comparisons():

    rule:
        name:
            f"compare_{_task}"
        input:
            per_case=expand("results/evaluation/{experiment}/per_case.tsv", experiment=_experiments),
            summaries=expand("results/evaluation/{experiment}/summary.tsv", experiment=_experiments),
        output:
            report(
                _page,
                caption="../report/index.rst",
                category="Comparison",
                labels={"task": _task, "content": "experiments compared"},
            ),
        log:
            f"logs/compare_{_task}.log",
        benchmark:
            f"benchmarks/compare_{_task}.tsv"
        conda:
            "../../environment.yml"
        params:
            config=CONFIG_JSON,
            pipeline=PIPELINE,
            experiments=_experiments,
            settings=triggers.compare(config, _experiments),
        shell:
            "{params.pipeline} compare --config {params.config:q} --experiments {params.experiments:q} "
            "--per-case {input.per_case:q} --summaries {input.summaries:q} --output {output:q} 2> {log:q}"


# The run's last step: fails, naming them, when test cases failed their check (they are
# left out of every score; the reports list them); everything else is made first.
rule verdict:
    input:
        targets=W.targets(),
        outcomes=OUTCOMES,
    output:
        "results/cases/verdict.json",
    log:
        "logs/verdict.log",
    conda:
        "../../environment.yml"
    params:
        config=CONFIG_JSON,
        pipeline=PIPELINE,
    shell:
        "{params.pipeline} verdict --config {params.config:q} --outcomes {input.outcomes:q} --output {output:q} 2> {log:q}"
