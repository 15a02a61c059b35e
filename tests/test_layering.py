"""The import graph keeps its layers (docs/architecture.md), read from the source with ``ast``:
nothing is executed, so a forbidden import inside a function is caught as well.

    core (n2nkit.errors, .fileio, .psnr, .sysinfo, ...)  imports no other part
    runtime   imports core only (and no torch/onnx at module level)
    training  imports core and runtime
    export    imports core, runtime and training
    bench     imports core, runtime, training, export
    cli       imports anything
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"toolkit": "n2nkit", "training": "n2nkit.training", "export": "n2nkit.export",
           "runtime": "n2nkit.runtime"}  # fmt: skip
PARTS = ("cli", "bench", "training", "export", "runtime")
FORBIDDEN = {
    "core": {"cli", "bench", "training", "export", "runtime"},
    "runtime": {"cli", "bench", "training", "export"},
    "training": {"cli", "bench", "export"},
    "export": {"cli", "bench"},
    "bench": {"cli"},
    "cli": set(),
}
HEAVY = ("torch", "onnx", "onnxruntime", "tensorrt")  # never at the runtime's module level


def _modules() -> dict[str, Path]:
    found = {}
    for folder, package in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            rel = path.relative_to(ROOT / folder).with_suffix("").parts
            rel = rel[:-1] if rel[-1] == "__init__" else rel
            found[".".join((package, *rel))] = path
    return found


MODULES = _modules()


def part_of(module: str) -> str:
    """Which part a module name belongs to; "core" for n2nkit's own root modules."""
    parts = module.split(".")
    if parts[0] != "n2nkit":
        return "external"
    return parts[1] if len(parts) > 1 and parts[1] in PARTS else "core"


def imports(path: Path, module: str) -> list[tuple[str, bool]]:
    """(imported module, at module level?) for every import statement in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    top = set(map(id, tree.body))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((base, id(node) in top))
    return found


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_imports_respect_the_layers(module: str) -> None:
    if module == "n2nkit.__main__":
        return  # `python -m n2nkit` is the CLI's entry point
    part = part_of(module)
    for name, _ in imports(MODULES[module], module):
        assert part_of(name) not in FORBIDDEN[part], f"{module} ({part}) imports {name}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if part_of(m) == "runtime"))
def test_runtime_imports_nothing_heavy_at_module_level(module: str) -> None:
    for name, top_level in imports(MODULES[module], module):
        if top_level:
            assert name.split(".")[0] not in HEAVY, f"{module} imports {name} at module level"


def test_the_graph_is_read() -> None:
    assert {"n2nkit.cli", "n2nkit.bench.compare", "n2nkit.runtime.artifacts"} <= set(MODULES)
    uses = imports(MODULES["n2nkit.runtime.denoiser"], "n2nkit.runtime.denoiser")
    assert ("n2nkit.runtime.artifacts", True) in uses
