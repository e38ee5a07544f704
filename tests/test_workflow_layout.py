"""pipeline/workflow/: what the Snakemake rules wire, without running Snakemake
(except the group-check speed-up, which is also tried on a real tiny DAG)."""

import copy
import dataclasses
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pipeline.config import validate_config
from pipeline.errors import ConfigError
from pipeline.tasks import TASKS
from pipeline.workflow import Layout, chunk_resources, config_text, contracted_graph_is_acyclic, install_fast_group_checks, params, write_if_changed
from pipeline.workflow.groups import WRAPPED
from tests.conftest import REPO

SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
LABELS = {0: "background", 1: "gray_matter", 2: "white_matter"}


def brain_config(**experiments) -> dict:
    """A validated brain-demo config (6 cases, 2 test cases) with ``experiments``."""
    return validate_config({
        "dataset": {"name": "demo", "demo": "brain", "channels": [{"name": "t1", "modality": "mri"}], "labels": dict(LABELS),
                    "landmarks": "results/demo/brain/landmarks.tsv"},
        "demo": {"cases": 6, "test_cases": 2, "spacing_mm": 4.0},
        "plan": {"folds": 3, "patch_size": [16, 16, 16], "batch_size": 2},
        "experiments": experiments or {"seg": {"model": {"name": "unet", "channels": [4, 8]}}},
    })  # fmt: skip


def mixed() -> dict:
    """Two segmentation experiments (one batched, one starting from the denoiser), one
    landmark and one denoising experiment."""

    def small(**settings) -> dict:
        return {"model": {"name": "unet", "channels": [4, 8]}, "training": {"folds": [1, 2]}, **settings}

    return brain_config(
        seg=small(inference={"cases_per_job": 2, "folds": [2]}, init_from="dn"),
        seg2=small(),
        lm=small(task="landmarks"),
        dn=small(task="denoise", inference={"cases_per_job": 5}),
    )


