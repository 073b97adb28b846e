"""The dependency direction: hw knows nothing of models; gen never reaches into sim or
boards (the CLI names their command modules only as strings, imported on demand)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "hw": ("gen", "sim", "boards"),
    "gen": ("sim", "boards"),
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the package folder
                base = ["mulfree", path.parent.name][: 3 - node.level]
                found.add(".".join(base + ([node.module] if node.module else [])))
            elif node.module:
                found.add(node.module)
    return found


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_dependencies_point_one_way(folder):
    bad = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for name in _imports(path):
            parts = name.split(".")
            for other in FORBIDDEN[folder]:
                if parts[:2] == ["mulfree", other] or parts[:1] == [other]:
                    bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, "\n".join(bad)
