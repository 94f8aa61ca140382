"""Layering: the import graph of sweeper, db and cli, read from the source (ast, imports inside functions too).

Packages stack cli → sweeper → db: db imports neither sweeper nor cli, sweeper does not import cli, and neither the
subpackages of sweeper (``sweeper.train``, ``sweeper.checks``, … and top-level modules such as ``sweeper.spec``)
nor single modules import each other in a circle. Test helpers (``sweeper.testing``) are imported only by tests.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("sweeper", "db", "cli")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[tuple[str, str]]:
    """(name, fallback) pairs an import statement in ``module`` refers to, relative imports resolved: ``from p import
    x`` imports the module ``p.x`` if there is one, else (a name defined in ``p``) the module ``p``."""
    if isinstance(node, ast.Import):
        return [(alias.name, alias.name) for alias in node.names]
    base = node.module or ""
    if node.level:
        parts = module.split(".") if is_package else module.split(".")[:-1]
        parts = parts[: len(parts) - node.level + 1]
        base = ".".join(parts + ([node.module] if node.module else []))
    return [(f"{base}.{alias.name}", base) for alias in node.names]


@cache
def module_graph() -> dict[str, frozenset[str]]:
    """{module: the project modules it imports}, for every module of PACKAGES."""
    files = {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}

    def resolve(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for module, path in files.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for name, fallback in _imported(node, module, path.name == "__init__.py"):
                    target = name if name in files else resolve(fallback)
                    if target is not None:
                        targets.add(target)
        graph[module] = frozenset(targets - {module})
    return graph


def package_of(module: str) -> str:
    """The layer a module belongs to: ``sweeper.<subpackage or module>``, ``db`` or ``cli``."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "sweeper" and len(parts) > 1 else parts[0]


def package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, targets in module_graph().items():
        graph.setdefault(package_of(module), set()).update(package_of(t) for t in targets)
    for node, targets in graph.items():
        targets.discard(node)
    return graph


def find_cycle(graph: Mapping[str, Iterable[str]]) -> list[str] | None:
    """One cycle of a directed graph as [a, b, …, a], or None if it is acyclic (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in sorted(graph):
        if root in state:
            continue
        path, stack = [root], [iter(sorted(graph.get(root, ())))]
        state[root] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph.get(nxt, ()))))
    return None


def edges_into(prefix: str, sources: Iterable[str]) -> list[str]:
    """``a -> b`` for every import of a module under ``prefix`` by a module of ``sources``."""
    graph = module_graph()
    return sorted(f"{a} -> {b}" for a in sources for b in graph[a] if b == prefix or b.startswith(prefix + "."))


def modules_of(package: str) -> list[str]:
    return [m for m in module_graph() if m == package or m.startswith(package + ".")]


def test_find_cycle_knows_a_cycle_from_a_tree():
    assert find_cycle({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": ["b", "c"], "b": ["c"], "c": []}) is None
    assert find_cycle({"a": ["a"]}) == ["a", "a"]


def test_the_graph_sees_the_known_imports():
    graph = module_graph()
    assert "sweeper.train.diagnose" in graph and "sweeper.diagnostics" in graph["sweeper.train.diagnose"]
    assert "db.connection" in graph["db.migrate"]  # a plain import
    assert "db.migrate" in graph["db.engine"]  # an import inside a function


def test_db_imports_neither_sweeper_nor_cli():
    assert edges_into("sweeper", modules_of("db")) + edges_into("cli", modules_of("db")) == []


def test_sweeper_does_not_import_cli():
    assert edges_into("cli", modules_of("sweeper")) == []


def test_no_cycle_among_the_packages_of_sweeper():
    assert find_cycle(package_graph()) is None


def test_no_cycle_among_modules():
    assert find_cycle(module_graph()) is None


def test_only_tests_import_the_testing_helpers():
    assert edges_into("sweeper.testing", [m for m in module_graph() if package_of(m) != "sweeper.testing"]) == []