def reordered(value):
    """``value`` with the keys of every mapping in reverse order."""
    if isinstance(value, dict):
        return {k: reordered(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [reordered(v) for v in value]
    return value


# Layout


def test_targets_cover_every_experiment_each_comparison_page_and_the_demo_manifest():
    layout = Layout(mixed())
    assert layout.targets() == [
        *(f"reports/{e}.html" for e in ("seg", "seg2", "lm", "dn")),
        *(f"results/evaluation/{e}/summary.tsv" for e in ("seg", "seg2", "lm", "dn")),
        "reports/index.html", "reports/landmarks/comparison.html",  # denoise has no comparison page
        "results/demo/brain/manifest.tsv",
    ]  # fmt: skip
    assert layout.comparisons() == [("segmentation", "reports/index.html", ["seg", "seg2"]), ("landmarks", "reports/landmarks/comparison.html", ["lm"])]
    assert Layout(validate_config(reordered(mixed()))).comparisons() == layout.comparisons()
    assert Layout(brain_config()).comparisons() == [("segmentation", "reports/index.html", ["seg"])]


def test_prediction_files_and_chunks_follow_each_experiments_task():
    layout = Layout(mixed())
    assert layout.test_cases == ["brain_004", "brain_005"] and len(layout.train_cases) == 4
    assert layout.predictions("seg") == ["results/predictions/seg/brain_004.nii.gz", "results/predictions/seg/brain_005.nii.gz"]
    assert layout.prediction("lm", "brain_004") == "results/predictions/lm/brain_004.tsv"
    assert layout.prediction("dn", "brain_004") == "results/predictions/dn/brain_004.npz"
    # cases_per_job > 1 batches any task; the rest is predicted one case per job
    assert layout.chunks == [("dn", ["brain_004", "brain_005"]), ("seg", ["brain_004", "brain_005"])]
    pattern = re.compile(f"^(?:{layout.unbatched_pattern()})$")
    assert [e for e in ("seg", "seg2", "lm", "dn", "seg2x") if pattern.match(e)] == ["seg2", "lm"]
    suffix = re.compile(f"^(?:{layout.suffix_pattern()})$")
    assert all(suffix.match(s) for s in (".nii.gz", ".tsv", ".npz")) and not suffix.match(".nii")
    assert layout.prediction_checkpoints("lm", ".tsv", "brain_004") == layout.fold_checkpoints("lm")
    with pytest.raises(ConfigError, match=r"predicts <case>\.tsv files"):
        layout.prediction_checkpoints("lm", ".nii.gz", "brain_004")


def test_checkpoints_logs_and_init_from():
    layout = Layout(mixed())
    assert layout.fold_checkpoints("seg") == ["results/models/seg/fold_2/best.pt"]  # inference.folds
    assert layout.fold_checkpoints("lm") == ["results/models/lm/fold_1/best.pt", "results/models/lm/fold_2/best.pt"]
    assert layout.fold_logs("seg") == ["results/models/seg/fold_1/log.tsv", "results/models/seg/fold_2/log.tsv"]
    assert layout.init_checkpoint("seg") == ["results/models/dn/fold_1/best.pt"]  # lowest trained fold of dn
    assert layout.init_checkpoint("seg2") == []


def test_evaluation_and_training_references_come_from_the_task_registry():
    layout = Layout(mixed())
    assert layout.evaluation_references("seg", "brain_004") == ["results/demo/brain/labels/brain_004.nii.gz"]
    assert layout.evaluation_references("lm", "brain_004") == ["results/demo/brain/landmarks.tsv"]
    assert all(f.startswith("results/") for f in layout.evaluation_references("dn", "brain_004"))
    # only what every case's evaluation shares reaches training directly: the landmark table
    assert layout.training_references("lm") == ["results/demo/brain/landmarks.tsv"]
    assert layout.training_references("seg") == [] and layout.training_references("dn") == []


def test_missing_user_files_are_not_declared(tmp_path):
    (tmp_path / "a.nii.gz").write_bytes(b"")
    rows = ["case\timage\tlabel\tsplit", "c0\ta.nii.gz\ta.nii.gz\ttrain", "c1\ta.nii.gz\tmissing.nii.gz\ttest", "c2\ta.nii.gz\ta.nii.gz\ttest"]
    (tmp_path / "manifest.tsv").write_text("\n".join(rows) + "\n")
    config = validate_config({
        "dataset": {"manifest": str(tmp_path / "manifest.tsv"), "channels": [{"name": "image", "modality": "ct"}], "labels": {0: "bg", 1: "fg"}},
        "experiments": {"seg": {"model": {"name": "unet", "channels": [4, 8]}}},
    })  # fmt: skip
    layout = Layout(config)
    assert layout.case_inputs("c1") == [str(tmp_path / "a.nii.gz")]
    assert layout.evaluation_references("seg", "c1") == [] and layout.evaluation_references("seg", "c2") == [str(tmp_path / "a.nii.gz")]
    assert layout.targets()[-1] == "reports/index.html"  # no demo manifest


def test_an_experiment_may_not_take_a_comparison_pages_name():
    with pytest.raises(ConfigError, match="'index'"):
        Layout(brain_config(index={"model": {"name": "unet", "channels": [4, 8]}}))


def test_predict_target_needs_an_experiment_and_inputs(tmp_path):
    layout = Layout(brain_config())
    with pytest.raises(ConfigError, match="needs predict.experiment and predict.input"):
        layout.predict_targets()
    (tmp_path / "scan_a.nii.gz").write_bytes(b"")
    config = brain_config()
    config["predict"] = {"experiment": "seg", "input": str(tmp_path)}
    layout = Layout(config)
    assert layout.predict_inputs == {"scan_a": [str(tmp_path / "scan_a.nii.gz")]}
    assert layout.predict_targets() == ["results/predict/seg/scan_a.nii.gz"]
    config["predict"]["experiment"] = "other"
    with pytest.raises(ConfigError, match="not one of the experiments"):
        Layout(config).predict_targets()


def test_layout_takes_any_task_registry():
    fake = dataclasses.replace(
        TASKS["segmentation"], name="segmentation", prediction_suffix=".mha", compare_output=None, evaluation_reference=lambda config, row: [row["label"]]
    )
    layout = Layout(brain_config(), tasks={"segmentation": fake})
    assert layout.predictions("seg")[0].endswith("brain_004.mha") and layout.comparisons() == []
    # A task with no reference for any case: its predictions are the targets, nothing is scored.
    unscored = Layout(brain_config(), tasks={"segmentation": dataclasses.replace(fake, evaluation_reference=lambda config, row: [])})
    assert unscored.predictions("seg") == [] and unscored.scored_experiments() == []
    assert {t for t in unscored.targets() if t.startswith("results/predictions/")} == {unscored.prediction("seg", c) for c in unscored.test_cases}
    assert not any(t.startswith("reports/") or t.endswith("summary.tsv") for t in unscored.targets())


# Rerun triggers


def all_params(config: dict) -> dict:
    layout = Layout(config)
    out = {"demo": params.demo(config), "data": params.data(config), "plan": params.plan(config)}
    for e in layout.experiments:
        task = layout.task(e)
        out |= {f"train {e}": params.training(config, e, task), f"predict {e}": params.prediction(config, e, task),
                f"evaluate {e}": params.evaluation(config, task), f"report {e}": params.report(config, task)}  # fmt: skip
    for t, _, experiments in layout.comparisons():
        out[f"compare {t}"] = params.compare(config, experiments)
    return out


def changed(before: dict, after: dict) -> set[str]:
    return {k.split()[0] for k in before if before[k] != after[k]}


def test_params_are_canonical_so_reordering_keys_reruns_nothing():
    config = mixed()
    again = validate_config(reordered(copy.deepcopy(config)))
    assert list(again["dataset"]) != list(config["dataset"])
    assert all_params(again) == all_params(config)
    assert config_text(again) == config_text(config)
    assert all(isinstance(v, str) for v in all_params(config).values())


def test_display_names_are_read_only_by_evaluation_reports_and_comparisons():
    before = all_params(mixed())
    config = mixed()
    config["dataset"]["name"] = "renamed"
    assert changed(before, all_params(config)) == {"report", "compare"}
    config = mixed()
    config["dataset"]["labels"]["1"] = "cortex"
    assert changed(before, all_params(config)) == {"evaluate", "report", "compare"}
    config = mixed()  # another class: the data, the plan and every training change
    config["dataset"]["labels"]["3"] = "csf"
    assert {"data", "plan", "train"} <= changed(before, all_params(config))


def test_training_reads_its_tasks_sections_and_prediction_its_inference():
    config = mixed()
    before = all_params(config)
    config["experiments"]["seg"]["inference"]["cases_per_job"] = 1  # spreads cases only
    config["experiments"]["seg2"]["landmarks"]["sigma_mm"] = 9.0  # not a segmentation setting
    config["experiments"]["lm"]["inference"]["overlap"] = 0.1
    assert before == all_params(config) | {"predict lm": before["predict lm"]} and before["predict lm"] != all_params(config)["predict lm"]
    config["experiments"]["lm"]["landmarks"]["sigma_mm"] = 9.0  # a landmark setting: train and predict
    after = all_params(config)
    assert {k for k in before if before[k] != after[k]} == {"train lm", "predict lm"}
    config["experiments"]["seg"]["init_part"] = "all"
    config["experiments"]["seg2"]["training"]["epochs"] = 1
    after = all_params(config)
    assert {k for k in before if before[k] != after[k] and k.startswith("train")} == {"train lm", "train seg", "train seg2"}
    assert '"task":"segmentation"' in after["train seg"] and '"init_from":"dn"' in after["train seg"]


# Resources of prediction chunks, results/config.json


def test_chunks_take_the_per_case_resources_with_the_runtime_times_their_cases():
    threads = lambda wildcards, threads: threads  # noqa: E731
    per_case = {"_cores": 4, "_nodes": 1, "gpu": 1, "mem_mb": 16000, "runtime": 5, "cpus_per_gpu": threads}
    assert chunk_resources(per_case, 3) == {"gpu": 1, "mem_mb": 16000, "runtime": 15, "cpus_per_gpu": threads}
    assert chunk_resources({"runtime": "1h"}, 3) == {"runtime": "1h"} and chunk_resources({}, 3) == {}


def test_config_file_is_rewritten_only_when_its_text_changes(tmp_path):
    path = tmp_path / "results/config.json"
    assert write_if_changed(path, "a\n") and path.read_text() == "a\n"
    os.utime(path, (1_000_000, 1_000_000))
    assert not write_if_changed(path, "a\n") and path.stat().st_mtime == 1_000_000
    assert write_if_changed(path, "b\n") and path.read_text() == "b\n"
    assert [p.name for p in path.parent.iterdir()] == ["config.json"]


# The linear group check


class Job:
    def __init__(self, name: str, group: str | None = None) -> None:
        self.name, self.group = name, group

    def __repr__(self) -> str:
        return self.name


def graph(*edges: tuple[Job, Job]) -> dict:
    """``{job: upstream jobs}`` from (upstream, downstream) edges."""
    dependencies: dict = {}
    for upstream, downstream in edges:
        dependencies.setdefault(upstream, set())
        dependencies.setdefault(downstream, set()).add(upstream)
    return dependencies


def test_contracted_graph_is_acyclic_unless_a_path_leaves_a_group_and_returns():
    a, b, c, d = Job("a", "g"), Job("b"), Job("c", "g"), Job("d", "h")
    group = lambda job: job.group  # noqa: E731
    assert contracted_graph_is_acyclic(graph((a, c), (b, c), (c, d)), group)
    assert contracted_graph_is_acyclic(graph((a, b), (b, d)), group)
    assert not contracted_graph_is_acyclic(graph((a, b), (b, c)), group)  # g -> b -> g
    assert contracted_graph_is_acyclic(graph((a, b), (b, c)), lambda job: None)  # ungrouped: a plain DAG
    assert not contracted_graph_is_acyclic(graph((Job("x", "g"), Job("y", "h")), (Job("z", "h"), Job("w", "g"))), group)  # g -> h -> g


def fake_dag_class():
    class FakeDAG:
        calls: list

        def __init__(self, dependencies):
            self.dependencies, self.calls = dependencies, []

        def update_groups(self):
            """Snakemake's: validates every group, then checks them."""
            self.validate_group("g")
            self._check_groups()

        def validate_group(self, group):
            self.calls.append("validate_group")

        def _check_groups(self):
            self.calls.append("_check_groups")

    return FakeDAG


def test_install_skips_snakemakes_checks_only_for_an_acyclic_group_graph_and_is_idempotent():
    dag_class = fake_dag_class()
    assert install_fast_group_checks(dag_class)
    installed = [getattr(dag_class, n) for n in WRAPPED]
    assert install_fast_group_checks(dag_class) and [getattr(dag_class, n) for n in WRAPPED] == installed  # not wrapped twice
    a, b, c = Job("a", "g"), Job("b"), Job("c", "g")
    acyclic = dag_class(graph((a, c), (b, c)))
    acyclic.update_groups()
    assert acyclic.calls == []
    cyclic = dag_class(graph((a, b), (b, c)))
    cyclic.update_groups()
    assert cyclic.calls == ["validate_group", "_check_groups"]  # Snakemake's own checks name the problem
    cyclic.calls.clear()
    cyclic.validate_group("g")  # outside update_groups: always Snakemake's
    assert cyclic.calls == ["validate_group"] and acyclic._segpipe_groups_acyclic is False


def test_install_leaves_another_dag_alone():
    class OtherDAG:
        def update_groups(self):
            pass

    assert not install_fast_group_checks(OtherDAG)
    assert not hasattr(OtherDAG, "_segpipe_fast_group_checks") and not hasattr(OtherDAG, "validate_group")


GROUP_SNAKEFILE = """
import sys
sys.path.insert(0, {repo!r})
from pipeline.workflow import install_fast_group_checks
from snakemake.dag import DAG
assert install_fast_group_checks() and install_fast_group_checks()
print("fast group checks:", DAG._segpipe_fast_group_checks)

rule all:
    input: expand("c{{i}}.txt", i=range(3))

rule a:
    output: "a{{i}}.txt"
    group: "g"
    shell: "touch {{output}}"

rule b:
    input: "a{{i}}.txt"
    output: "b{{i}}.txt"
    {b_group}
    shell: "touch {{output}}"

rule c:
    input: "b{{i}}.txt"
    output: "c{{i}}.txt"
    group: "g"
    shell: "touch {{output}}"
"""


@pytest.mark.parametrize("b_group", ['group: "g"', ""])
def test_real_dag_with_the_speed_up(tmp_path, b_group):
    (tmp_path / "Snakefile").write_text(textwrap.dedent(GROUP_SNAKEFILE.format(repo=str(REPO), b_group=b_group)))
    command = [SNAKEMAKE, "-n", "--cores", "1", "--directory", str(tmp_path), "--snakefile", str(tmp_path / "Snakefile"), "--group-components", "g=3"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    output = result.stdout + result.stderr
    assert "fast group checks: True" in output
    if b_group:  # a, b, c in one group: fine
        assert result.returncode == 0, output[-3000:]
    else:  # g -> b -> g: the speed-up steps aside and Snakemake's own checks decide. Which
        # components --group-components merges follows set order, so Snakemake 9 itself
        # (without the speed-up too) either names the cycle, stops at its own assertion, or
        # merges the a jobs and the c jobs into separate group jobs, which is a valid plan.
        if result.returncode != 0:
            assert "Group g depends on itself" in output or "no such job is ready for execution" in output, output[-3000:]
        else:
            group_jobs = output.split("Group job g")[1:]
            assert group_jobs, output[-3000:]
            for job in group_jobs:
                job = job.split("rule all:")[0]
                assert not ("rule a:" in job and "rule c:" in job), output[-3000:]


def test_an_ignore_label_or_regions_retrain_and_regions_keep_the_preprocessing():
    before = all_params(mixed())
    config = mixed()
    config["dataset"]["labels"]["3"] = "csf"
    with_class = all_params(config)
    config["dataset"]["labels"]["3"] = "ignore"  # same values, one output fewer
    assert {"data", "plan", "train"} <= changed(with_class, all_params(config))
    config = mixed()
    config["dataset"]["regions"] = [{"name": "brain", "labels": [1, 2]}, {"name": "white", "labels": [2]}]
    assert {"plan", "train", "evaluate"} <= changed(before, all_params(config)) and "data" not in changed(before, all_params(config))
