"""Stress run: the whole pipeline with --cores 2 on 200 tiny generated cases.

Generates 200 small synthetic 3D cases (nested blobs with noise, 24x28x32 voxels) with a
manifest (190 train, 10 test), runs the full workflow with a 1-epoch U-Net, and prints the
wall time, the number of jobs, whether any failed, and the peak memory: the largest sum
of resident memory over Snakemake and all its job processes, sampled every 0.2 s.

    python workflow/benchmarks/stress_run.py [--cases 200] [--workdir /tmp/stress]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import yaml

REPO = Path(__file__).resolve().parents[2]


def make_cases(root: Path, n: int, n_test: int) -> Path:
    """Write n synthetic cases and their manifest under root; return the manifest."""
    lines = ["case\timage\tlabel\tsplit"]
    for i in range(n):
        rng = np.random.default_rng(i)
        label = np.zeros((24, 28, 32), np.uint8)
        c = rng.integers(8, 16, size=3)
        label[c[0] - 6 : c[0] + 6, c[1] - 7 : c[1] + 7, c[2] - 8 : c[2] + 8] = 1
        label[c[0] - 3 : c[0] + 3, c[1] - 3 : c[1] + 3, c[2] - 4 : c[2] + 4] = 2
        image = (label * 40.0 + 30 + rng.normal(0, 5, label.shape)).astype(np.float32)
        for kind, array in (("images", image), ("labels", label)):
            (root / kind).mkdir(parents=True, exist_ok=True)
            sitk.WriteImage(sitk.GetImageFromArray(array), str(root / kind / f"s{i:04d}.nii.gz"))
        lines.append(f"s{i:04d}\timages/s{i:04d}.nii.gz\tlabels/s{i:04d}.nii.gz\t{'test' if i >= n - n_test else 'train'}")
    manifest = root / "manifest.tsv"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and all its descendants, in MB (from /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
            rss[int(entry)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        total += rss.get(p, 0)
        stack += children.get(p, [])
    return total / 1024**2


def stage_processes(pid: int) -> int:
    """How many descendants of ``pid`` run a stage (``python -m pipeline ...``): the jobs running now."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    children.setdefault(int(handle.read().rsplit(")", 1)[1].split()[1]), []).append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    count, stack = 0, list(children.get(pid, []))
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/cmdline", "rb") as handle:
                argv = handle.read().split(b"\0")
        except OSError:
            continue
        count += argv[1:3] == [b"-m", b"pipeline"]
        stack += children.get(p, [])
    return count


def run_stress(cases: int, workdir: str | Path) -> dict:
    """Generate ``cases`` cases under ``workdir``, run the whole workflow on them with
    ``--cores 2 --keep-going``; return exit code, failed jobs, the last progress line,
    wall seconds, the peak memory (MB) of Snakemake and all its jobs together and the most
    stage processes (jobs) seen running at once."""
    root = Path(workdir)
    root.mkdir(parents=True, exist_ok=True)
    manifest = make_cases(root / "data", cases, 10)
    config = {
        "dataset": {"name": "stress", "manifest": str(manifest), "labels": {0: "background", 1: "outer", 2: "inner"}},
        "plan": {"folds": 5, "patch_size": [16, 16, 16], "batch_size": 2},
        "experiments": {"tiny": {"model": {"name": "unet", "channels": [4, 8]}, "training": {"epochs": 1, "iterations_per_epoch": 2}}},
    }
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    command = [
        str(Path(sys.executable).parent / "snakemake"),
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(root),
        "--configfile",
        str(root / "config.yaml"),
        "--cores",
        "2",
        "--keep-going",
    ]
    tic = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak, most = [0.0], [0]

    def sample() -> None:
        while process.poll() is None:
            peak[0] = max(peak[0], tree_rss_mb(process.pid))
            most[0] = max(most[0], stage_processes(process.pid))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output = process.communicate()[0]
    seconds = time.perf_counter() - tic
    sampler.join()
    done = [line.strip() for line in output.splitlines() if "steps (100%) done" in line or "Nothing to be done" in line]
    return {
        "returncode": process.returncode,
        "failed": output.count("Error in rule"),
        "done": done[-1] if done else "not finished",
        "seconds": seconds,
        "peak_mb": peak[0],
        "most_jobs": most[0],
        "output": output,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--workdir", default="/tmp/segpipe_stress")
    args = parser.parse_args()
    result = run_stress(args.cases, args.workdir)
    print(f"cases: {args.cases}; exit code {result['returncode']}; failed jobs: {result['failed']}; {result['done']}")
    print(f"wall time: {result['seconds']:.0f} s; peak memory of Snakemake and all jobs together: {result['peak_mb']:.0f} MB")
    print(f"most jobs running at once: {result['most_jobs']} (--cores 2)")


if __name__ == "__main__":
    main()
