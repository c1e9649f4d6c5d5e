"""The layout holds: every package is shipped, and no product module grows past its one job."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIP = {"tests", ".venv", "build", "data", ".git"}
#: The issue that set the layout asked for no module outside tests/ much over 800 lines.
MAX_LINES = 850


def _package_dirs() -> set[str]:
    found = set()
    for init in ROOT.rglob("__init__.py"):
        rel = init.parent.relative_to(ROOT)
        if rel.parts and (rel.parts[0] in SKIP or rel.parts[0].startswith(".")):
            continue
        found.add(".".join(("invsync", *rel.parts)))
    return found


def test_every_package_in_the_tree_is_listed_for_the_wheel() -> None:
    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    assert _package_dirs() - listed == set(), "packages missing from pyproject.toml"
    assert listed - _package_dirs() == set(), "pyproject.toml lists packages that do not exist"


def test_no_product_module_is_much_over_800_lines() -> None:
    long = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in SKIP or rel.parts[0].startswith("."):
            continue
        lines = len(path.read_text().splitlines())
        if lines > MAX_LINES:
            long[str(rel)] = lines
    assert long == {}
