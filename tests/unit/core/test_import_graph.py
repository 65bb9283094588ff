"""No import cycles in the core or the emulator, counting every import a module makes.

A cycle means two modules cannot be read, changed or tested apart (and one of them sees
the other half-initialised when imported first). Imports inside functions and under
``TYPE_CHECKING`` count too: they hide a cycle from the interpreter, not from a reader.
The graph is read from the source with ``ast``, so nothing is imported to check it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import pytest

INCLUDE = Path(__file__).resolve().parents[3] / "include"
PACKAGES = ("vapi_chargeback", "vapi_emulator")


@dataclass(frozen=True)
class Edge:
    target: str
    line: int


def modules(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    """Dotted module name → file, for every ``.py`` file of ``packages`` under ``root``."""
    found: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def import_graph(root: Path, packages: tuple[str, ...]) -> dict[str, dict[str, Edge]]:
    """Module → the modules of ``packages`` it imports anywhere in its source (first line of each)."""
    known = modules(root, packages)
    graph: dict[str, dict[str, Edge]] = {}
    for name, path in known.items():
        is_package = path.name == "__init__.py"
        edges: dict[str, Edge] = {}
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            for target in _targets(node, name, is_package, known):
                earlier = edges.get(target)
                if target != name and (earlier is None or node.lineno < earlier.line):
                    edges[target] = Edge(target, node.lineno)
        graph[name] = edges
    return graph


def _targets(node: ast.AST, module: str, is_package: bool, known: dict[str, Path]) -> Iterator[str]:
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            anchor = module.split(".") if is_package else module.split(".")[:-1]
            anchor = anchor[: len(anchor) - node.level + 1]
            base = ".".join([*anchor, *([base] if base else [])])
        # ``from pkg import name`` imports the submodule ``pkg.name`` when there is one.
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
    else:
        return
    for name in names:
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name:
            yield name


def cycles(graph: dict[str, dict[str, Edge]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module, as a closed path."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_closed_path(graph, set(component), component[0]) for component in components]


def _closed_path(graph: dict[str, dict[str, Edge]], members: set[str], start: str) -> list[str]:
    """A shortest path from ``start`` back to itself inside one component (breadth first)."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in sorted(graph[node]):
                if target not in members or target in previous:
                    continue
                previous[target] = node
                if target == start:
                    path = [start]
                    while path[-1] != start or len(path) == 1:
                        path.append(previous[path[-1]])
                    return path[::-1]
                following.append(target)
        frontier = following
    raise AssertionError(f"{start} is in a component but on no cycle")


def describe(graph: dict[str, dict[str, Edge]], path: list[str]) -> str:
    steps = [f"{a} (line {graph[a][b].line}) → {b}" for a, b in pairwise(path)]
    return "; ".join(steps)


def test_the_core_and_the_emulator_have_no_import_cycle() -> None:
    graph = import_graph(INCLUDE, PACKAGES)

    found = [describe(graph, path) for path in cycles(graph)]

    assert len(graph) > 50, "the walk found too few modules: is INCLUDE right?"
    assert not found, "import cycles (break each by moving the shared part out):\n" + "\n".join(
        found
    )


def _package(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


@pytest.mark.parametrize(
    ("import_line", "line"),
    [
        pytest.param("from pkg.a import thing", 2, id="top-level"),
        pytest.param("def later():\n    from pkg import a\n", 3, id="inside-a-function"),
        pytest.param(
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import Thing\n",
            4,
            id="under-type-checking",
        ),
        pytest.param("from . import a", 2, id="relative"),
        pytest.param("import pkg.a", 2, id="plain-import"),
    ],
)
def test_a_cycle_is_found_however_the_import_is_written(
    tmp_path: Path, import_line: str, line: int
) -> None:
    root = _package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from pkg.sub.c import x\n",
            "pkg/sub/__init__.py": "",
            "pkg/sub/c.py": "from ..b import y\n",
            "pkg/b.py": f"import os\n{import_line}\n",
        },
    )
    graph = import_graph(root, ("pkg",))

    found = cycles(graph)

    assert found == [["pkg.a", "pkg.sub.c", "pkg.b", "pkg.a"]]
    assert describe(graph, found[0]) == (
        f"pkg.a (line 1) → pkg.sub.c; pkg.sub.c (line 1) → pkg.b; pkg.b (line {line}) → pkg.a"
    )


def test_a_one_way_chain_is_no_cycle(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from pkg import b\n",
            "pkg/b.py": "from pkg.c import z\n",
            "pkg/c.py": "import json\n",
        },
    )

    assert cycles(import_graph(root, ("pkg",))) == []
