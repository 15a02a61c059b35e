"""The wheel ships every part of the one n2nkit namespace, the shipped models, and no generic
top-level package (a dropped folder or a stray `runtime`/`export` package fails here)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--outdir",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("n2nkit-*.whl")
    return built


@pytest.fixture(scope="module")
def wheel_names(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as zf:
        return zf.namelist()


def test_every_source_module_is_in_the_wheel(wheel_names: list[str]) -> None:
    folders = {"toolkit": "n2nkit", "training": "n2nkit/training", "export": "n2nkit/export",
               "runtime": "n2nkit/runtime"}  # fmt: skip
    for folder, package in folders.items():
        for source in (ROOT / folder).rglob("*.py"):
            rel = source.relative_to(ROOT / folder).as_posix()
            assert f"{package}/{rel}" in wheel_names, f"{folder}/{rel} is missing from the wheel"


def test_the_cli_and_bench_subpackages_are_in_the_wheel(wheel_names: list[str]) -> None:
    for module in ("cli/__init__.py", "cli/console.py", "bench/__init__.py", "bench/compare.py",
                   "runtime/artifacts.py", "pipeline_state.py"):  # fmt: skip
        assert f"n2nkit/{module}" in wheel_names, module


def test_only_the_n2nkit_namespace_is_installed(wheel_names: list[str]) -> None:
    top = {name.split("/")[0] for name in wheel_names if not name.endswith(".dist-info/")}
    top = {t for t in top if not t.endswith(".dist-info")}
    assert top == {"n2nkit"}, top


def test_shipped_models_are_packaged(wheel_names: list[str]) -> None:
    shipped = sorted(p.name for p in (ROOT / "runtime" / "models").glob("*.onnx"))
    assert shipped, "runtime/models holds no shipped model"
    for name in shipped:
        assert f"n2nkit/runtime/models/{name}" in wheel_names


def test_console_script_maps_n2nkit_to_the_cli(wheel: Path, wheel_names: list[str]) -> None:
    import configparser

    (name,) = [n for n in wheel_names if n.endswith(".dist-info/entry_points.txt")]
    with zipfile.ZipFile(wheel) as zf:
        text = zf.read(name).decode("utf-8")
    entry_points = configparser.ConfigParser()
    entry_points.read_string(text)
    assert dict(entry_points["console_scripts"]) == {"n2nkit": "n2nkit.cli:main"}, text
