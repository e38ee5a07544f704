"""Medical image segmentation pipeline: the logic behind the Snakemake workflow.

Every stage is a plain, typed function in a sub-package; the Snakemake rules and
``python -m pipeline <stage>`` only call them.
"""

__version__ = "0.1.0"
