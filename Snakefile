# Medical image segmentation workflow: data check, planning, preprocessing, training,
# inference, evaluation and HTML reports. The logic is in the `pipeline` package; the rules
# under workflow/rules/ only wire files together.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/landmarks.smk"
include: "workflow/rules/denoise.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/predict.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        expand("reports/{experiment}.html", experiment=EXPERIMENTS),
        ["reports/index.html"] if SEGMENTATION_EXPERIMENTS else [],
        LANDMARK_TARGETS,
        expand("results/evaluation/{experiment}/summary.tsv", experiment=EXPERIMENTS),
        [f"results/demo/{DEMO}/manifest.tsv"] if DEMO else [],
    default_target: True
