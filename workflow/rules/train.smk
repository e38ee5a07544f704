# Training: one job per experiment and cross-validation fold; resumes from its checkpoint.


rule train:
    input:
        plans="results/plans/plans.json",
        splits="results/plans/splits.json",
        cases=expand("results/preprocessed/{case}/properties.json", case=TRAIN_CASES),
    output:
        best="results/models/{experiment}/fold_{fold}/best.pt",
        last="results/models/{experiment}/fold_{fold}/last.pt",
        log="results/models/{experiment}/fold_{fold}/log.tsv",
    params:
        config=CONFIG_JSON,
        pipeline=PIPELINE,
        experiment=experiment_settings,
    conda:
        "../../environment.yml"
    log:
        "logs/train/{experiment}/fold_{fold}.log",
    benchmark:
        "benchmarks/train/{experiment}/fold_{fold}.tsv"
    threads: 2
    resources:
        gpu=1,
        mem_mb=8000,
    shell:
        "{params.pipeline} train --config {params.config:q} --threads {threads} --experiment {wildcards.experiment:q} "
        "--fold {wildcards.fold} --plan {input.plans:q} --splits {input.splits:q} "
        "--preprocessed results/preprocessed --fold-dir results/models/{wildcards.experiment:q}/fold_{wildcards.fold} "
        "2> {log:q}"
