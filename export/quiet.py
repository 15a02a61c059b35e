"""Keep third-party chatter off the user's terminal: an export prints n2nkit's lines only."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator, Sequence


@contextlib.contextmanager
def quiet(loggers: Sequence[str]) -> Iterator[None]:
    """Within the block, ``loggers`` log errors only and ``print``/warnings go nowhere; errors
    still raise. ``""`` names the root logger."""
    levels = {name: logging.getLogger(name).level for name in loggers}
    for name in loggers:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
