"""``n2nkit pipeline``'s resumable state: which steps finished, in ``OUT/pipeline.json``.

Steps are named ``train:<variant>``, ``export:<variant>`` and ``compare``; each is ``started``
or ``done``. Running the pipeline again skips what is done and resumes what was started (an
interrupted training run continues from its ``last.pt``), so the file also records the settings
the models were trained with (``settings``): a later call with other ones is refused rather
than measuring the old models under new labels. The file is rewritten atomically after every
change; an unreadable one counts as empty, and then a run already in ``runs/`` is refused rather
than trained over (``--fresh`` starts over). ``--fresh`` removes only what the pipeline.json
records (and the report's files), and only from a folder with a pipeline.json.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from n2nkit.errors import UserInputError
from n2nkit.fileio import atomic_write_text

STATE_NAME = "pipeline.json"
SETTINGS = "settings"  # the key of the training settings, beside the steps
OUTPUTS = ("runs", "artifacts", "report", STATE_NAME)  # what --fresh removes from OUT


class PipelineState:
    """The steps' states for one pipeline folder, saved on every change."""

    def __init__(self, out: Path) -> None:
        self.path = Path(out) / STATE_NAME
        self.steps = self._read()

    def _read(self) -> dict[str, Any]:
        if not self.path.exists():
            return {}
        try:
            state = json.loads(self.path.read_text())
        except ValueError:
            return {}
        except OSError as exc:  # a folder of that name, no permission
            raise UserInputError(
                f"cannot read {self.path}: {exc.strerror or exc}; move it away or choose "
                "another --out"
            ) from None
        return state if isinstance(state, dict) else {}

    def done(self, step: str) -> bool:
        return self.steps.get(step) == "done"

    def started(self, step: str) -> bool:
        """Whether an earlier run began ``step`` (and may have left work to resume)."""
        return step in self.steps

    def mark(self, step: str, status: str) -> None:
        self.steps[step] = status
        self._write()

    def _write(self) -> None:
        atomic_write_text(self.path, json.dumps(self.steps, indent=2) + "\n")

    def claim(self, settings: dict[str, Any]) -> None:
        """Record the training ``settings`` (option name -> value), or refuse with one line
        if the folder's runs were trained with other values: their steps would be skipped as
        done and the old models measured as if trained with the new ones."""
        recorded = self.steps.get(SETTINGS)
        trained = any(self.path.parent.glob("runs/*/*.pt"))  # what a change would mislabel
        if isinstance(recorded, dict) and trained:
            changed = [k for k, v in settings.items() if k in recorded and recorded[k] != v]
            if changed:
                then = ", ".join(_as_option(k, recorded[k]) for k in changed)
                now = ", ".join(_as_option(k, settings[k]) for k in changed)
                raise UserInputError(
                    f"{self.path.parent} holds a pipeline trained with {then} (now {now}): "
                    "pass --fresh to start over, or choose another --out"
                )
        self.steps[SETTINGS] = {**(recorded if isinstance(recorded, dict) else {}), **settings}
        self._write()

    def check_unclaimed_runs(self, variants: list[str]) -> None:
        """Refuse a training run in ``OUT/runs/<variant>`` that this file does not record as
        started: a user's own run (``n2nkit train`` writes to ``runs/<variant>``) or a
        pipeline's whose pipeline.json was lost. Training would overwrite it."""
        for variant in variants:
            run = self.path.parent / "runs" / variant
            if self.started(f"train:{variant}") or not run.is_dir() or not any(run.iterdir()):
                continue
            raise UserInputError(
                f"{run} holds a training run that {self.path.name} does not record: the "
                "pipeline would overwrite it; move it away or choose another --out"
            )


def _as_option(key: str, value: Any) -> str:
    """A recorded setting as the option that gives it (``--direct``, ``--noise gaussian:25``)."""
    if key == "residual":
        return {None: "the recipe's default (no --residual/--direct)", True: "--residual",
                False: "--direct"}.get(value, repr(value))  # fmt: skip
    return f"--{key.replace('_', '-')} {value}"


def clear(out: Path, report_files: Iterable[str] = ()) -> None:
    """Remove what earlier pipeline runs wrote into ``out`` (``--fresh``): the runs and
    exports its pipeline.json records, ``report/``'s ``report_files`` (the compare step's),
    then the folders these leave empty. Nothing else (a user's own run in ``runs/``, notes in
    ``report/``), and nothing from a folder without a pipeline.json: ``runs/`` there may be
    ``n2nkit train``'s."""
    out = Path(out)
    if not out.exists():
        return
    if not (out / STATE_NAME).is_file():
        found = [name for name in OUTPUTS if (out / name).exists()]
        if found:
            raise UserInputError(
                f"--fresh: {out} holds {', '.join(found)} but no {STATE_NAME}, so not a "
                "pipeline's folder; nothing was removed: remove them yourself or choose "
                "another --out"
            )
        return
    steps = PipelineState(out).steps
    written = [out / "report" / name for name in report_files]
    for step in steps:
        kind, _, variant = step.partition(":")
        folder = {"train": "runs", "export": "artifacts"}.get(kind)
        if folder and variant and Path(variant).name == variant:  # no ../ from a hand edit
            written.append(out / folder / variant)
    for target in written:
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
    for folder in ("runs", "artifacts", "report"):
        with contextlib.suppress(OSError):  # kept when something else is in it
            (out / folder).rmdir()
    (out / STATE_NAME).unlink()
