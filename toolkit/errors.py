"""One exception family for everything a user can cause.

The CLI catches :class:`N2NError`, prints its message on one line and exits with ``exit_code``;
library callers catch it like any exception. Library code never calls ``sys.exit``.
"""

from __future__ import annotations

import re


class N2NError(Exception):
    """Base class: an error whose message tells the user what to do."""

    exit_code: int = 1


class UserInputError(N2NError):
    """Bad input from the user: a missing file, a wrong shape, an unknown name."""

    exit_code = 2


class UnknownNameError(UserInputError):
    """A name (variant, noise, backend, target) that is not among the valid choices."""

    def __init__(self, kind: str, name: str, choices: list[str] | tuple[str, ...]) -> None:
        self.kind, self.name, self.choices = kind, name, tuple(choices)
        super().__init__(f"unknown {kind} {name!r}; choose one of: {', '.join(self.choices)}")


class DataError(UserInputError):
    """A data file or folder that cannot be used (shapes, dtypes, counts, format)."""


class CheckpointError(UserInputError):
    """A checkpoint that is missing, truncated, foreign or unsafe."""


class ModelFormatError(UserInputError):
    """A model file (ONNX, engine) whose inputs, outputs or metadata do not fit n2nkit."""


class OutOfMemoryError(N2NError):
    """The machine ran out of memory for the job; the message says what to make smaller."""


ANSI_CODES = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def first_line(exc: BaseException, with_type: bool = False) -> str:
    """The first line of an exception's message (its type's name when it has none): third-party
    errors often carry pages of detail, and a user gets one line. ``with_type`` prefixes the
    type's name (``RuntimeError: ...``), for rows that report any failure."""
    lines = ANSI_CODES.sub("", str(exc)).strip().splitlines()  # torch colours its messages
    if not lines:
        return type(exc).__name__
    return f"{type(exc).__name__}: {lines[0]}" if with_type else lines[0]


class MissingDependencyError(N2NError):
    """An optional package or system library is missing; the message names how to install it."""

    exit_code = 3

    def __init__(self, what: str, install: str) -> None:
        self.what, self.install = what, install
        super().__init__(f"{what} is not available: {install}")


class BackendError(MissingDependencyError):
    """A backend that is installed cannot start here (no GPU memory left for a TensorRT
    context, a CUDA provider that cannot load its libraries). ``auto`` passes over it to the
    next backend, as over a missing package."""


class VerificationError(N2NError):
    """An exported artifact disagrees with its reference beyond tolerance."""

    exit_code = 4


class TrainingDivergedError(N2NError):
    """The loss became NaN or infinite."""

    exit_code = 5


def require(module: str, extra: str, what: str | None = None):
    """Import ``module`` or raise :class:`MissingDependencyError` naming the pip extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            what or module, f"install it with `pip install 'n2nkit[{extra}]'` ({exc})"
        ) from None


class N2NNote(UserWarning):
    """Something a user may want to know that is no failure (images too small to train on).
    Raised with :func:`warnings.warn` deep in the library, where no console is at hand; the CLI
    prints each as one ``note:`` line, library callers see a Python warning."""
