# Data: the demo dataset, the per-case check, fingerprint, plan and preprocessing.


rule demo_case:
    output:
        image="results/demo/{demo}/images/{case}.nii.gz",
        label="results/demo/{demo}/labels/{case}.nii.gz",
    wildcard_constraints:
        demo=DEMO or "no-demo",
    params:
        config=CONFIG_JSON,
        pipeline=PIPELINE,
        demo=config["demo"],
    conda:
        "../../environment.yml"
    log:
        "logs/demo_case/{demo}/{case}.log",
    benchmark:
        "benchmarks/demo_case/{demo}/{case}.tsv"
    group:
        "check_cases"
    shell:
        "{params.pipeline} demo-case --config {params.config:q} --case {wildcards.case:q} 2> {log:q}"


rule demo_manifest:
    output:
        "results/demo/{demo}/manifest.tsv",
    wildcard_constraints:
        demo=DEMO or "no-demo",
    params:
        config=CONFIG_JSON,
        pipeline=PIPELINE,
        demo=config["demo"],
    conda:
        "../../environment.yml"
    log:
        "logs/demo_manifest/{demo}.log",
    benchmark:
        "benchmarks/demo_manifest/{demo}.tsv"
    shell:
        "{params.pipeline} demo-manifest --config {params.config:q} --output {output:q} 2> {log:q}"


rule check_case:
    input:
        case_files,
    output:
        "results/cases/{case}/check.json",
    params:
        config=CONFIG_JSON,
        pipeline=PIPELINE,
        dataset={
            k: v
            for k, v in config["dataset"].items()
            if k not in ("landmarks", "landmark_names")
        },
    conda:
        "../../environment.yml"
    log:
        "logs/check_case/{case}.log",
    benchmark:
        "benchmarks/check_case/{case}.tsv"
    group:
        "check_cases"
    shell:
        "{params.pipeline} check --config {params.config:q} --case {wildcards.case:q} --output {output:q} 2> {log:q}"


rule fingerprint:
    input:
        expand("results/cases/{case}/check.json", case=TRAIN_CASES),
    output:
        "results/plans/fingerprint.json",
    params:
        config=CONFIG_JSON,
        pipeline=PIPELINE,
    conda:
        "../../environment.yml"
    log:
        "logs/fingerprint.log",
    benchmark:
        "benchmarks/fingerprint.tsv"
    shell:
        "{params.pipeline} fingerprint --config {params.config:q} --checks {input:q} --output {output:q} 2> {log:q}"


rule plan:
    input:
        "results/plans/fingerprint.json",
    output:
        plans="results/plans/plans.json",
        splits="results/plans/splits.json",
    params:
        config=CONFIG_JSON,
        pipeline=PIPELINE,
        plan=config["plan"],
        preprocessing=config["preprocessing"],
    conda:
        "../../environment.yml"
    log:
        "logs/plan.log",
    benchmark:
        "benchmarks/plan.tsv"
    shell:
        "{params.pipeline} plan --config {params.config:q} --fingerprint {input:q} "
        "--output {output.plans:q} --splits {output.splits:q} 2> {log:q}"


rule preprocess_case:
    input:
        check="results/cases/{case}/check.json",
        plans="results/plans/plans.json",
    output:
        image="results/preprocessed/{case}/image.npy",
        label="results/preprocessed/{case}/label.npy",
        properties="results/preprocessed/{case}/properties.json",
    params:
        config=CONFIG_JSON,
        pipeline=PIPELINE,
    conda:
        "../../environment.yml"
    log:
        "logs/preprocess_case/{case}.log",
    benchmark:
        "benchmarks/preprocess_case/{case}.tsv"
    group:
        "preprocess_cases"
    resources:
        mem_mb=4000,
    shell:
        "{params.pipeline} preprocess --config {params.config:q} --case {wildcards.case:q} --plan {input.plans:q} "
        "--output-dir results/preprocessed/{wildcards.case:q} 2> {log:q}"
