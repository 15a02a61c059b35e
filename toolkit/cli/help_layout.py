"""Help pages that show a flag as a flag.

Typer prints a type beside every option, so ``--int8 <bool>`` reads as if it took a value
(``--int8 true``) when it is a switch. These command classes leave the type column of flags
(``--int8``, ``--fresh``, ``--shipped/--no-shipped``, ``--help``) empty; options that take a
value keep theirs (``<int>``, ``<path>``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from typer.core import TyperCommand, TyperGroup, TyperOption


def _untyped(params: Iterable[Any]) -> None:
    for param in params:
        if isinstance(param, TyperOption) and param.is_flag and param.metavar is None:
            param.metavar = ""  # what the type column shows instead of <bool>


class _FlagsWithoutType:
    """Mixin for Typer's command classes: flags (and ``--help``) show an empty type column."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _untyped(self.params)

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)
        _untyped([option] if option is not None else [])
        return option


class FlagCommand(_FlagsWithoutType, TyperCommand):
    """A command whose help shows flags without a type."""


class FlagGroup(_FlagsWithoutType, TyperGroup):
    """The command group (``n2nkit``) with the same help layout as :class:`FlagCommand`."""
