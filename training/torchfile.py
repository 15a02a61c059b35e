"""The one way n2nkit opens a torch file: ``torch.load(weights_only=True)``.

A pickle that would run code is refused, not executed; anything else wrong with the file
(text, an image, a truncated zip: torch's legacy reader fails in many ways) becomes one line.
Checkpoints (:mod:`.checkpoint`) and report-format data files (:mod:`.data`) both load here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from n2nkit.errors import N2NError, first_line


def refused_object(exc: BaseException) -> str:
    """What torch's safe unpickler refused, without its advice to load the file unsafely
    (that advice is never shown to users)."""
    import re

    found = re.search(r"GLOBAL ([\w.]+)", str(exc))
    return f"a Python object ({found.group(1)})" if found else "a pickled Python object"


def load_weights_only(
    path: Path, error: type[N2NError], unreadable: str, map_location: str = "cpu"
) -> Any:
    """``torch.load(path, weights_only=True)``; failures raise ``error`` with one line:
    "<path> was refused: ..." for a pickle holding code, "<path> <unreadable>: ..." otherwise."""
    import pickle
    import warnings

    import torch

    try:
        with warnings.catch_warnings():  # a foreign pickle's protocol warning is noise here
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "GLOBAL" not in str(exc) and "Unsupported operand" in str(exc):  # no pickle torch
            # reads at all (an image, a script, another pickle protocol): not a torch file
            raise error(f"{path} {unreadable} (nothing in it was executed)") from None
        raise error(
            f"{path} was refused: it holds {refused_object(exc)} besides tensors and plain "
            "data (nothing in it was executed)"
        ) from None
    except Exception as exc:
        raise error(f"{path} {unreadable}: {first_line(exc)}") from None
