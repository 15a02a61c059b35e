"""``train --overwrite`` replaces the old run only once the new one has something to show.

The old run's ``best.pt``, ``last.pt`` and ``metrics.jsonl`` move into
``OUT/.n2nkit-replaced-run`` when the new run starts (after every rank has loaded ``--init``,
which may be one of them), and are deleted when it ends its first epoch. If it fails or is
interrupted before that (Ctrl-C, SIGTERM, an error), or was killed and is started again, they
come back: an interrupted ``--overwrite`` loses nothing, as an export's does not. The moves
themselves are interrupt-safe (:func:`n2nkit.fileio.set_aside`).
"""

from __future__ import annotations

from pathlib import Path

from n2nkit import fileio
from n2nkit.training.checkpoint import BEST_NAME, LAST_NAME

REPLACED = ".n2nkit-replaced-run"
METRICS_NAME = "metrics.jsonl"
RUN_FILES = [BEST_NAME, LAST_NAME, METRICS_NAME]


def set_aside(run_dir: Path) -> None:
    """Move the old run's files out of the way of the new run (rank 0, folder locked)."""
    fileio.set_aside(run_dir, RUN_FILES, REPLACED)


def restore_set_aside(run_dir: Path) -> None:
    """Put the old run back over what the new one wrote (it ended no epoch)."""
    fileio.restore_set_aside(run_dir, RUN_FILES, REPLACED)


def drop_set_aside(run_dir: Path) -> None:
    """The new run ended an epoch: the old one is replaced for good."""
    fileio.drop_set_aside(run_dir, REPLACED)
