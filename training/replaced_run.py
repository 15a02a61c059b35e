"""``train --overwrite`` replaces the old run only once the new one has something to show.

The old run's ``best.pt``, ``last.pt`` and ``metrics.jsonl`` move into ``OUT/.n2nkit-replaced-run``
when the new run starts, and are deleted when it ends its first epoch. If it fails or is
interrupted before that (Ctrl-C, SIGTERM, an error), or was killed and is started again, they
come back: an interrupted ``--overwrite`` loses nothing, as an export's does not.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from n2nkit.training.checkpoint import BEST_NAME, LAST_NAME

REPLACED = ".n2nkit-replaced-run"
METRICS_NAME = "metrics.jsonl"
RUN_FILES = (BEST_NAME, LAST_NAME, METRICS_NAME)


def set_aside(run_dir: Path) -> None:
    """Move the old run's files out of the way of the new run (rank 0, folder locked)."""
    present = [run_dir / name for name in RUN_FILES if (run_dir / name).exists()]
    if not present:
        return
    kept = run_dir / REPLACED
    kept.mkdir(exist_ok=True)
    for path in present:
        path.replace(kept / path.name)


def restore_set_aside(run_dir: Path) -> None:
    """Put the old run back over what the new one wrote (it ended no epoch)."""
    kept = Path(run_dir) / REPLACED
    if not kept.is_dir():
        return
    for name in RUN_FILES:
        (Path(run_dir) / name).unlink(missing_ok=True)
    for path in kept.iterdir():
        path.replace(Path(run_dir) / path.name)
    kept.rmdir()


def drop_set_aside(run_dir: Path) -> None:
    """The new run ended an epoch: the old one is replaced for good."""
    shutil.rmtree(Path(run_dir) / REPLACED, ignore_errors=True)
