# Training: one job per experiment and cross-validation fold, for every task; resumes from
# its checkpoint. An experiment with init_from starts from that experiment's checkpoint.


rule train:
    input:
        plans="results/plans/plans.json",
        splits="results/plans/splits.json",
        cases=W.preprocessed(W.train_cases),
        pretrained=lambda wildcards: W.init_checkpoint(wildcards.experiment),
        references=lambda wildcards: W.training_references(wildcards.experiment),
    output:
        best="results/models/{experiment}/fold_{fold}/best.pt",
        last="results/models/{experiment}/fold_{fold}/last.pt",
        log="results/models/{experiment}/fold_{fold}/log.tsv",
    log:
        "logs/train/{experiment}/fold_{fold}.log",
    benchmark:
        "benchmarks/train/{experiment}/fold_{fold}.tsv"
    conda:
        "../../environment.yml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=8000,
    params:
        config=CONFIG_JSON,
        pipeline=PIPELINE,
        settings=lambda wildcards: triggers.training(config, wildcards.experiment, W.task(wildcards.experiment)),
    # exec: no shell in between, so a SIGTERM from SLURM reaches the training, and the job
    # ends only once its checkpoint is written.
    shell:
        "exec env {params.pipeline} train --config {params.config:q} --threads {threads} --experiment {wildcards.experiment:q} "
        "--fold {wildcards.fold} --processes {resources.gpu} --plan {input.plans:q} --splits {input.splits:q} "
        "--preprocessed results/preprocessed --fold-dir results/models/{wildcards.experiment:q}/fold_{wildcards.fold} "
        "2> {log:q}"
