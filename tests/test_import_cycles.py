"""No import cycles in opskit/: between modules (lazy imports in functions included, TYPE_CHECKING blocks
not: they never run) and between its packages. A new one fails."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# none left: the two issue 11 named (alerts.rules <-> alerts.slo, capacity <-> cost) are gone
KNOWN: set[frozenset[str]] = set()


def modules() -> dict[str, Path]:
    found = {}
    for path in (ROOT / "opskit").rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    def owner(dotted: str) -> str | None:
        while dotted and dotted not in known:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and _is_type_checking(node.test)
            for child in node.body for n in ast.walk(child)}
    found: set[str | None] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(owner(a.name) for a in node.names if a.name.startswith("opskit"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                package = package[:len(package) - node.level + 1]
                base = ".".join([*package, *([node.module] if node.module else [])])
            if base.startswith("opskit"):
                found.update(f"{base}.{a.name}" if f"{base}.{a.name}" in known else owner(base) for a in node.names)
    return {m for m in found if m and m != name}


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected groups of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[frozenset[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(frozenset(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def graphs() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    known = modules()
    by_module = {name: imports(name, path, known) for name, path in known.items()}

    def package(m: str) -> str:
        return ".".join(m.split(".")[:2])

    by_package: dict[str, set[str]] = {}
    for a, targets in by_module.items():
        by_package.setdefault(package(a), set()).update(package(b) for b in targets if package(b) != package(a))
    return by_module, by_package


def test_no_import_cycle_between_modules_or_packages() -> None:
    by_module, by_package = graphs()
    assert [c for c in cycles(by_module) + cycles(by_package) if c not in KNOWN] == []


def test_the_check_sees_a_lazy_import_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [frozenset({"a", "b", "c"})]
    by_module, _ = graphs()
    assert "opskit.playbooks.handoff" in by_module["opskit.scaling.act"]  # imported inside a function
