"""Imports point one way (GUIDE.md): daemon, training -> models -> pipeline; cli on top of them all.

Read from the source with ``ast``, imports inside functions included: the lazy
imports that keep ``--help`` instant are imports all the same.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: package -> the genretag packages it must never import
FORBIDDEN = {
    "pipeline": {"models", "daemon", "training", "cli"},
    "models": {"daemon", "training", "cli"},
    "daemon": {"training", "cli"},
    "training": {"daemon", "cli"},
}


def genretag_imports(path: Path) -> set[str]:
    """The genretag packages (``models``, ``daemon``, ...) a module imports anywhere in its body."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
        for name in names:
            parts = name.split(".")
            if parts[0] == "genretag" and len(parts) > 1:
                found.add(parts[1])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_package_imports_only_what_lies_below_it(package: str) -> None:
    wrong = {str(path.relative_to(REPO)): sorted(genretag_imports(path) & FORBIDDEN[package])
             for path in sorted((REPO / package).rglob("*.py"))}
    assert not {k: v for k, v in wrong.items() if v}


def test_the_walk_sees_imports_inside_functions(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from genretag.daemon.config import Config\n"
                      "    import genretag.training.x\n")
    assert genretag_imports(module) == {"daemon", "training"}
