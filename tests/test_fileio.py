"""Setting files aside until their replacements exist (``train --overwrite``, ``export
--overwrite``): each step can be cut short, and calling restore again finishes the job without
deleting an old file or keeping a new one."""

from __future__ import annotations

import json
from pathlib import Path

from n2nkit.fileio import KEPT_LIST, drop_set_aside, restore_set_aside, set_aside

NAMES = ["best.pt", "last.pt", "metrics.jsonl"]


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def test_set_aside_then_restore_puts_the_old_files_back_over_the_new(tmp_path: Path) -> None:
    (tmp_path / "last.pt").write_bytes(b"old last")
    (tmp_path / "metrics.jsonl").write_bytes(b"old metrics")
    (tmp_path / "user.txt").write_bytes(b"not ours")
    set_aside(tmp_path, NAMES, ".kept")
    assert _files(tmp_path) == {"user.txt": b"not ours"}
    for name in NAMES:  # the new run writes all three
        (tmp_path / name).write_bytes(b"new " + name.encode())
    restore_set_aside(tmp_path, NAMES, ".kept")
    assert _files(tmp_path) == {
        "last.pt": b"old last",
        "metrics.jsonl": b"old metrics",
        "user.txt": b"not ours",
    }  # fmt: skip  (new best.pt: deleted)
    assert not (tmp_path / ".kept").exists()


def test_a_set_aside_cut_short_is_undone_without_deleting_anything(tmp_path: Path) -> None:
    partial = tmp_path / ".kept.partial"
    partial.mkdir()
    (partial / KEPT_LIST).write_text(json.dumps(["best.pt", "last.pt"]))
    (partial / "best.pt").write_bytes(b"old best")  # moved before the interrupt
    (tmp_path / "last.pt").write_bytes(b"old last")  # not moved yet
    restore_set_aside(tmp_path, NAMES, ".kept")
    assert _files(tmp_path) == {"best.pt": b"old best", "last.pt": b"old last"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt"]


def test_a_restore_cut_short_is_finished_by_the_next_one(tmp_path: Path) -> None:
    (tmp_path / "best.pt").write_bytes(b"old best")
    (tmp_path / "last.pt").write_bytes(b"old last")
    set_aside(tmp_path, NAMES, ".kept")
    for name in NAMES:
        (tmp_path / name).write_bytes(b"new")
    (tmp_path / ".kept" / "best.pt").replace(tmp_path / "best.pt")  # the first restore's step
    restore_set_aside(tmp_path, NAMES, ".kept")  # once deleted the old best.pt back in place
    assert _files(tmp_path) == {"best.pt": b"old best", "last.pt": b"old last"}


def test_drop_leaves_nothing_a_restore_would_trust(tmp_path: Path) -> None:
    (tmp_path / "best.pt").write_bytes(b"old")
    set_aside(tmp_path, NAMES, ".kept")
    (tmp_path / "best.pt").write_bytes(b"new")
    drop_set_aside(tmp_path, ".kept")
    restore_set_aside(tmp_path, NAMES, ".kept")  # nothing kept any more: the new file stays
    assert _files(tmp_path) == {"best.pt": b"new"}
    (tmp_path / ".kept.drop").mkdir()  # a drop cut short after its rename
    (tmp_path / ".kept.drop" / "best.pt").write_bytes(b"old")
    restore_set_aside(tmp_path, NAMES, ".kept")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt"]
    assert _files(tmp_path) == {"best.pt": b"new"}
