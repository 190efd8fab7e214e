"""Every source package of the repository is part of the installed distribution."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_every_package_directory_is_listed_in_pyproject() -> None:
    setup = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setup["packages"])
    found = set()
    for package, folder in setup["package-dir"].items():
        for init in (REPO / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(REPO / folder).parts
            found.add(".".join((package, *relative)))
    assert found == listed, f"missing from pyproject packages: {found - listed}; stale: {listed - found}"


def test_mypy_sees_each_package_at_its_installed_name() -> None:
    """mypy checks ``genretag`` through .mypy/genretag/ (see pyproject): one link per package-dir entry."""
    package_dir = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    tree = REPO / ".mypy" / "genretag"
    links = {path.name: path for path in tree.iterdir()}
    assert set(links) == {package.removeprefix("genretag.") for package in package_dir}
    for package, folder in package_dir.items():
        link = links[package.removeprefix("genretag.")]
        assert link.is_symlink(), f"{link} must be a link to {folder}/"
        assert link.resolve() == (REPO / folder).resolve(), f"{link} must link to {folder}/"
