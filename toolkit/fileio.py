"""Atomic file writes shared by every part of n2nkit (pure stdlib, safe for the runtime).

A temporary file is written beside the destination and renamed over it, so a crash or Ctrl-C
leaves the old file or the new one, never half of one, and readers never see a partial file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


NAME_MAX = 255  # bytes in a file name on Linux, macOS and Windows file systems
TEMP_RANDOM = 8  # characters mkstemp adds


def atomic_write(
    path: Path, write: Callable[[IO[bytes]], Any], *, suffix: str = ".tmp", replace: bool = True
) -> Path:
    """Call ``write(binary_file)`` on a temp file beside ``path``, then rename it into place.

    ``suffix`` lets writers that pick a format from the file name (Pillow, matplotlib) see the
    right extension on the temporary file. ``replace=False`` never replaces a file that
    appeared at ``path`` meanwhile (another process): :class:`FileExistsError` instead.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{path.name}."
    if len(os.fsencode(prefix + suffix)) > NAME_MAX - TEMP_RANDOM:  # a long name still fits
        prefix = ".n2nkit-write."
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        if replace:
            os.replace(tmp, path)
        else:
            _move_no_clobber(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _move_no_clobber(tmp: str, path: Path) -> None:
    """Rename ``tmp`` to ``path`` unless ``path`` exists. A hard link is the atomic test and
    rename in one (it fails on an existing name); file systems without hard links (FAT, some
    network mounts) get a check just before the rename."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:  # no hard links here
        if os.path.lexists(path):
            raise FileExistsError(17, "File exists", str(path)) from None
        os.replace(tmp, path)
    else:
        os.unlink(tmp)


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def check_out_dir(path: Path, option: str = "--out") -> Path:
    """Fail early, with one line, when ``path`` cannot become an output folder: it is a file,
    lies under a file, or its nearest existing folder is not writable. Creates nothing, so a
    command can check before minutes of work (and before deciding what it created)."""
    from n2nkit.errors import UserInputError

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserInputError(f"{option} {path} exists and is not a folder")
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise UserInputError(f"{option} {path}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK) or _read_only_fs(probe):
        raise UserInputError(f"{option} {path}: {probe} is not writable")
    return path


def _read_only_fs(folder: Path) -> bool:
    """True on a read-only file system (where ``os.access`` says yes to root)."""
    try:
        st = os.statvfs(folder)
    except (OSError, AttributeError):
        return False
    return bool(st.f_flag & os.ST_RDONLY)


def make_out_dir(path: Path, option: str = "--out") -> Path | None:
    """:func:`check_out_dir`, then create it (and missing parents); the topmost folder this
    call created, None when it existed (so a failed command removes only what it created)."""
    from n2nkit.errors import UserInputError

    path = check_out_dir(path, option)
    created = None
    probe = path.absolute()
    while not probe.exists() and probe.parent != probe:
        created, probe = probe, probe.parent
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserInputError(f"{option} {path} cannot be created: {exc.strerror or exc}") from None
    return created


def remove_leftovers(folder: Path, patterns: tuple[str, ...]) -> list[Path]:
    """Delete what an interrupted writer left in ``folder`` (temp files of :func:`atomic_write`,
    scratch folders), matched by glob ``patterns``; call it only while holding the folder's
    lock (:mod:`n2nkit.runlock`), when no other writer can be using them."""
    import shutil

    removed = []
    for pattern in patterns:
        for leftover in Path(folder).glob(pattern):
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)
            removed.append(leftover)
    return removed


# ------------------------------------------------------------------ replace only once new exist
KEPT_LIST = ".names.json"  # inside a set-aside folder: the names it holds, written first


def set_aside(folder: Path, names: list[str], kept: str) -> None:
    """Move ``folder``'s files ``names`` (those present) into ``folder/kept``, so a run that
    replaces them can put them back (:func:`restore_set_aside`) until it has its own.

    Interrupt-safe: the files move into ``kept + ".partial"`` under a list of their names
    written first, and the folder takes its final name only once all of them are in it; a
    partial one is undone by moving its files back, deleting nothing."""
    import json

    folder = Path(folder)
    present = [n for n in names if (folder / n).is_file()]
    if not present:
        return
    partial = folder / f"{kept}.partial"
    partial.mkdir(exist_ok=True)
    atomic_write_text(partial / KEPT_LIST, json.dumps(present))
    for name in present:
        (folder / name).replace(partial / name)
    partial.replace(folder / kept)


def restore_set_aside(folder: Path, names: list[str], kept: str) -> None:
    """Put back what :func:`set_aside` kept, over the files of the run that replaced them:
    each kept file replaces its namesake atomically, and of ``names`` only those the old run
    did not have are deleted. Safe to interrupt and call again."""
    import json
    import shutil

    folder = Path(folder)
    shutil.rmtree(folder / f"{kept}.drop", ignore_errors=True)  # a drop cut short: garbage
    partial = folder / f"{kept}.partial"
    if partial.is_dir():  # set_aside was cut short: nothing new was written yet
        for path in partial.iterdir():
            if path.name != KEPT_LIST:
                path.replace(folder / path.name)
        shutil.rmtree(partial, ignore_errors=True)
    store = folder / kept
    if not store.is_dir():
        return
    try:
        old = set(json.loads((store / KEPT_LIST).read_text()))
    except (OSError, ValueError):
        old = {p.name for p in store.iterdir()} - {KEPT_LIST}
    for name in names:
        if name in old:
            if (store / name).is_file():  # not yet moved back by an earlier, cut-short call
                (store / name).replace(folder / name)
        else:
            (folder / name).unlink(missing_ok=True)
    shutil.rmtree(store, ignore_errors=True)


def drop_set_aside(folder: Path, kept: str) -> None:
    """The replacing run has its own files now: the kept ones go. Renamed to a tombstone
    first, so an interrupt never leaves half a kept set that a restore would trust."""
    import shutil

    store, tomb = Path(folder) / kept, Path(folder) / f"{kept}.drop"
    if store.is_dir():
        store.replace(tomb)
    shutil.rmtree(tomb, ignore_errors=True)
