"""The analysis imports in one direction: no module of metazoo.analysis is on an import cycle,
counting every import (inside functions and under TYPE_CHECKING too)."""

import ast

from tests.helpers import REPO


def import_graph(package: str = "metazoo") -> dict[str, set[str]]:
    """Module → the package's modules it imports, from the source of every file."""
    modules = {}
    for path in (REPO / package).rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path

    def known(name: str) -> str | None:  # a name, or the module that defines it
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for name, path in modules.items():
        here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(here[:len(here) - node.level + 1] + ([base] if base else []))
                targets |= {base} | {f"{base}.{alias.name}" for alias in node.names}
        graph[name] = {found for target in targets if (found := known(target)) not in (None, name)}
    return graph


def reaches(graph: dict[str, set[str]], start: set[str], goal: str) -> bool:
    seen, todo = set(), list(start)
    while todo:
        name = todo.pop()
        if name == goal:
            return True
        if name not in seen:
            seen.add(name)
            todo += graph[name]
    return False


def test_no_analysis_module_is_on_an_import_cycle():
    graph = import_graph()
    analysis = sorted(name for name in graph if name.startswith("metazoo.analysis"))
    assert "metazoo.analysis.compare" in analysis
    assert "metazoo.analysis.sections.fidelity" in analysis
    # A module is on a cycle when it can be reached again from what it imports.
    assert [name for name in analysis if reaches(graph, graph[name], name)] == []
