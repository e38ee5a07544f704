"""How long Snakemake takes to plan the workflow for large cohorts, and how many jobs it makes.

Run: ``python workflow/benchmarks/bench_dag.py`` (1,000 and 5,000 cases) or ``--cases 200``. For each
cohort size it writes a manifest of fake cases (empty image and label files, every fifth
case a test case) and a config with 2 experiments x 5 folds into a temporary folder, then
times two dry runs of the repository's Snakefile:

- ``snakemake -n``: DAG build and dry run as on a workstation; its job count is the number
  of jobs without grouping;
- ``snakemake -n --workflow-profile workflow/profiles/slurm``: the same with the SLURM
  profile's group components; the count is what would be submitted to SLURM (one per
  group job plus one per ungrouped job; ``all`` runs locally).

Goals: 1,000 cases under 30 s, 5,000 under 60 s (each dry run). The seconds include
Snakemake's start-up and the printing of every job, as a user sees them.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
FOLDS = [0, 1, 2, 3, 4]
CONFIG = {
    "dataset": {
        "manifest": "data/manifest.tsv",
        "dimensions": 3,
        "channels": [{"name": "ct", "modality": "ct"}],
        "labels": {0: "background", 1: "organ", 2: "tumour"},
    },
    "plan": {"folds": len(FOLDS)},
    "experiments": {
        "unet": {"model": {"name": "unet"}, "training": {"folds": FOLDS}},
        "deeplab": {"model": {"name": "deeplabv3plus"}, "training": {"folds": FOLDS}},
    },
}


def write_cohort(folder: Path, n_cases: int) -> Path:
    """Manifest, empty image/label files and config of ``n_cases`` fake cases; returns the config."""
    data = folder / "data"
    (data / "images").mkdir(parents=True)
    (data / "labels").mkdir()
    lines = ["case\tct\tlabel\tsplit"]
    for i in range(n_cases):
        case = f"case_{i:05d}"
        (data / "images" / f"{case}.nii.gz").touch()
        (data / "labels" / f"{case}.nii.gz").touch()
        split = "test" if i % 5 == 4 else "train"
        lines.append(f"{case}\timages/{case}.nii.gz\tlabels/{case}.nii.gz\t{split}")
    (data / "manifest.tsv").write_text("\n".join(lines) + "\n")
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    return config


def dry_run(folder: Path, config: Path, *extra: str) -> tuple[float, str]:
    """Seconds of one ``snakemake -n`` in ``folder`` and its output."""
    command = [SNAKEMAKE, "-n", "--snakefile", str(REPO / "Snakefile"), "--directory", str(folder), "--configfile", str(config), *extra]
    tic = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - tic
    if result.returncode != 0:
        raise SystemExit(f"snakemake -n failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return seconds, result.stdout + result.stderr


def total_jobs(output: str) -> int:
    """The 'total' row of Snakemake's job stats table."""
    match = re.search(r"^total\s+(\d+)", output, flags=re.MULTILINE)
    if match is None:
        raise SystemExit("no job stats in the dry-run output")
    return int(match.group(1))


def submitted_jobs(output: str) -> tuple[int, dict[str, int]]:
    """Jobs a SLURM run submits (group jobs + ungrouped jobs but `all`), and group jobs per group."""
    groups: dict[str, int] = {}
    for name in re.findall(r"Group job (\w+)", output):
        groups[name] = groups.get(name, 0) + 1
    single = [r for r in re.findall(r"^(?:local)?rule (\w+):", output, flags=re.MULTILINE) if r != "all"]
    return sum(groups.values()) + len(single), groups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, nargs="+", default=[1000, 5000], help="cohort sizes (default: 1000 5000)")
    args = parser.parse_args()
    print(f"{'cases':>6} {'dry run s':>10} {'jobs':>7} {'SLURM dry run s':>16} {'SLURM jobs':>11}  group jobs")
    for n_cases in args.cases:
        with tempfile.TemporaryDirectory(prefix="bench_dag_") as tmp:
            folder = Path(tmp)
            config = write_cohort(folder, n_cases)
            seconds, output = dry_run(folder, config)
            jobs = total_jobs(output)
            slurm_seconds, slurm_output = dry_run(folder, config, "--workflow-profile", str(REPO / "workflow/profiles/slurm"))
            submitted, groups = submitted_jobs(slurm_output)
            detail = ", ".join(f"{k} {v}" for k, v in sorted(groups.items()))
            print(f"{n_cases:>6} {seconds:>10.1f} {jobs:>7} {slurm_seconds:>16.1f} {submitted:>11}  {detail}", flush=True)


if __name__ == "__main__":
    main()
