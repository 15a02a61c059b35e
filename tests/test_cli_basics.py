"""The CLI shell: help is fast and torch-free, errors are one line."""

from __future__ import annotations

import subprocess
import sys

import pytest
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


def test_version_is_the_installed_and_the_declared_one() -> None:
    import importlib.metadata
    from pathlib import Path

    import tomllib

    declared = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    installed = importlib.metadata.version("n2nkit")
    assert installed == declared["project"]["version"]
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"n2nkit {installed}"


COMMANDS = ("models", "train", "export", "denoise", "compare", "pipeline")


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert f"n2nkit {command}" in result.output and "--help" in result.output
    # A flag shows no type (``--int8 <bool>`` would read as ``--int8 true``).
    assert "<bool>" not in result.output


def test_root_help_shows_flags_without_a_type() -> None:
    result = runner.invoke(app, ["--help"], terminal_width=100)
    version = next(line for line in result.output.splitlines() if "--version" in line)
    assert "<bool>" not in version and "Print the version" in version


def test_options_with_values_keep_their_type() -> None:
    result = runner.invoke(app, ["train", "--help"], terminal_width=200)
    assert "<int>" in result.output and "<path>" in result.output


# One user error per command: exit 2, one `error:` line on stderr naming the problem.
ERRORS = {
    "models": (["--size", "0"], "--size must be a positive"),
    "train": (["--variant", "nope"], "unknown model variant 'nope'"),
    "export": (["/nonexistent/best.pt"], "checkpoint not found: /nonexistent/best.pt"),
    "denoise": (["/nonexistent.png", "-o", "/nonexistent-out.png"], "input not found"),
    "compare": ([], "name at least one model"),
    "pipeline": (["--variants", "nope", "--out", "/nonexistent/p"], "unknown model variant"),
}


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_reports_a_user_error_in_one_line(command: str) -> None:
    args, message = ERRORS[command]
    result = runner.invoke(app, [command, *args])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], lines


@pytest.mark.parametrize("command", [["models"], ["train", "--epochs", "1", "--out", "{tmp}/r"]])
def test_a_missing_optional_package_is_one_line_naming_the_extra(command, tmp_path) -> None:
    """`pip install 'n2nkit[cpu]'` has no torch: `n2nkit models` and `train` gave a traceback."""
    args = [a.format(tmp=tmp_path) for a in command]
    code = (
        "import sys; sys.modules['torch'] = None; "  # as if torch were not installed
        f"sys.argv = ['n2nkit', *{args!r}]; from n2nkit.cli import main; main()"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: torch is not available: pip install 'n2nkit[training]'"
    ]
    assert not (tmp_path / "r").exists()
