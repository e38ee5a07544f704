# Denoising autoencoders (experiments with task: denoise): PSNR/SSIM on the test cases and
# the experiment's report. Training is the shared train rule; pretrained_checkpoint (in
# common.smk) gives the train rule of an experiment with init_from the checkpoint it starts from.

ruleorder: denoise_evaluate > aggregate
ruleorder: denoise_report > report


rule denoise_evaluate:
    input:
        checkpoints=fold_checkpoints,
        cases=expand("results/preprocessed/{case}/properties.json", case=TEST_CASES),
    output:
        per_case="results/evaluation/{experiment}/per_case.tsv",
        summary="results/evaluation/{experiment}/summary.tsv",
        figure="results/evaluation/{experiment}/example.png",
    wildcard_constraints:
        experiment="|".join(DENOISE_EXPERIMENTS) or "no-denoise-experiment",
    params:
        config=CONFIG_JSON,
        pipeline=PIPELINE_DENOISE,
        settings=experiment_settings,
        case_dirs=[f"results/preprocessed/{case}" for case in TEST_CASES],
    conda:
        "../../environment.yml"
    log:
        "logs/denoise_evaluate/{experiment}.log",
    benchmark:
        "benchmarks/denoise_evaluate/{experiment}.tsv"
    threads: 2
    resources:
        gpu=1,
        mem_mb=8000,
    shell:
        "{params.pipeline} evaluate --config {params.config:q} --threads {threads} --experiment {wildcards.experiment:q} "
        "--checkpoints {input.checkpoints:q} --case-dirs {params.case_dirs:q} --per-case {output.per_case:q} "
        "--summary {output.summary:q} --figure {output.figure:q} 2> {log:q}"


rule denoise_report:
    input:
        per_case="results/evaluation/{experiment}/per_case.tsv",
        summary="results/evaluation/{experiment}/summary.tsv",
        figure="results/evaluation/{experiment}/example.png",
        logs=trained_fold_logs,
    output:
        "reports/{experiment}.html",
    wildcard_constraints:
        experiment="|".join(DENOISE_EXPERIMENTS) or "no-denoise-experiment",
    params:
        config=CONFIG_JSON,
        pipeline=PIPELINE_DENOISE,
    conda:
        "../../environment.yml"
    log:
        "logs/denoise_report/{experiment}.log",
    benchmark:
        "benchmarks/denoise_report/{experiment}.tsv"
    shell:
        "{params.pipeline} report --config {params.config:q} --experiment {wildcards.experiment:q} "
        "--per-case {input.per_case:q} --summary {input.summary:q} --figure {input.figure:q} "
        "--logs {input.logs:q} --output {output:q} 2> {log:q}"
