"""The models that ship inside the package, so denoising works right after ``pip install``.

``models/<name>.onnx`` are FP32 ONNX exports (with n2nkit metadata) of networks trained by
``n2nkit train`` on the built-in photos with blind Gaussian noise; ``models/shipped.json``
records how each was made (command, training time, validation PSNR).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from n2nkit.errors import UnknownNameError, UserInputError

MODELS_DIR = Path(__file__).resolve().parent / "models"
DEFAULT_MODEL = "n2n"
RECORD = "shipped.json"


def shipped_model_names() -> list[str]:
    """Names of the shipped models present in this installation, the default first."""
    names = sorted(p.stem for p in MODELS_DIR.glob("*.onnx"))
    return sorted(names, key=lambda n: n != DEFAULT_MODEL)


def shipped_model_path(name: str = DEFAULT_MODEL) -> Path:
    """Path of shipped model ``name``; an unknown name lists the shipped ones."""
    names = shipped_model_names()
    if name not in names:
        if not names:
            raise UserInputError(
                f"this installation ships no models (looked in {MODELS_DIR}); reinstall n2nkit "
                "or pass --model"
            )
        raise UnknownNameError("shipped model", name, names)
    return MODELS_DIR / f"{name}.onnx"


def shipped_model_record() -> dict[str, Any]:
    """What ``models/shipped.json`` says about how the shipped models were made."""
    path = MODELS_DIR / RECORD
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
