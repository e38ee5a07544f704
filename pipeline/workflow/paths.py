"""File names as the workflow records them."""

from __future__ import annotations

import os


def local_path(path: str) -> str:
    """``path`` relative to the working folder where it lies inside it, else as given: the
    file names Snakemake records then stay the same when the folder is moved or copied."""
    full = os.path.abspath(path)
    here = os.getcwd()
    return os.path.relpath(full, here) if os.path.commonpath([here, full]) == here else path


def made_by_workflow(path: str) -> bool:
    """Whether the workflow writes ``path`` (everything it writes lies under ``results/``)."""
    return os.path.normpath(path).split(os.sep)[0] == "results"
