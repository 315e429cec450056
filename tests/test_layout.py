"""The shape of the package (issue #10): imports flow one way, rooms stay small, private names stay home.

Read from the source with ``ast`` (nothing is imported), so lazy imports inside functions count too.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "labhelpers"
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every .py file in the package."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, list[str]]]:
    """(imported labhelpers module, names taken from it) for every import statement anywhere in the file."""
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names if a.name.startswith("labhelpers")]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, path.name == "__init__.py", node)
            if not target.startswith("labhelpers"):
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.append((sub, []) if sub in modules else (target, [alias.name]))
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        edges = set()
        for target, _ in _imports(name, path, modules):
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + "."):  # a package's own parents are not edges
                edges.add(target)
        graph[name] = edges
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _without_package_inits(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """A package's ``__init__`` re-exporting its submodules is not a cycle with them: drop init -> child edges."""
    return {m: {t for t in edges if not t.startswith(m + ".")} for m, edges in graph.items()}


def test_no_import_cycle_counting_lazy_imports():
    cycles = _cycles(_without_package_inits(_graph()))
    assert not cycles, f"import cycles inside labhelpers: {cycles}"


def test_no_module_over_400_lines():
    long = {name: n for name, path in _modules().items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_no_private_name_imported_across_modules():
    modules = _modules()
    bad = []
    for name, path in modules.items():
        for target, names in _imports(name, path, modules):
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            own_package = name.startswith(target + ".") or target == name
            if private and not own_package:
                bad.append(f"{name} imports {private} from {target}")
            modules_private = [p for p in target.split(".")[1:] if p.startswith("_") and not p.startswith("__")]
            if modules_private and not name.startswith(target.rpartition(".")[0] + "."):
                bad.append(f"{name} imports private module {target}")
        bad += [f"{name} uses {use}" for use in _private_attributes(name, path, modules)]
    assert not bad, "private names used across modules:\n" + "\n".join(bad)


def _private_attributes(module: str, path: Path, modules: dict[str, Path]) -> list[str]:
    """``alias._name`` where ``alias`` is another labhelpers module bound by an import in this file."""
    tree = ast.parse(path.read_text(), str(path))
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            target = _resolve(module, path.name == "__init__.py", node)
            for alias in node.names:
                if f"{target}.{alias.name}" in modules:
                    aliases[alias.asname or alias.name] = f"{target}.{alias.name}"
    return [f"{aliases[n.value.id]}.{n.attr}" for n in ast.walk(tree)
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id in aliases
            and n.attr.startswith("_") and not n.attr.startswith("__")
            and not module.startswith(aliases[n.value.id] + ".") and aliases[n.value.id] != module]


def test_the_checker_sees_lazy_imports_and_cycles():
    """The checker itself: a lazy import inside a function is an edge, and a two-module loop is a cycle."""
    graph = {"labhelpers.a": {"labhelpers.b"}, "labhelpers.b": {"labhelpers.a"}, "labhelpers.c": set()}
    assert _cycles(graph) == [["labhelpers.a", "labhelpers.b"]]
    tree = ast.parse("def f():\n    from . import search\n")
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom))
    assert _resolve("labhelpers.nas", False, node) == "labhelpers"
