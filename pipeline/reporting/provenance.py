"""Provenance recorded in reports: code version, library versions, device, stage run times."""

from __future__ import annotations

import glob
import platform
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd

LIBRARIES = ("torch", "monai", "numpy", "SimpleITK", "nibabel", "pandas", "snakemake")


def code_version(root: str | Path = ".") -> str:
    """``git describe`` of the working tree (with ``-dirty``), or ``unknown`` outside git."""
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "describe", "--always", "--dirty", "--abbrev=12"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() or "unknown"


def library_versions() -> dict[str, str]:
    """Versions of the libraries the results depend on (``missing`` if not installed)."""
    import importlib.metadata

    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "missing"
    return versions


def device_description() -> str:
    """The compute device this process sees (GPU names, or the CPU)."""
    import torch

    if torch.cuda.is_available():
        return ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def stage_times(experiment: str, root: str | Path = "benchmarks") -> pd.DataFrame:
    """Wall-clock seconds per stage from Snakemake's benchmark files (sum and count of jobs)."""
    patterns = {
        "demo_case": "demo_case/**/*.tsv",
        "check_case": "check_case/*.tsv",
        "fingerprint": "fingerprint.tsv",
        "plan": "plan.tsv",
        "preprocess_case": "preprocess_case/*.tsv",
        "train": f"train/{experiment}/*.tsv",
        "predict_case": f"predict_case/{experiment}/*.tsv",
        "evaluate_case": f"evaluate_case/{experiment}/*.tsv",
        "aggregate": f"aggregate/{experiment}.tsv",
    }
    rows: list[dict[str, Any]] = []
    for stage, pattern in patterns.items():
        files = sorted(glob.glob(str(Path(root) / pattern), recursive=True))
        seconds = [float(pd.read_csv(f, sep="\t")["s"].iloc[-1]) for f in files]
        if seconds:
            rows.append({"stage": stage, "jobs": len(seconds), "total_s": round(sum(seconds), 1), "max_s": round(max(seconds), 1)})
    return pd.DataFrame(rows, columns=["stage", "jobs", "total_s", "max_s"])
