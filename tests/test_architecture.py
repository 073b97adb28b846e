"""The floor plan: rooms import only the rooms below them, and no module imports itself
back through others (an AST walk over every import, function-level ones included)."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Each room and the rooms it may import (besides itself). The data's way, bottom up:
# errors/limits/progress/fileio -> model -> train, importers -> plan (with hw) -> sim -> boards -> compare
# -> cli. `hw` stands alone: Amaranth components that know nothing of model files.
BASE = {"mulfree.gen.errors", "mulfree.gen.fileio", "mulfree.gen.limits",
        "mulfree.gen.progress"}
ROOMS: dict[str, set[str]] = {
    "mulfree.hw": set(),
    "mulfree.gen": set(),                       # the package itself: its docstring only
    "mulfree.gen.errors": set(),
    "mulfree.gen.limits": {"mulfree.gen.errors"},
    "mulfree.gen.progress": set(),
    "mulfree.gen.fileio": {"mulfree.gen.errors", "mulfree.gen.limits"},
    "mulfree.gen.model": BASE,
    "mulfree.gen.train": BASE | {"mulfree.gen.model"},
    "mulfree.gen.importers": BASE | {"mulfree.gen.model", "mulfree.gen.train"},
    "mulfree.gen.plan": BASE | {"mulfree.gen.model", "mulfree.hw"},
    "mulfree.sim": BASE | {"mulfree.gen.model", "mulfree.gen.plan", "mulfree.hw"},
    "mulfree.boards": BASE | {"mulfree.gen.model", "mulfree.gen.plan", "mulfree.hw",
                              "mulfree.sim"},
    "mulfree.compare": BASE | {"mulfree.gen.model", "mulfree.gen.train", "mulfree.gen.plan",
                               "mulfree.hw", "mulfree.boards"},
    "mulfree.cli": {"*"},
}


def _modules() -> dict[str, Path]:
    """Every module of the distribution by its import name (from pyproject's package-dir)."""
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mods = {}
    for pkg, folder in cfg["package-dir"].items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT / folder).with_suffix("").parts
            name = ".".join((pkg, *rel)).removesuffix(".__init__")
            mods[name] = path
    return mods


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The module ``name`` refers to: itself, or the nearest enclosing module."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(name: str, path: Path) -> set[str]:
    """The distribution's modules that ``name`` imports anywhere in its file."""
    tree = ast.parse(path.read_text(), str(path))
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package[: len(package) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            targets = [f"{base}.{a.name}" for a in node.names]
            if any(t not in MODULES for t in targets):    # names from the module itself
                targets.append(base)
        for target in targets:
            module = _resolve(target)
            # importing an enclosing package (its __init__) is not an edge
            if module and module != name and not name.startswith(module + "."):
                found.add(module)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _room(module: str) -> str:
    return max((r for r in ROOMS if module == r or module.startswith(r + ".")), key=len)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, on, stack, out = {}, {}, set(), [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_circles():
    assert _cycles(GRAPH) == []


def test_the_circle_check_finds_a_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    # and sees one in this tree once an import closes it
    assert _cycles({**GRAPH, "mulfree.hw.product": GRAPH["mulfree.hw.product"] |
                    {"mulfree.hw.network"}})


@pytest.mark.parametrize("room", sorted(ROOMS))
def test_rooms_import_only_rooms_below(room):
    allowed = ROOMS[room]
    bad = []
    for module, targets in sorted(GRAPH.items()):
        if _room(module) != room:
            continue
        for target in sorted(targets):
            other = _room(target)
            if other != room and "*" not in allowed and other not in allowed:
                bad.append(f"{module} imports {target} (room {other})")
    assert not bad, "\n".join(bad)


def test_every_module_is_in_a_room():
    for module in MODULES:
        assert any(module == r or module.startswith(r + ".") for r in ROOMS), module


def test_every_package_says_what_it_holds():
    for module, path in MODULES.items():
        if path.name == "__init__.py":
            doc = ast.get_docstring(ast.parse(path.read_text())) or ""
            assert len(doc.strip().splitlines()) >= 2, f"{path}: say in two lines what " \
                                                       f"the room holds and may import"
