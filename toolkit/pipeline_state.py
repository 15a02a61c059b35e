"""``n2nkit pipeline``'s resumable state: which steps finished, in ``OUT/pipeline.json``.

Steps are named ``train:<variant>``, ``export:<variant>`` and ``compare``; each is ``started``
or ``done``. Running the pipeline again skips what is done and resumes what was started (an
interrupted training run continues from its ``last.pt``). The file is rewritten atomically
after every change; an unreadable one counts as empty (the steps are redone, nothing breaks).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from n2nkit.fileio import atomic_write_text

STATE_NAME = "pipeline.json"
OUTPUTS = ("runs", "artifacts", "report", STATE_NAME)  # what --fresh removes from OUT


class PipelineState:
    """The steps' states for one pipeline folder, saved on every change."""

    def __init__(self, out: Path) -> None:
        self.path = Path(out) / STATE_NAME
        self.steps = self._read()

    def _read(self) -> dict[str, str]:
        if not self.path.exists():
            return {}
        try:
            state = json.loads(self.path.read_text())
        except ValueError:
            return {}
        return state if isinstance(state, dict) else {}

    def done(self, step: str) -> bool:
        return self.steps.get(step) == "done"

    def started(self, step: str) -> bool:
        """Whether an earlier run began ``step`` (and may have left work to resume)."""
        return step in self.steps

    def mark(self, step: str, status: str) -> None:
        self.steps[step] = status
        atomic_write_text(self.path, json.dumps(self.steps, indent=2) + "\n")


def clear(out: Path) -> None:
    """Remove what earlier pipeline runs wrote into ``out`` (``--fresh``); nothing else."""
    for name in OUTPUTS:
        target = Path(out) / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
