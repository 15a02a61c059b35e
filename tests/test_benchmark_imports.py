"""Benchmarks import n2nkit inside their functions (to start fast), so a moved module breaks
them only when a long run reaches that line. Every ``from n2nkit... import name`` in
benchmarks/ must resolve now."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

BENCHMARKS = sorted((Path(__file__).parents[1] / "benchmarks").glob("*.py"))


def n2nkit_imports(path: Path) -> list[tuple[str, str]]:
    """(module, name) for every ``from n2nkit... import name`` anywhere in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        (node.module, alias.name)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "n2nkit"
        for alias in node.names
    ]


@pytest.mark.parametrize("path", BENCHMARKS, ids=[p.name for p in BENCHMARKS])
def test_every_n2nkit_import_resolves(path: Path) -> None:
    missing = []
    for module, name in n2nkit_imports(path):
        try:
            imported = importlib.import_module(module)
        except ModuleNotFoundError:
            missing.append(f"{module} (no such module)")
            continue
        if not hasattr(imported, name):
            try:
                importlib.import_module(f"{module}.{name}")
            except ModuleNotFoundError:
                missing.append(f"{module}.{name}")
    assert not missing, f"{path.name}: {missing}"


def test_the_check_sees_imports_inside_functions(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from n2nkit.baselines import _nlm\n")
    assert n2nkit_imports(sample) == [("n2nkit.baselines", "_nlm")]
