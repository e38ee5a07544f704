# Landmark detection (experiments with task: landmarks): demo landmark table, prediction of
# each test case, radial-error tables, the experiment's report and the comparison of the
# landmark experiments. Training is the shared train rule (landmark_table_input in common.smk
# adds the table to its inputs).

LANDMARK_TARGETS = (
    ["reports/landmarks/comparison.html", "results/landmarks/comparison.tsv"]
    if LANDMARK_EXPERIMENTS
    else []
)


ruleorder: landmarks_evaluate > aggregate
ruleorder: landmarks_report > report


rule demo_landmarks:
    output:
        "results/demo/{demo}/landmarks.tsv",
    wildcard_constraints:
        demo="brain",
    params:
        config=CONFIG_JSON,
        pipeline=PIPELINE_LANDMARKS,
        demo=config["demo"],
    conda:
        "../../environment.yml"
    log:
        "logs/demo_landmarks/{demo}.log",
    benchmark:
        "benchmarks/demo_landmarks/{demo}.tsv"
    shell:
        "{params.pipeline} demo-table --config {params.config:q} --output {output:q} 2> {log:q}"


rule predict_landmarks_case:
    input:
        checkpoints=fold_checkpoints,
        properties="results/preprocessed/{case}/properties.json",
    output:
        "results/predictions/{experiment}/{case}.tsv",
    wildcard_constraints:
        experiment="|".join(LANDMARK_EXPERIMENTS) or "no-landmark-experiment",
    params:
        config=CONFIG_JSON,
        pipeline=PIPELINE_LANDMARKS,
        settings=experiment_settings,
    conda:
        "../../environment.yml"
    log:
        "logs/predict_landmarks_case/{experiment}/{case}.log",
    benchmark:
        "benchmarks/predict_landmarks_case/{experiment}/{case}.tsv"
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


rule landmarks_evaluate:
    input:
        predictions=expand(
            "results/predictions/{{experiment}}/{case}.tsv", case=TEST_CASES
        ),
        table=LANDMARK_TABLE or [],
    output:
        per_case="results/evaluation/{experiment}/per_case.tsv",
        summary="results/evaluation/{experiment}/summary.tsv",
    wildcard_constraints:
        experiment="|".join(LANDMARK_EXPERIMENTS) or "no-landmark-experiment",
    params:
        config=CONFIG_JSON,
        pipeline=PIPELINE_LANDMARKS,
    conda:
        "../../environment.yml"
    log:
        "logs/landmarks_evaluate/{experiment}.log",
    benchmark:
        "benchmarks/landmarks_evaluate/{experiment}.tsv"
    shell:
        "{params.pipeline} evaluate --config {params.config:q} --experiment {wildcards.experiment:q} "
        "--predictions {input.predictions:q} --per-case {output.per_case:q} --summary {output.summary:q} 2> {log:q}"


rule landmarks_report:
    input:
        per_case="results/evaluation/{experiment}/per_case.tsv",
        summary="results/evaluation/{experiment}/summary.tsv",
        logs=trained_fold_logs,
        images=[CASES.loc[case, CHANNELS[0]] for case in TEST_CASES],
    output:
        "reports/{experiment}.html",
    wildcard_constraints:
        experiment="|".join(LANDMARK_EXPERIMENTS) or "no-landmark-experiment",
    params:
        config=CONFIG_JSON,
        pipeline=PIPELINE_LANDMARKS,
        cases=TEST_CASES,
        report=config["report"],
    conda:
        "../../environment.yml"
    log:
        "logs/landmarks_report/{experiment}.log",
    benchmark:
        "benchmarks/landmarks_report/{experiment}.tsv"
    shell:
        "{params.pipeline} report --config {params.config:q} --experiment {wildcards.experiment:q} "
        "--per-case {input.per_case:q} --summary {input.summary:q} --logs {input.logs:q} "
        "--cases {params.cases:q} --images {input.images:q} --output {output:q} 2> {log:q}"


rule landmarks_compare:
    input:
        per_case=expand(
            "results/evaluation/{experiment}/per_case.tsv",
            experiment=LANDMARK_EXPERIMENTS,
        ),
        summaries=expand(
            "results/evaluation/{experiment}/summary.tsv",
            experiment=LANDMARK_EXPERIMENTS,
        ),
    output:
        html="reports/landmarks/comparison.html",
        tsv="results/landmarks/comparison.tsv",
    params:
        config=CONFIG_JSON,
        pipeline=PIPELINE_LANDMARKS,
        experiments=LANDMARK_EXPERIMENTS,
    conda:
        "../../environment.yml"
    log:
        "logs/landmarks_compare.log",
    benchmark:
        "benchmarks/landmarks_compare.tsv"
    shell:
        "{params.pipeline} compare --config {params.config:q} --experiments {params.experiments:q} "
        "--per-case {input.per_case:q} --summaries {input.summaries:q} "
        "--output-html {output.html:q} --output-tsv {output.tsv:q} 2> {log:q}"
