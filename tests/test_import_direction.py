"""Imports point one way (GUIDE.md): daemon, training -> models -> pipeline; cli on top of them all.

Read from the source with ``ast``, imports inside functions included: the lazy
imports that keep ``--help`` instant are imports all the same.  They are kept
for heavy modules only, and no two modules import each other, however late.
"""

from __future__ import annotations

import ast
from collections.abc import Container
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
        names = (
            [alias.name for alias in node.names]
            if isinstance(node, ast.Import)
            else [node.module or ""]
            if isinstance(node, ast.ImportFrom) and node.level == 0
            else []
        )
        for name in names:
            parts = name.split(".")
            if parts[0] == "genretag" and len(parts) > 1:
                found.add(parts[1])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_package_imports_only_what_lies_below_it(package: str) -> None:
    wrong = {
        str(path.relative_to(REPO)): sorted(genretag_imports(path) & FORBIDDEN[package])
        for path in sorted((REPO / package).rglob("*.py"))
    }
    assert not {k: v for k, v in wrong.items() if v}


def test_the_walk_sees_imports_inside_functions(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "def f():\n    from genretag.daemon.config import Config\n    import genretag.training.x\n"
    )
    assert genretag_imports(module) == {"daemon", "training"}


#: Third-party packages imported only inside the functions that need them: each costs seconds (or, for
#: sounddevice, needs PortAudio), and ``genretag --help`` must stay instant.
HEAVY = (
    "tensorflow",
    "keras",
    "librosa",
    "sklearn",
    "openvino",
    "matplotlib",
    "tf2onnx",
    "jax",
    "sounddevice",
    "apache_beam",
)
#: Packages whose imports inside functions are checked: cli/ imports inside its commands on purpose (and
#: tools/, beside the package, holds one-off scripts).
LAZY_CHECKED = ("pipeline", "models", "daemon", "training")
#: (file, module of ours) -> why that import still sits inside a function.  Keep it short: an entry that is
#: gone makes the test fail, so the list only shrinks.
LAZY_KNOWN: dict[tuple[str, str], str] = {}


def module_name(path: Path) -> str:
    """``genretag.daemon.ingest.pool`` for ``daemon/ingest/pool.py`` (each top folder is a subpackage)."""
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(("genretag", *(parts[:-1] if parts[-1] == "__init__" else parts)))


def our_modules() -> dict[str, Path]:
    paths = [path for package in (*FORBIDDEN, "cli") for path in (REPO / package).rglob("*.py")]
    return {module_name(path): path for path in paths}


def _imported(node: ast.Import | ast.ImportFrom, modules: Container[str]) -> list[str]:
    """The modules ``node`` imports (``from genretag.models import musicnn``: ``genretag.models.musicnn`` too,
    when ``modules`` holds it)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level or node.module is None:
        return []
    names = (f"{node.module}.{alias.name}" for alias in node.names)
    return [node.module, *(name for name in names if name in modules)]


def split_imports(path: Path, modules: Container[str] = ()) -> tuple[set[str], set[str]]:
    """(modules imported when ``path`` is imported, modules imported inside its functions).

    Imports under ``if TYPE_CHECKING:`` are neither: they never run.
    """
    at_import: set[str] = set()
    in_functions: set[str] = set()

    def visit(node: ast.AST, inside: bool) -> None:
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            for child in node.orelse:
                visit(child, inside)
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            (in_functions if inside else at_import).update(_imported(node, modules))
        inside = inside or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        for child in ast.iter_child_nodes(node):
            visit(child, inside)

    visit(ast.parse(path.read_text(), str(path)), False)
    return at_import, in_functions


def heavy_modules(modules: dict[str, Path]) -> set[str]:
    """Our modules whose import alone imports a :data:`HEAVY` package: lazy imports of them have a cause."""
    graph = {name: split_imports(path, modules)[0] for name, path in modules.items()}
    heavy = {name for name, imports in graph.items() if any(i.split(".")[0] in HEAVY for i in imports)}
    while grown := {name for name, imports in graph.items() if name not in heavy and imports & heavy}:
        heavy |= grown
    return heavy


def test_only_heavy_modules_are_imported_inside_functions() -> None:
    """Imports of our own light modules sit at the top, where tools (and readers) see every edge.

    Inside a function they hid a cycle (daemon/sources/zmq.py -> ingest pool -> worker -> zmq.py) and cost
    nothing worth hiding: only a module that imports a :data:`HEAVY` package may be imported lazily.
    """
    modules = our_modules()
    heavy = heavy_modules(modules)
    lazy = set()
    for package in LAZY_CHECKED:
        for path in sorted((REPO / package).rglob("*.py")):
            file = str(path.relative_to(REPO))
            lazy |= {
                (file, name)
                for name in split_imports(path, modules)[1]
                if name.startswith("genretag.") and name in modules and name not in heavy
            }
    assert sorted(lazy - LAZY_KNOWN.keys()) == [], "import these at the top of the module"
    assert sorted(LAZY_KNOWN.keys() - lazy) == [], "hoisted already: drop them from LAZY_KNOWN"


def test_no_import_cycles_between_modules() -> None:
    """Imports inside functions count: they make the same cycle, only later."""
    modules = our_modules()
    graph = {
        name: {i for i in set().union(*split_imports(path, modules)) if i in modules and i != name}
        for name, path in modules.items()
    }
    assert [sorted(c) for c in strongly_connected(graph) if len(c) > 1] == []


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components of ``graph`` (node -> successors)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for succ in sorted(graph[node]):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while (top := stack.pop()) != node:
                component.append(top)
            components.append([*component, node])

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_the_lazy_import_check_sees_what_it_must(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "from typing import TYPE_CHECKING\nimport numpy\nif TYPE_CHECKING:\n    import keras\n"
        "def f():\n    import genretag.pipeline.audio\n"
        "    from genretag.models import musicnn\n"
        "class C:\n    def g(self):\n        import tensorflow\n"
    )
    at_import, in_functions = split_imports(module, ["genretag.models.musicnn"])
    assert at_import == {"typing", "numpy"}
    assert in_functions == {
        "genretag.pipeline.audio",
        "genretag.models",
        "genretag.models.musicnn",
        "tensorflow",
    }
    assert strongly_connected({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["b", "a"], ["c"]]
