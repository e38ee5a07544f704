"""The GPU check (workflow/benchmarks/gpu_check.py) keeps working between GPU runs: its smoke
size runs here on the CPU, with the libraries the GPU machine lacks made unimportable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "workflow" / "benchmarks" / "gpu_check.py"

#: Import names of what this environment has and the GPU machine has not (KINDS.md's list of
#: its packages): the check must run without them. monai travels as a wheel.
ABSENT_THERE = ["SimpleITK", "nibabel", "nilearn", "jsonschema", "jsonschema_specifications", "referencing", "rpds", "snakemake", "stardist", "csbdeep"]
ABSENT_THERE += [
    "surface_distance",
    "humanfriendly",
    "tenacity",
    "fastjsonschema",
    "yte",
    "pulp",
    "docutils",
    "nbformat",
    "smart_open",
    "dpath",
    "platformdirs",
]


def test_the_gpu_check_runs_without_the_io_libraries(tmp_path):
    data, out = tmp_path / "data", tmp_path / "check.md"
    prepared = subprocess.run(
        [sys.executable, str(SCRIPT), "prepare", "--smoke", "--data", str(data)], capture_output=True, text=True, timeout=300, check=False
    )
    assert prepared.returncode == 0, prepared.stderr[-3000:]
    assert {p.name for p in data.iterdir()} == {"cases", "config.json", "plans.json", "splits.json"}
    # Every python process of the run (the data-parallel workers too) starts without them.
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(f"import sys\nfor name in {ABSENT_THERE!r}:\n    sys.modules[name] = None\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "run", "--smoke", "--data", str(data), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    table = out.read_text(encoding="utf-8")
    assert "Errors:" not in table and "| error |" not in table
    rows = {tuple(cell.strip() for cell in line.strip("|").split("|")[:2]): line for line in table.splitlines() if line.startswith("| ")}
    for part, measurement in [
        ("a", "ours (pipeline U-Net), eager"),
        ("a", "MONAI DynUNet, eager"),
        ("b", "ours vs MONAI label maps"),
        ("c", "validation Dice"),
    ]:
        assert (part, measurement) in rows, f"no row ({part}) {measurement} in:\n{table}"
    # The same windows and Gaussian as MONAI's: the same labels.
    assert float(rows[("b", "ours vs MONAI label maps")].split("Dice ")[1].split()[0]) >= 0.999
    assert "replicas checked identical" in rows[("d", "two data-parallel processes")]
    # A broken import would show here as an error row, not as a missing library.
    assert "SimpleITK" not in result.stderr and "No module named" not in result.stderr
