"""The package's layers import one way, and no module or package imports itself back.

Layers, lowest first (``pipeline/README.md`` draws them): a module may import modules of
its own layer or of lower ones, never of a higher one. Imports inside functions count.
"""

import ast
import itertools
from collections import defaultdict
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGE = REPO / "pipeline"
LAYERS = [
    ("base", ["pipeline.errors", "pipeline.atomic"]),
    ("io", ["pipeline.io"]),
    ("demo", ["pipeline.demo"]),
    ("preprocessing", ["pipeline.preprocessing"]),
    ("models", ["pipeline.models", "pipeline.losses"]),
    ("runtime", ["pipeline.runtime"]),
    ("training and inference", ["pipeline.training", "pipeline.inference"]),
    ("evaluation", ["pipeline.evaluation"]),
    ("qc", ["pipeline.qc"]),
    ("reporting", ["pipeline.reporting"]),
    ("tasks", ["pipeline.tasks"]),
    (
        "stages and CLI",
        [
            "pipeline.stages",
            "pipeline.outcomes",
            "pipeline.cli",
            "pipeline.__main__",
            "pipeline.config",
            "pipeline.config_checks",
            "pipeline.config_messages",
            "pipeline.config_docs",
            "pipeline.workflow",
        ],
    ),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports(path: Path, known: set[str], name: str) -> set[str]:
    """Modules of the package that ``path`` imports (resolved to known module names)."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            candidates = [f"{base}.{a.name}" for a in node.names] + [base]
        elif isinstance(node, ast.Import):
            candidates = [a.name for a in node.names]
        else:
            continue
        for candidate in candidates:
            while candidate and candidate not in known:
                candidate = candidate.rpartition(".")[0]
            if candidate and candidate != name and candidate != "pipeline":
                found.add(candidate)
                break
    return found


def layer_of(name: str) -> int:
    for index, (_, prefixes) in enumerate(LAYERS):
        if any(name == p or name.startswith(p + ".") for p in prefixes):
            return index
    raise AssertionError(f"module {name} is in no layer; add it to LAYERS in tests/test_layers.py and to pipeline/README.md")


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports(path, set(mods), name) for name, path in mods.items() if name != "pipeline"}


def test_every_module_is_in_a_layer(graph):
    for name in graph:
        layer_of(name)


def test_imports_go_down_the_layers(graph):
    wrong = [
        f"{a} ({LAYERS[layer_of(a)][0]}) imports {b} ({LAYERS[layer_of(b)][0]})"
        for a, targets in sorted(graph.items())
        for b in sorted(targets)
        if layer_of(b) > layer_of(a)
    ]
    assert not wrong, "imports against the layer order:\n" + "\n".join(wrong)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on_stack, out, counter = {}, {}, [], set(), [], itertools.count()

    def visit(v: str) -> None:
        index[v] = low[v] = next(counter)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in list(edges):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle_between_modules(graph):
    assert not _cycles(graph), _cycles(graph)


def test_no_import_cycle_between_packages(graph):
    def package(name: str) -> str:
        return ".".join(name.split(".")[:3]) if name.startswith("pipeline.tasks.") else ".".join(name.split(".")[:2])

    edges = defaultdict(set)
    for a, targets in graph.items():
        for b in targets:
            if package(a) != package(b):
                edges[package(a)].add(package(b))
    assert not _cycles(edges), _cycles(edges)


def test_the_check_sees_a_cycle_and_a_wrong_import():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert layer_of("pipeline.io.images") < layer_of("pipeline.tasks.landmarks.train")


def test_no_module_is_longer_than_300_lines():
    long = {name: n for name, path in modules().items() if (n := len(path.read_text(encoding="utf-8").splitlines())) > 300}
    assert not long, long
