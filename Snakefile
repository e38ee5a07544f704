# Medical image segmentation workflow: data check, planning, preprocessing, training,
# inference, evaluation and HTML reports, for every task of pipeline/tasks/ (segmentation,
# landmarks, denoising). The logic is in the `pipeline` package (what the rules wire:
# pipeline/workflow/); the rules under workflow/rules/ only wire files together.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/predict.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        W.targets(),
