# Medical image segmentation workflow: data check, planning, preprocessing, training,
# inference, evaluation and HTML reports, for every task of pipeline/tasks/ (segmentation,
# landmarks, denoising). The logic is in the `pipeline` package (what the rules wire:
# pipeline/workflow/); the rules under workflow/rules/ only wire files together.
from snakemake.utils import min_version

min_version("9.0")


# The bundled demo configuration, only when no --configfile is given: a user's config file
# replaces it (several --configfile files merge with each other, never with the demo's). It
# is found next to this Snakefile, also when --directory points elsewhere.
if not workflow.overwrite_configfiles:

    configfile: f"{workflow.basedir}/config/config.yaml"


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
        "results/cases/verdict.json",
