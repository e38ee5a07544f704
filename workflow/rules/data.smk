# Data: the demo dataset, the per-case check, fingerprint, plan and preprocessing.


rule demo_case:
    output:
        image="results/demo/{demo}/images/{case}.nii.gz",
        label="results/demo/{demo}/labels/{case}.nii.gz",
    log:
        "logs/demo_case/{demo}/{case}.log",
    benchmark:
        "benchmarks/demo_case/{demo}/{case}.tsv"
    wildcard_constraints:
        demo=DEMO or "no-demo",
    group:
        "check_cases"
    conda:
        "../../environment.yml"
    params:
        config=CONFIG_JSON,
        pipeline=PIPELINE,
        settings=triggers.demo(config),
    shell:
        "{params.pipeline} demo-case --config {params.config:q} --case {wildcards.case:q} 2> {log:q}"


rule demo_manifest:
    output:
        "results/demo/{demo}/manifest.tsv",
    log:
        "logs/demo_manifest/{demo}.log",
    benchmark:
        "benchmarks/demo_manifest/{demo}.tsv"
    wildcard_constraints:
        demo=DEMO or "no-demo",
    conda:
        "../../environment.yml"
    params:
        config=CONFIG_JSON,
        pipeline=PIPELINE,
        settings=triggers.demo(config),
    shell:
        "{params.pipeline} demo-manifest --config {params.config:q} --output {output:q} 2> {log:q}"


rule check_case:
    input:
        lambda wildcards: W.case_inputs(wildcards.case),
    output:
        "results/cases/{case}/check.json",
    log:
        "logs/check_case/{case}.log",
    benchmark:
        "benchmarks/check_case/{case}.tsv"
    group:
        "check_cases"
    conda:
        "../../environment.yml"
    params:
        config=CONFIG_JSON,
        pipeline=PIPELINE,
        settings=triggers.data(config),
    shell:
        "{params.pipeline} check --config {params.config:q} --case {wildcards.case:q} --output {output:q} --record-failure 2> {log:q}"


# A case that fails its check is recorded as failed (check.json "failed"): the fingerprint
# refuses a failed training case; a failed test case is left out of the scores (common.smk),
# and the run's verdict (rule verdict) names it once everything else is made.
rule test_outcomes:
    input:
        W.test_checks(),
    output:
        OUTCOMES,
    log:
        "logs/test_outcomes.log",
    benchmark:
        "benchmarks/test_outcomes.tsv"
    conda:
        "../../environment.yml"
    params:
        config=CONFIG_JSON,
        pipeline=PIPELINE,
    shell:
        "{params.pipeline} test-outcomes --config {params.config:q} --checks {input:q} --output {output:q} 2> {log:q}"


rule fingerprint:
    input:
        expand("results/cases/{case}/check.json", case=W.train_cases),
    output:
        "results/plans/fingerprint.json",
    log:
        "logs/fingerprint.log",
    benchmark:
        "benchmarks/fingerprint.tsv"
    conda:
        "../../environment.yml"
    params:
        config=CONFIG_JSON,
        pipeline=PIPELINE,
        settings=triggers.data(config),
    shell:
        "{params.pipeline} fingerprint --config {params.config:q} --checks {input:q} --output {output:q} 2> {log:q}"


rule plan:
    input:
        "results/plans/fingerprint.json",
    output:
        plans="results/plans/plans.json",
        splits="results/plans/splits.json",
    log:
        "logs/plan.log",
    benchmark:
        "benchmarks/plan.tsv"
    conda:
        "../../environment.yml"
    params:
        config=CONFIG_JSON,
        pipeline=PIPELINE,
        settings=triggers.plan(config),
    shell:
        "{params.pipeline} plan --config {params.config:q} --fingerprint {input:q} --output {output.plans:q} --splits {output.splits:q} 2> {log:q}"


# Labelled cases; an unlabelled test case has no label.npy (preprocess_image below).
rule preprocess_case:
    input:
        check="results/cases/{case}/check.json",
        plans="results/plans/plans.json",
    output:
        image="results/preprocessed/{case}/image.npy",
        label="results/preprocessed/{case}/label.npy",
        properties="results/preprocessed/{case}/properties.json",
    log:
        "logs/preprocess_case/{case}.log",
    benchmark:
        "benchmarks/preprocess_case/{case}.tsv"
    wildcard_constraints:
        case=W.case_pattern(labelled=True),
    group:
        "preprocess_cases"
    conda:
        "../../environment.yml"
    resources:
        mem_mb=4000,
    params:
        config=CONFIG_JSON,
        pipeline=PIPELINE,
        settings=triggers.data(config),
    shell:
        "{params.pipeline} preprocess --config {params.config:q} --case {wildcards.case:q} --plan {input.plans:q} --check {input.check:q} "
        "--output-dir results/preprocessed/{wildcards.case:q} 2> {log:q}"


use rule preprocess_case as preprocess_image with:
    output:
        image="results/preprocessed/{case}/image.npy",
        properties="results/preprocessed/{case}/properties.json",
    wildcard_constraints:
        case=W.case_pattern(labelled=False),


# The landmark table of the brain demo (config/landmarks.yaml: dataset.landmarks points here).
rule demo_landmarks:
    output:
        "results/demo/{demo}/landmarks.tsv",
    log:
        "logs/demo_landmarks/{demo}.log",
    benchmark:
        "benchmarks/demo_landmarks/{demo}.tsv"
    wildcard_constraints:
        demo="brain",
    conda:
        "../../environment.yml"
    params:
        config=CONFIG_JSON,
        pipeline=PIPELINE,
        settings=triggers.demo(config),
    shell:
        "{params.pipeline} demo-landmarks --config {params.config:q} --output {output:q} 2> {log:q}"
