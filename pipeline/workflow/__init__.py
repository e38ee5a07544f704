"""What the Snakemake workflow wires, computed here so that the rules only wire.

``workflow/rules/common.smk`` validates the config and builds one :class:`Layout`; the
rules call its methods for their inputs, outputs and targets, the functions of
:mod:`pipeline.workflow.params` for their rerun triggers, and
:func:`install_fast_group_checks` speeds up Snakemake's DAG for large cohorts and
:func:`install_single_job_accounting` keeps its local scheduler within ``--cores``.
Nothing here imports Snakemake except :mod:`pipeline.workflow.groups` and
:mod:`pipeline.workflow.scheduling`, and only when they are installed.
"""

from pipeline.workflow.config_file import config_text, write_if_changed
from pipeline.workflow.groups import contracted_graph_is_acyclic, install_fast_group_checks
from pipeline.workflow.layout import Layout, pipeline_command
from pipeline.workflow.resources import chunk_resources
from pipeline.workflow.scheduling import install_single_job_accounting

__all__ = [
    "Layout",
    "chunk_resources",
    "config_text",
    "contracted_graph_is_acyclic",
    "install_fast_group_checks",
    "install_single_job_accounting",
    "pipeline_command",
    "write_if_changed",
]
