"""The artifact contract (runtime/artifacts.py): one table of kinds and names, the engine
sidecar written and read in one place, and scan() finding what an export folder holds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from n2nkit.errors import ModelFormatError
from n2nkit.runtime import artifacts


def test_every_kind_has_one_file_and_names_round_trip() -> None:
    assert len({k.file for k in artifacts.KINDS}) == len(artifacts.KINDS)
    for k in artifacts.KINDS:
        assert artifacts.file_name(k.format, k.precision) == k.file
        assert artifacts.format_of(Path(k.file)) == k.format
    assert artifacts.file_name("onnx", "fp32") == "model.onnx"
    assert artifacts.file_name("ort", "int8") == "model.int8.ort"
    assert artifacts.file_name("tensorrt", "fp16") == "model.fp16.engine"


def test_scan_finds_what_an_export_folder_holds(tmp_path: Path) -> None:
    for name in ("model.onnx", "model.int8.onnx", "model.fp16.engine", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    found = artifacts.scan(tmp_path)
    assert found == {
        "fp32": tmp_path / "model.onnx",
        "int8": tmp_path / "model.int8.onnx",
        "trt-fp16": tmp_path / "model.fp16.engine",
    }


def test_sidecar_is_written_and_read_in_one_place(tmp_path: Path) -> None:
    engine = tmp_path / "model.fp16.engine"
    info = {"tensorrt_version": "10.0", "gpu": "g", "compute_capability": "9.0",
            "precision": "fp16", "metadata": {"n2nkit.variant": "n2n"}}  # fmt: skip
    path = artifacts.write_sidecar(engine, info)
    assert path == artifacts.sidecar_path(engine) == tmp_path / "model.fp16.engine.json"
    read = artifacts.read_sidecar(engine)
    assert read["format"] == artifacts.SIDECAR_FORMAT and read["gpu"] == "g"
    path.write_text(json.dumps({"format": "other"}))
    with pytest.raises(ModelFormatError, match="not an n2nkit engine sidecar"):
        artifacts.read_sidecar(engine)


def test_compare_targets_name_known_kinds() -> None:
    from n2nkit.bench.targets import CHECKPOINT, TARGETS

    # Every target runs an artifact kind of the contract, or (the PyTorch rows) the checkpoint.
    assert {t.artifact for t in TARGETS} <= set(artifacts.BY_KIND) | {CHECKPOINT}
    assert CHECKPOINT in {t.artifact for t in TARGETS}
