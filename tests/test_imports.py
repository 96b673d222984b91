"""The shape of src/poolbert read from its source: modules import in one direction (no cycle,
function-level imports included), no module over 400 lines, no function over 60 lines."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "poolbert"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def module_files() -> dict[str, Path]:
    """Every module of poolbert by dotted name (a package by its __init__.py)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of `name` that is one of poolbert's modules."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        if prefix in modules:
            return prefix
    return None


def _base_of(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The module a `from ... import` reads from, relative levels resolved."""
    if not node.level:
        return node.module or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    package = package[:len(package) - (node.level - 1)]
    return ".".join([*package, *([node.module] if node.module else [])])


def imported_by(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """poolbert modules `module` imports anywhere in its file (module and function level);
    `from package import name` counts as importing the submodule where `name` is one."""
    targets: set[str] = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets.update(filter(None, (_known(a.name, modules) for a in node.names)))
        elif isinstance(node, ast.ImportFrom):
            base = _base_of(node, module, is_package)
            for alias in node.names:
                target = _known(f"{base}.{alias.name}", modules) or _known(base, modules)
                if target:
                    targets.add(target)
    # a module's own parent packages run before it anyway: not an edge of the import order
    return {t for t in targets if t != module and not module.startswith(t + ".")}


def import_graph() -> dict[str, set[str]]:
    modules = module_files()
    return {name: imported_by(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
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
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def cycle_path(component: list[str], graph: dict[str, set[str]]) -> list[str]:
    """One closed path through a component: a -> b -> ... -> a, for the failure message."""
    members = set(component)
    start = component[0]
    path, seen = [start], {start}
    while True:
        targets = sorted(graph[path[-1]] & members)
        if start in targets and len(path) > 1:
            return [*path, start]
        fresh = [t for t in targets if t not in seen]
        if not fresh:  # the walk met the component elsewhere: close it where it came back
            back = next(t for t in targets if t in seen)
            return [*path[path.index(back):], back]
        path.append(fresh[0])
        seen.add(fresh[0])


def test_the_graph_sees_relative_and_function_level_imports():
    graph = import_graph()
    assert "poolbert.errors" in graph["poolbert.config.run"]  # from ..errors import ...
    assert "poolbert.tuning.storage" in graph["poolbert.reporting.load"]  # inside a function
    assert "poolbert.interrupts" in graph["poolbert.training"]  # from . import interrupts


def test_cycle_finder_reports_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycle_path(["a", "b", "c"], graph) == ["a", "b", "c", "a"]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle():
    graph = import_graph()
    found = [" -> ".join(cycle_path(c, graph)) for c in cycles(graph)]
    assert not found, "import cycles in src/poolbert:\n" + "\n".join(found)


def test_no_module_over_400_lines():
    long = {name: n for name, path in module_files().items()
            if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_no_function_over_60_lines():
    long = {}
    for name, path in module_files().items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long[f"{name}.{node.name} (line {node.lineno})"] = lines
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"
