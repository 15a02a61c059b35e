"""One writer per folder: an advisory lock held for a whole run (train, export).

Two ``n2nkit train`` runs into one ``--out`` would overwrite each other's checkpoints and mix
their metrics. :func:`hold` takes an exclusive ``flock`` on ``<folder>/.n2nkit.lock`` (pure
stdlib, safe for every part); the lock dies with its process, so the lock file a killed run
leaves behind never blocks the next one. The holder's pid is written into the file so the
second run can name it; a run that ends removes the file.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from n2nkit.errors import UserInputError

LOCK_NAME = ".n2nkit.lock"


class FolderBusyError(UserInputError):
    """Another n2nkit process holds the folder's lock."""


@contextlib.contextmanager
def hold(folder: Path, what: str = "run") -> Iterator[Path]:
    """Hold ``folder``'s lock while the block runs; :class:`FolderBusyError` (naming the other
    process's pid) when another process holds it. Creates the folder if needed; the lock file
    is removed on the way out (a killed run's stays behind, and no longer blocks anyone)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    fd = _acquire(path, folder, what)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        with contextlib.suppress(OSError):
            path.unlink()  # while still holding it: see _acquire for who might race us
        os.close(fd)  # releases the lock


def _acquire(path: Path, folder: Path, what: str) -> int:
    """Open and lock ``path``. A holder unlinks the file before releasing it, so a lock taken
    on a file that is no longer at ``path`` is worthless: then try again on the new file."""
    for _ in range(100):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if not _try_lock(fd):
            holder = _holder(fd)
            os.close(fd)
            raise FolderBusyError(
                f"{folder} is in use by another n2nkit {what} (pid {holder}); wait for it "
                "to finish or choose another --out"
            )
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)
    raise FolderBusyError(f"{folder}: its lock file keeps changing; is another n2nkit {what} busy?")


def _try_lock(fd: int) -> bool:
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks here; one run at a time is on the user
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        text = ""
    return text if text.isdigit() else "unknown"
