"""A user's --configfile replaces the bundled demo configuration; it never merges with it.

Real Snakemake dry runs (with --directory elsewhere, as a user keeps datasets apart): with
no --configfile the demo's config/config.yaml is read from next to the Snakefile; with one
or several, only they count, several merging with each other.
"""

import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import REPO

SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")


def dry_run(workdir: Path, *configfiles: Path) -> str:
    """Output of ``snakemake -n`` in ``workdir`` with the given config files (none: the default)."""
    command = [SNAKEMAKE, "-n", "--cores", "1", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir)]
    if configfiles:
        command += ["--configfile", *map(str, configfiles)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    return output


def experiments_of(output: str) -> set[str]:
    """The experiment wildcards of the train jobs that a dry run lists."""
    return set(re.findall(r"^\s+wildcards: experiment=([\w-]+)", output, flags=re.MULTILINE)) | set(re.findall(r"results/models/([\w-]+)/", output))


def user_dataset(folder: Path) -> Path:
    """A tiny manifest dataset of 3 training cases and 1 test case, its manifest path."""
    import numpy as np
    import SimpleITK as sitk

    rows = ["case\tt1\tlabel\tsplit"]
    for index in range(4):
        image = np.random.default_rng(index).normal(size=(8, 8, 8)).astype(np.float32)
        label = (image > 0).astype(np.uint8)
        for name, array in (("img", image), ("seg", label)):
            sitk.WriteImage(sitk.GetImageFromArray(array), str(folder / f"c{index}_{name}.nii.gz"))
        rows.append(f"c{index}\tc{index}_img.nii.gz\tc{index}_seg.nii.gz\t{'test' if index == 3 else 'train'}")
    (folder / "cases.tsv").write_text("\n".join(rows) + "\n")
    return folder / "cases.tsv"


def mine(manifest: Path, **experiments) -> dict:
    return {
        "dataset": {"name": "mine", "manifest": str(manifest), "channels": [{"name": "t1", "modality": "mri"}], "labels": {0: "background", 1: "object"}},
        "plan": {"folds": 2, "patch_size": [8, 8, 8]},
        "experiments": experiments or {"only_mine": {"model": {"name": "unet", "channels": [4, 8]}}},
    }


def test_without_a_configfile_the_bundled_demo_runs_also_in_another_folder(tmp_path):
    output = dry_run(tmp_path)
    demo = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    assert "demo_case" in output
    assert experiments_of(output) == set(demo["experiments"])


def test_a_users_configfile_replaces_the_demo_config(tmp_path):
    # As in the repository itself: a config/config.yaml in the working folder is not merged in.
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text((REPO / "config" / "config.yaml").read_text())
    (tmp_path / "my.yaml").write_text(yaml.safe_dump(mine(user_dataset(tmp_path))))
    output = dry_run(tmp_path, tmp_path / "my.yaml")
    assert "demo_case" not in output, "the demo's dataset.demo leaked into the user's config"
    assert experiments_of(output) == {"only_mine"}


def test_several_configfiles_merge_with_each_other_only(tmp_path):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(mine(user_dataset(tmp_path))))
    (tmp_path / "more.yaml").write_text(yaml.safe_dump({"experiments": {"second": {"model": {"name": "unet", "channels": [4, 8]}}}}))
    output = dry_run(tmp_path, tmp_path / "base.yaml", tmp_path / "more.yaml")
    assert "demo_case" not in output
    assert experiments_of(output) == {"only_mine", "second"}
