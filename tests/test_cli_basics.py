"""The CLI shell: help is fast and torch-free, errors are one line."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from n2nkit.cli import app

runner = CliRunner()


def test_help_lists_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "models" in result.output


def test_help_imports_no_torch() -> None:
    code = (
        "import sys; from typer.testing import CliRunner; from n2nkit.cli import app; "
        "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output; "
        "heavy = [m for m in ('torch', 'onnx', 'onnxruntime', 'tensorrt') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_models_lists_variants_with_counts() -> None:
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0, result.output
    assert "488,739" in result.output and "320,211" in result.output


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and "n2nkit" in result.output
