"""pyproject.toml and environment.yml name the same dependencies."""

import re

import tomllib
import yaml

from tests.conftest import REPO

CONDA_NAMES = {"pytorch": "torch"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_pyproject_and_environment_yml_agree():
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pip_names = {_name(r) for r in project["dependencies"]} | {_name(r) for r in project["optional-dependencies"]["test"]}
    env = yaml.safe_load((REPO / "environment.yml").read_text(encoding="utf-8"))
    conda = {_name(d) for d in env["dependencies"] if isinstance(d, str)} - {"python", "pip"}
    conda = {CONDA_NAMES.get(n, n) for n in conda}
    conda |= {_name(d) for entry in env["dependencies"] if isinstance(entry, dict) for d in entry["pip"]}
    assert conda == pip_names


def test_torch_is_a_range_not_a_pin():
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    torch = next(r for r in project["dependencies"] if _name(r) == "torch")
    assert "==" not in torch and "<" in torch and ">=" in torch
