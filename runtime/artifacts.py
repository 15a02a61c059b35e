"""The artifact contract: what ``n2nkit export`` writes into a folder and how readers find it.

Every writer (:mod:`n2nkit.export.pipeline`, :mod:`n2nkit.export.tensorrt_engine`) and every
reader (:class:`~n2nkit.runtime.Denoiser`, the TensorRT backend, ``n2nkit compare`` and its
targets) goes through this module, so whoever changes what is written sees at once what is
read. It is a leaf: stdlib plus :mod:`n2nkit.errors` and :mod:`n2nkit.fileio`, nothing heavy.

Artifacts (names in an export folder), by kind::

    fp32      model.onnx            FP32, always (everything else is derived from it)
    int8      model.int8.onnx       static QDQ; also the source of the INT8 engine
    fp16      model.fp16.onnx       float32 inputs/outputs
    ort       model.ort             FP32 in ORT format (ONNX Runtime Mobile)
    ort-int8  model.int8.ort        INT8 in ORT format
    trt-fp32, trt-fp16, trt-int8    model.<precision>.engine + model.<precision>.engine.json

``export.json`` (the manifest) names the checkpoint every artifact in the folder came from
(its weights' fingerprint), so one folder never mixes two checkpoints' artifacts.

The sidecar ``<engine>.json`` records what an engine is tied to (TensorRT version, GPU,
profiles) and the model's metadata, which an engine file cannot carry itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from n2nkit.errors import ModelFormatError
from n2nkit.fileio import atomic_write_text

SIDECAR_FORMAT = "n2nkit.tensorrt-engine"
SIDECAR_VERSION = 1
MANIFEST = "export.json"  # which checkpoint the folder's artifacts came from
MANIFEST_FORMAT = "n2nkit.export"
TIMING_CACHE = "tensorrt.timing.cache"  # reused by later engine builds in the same folder
MODEL_SUFFIXES = (".onnx", ".ort", ".engine")
REBUILD = "rebuild it on this machine with `n2nkit export --trt`"


@dataclass(frozen=True)
class ArtifactKind:
    """One kind of artifact: its key, its file name, its format and its weights' precision."""

    kind: str  # fp32, int8, fp16, ort, ort-int8, trt-fp32, trt-fp16, trt-int8
    file: str
    format: str  # onnx | ort | tensorrt
    precision: str  # fp32 | fp16 | int8


KINDS: tuple[ArtifactKind, ...] = (
    ArtifactKind("fp32", "model.onnx", "onnx", "fp32"),
    ArtifactKind("int8", "model.int8.onnx", "onnx", "int8"),
    ArtifactKind("fp16", "model.fp16.onnx", "onnx", "fp16"),
    ArtifactKind("ort", "model.ort", "ort", "fp32"),
    ArtifactKind("ort-int8", "model.int8.ort", "ort", "int8"),
    ArtifactKind("trt-fp32", "model.fp32.engine", "tensorrt", "fp32"),
    ArtifactKind("trt-fp16", "model.fp16.engine", "tensorrt", "fp16"),
    ArtifactKind("trt-int8", "model.int8.engine", "tensorrt", "int8"),
)
BY_KIND = {k.kind: k for k in KINDS}
BY_FILE = {k.file: k for k in KINDS}

# What ``Denoiser.load(folder)`` tries, in order: engines (fastest first), then ONNX.
ENGINE_PREFERENCE = ("trt-fp16", "trt-fp32", "trt-int8")
ONNX_PREFERENCE = ("fp32", "ort")


def kind_key(fmt: str, precision: str) -> str:
    """The kind of a ``fmt`` (onnx, ort, tensorrt) artifact with ``precision`` weights."""
    if fmt == "tensorrt":
        return f"trt-{precision}"
    if fmt == "ort":
        return "ort" if precision == "fp32" else f"ort-{precision}"
    return precision


def file_name(fmt: str, precision: str) -> str:
    """The file name an export writes for a ``fmt`` artifact of ``precision``."""
    return BY_KIND[kind_key(fmt, precision)].file


def format_of(path: Path) -> str | None:
    """onnx, ort or tensorrt from a file's suffix; None for anything else."""
    return {".onnx": "onnx", ".ort": "ort", ".engine": "tensorrt"}.get(Path(path).suffix.lower())


def scan(folder: Path) -> dict[str, Path]:
    """{kind: path} for every artifact present in an export folder, in :data:`KINDS` order."""
    folder = Path(folder)
    return {k.kind: folder / k.file for k in KINDS if (folder / k.file).is_file()}


# ------------------------------------------------------------------ TensorRT engine sidecar
def sidecar_path(engine: Path) -> Path:
    """``model.fp16.engine`` -> ``model.fp16.engine.json``."""
    return Path(engine).with_name(Path(engine).name + ".json")


def write_sidecar(engine: Path, info: dict[str, Any]) -> Path:
    """Write ``info`` (TensorRT version, GPU, precision, profiles, metadata...) beside
    ``engine``, atomically, stamped with the sidecar format and version."""
    record = {"format": SIDECAR_FORMAT, "format_version": SIDECAR_VERSION, **info}
    return atomic_write_text(sidecar_path(engine), json.dumps(record, indent=2, default=list))


def read_sidecar(engine: Path) -> dict[str, Any]:
    """The JSON written beside an engine at build time, checked for the keys the runtime needs."""
    path = sidecar_path(engine)
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelFormatError(
            f"{Path(engine).name} has no sidecar {path.name} (TensorRT version, GPU, metadata): "
            f"{REBUILD}"
        ) from None
    except (OSError, ValueError) as exc:
        raise ModelFormatError(f"{path.name} is not a readable engine sidecar: {exc}") from None
    needed = ("tensorrt_version", "gpu", "compute_capability", "metadata")
    if not isinstance(info, dict) or info.get("format") != SIDECAR_FORMAT:
        raise ModelFormatError(f"{path.name} is not an n2nkit engine sidecar")
    missing = [k for k in needed if k not in info]
    if missing:
        raise ModelFormatError(f"{path.name} lacks {', '.join(missing)}: {REBUILD}")
    return info


# ------------------------------------------------------------------ export manifest
def write_manifest(folder: Path, source: str, fingerprint: str) -> Path:
    """Record (atomically) that ``folder``'s artifacts come from checkpoint ``source``, whose
    weights hash to ``fingerprint``."""
    record = {
        "format": MANIFEST_FORMAT,
        "format_version": 1,
        "source": source,
        "fingerprint": fingerprint,
    }
    return atomic_write_text(Path(folder) / MANIFEST, json.dumps(record, indent=2) + "\n")


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The manifest of an export folder; None when there is none or it is unreadable."""
    try:
        info = json.loads((Path(folder) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or info.get("format") != MANIFEST_FORMAT:
        return None
    return info


def contract_names() -> list[str]:
    """The names of every file of the contract: artifacts, engine sidecars and the manifest
    (not the timing cache, which belongs to the machine, not to a checkpoint)."""
    names = [k.file for k in KINDS]
    names += [sidecar_path(Path(k.file)).name for k in KINDS if k.format == "tensorrt"]
    return [*names, MANIFEST]


def artifact_files(folder: Path) -> list[Path]:
    """Every file of the contract (:func:`contract_names`) present in ``folder``."""
    folder = Path(folder)
    return [folder / n for n in contract_names() if (folder / n).is_file()]
