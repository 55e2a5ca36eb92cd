"""The project's import graph, read from the source: no two modules import each other (directly
or round a longer loop), the library package never imports the graph or the benchmarks, and no
module grows past about 400 lines."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("deployments", "benchmarks")


def _modules() -> dict[str, Path]:
    found = {"graph": REPO / "graph.py"}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imported(module: str, node: ast.AST) -> set[str]:
    """First-party modules an import statement names: the module, or, for `from package import
    name`, the package and any module `name` is. (Packages above a module also run on import;
    they are not counted: a package's __init__ that re-exports its modules is not a loop.)"""
    if isinstance(node, ast.Import):
        names = {alias.name for alias in node.names}
    elif isinstance(node, ast.ImportFrom):
        source = node.module or ""
        if node.level:
            here = module.split(".")
            is_package = MODULES[module].name == "__init__.py"
            base = here if is_package else here[:-1]
            source = ".".join(base[: len(base) - node.level + 1] + ([source] if source else []))
        names = {source} | {f"{source}.{alias.name}" for alias in node.names}
    else:
        return set()
    return {name for name in names if name in MODULES and name != module}


def import_graph() -> dict[str, set[str]]:
    """Every import counts: at the top, inside functions, under TYPE_CHECKING."""
    return {
        module: set().union(*(_imported(module, n) for n in ast.walk(ast.parse(path.read_text()))))
        for module, path in MODULES.items()
    }


def test_no_import_loops() -> None:
    graph = import_graph()
    assert len(graph) > 50, sorted(graph)  # the walk found the project
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as loop:
        pytest.fail(f"import loop: {' -> '.join(loop.args[1])}")


def test_the_library_never_imports_the_graph_or_the_benchmarks() -> None:
    wrong = {
        module: sorted(n for n in imports if n == "graph" or n.startswith("benchmarks"))
        for module, imports in import_graph().items()
        if module.startswith("deployments")
    }
    assert not {m: i for m, i in wrong.items() if i}


def test_a_loop_is_found_when_there_is_one() -> None:
    graph = import_graph()
    graph["deployments.schemas"] = graph["deployments.schemas"] | {"deployments.settings"}
    with pytest.raises(graphlib.CycleError):
        graphlib.TopologicalSorter(graph).prepare()


# About 400: a module past it does more than one job (graph.py reads top to bottom as the request
# path and is the longest).
MAX_LINES = 425


def test_no_module_is_over_about_400_lines() -> None:
    long = {
        name: lines
        for name, path in MODULES.items()
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, long
