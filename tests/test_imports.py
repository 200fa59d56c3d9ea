"""The package's import graph, read from the source with :mod:`ast`: no import cycles, figures below the
experiments that draw them, and imports inside functions only where a listed reason needs them.

An experiment module may import its figures (``attnlib.plots``); a figure module may name an experiment's
result types for typing only (under ``if TYPE_CHECKING:``, which this graph leaves out), and is handed the
data it draws. An import inside a function runs when the function is called, so it can hide a cycle:
each one of an attnlib module is listed in :data:`FUNCTION_LEVEL` with the reason it is deferred.
"""

from __future__ import annotations

import ast
from pathlib import Path

import attnlib

PACKAGE = Path(attnlib.__file__).parent

DRAWING = "pyplot and seaborn take seconds to import: only drawing needs them"
FUNCTION_LEVEL = {
    ("attnlib.cli", "attnlib.plots"): DRAWING,
    ("attnlib.experiments.ablation", "attnlib.plots.ablation"): DRAWING,
    ("attnlib.experiments.beyond", "attnlib.plots.beyond"): DRAWING,
    ("attnlib.experiments.performance", "attnlib.plots.performance"): DRAWING,
    ("attnlib.experiments.sst.experiment", "attnlib.plots.sst"): DRAWING,
    ("attnlib.experiments.synthetic", "attnlib.plots.synthetic"): DRAWING,
    ("attnlib.experiments.trec", "attnlib.plots.trec"): DRAWING,
}
"""(importing module, imported module) -> why the import waits for the call. Nothing else of attnlib is
imported inside a function."""


def modules() -> dict[str, Path]:
    """Every module of the package by its dotted name (a package by the name of its ``__init__``)."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = ("attnlib", *path.relative_to(PACKAGE).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _targets(node: ast.Import | ast.ImportFrom, name: str, is_package: bool, known: dict[str, Path]) -> list[str]:
    """The attnlib modules an import statement of module ``name`` loads (itself left out)."""
    if isinstance(node, ast.Import):
        found = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = name.split(".") if is_package else name.split(".")[:-1]
            package = package[: len(package) - node.level + 1]
            base = ".".join(package + ([base] if base else []))
        found = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
    return [target for target in found if target in known and target != name]


def import_edges() -> list[tuple[str, str, bool]]:
    """(importing module, imported module, inside a function) for every attnlib import that runs: imports
    under ``if TYPE_CHECKING:`` are left out."""
    known = modules()
    edges = []

    def visit(node: ast.AST, name: str, is_package: bool, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking(child):
                for other in child.orelse:
                    visit(other, name, is_package, in_function)
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                edges.extend((name, t, in_function) for t in _targets(child, name, is_package, known))
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            visit(child, name, is_package, inner)

    for name, path in known.items():
        visit(ast.parse(path.read_text(), str(path)), name, path.name == "__init__.py", False)
    return edges


def cycles(edges: list[tuple[str, str, bool]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    graph: dict[str, set[str]] = {}
    for a, b, _ in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strong(w)
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
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return found


def test_the_graph_sees_the_package():
    known = modules()
    assert {"attnlib", "attnlib.cli", "attnlib.experiments", "attnlib.plots", "attnlib.plots.style"} <= set(known)
    edges = import_edges()
    assert ("attnlib.cli", "attnlib.experiments", False) in edges
    assert ("attnlib.experiments.synthetic", "attnlib.plots.synthetic", True) in edges


def test_cycles_are_found():
    assert cycles([("a", "b", False), ("b", "c", True), ("c", "a", False), ("c", "d", False)]) == [["a", "b", "c"]]
    assert cycles([("a", "b", False), ("b", "c", False)]) == []


def test_the_package_has_no_import_cycle():
    assert cycles(import_edges()) == []


def test_figures_do_not_import_experiments_at_run_time():
    upward = sorted({(a, b) for a, b, _ in import_edges()
                     if a.startswith("attnlib.plots") and b.startswith("attnlib.experiments")})
    assert upward == []


def test_function_level_imports_are_the_listed_ones():
    deferred = {(a, b) for a, b, in_function in import_edges() if in_function}
    assert deferred == set(FUNCTION_LEVEL)
    assert all(FUNCTION_LEVEL.values())
