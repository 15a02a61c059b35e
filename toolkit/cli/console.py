"""Small pieces every CLI command shares: consoles and the error guard."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from n2nkit.errors import MissingDependencyError, N2NError, N2NNote

console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])


def print_error(exc: BaseException) -> None:
    """``error: <message>`` on stderr, on one line however narrow the terminal (so scripts can
    grep it); the message is text, never markup (extras like n2nkit[gpu] stay intact)."""
    err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)


def print_note(note: str) -> None:
    """A dimmed ``note: <text>`` on stderr: something the user may want to know, not a failure."""
    err_console.print(f"[dim]note: {escape(note)}[/]", highlight=False, soft_wrap=True)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C's KeyboardInterrupt is, so every handler that saves state
    on Ctrl-C (training's last.pt, an export's clean-up) runs for it too."""


# Import name -> the pip extra that installs it (pyproject.toml's optional dependencies).
OPTIONAL_PACKAGES = {
    "torch": "training",
    "onnx": "training",
    "onnxscript": "training",
    "skimage": "training",
    "sklearn": "training",
    "onnxruntime": "cpu",
}


def _show_notes(show: Callable[..., Any]) -> Callable[..., Any]:
    """``warnings.showwarning`` that prints an :class:`N2NNote` as a ``note:`` line and hands
    every other warning to ``show``."""

    def showwarning(message: Any, category: type, *args: Any, **kwargs: Any) -> None:
        if issubclass(category, N2NNote):
            print_note(str(message))
        else:
            show(message, category, *args, **kwargs)

    return showwarning


def guard(fn: F) -> F:
    """Turn an :class:`N2NError` into one line on stderr and its exit code (no traceback).

    Ctrl-C exits with 130 and SIGTERM with 143, after the command has had its chance to
    save state.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with warnings.catch_warnings():  # restores showwarning afterwards
                warnings.simplefilter("always", N2NNote)
                warnings.showwarning = _show_notes(warnings.showwarning)
                return fn(*args, **kwargs)
        except N2NError as exc:
            print_error(exc)
            raise typer.Exit(exc.exit_code) from None
        except ModuleNotFoundError as exc:  # an optional package no layer below required
            extra = OPTIONAL_PACKAGES.get((exc.name or "").partition(".")[0])
            if extra is None:
                raise
            print_error(MissingDependencyError(exc.name, f"pip install 'n2nkit[{extra}]'"))
            raise typer.Exit(MissingDependencyError.exit_code) from None
        except MemoryError:  # where no layer below could name what to make smaller
            err_console.print("error: out of memory")
            raise typer.Exit(1) from None
        except Terminated:
            err_console.print("terminated")
            raise typer.Exit(143) from None  # 128 + SIGTERM, as a shell reports it
        except KeyboardInterrupt:
            err_console.print("interrupted")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]
